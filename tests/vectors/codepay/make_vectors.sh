#!/usr/bin/env bash
# Known-answer vectors for posbridge.providers.codepay.signing, made with the openssl CLI only,
# independently of the code under test. Re-running keeps the existing test key (so checked-in
# signatures stay valid) and rewrites every derived file.
#
#   bash tests/vectors/codepay/make_vectors.sh
#
# The RSA-2048 key pair here is a TEST-ONLY key; it signs nothing but these vectors.
#
# Inputs, written literally below:
#   <name>.params.json   the fields as they travel (without sign); JSON numbers with a fraction
#                        are read as exact decimals by the tests
#   <name>.canonical.txt their canonical string, composed by hand (no trailing newline):
#                        drop sign, null and "" values; sort keys by code point; k=v joined
#                        by &; ints decimal, booleans true/false, nested values compact JSON
# Output:
#   <name>.sig           base64(RSASSA-PKCS1-v1_5(SHA-256, canonical)) with rsa2048.pem
set -euo pipefail
cd "$(dirname "$0")"

if [ ! -f rsa2048.pem ]; then
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rsa2048.pem
fi
openssl pkey -in rsa2048.pem -pubout -out rsa2048.pub.pem

# 1. The seed's Create Order request sample (seed 003), sign left out: numbers, bools,
#    a string timestamp, upper-case keys none, "sign_type" signed.
cat > seed_create.params.json <<'JSON'
{"charset": "UTF-8", "pay_scenario": "SWIPE_CARD", "description": "ECRCloudPurchase",
 "on_screen_signature": false, "merchant_order_no": "1709106082732", "on_screen_tip": false,
 "order_amount": 144.34, "app_id": "wz6012822ca2f1as78", "sign_type": "RSA2",
 "price_currency": "USD", "reject_trade_when_terminal_offline": true,
 "terminal_sn": "WPYB002248000865", "trans_type": 1, "timestamp": "1709106082819",
 "merchant_no": "302300000926", "method": "wisehub.cloud.pay.order", "format": "JSON",
 "order_queue_mode": "FILO", "api_version": "2.0", "version": "1.0",
 "confirm_on_terminal": false, "message_receiving_application": "CodePay Register",
 "tip_amount": 30}
JSON
printf '%s' 'api_version=2.0&app_id=wz6012822ca2f1as78&charset=UTF-8&confirm_on_terminal=false&description=ECRCloudPurchase&format=JSON&merchant_no=302300000926&merchant_order_no=1709106082732&message_receiving_application=CodePay Register&method=wisehub.cloud.pay.order&on_screen_signature=false&on_screen_tip=false&order_amount=144.34&order_queue_mode=FILO&pay_scenario=SWIPE_CARD&price_currency=USD&reject_trade_when_terminal_offline=true&sign_type=RSA2&terminal_sn=WPYB002248000865&timestamp=1709106082819&tip_amount=30&trans_type=1&version=1.0' \
    > seed_create.canonical.txt

# 2. Unicode text, amounts as strings, an empty and a null value (both left out), a zero int
#    kept, a key with an upper-case letter (sorts before lower case by code point).
cat > unicode_refund.params.json <<'JSON'
{"app_id": "sandbox-app", "method": "wisehub.cloud.pay.order", "format": "JSON",
 "charset": "UTF-8", "sign_type": "RSA2", "version": "1.0", "timestamp": 1709106082819,
 "merchant_no": "SANDBOX000001", "store_no": "", "attach": null, "Zeta": "upper",
 "description": "Café crème ☕ 退款 \"quoted\" & a=b", "order_amount": "12.30",
 "tip_amount": "0.00", "trans_type": 3, "receipt_print_mode": 0,
 "orig_merchant_order_no": "A-1|x*y@z_2", "merchant_order_no": "R1"}
JSON
printf '%s' 'Zeta=upper&app_id=sandbox-app&charset=UTF-8&description=Café crème ☕ 退款 "quoted" & a=b&format=JSON&merchant_no=SANDBOX000001&merchant_order_no=R1&method=wisehub.cloud.pay.order&order_amount=12.30&orig_merchant_order_no=A-1|x*y@z_2&receipt_print_mode=0&sign_type=RSA2&timestamp=1709106082819&tip_amount=0.00&trans_type=3&version=1.0' \
    > unicode_refund.canonical.txt

# 3. Nested values: an array (Get Open Batch's terminal_sn_list) and an object with unicode,
#    a null, a bool and a nested array inside (kept, in their order, as compact JSON).
cat > nested_open_batch.params.json <<'JSON'
{"app_id": "sandbox-app", "method": "batch.open.query", "format": "JSON", "charset": "UTF-8",
 "sign_type": "RSA2", "version": "1.0", "timestamp": 1709106082819,
 "merchant_no": "SANDBOX000001", "store_no": "SANDBOXSTORE1",
 "terminal_sn_list": ["WPYB001234567890", "WPYB001234567891"],
 "order_detail": {"z": "last", "a": "Zürich ☕", "n": null, "ok": true, "list": [1, "two", false]}}
JSON
printf '%s' 'app_id=sandbox-app&charset=UTF-8&format=JSON&merchant_no=SANDBOX000001&method=batch.open.query&order_detail={"z":"last","a":"Zürich ☕","n":null,"ok":true,"list":[1,"two",false]}&sign_type=RSA2&store_no=SANDBOXSTORE1&terminal_sn_list=["WPYB001234567890","WPYB001234567891"]&timestamp=1709106082819&version=1.0' \
    > nested_open_batch.canonical.txt

# 4. A gateway answer: code, msg, psn and data (compact JSON text, amounts as strings).
cat > query_answer.params.json <<'JSON'
{"code": "0", "msg": "success", "psn": "09050714451053895687",
 "data": {"trans_no": "50210004102306140000003", "merchant_order_no": "TEST_1686732708342",
          "trans_status": 2, "order_amount": "200", "price_currency": "JPY",
          "trans_end_time": "2023-06-14 08:51:51", "trans_type": 1}}
JSON
printf '%s' 'code=0&data={"trans_no":"50210004102306140000003","merchant_order_no":"TEST_1686732708342","trans_status":2,"order_amount":"200","price_currency":"JPY","trans_end_time":"2023-06-14 08:51:51","trans_type":1}&msg=success&psn=09050714451053895687' \
    > query_answer.canonical.txt

for name in seed_create unicode_refund nested_open_batch query_answer; do
    openssl dgst -sha256 -sign rsa2048.pem "${name}.canonical.txt" \
        | openssl base64 -A > "${name}.sig"
done
