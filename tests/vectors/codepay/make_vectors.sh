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

# 5-15. The card lifecycle's request shapes, each as posbridge.providers.codepay.messages
#    builds it (the tests build the same body from a PaymentOrder and compare): the common
#    envelope of 5-15 is app_id sandbox-app, timestamp 1709106082819, sign_type RSA2.
ENV='"app_id": "sandbox-app", "format": "JSON", "charset": "UTF-8", "sign_type": "RSA2", "version": "1.0", "timestamp": 1709106082819, "merchant_no": "SANDBOX000001"'
NOTIFY='https://store-42.example/notify/codepay'

# 5. A pre-auth (trans_type 4) whose tip the customer enters on the terminal.
cat > preauth.params.json <<JSON
{${ENV}, "method": "wisehub.cloud.pay.order", "store_no": "SANDBOXSTORE1",
 "terminal_sn": "WPYB002248000865", "message_receiving_application": "CodePay Register",
 "price_currency": "USD", "order_amount": "50.00", "on_screen_tip": true, "trans_type": 4,
 "merchant_order_no": "PA1", "description": "Room 12", "notify_url": "${NOTIFY}",
 "expires": 180, "api_version": "2.0"}
JSON
printf '%s' "api_version=2.0&app_id=sandbox-app&charset=UTF-8&description=Room 12&expires=180&format=JSON&merchant_no=SANDBOX000001&merchant_order_no=PA1&message_receiving_application=CodePay Register&method=wisehub.cloud.pay.order&notify_url=${NOTIFY}&on_screen_tip=true&order_amount=50.00&price_currency=USD&sign_type=RSA2&store_no=SANDBOXSTORE1&terminal_sn=WPYB002248000865&timestamp=1709106082819&trans_type=4&version=1.0" \
    > preauth.canonical.txt

# 6. Its completion (6): less than the hold, with a tip added at completion.
cat > completion.params.json <<JSON
{${ENV}, "method": "wisehub.cloud.pay.order", "store_no": "SANDBOXSTORE1",
 "terminal_sn": "WPYB002248000865", "message_receiving_application": "CodePay Register",
 "price_currency": "USD", "order_amount": "42.50", "tip_amount": "5.00", "trans_type": 6,
 "merchant_order_no": "PC1", "orig_merchant_order_no": "PA1", "description": "Room 12",
 "notify_url": "${NOTIFY}", "expires": 180, "api_version": "2.0"}
JSON
printf '%s' "api_version=2.0&app_id=sandbox-app&charset=UTF-8&description=Room 12&expires=180&format=JSON&merchant_no=SANDBOX000001&merchant_order_no=PC1&message_receiving_application=CodePay Register&method=wisehub.cloud.pay.order&notify_url=${NOTIFY}&order_amount=42.50&orig_merchant_order_no=PA1&price_currency=USD&sign_type=RSA2&store_no=SANDBOXSTORE1&terminal_sn=WPYB002248000865&timestamp=1709106082819&tip_amount=5.00&trans_type=6&version=1.0" \
    > completion.canonical.txt

# 7. A cashback sale (11) with a tip: order amount + cash back (+ tip) is charged.
cat > cashback_sale.params.json <<JSON
{${ENV}, "method": "wisehub.cloud.pay.order", "terminal_sn": "WPYB002248000865",
 "message_receiving_application": "CodePay Register", "price_currency": "USD",
 "order_amount": "20.00", "tip_amount": "3.00", "cashback_amount": "40.00", "trans_type": 11,
 "merchant_order_no": "CB1", "description": "sale CB1", "expires": 180, "api_version": "2.0"}
JSON
printf '%s' "api_version=2.0&app_id=sandbox-app&cashback_amount=40.00&charset=UTF-8&description=sale CB1&expires=180&format=JSON&merchant_no=SANDBOX000001&merchant_order_no=CB1&message_receiving_application=CodePay Register&method=wisehub.cloud.pay.order&order_amount=20.00&price_currency=USD&sign_type=RSA2&terminal_sn=WPYB002248000865&timestamp=1709106082819&tip_amount=3.00&trans_type=11&version=1.0" \
    > cashback_sale.canonical.txt

# 8. A sale (1) whose tip the customer enters on the terminal (on_screen_tip is for 1, 3, 4
#    only: a cashback sale takes none), in JPY (no decimals).
cat > sale_on_screen_tip.params.json <<JSON
{${ENV}, "method": "wisehub.cloud.pay.order", "terminal_sn": "WPYB002248000865",
 "message_receiving_application": "CodePay Register", "price_currency": "JPY",
 "order_amount": "1800", "on_screen_tip": true, "trans_type": 1, "merchant_order_no": "OT1",
 "description": "Ramen ×2", "notify_url": "${NOTIFY}", "expires": 180, "api_version": "2.0"}
JSON
printf '%s' "api_version=2.0&app_id=sandbox-app&charset=UTF-8&description=Ramen ×2&expires=180&format=JSON&merchant_no=SANDBOX000001&merchant_order_no=OT1&message_receiving_application=CodePay Register&method=wisehub.cloud.pay.order&notify_url=${NOTIFY}&on_screen_tip=true&order_amount=1800&price_currency=JPY&sign_type=RSA2&terminal_sn=WPYB002248000865&timestamp=1709106082819&trans_type=1&version=1.0" \
    > sale_on_screen_tip.canonical.txt

# 9. The void of that completion (7): its whole amount, tip included.
cat > completion_void.params.json <<JSON
{${ENV}, "method": "wisehub.cloud.pay.order", "terminal_sn": "WPYB002248000865",
 "message_receiving_application": "CodePay Register", "price_currency": "USD",
 "order_amount": "47.50", "trans_type": 7, "merchant_order_no": "PC1V",
 "orig_merchant_order_no": "PC1", "description": "void PC1V", "expires": 180,
 "api_version": "2.0"}
JSON
printf '%s' "api_version=2.0&app_id=sandbox-app&charset=UTF-8&description=void PC1V&expires=180&format=JSON&merchant_no=SANDBOX000001&merchant_order_no=PC1V&message_receiving_application=CodePay Register&method=wisehub.cloud.pay.order&order_amount=47.50&orig_merchant_order_no=PC1&price_currency=USD&sign_type=RSA2&terminal_sn=WPYB002248000865&timestamp=1709106082819&trans_type=7&version=1.0" \
    > completion_void.canonical.txt

# 10. A partial refund of that completion (8) on the terminal.
cat > completion_refund.params.json <<JSON
{${ENV}, "method": "wisehub.cloud.pay.order", "terminal_sn": "WPYB002248000865",
 "message_receiving_application": "CodePay Register", "price_currency": "USD",
 "order_amount": "10.00", "trans_type": 8, "merchant_order_no": "PC1R1",
 "orig_merchant_order_no": "PC1", "description": "Teilrückerstattung", "expires": 180,
 "api_version": "2.0"}
JSON
printf '%s' "api_version=2.0&app_id=sandbox-app&charset=UTF-8&description=Teilrückerstattung&expires=180&format=JSON&merchant_no=SANDBOX000001&merchant_order_no=PC1R1&message_receiving_application=CodePay Register&method=wisehub.cloud.pay.order&order_amount=10.00&orig_merchant_order_no=PC1&price_currency=USD&sign_type=RSA2&terminal_sn=WPYB002248000865&timestamp=1709106082819&trans_type=8&version=1.0" \
    > completion_refund.canonical.txt

# 11. A refund without the card (Submit Order Refund): the reason cut to 64 characters.
REASON='Customer returned the blue mug; chipped rim, no replacement want'
cat > refund_submit.params.json <<JSON
{${ENV}, "method": "order.refund.submit", "orig_merchant_order_no": "S1",
 "merchant_order_no": "R1", "price_currency": "USD", "order_amount": "5.00",
 "description": "${REASON}", "notify_url": "${NOTIFY}"}
JSON
printf '%s' "app_id=sandbox-app&charset=UTF-8&description=${REASON}&format=JSON&merchant_no=SANDBOX000001&merchant_order_no=R1&method=order.refund.submit&notify_url=${NOTIFY}&order_amount=5.00&orig_merchant_order_no=S1&price_currency=USD&sign_type=RSA2&timestamp=1709106082819&version=1.0" \
    > refund_submit.canonical.txt

# 12. Query Refund, by the refund's own number.
cat > refund_query.params.json <<JSON
{${ENV}, "method": "order.refund.query", "merchant_order_no": "R1"}
JSON
printf '%s' "app_id=sandbox-app&charset=UTF-8&format=JSON&merchant_no=SANDBOX000001&merchant_order_no=R1&method=order.refund.query&sign_type=RSA2&timestamp=1709106082819&version=1.0" \
    > refund_query.canonical.txt

# 13. Tip Adjustment: the ORIGINAL sale's number, the new total tip.
cat > tip_adjustment.params.json <<JSON
{${ENV}, "method": "tip.adjustment", "merchant_order_no": "S1",
 "tip_adjustment_amount": "4.50"}
JSON
printf '%s' "app_id=sandbox-app&charset=UTF-8&format=JSON&merchant_no=SANDBOX000001&merchant_order_no=S1&method=tip.adjustment&sign_type=RSA2&timestamp=1709106082819&tip_adjustment_amount=4.50&version=1.0" \
    > tip_adjustment.canonical.txt

# 14. CodePay Hosted Checkout (pay-by-link), with a return_url, no card data.
cat > checkout.params.json <<JSON
{${ENV}, "method": "pay.checkout", "store_no": "SANDBOXSTORE1", "merchant_order_no": "CK1",
 "price_currency": "CAD", "order_amount": "150.34", "expires": 600,
 "description": "Iphone 16", "notify_url": "${NOTIFY}",
 "return_url": "https://store-42.example/thanks"}
JSON
printf '%s' "app_id=sandbox-app&charset=UTF-8&description=Iphone 16&expires=600&format=JSON&merchant_no=SANDBOX000001&merchant_order_no=CK1&method=pay.checkout&notify_url=${NOTIFY}&order_amount=150.34&price_currency=CAD&return_url=https://store-42.example/thanks&sign_type=RSA2&store_no=SANDBOXSTORE1&timestamp=1709106082819&version=1.0" \
    > checkout.canonical.txt

# 15. Cancel Order (order.revoker) of that checkout.
cat > revoker.params.json <<JSON
{${ENV}, "method": "order.revoker", "merchant_order_no": "CK1"}
JSON
printf '%s' "app_id=sandbox-app&charset=UTF-8&format=JSON&merchant_no=SANDBOX000001&merchant_order_no=CK1&method=order.revoker&sign_type=RSA2&timestamp=1709106082819&version=1.0" \
    > revoker.canonical.txt

for name in seed_create unicode_refund nested_open_batch query_answer preauth completion \
        cashback_sale sale_on_screen_tip completion_void completion_refund refund_submit \
        refund_query tip_adjustment checkout revoker; do
    openssl dgst -sha256 -sign rsa2048.pem "${name}.canonical.txt" \
        | openssl base64 -A > "${name}.sig"
done
