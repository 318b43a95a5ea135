#!/usr/bin/env bash
# Known-answer vectors for posbridge.providers.ucanpay.signing, made with the openssl CLI only,
# independently of the code under test. Re-running keeps existing keys (so the checked-in
# signatures stay valid) and rewrites every derived file.
#
#   bash tests/vectors/ucanpay/make_vectors.sh
#
# Inputs, written literally below:
#   <name>.params.json   the request parameters (as a client would send them, without sign)
#   <name>.string_a.txt  their stringA, composed by hand (sorted, non-empty, k=v&..., no newline)
#   md5_secret.txt       the MD5 shared secret (no newline)
# Outputs:
#   <name>.<key>.double_hash.sig  base64(RSA-PKCS1v15-SHA256(SHA256(stringA)))
#   <name>.<key>.rsa_sha256.sig   base64(RSA-PKCS1v15-SHA256(stringA))
#   <name>.<key>.double_hash.wrapped.sig  the same signature, Base64 broken into lines of 64
#                                         (as `openssl base64` and some Java encoders write it)
#   <name>.md5.txt                upper-hex MD5("stringA&key=SECRET")
set -euo pipefail
cd "$(dirname "$0")"

for bits in 1024 2048; do
    if [ ! -f "rsa${bits}.pem" ]; then
        openssl genpkey -algorithm RSA -pkeyopt "rsa_keygen_bits:${bits}" -out "rsa${bits}.pem"
    fi
    openssl pkey -in "rsa${bits}.pem" -pubout -out "rsa${bits}.pub.pem"
done

printf '%s' 'sandbox-md5-secret-0123' > md5_secret.txt

# The seed's unifiedorder request sample (seed 001, "统一下单"), sign left out.
cat > seed_unifiedorder.params.json <<'JSON'
{"subject": "coffee", "body": "coffee", "nonceStr": "1yFc0NDHF3QdNxJjFkTMX9lKXdC7N737",
 "deviceNo": "device002", "totalAmt": 1, "merchantId": "2000000010", "sceneType": "JSAPI",
 "outTradeNo": "339483424962248704", "signType": "RSA", "currency": "CAD",
 "notifyUrl": "http://abccompany.com/ucpay/pay.php"}
JSON
printf '%s' 'body=coffee&currency=CAD&deviceNo=device002&merchantId=2000000010&nonceStr=1yFc0NDHF3QdNxJjFkTMX9lKXdC7N737&notifyUrl=http://abccompany.com/ucpay/pay.php&outTradeNo=339483424962248704&sceneType=JSAPI&signType=RSA&subject=coffee&totalAmt=1' \
    > seed_unifiedorder.string_a.txt

# Unicode text, an empty value (left out), a zero amount kept, and a refund body.
cat > unicode_refund.params.json <<'JSON'
{"merchantId": "2000000010", "outTradeNo": "Q4", "outRefundNo": "Q4R1", "ucpOrderNo": "378251620909056",
 "totalAmt": 1000, "refundAmt": 300, "refundDesc": "商品已售完 ☕", "deviceNo": "",
 "notifyUrl": "http://127.0.0.1:8080/notify/ucanpay/refund", "nonceStr": "abc123", "signType": "RSA"}
JSON
printf '%s' 'merchantId=2000000010&nonceStr=abc123&notifyUrl=http://127.0.0.1:8080/notify/ucanpay/refund&outRefundNo=Q4R1&outTradeNo=Q4&refundAmt=300&refundDesc=商品已售完 ☕&signType=RSA&totalAmt=1000&ucpOrderNo=378251620909056' \
    > unicode_refund.string_a.txt

for name in seed_unifiedorder unicode_refund; do
    for bits in 1024 2048; do
        openssl dgst -sha256 -binary "${name}.string_a.txt" > "${name}.digest.tmp"
        openssl dgst -sha256 -sign "rsa${bits}.pem" "${name}.digest.tmp" > "${name}.sig.tmp"
        openssl base64 -A < "${name}.sig.tmp" > "${name}.rsa${bits}.double_hash.sig"
        openssl base64 < "${name}.sig.tmp" > "${name}.rsa${bits}.double_hash.wrapped.sig"
        openssl dgst -sha256 -sign "rsa${bits}.pem" "${name}.string_a.txt" \
            | openssl base64 -A > "${name}.rsa${bits}.rsa_sha256.sig"
        rm -f "${name}.digest.tmp" "${name}.sig.tmp"
    done
    { cat "${name}.string_a.txt"; printf '&key='; cat md5_secret.txt; } \
        | openssl dgst -md5 -r | cut -d' ' -f1 | tr 'a-f' 'A-F' | tr -d '\n' > "${name}.md5.txt"
done
