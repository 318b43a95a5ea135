#!/usr/bin/env bash
# Known-answer vectors for posbridge.providers.opay.envelope, made with the openssl CLI only,
# independently of the code under test. Re-running keeps existing keys (so the checked-in
# vectors stay valid) and rewrites every derived file.
#
#   bash tests/vectors/opay/make_vectors.sh
#
# The crypto payment API's envelope ("Create a payment order": data and sign in the body):
#   data = Base64url(no padding) of RSA-PKCS#1 v1.5 encryption of the JSON text with the
#          receiver's public key, in blocks of at most k-11 bytes (245 for RSA-2048), the
#          k-byte cipher blocks concatenated;
#   sign = Base64url(no padding) of SHA256withRSA by the sender's private key over the
#          lower-case hex MD5 of that JSON text.
# PKCS#1 v1.5 encryption is randomised, so a cipher text cannot be compared byte for byte:
# the tests decrypt these and check the plain text, and check the signatures exactly.
#
# Keys: merchant.pem / platform.pem (PKCS#8 PEM), *.pub.pem (SPKI PEM), and the one-line
# Base64 DER forms a portal hands out: *.pk8.b64 (PKCS#8), *.pub.b64 (X.509 SPKI, standard
# alphabet) and *.pub.b64url (URL-safe alphabet, no padding).
# Inputs, written literally below (no trailing newline):
#   create.json   createThirdOrder parameters, long enough for two blocks, with Unicode
#   answer.json   an orderDetail answer's parameters
# Outputs:
#   <name>.md5.txt        lower-case hex MD5 of the JSON text
#   create.sign.txt       the merchant's sign over create.json
#   create.data.txt       create.json encrypted for the platform (two blocks)
#   answer.sign.txt       the platform's sign over answer.json
#   answer.data.txt       answer.json encrypted for the merchant (one block)
#   answer.body.json      the whole answer {code, msg, data, sign} as the platform sends it
#   answer.std.body.json  the same answer in the standard Base64 alphabet with padding
set -euo pipefail
cd "$(dirname "$0")"

b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }

for name in merchant platform; do
    if [ ! -f "${name}.pem" ]; then
        openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "${name}.pem"
    fi
    openssl pkey -in "${name}.pem" -pubout -out "${name}.pub.pem"
    openssl pkey -in "${name}.pem" -outform DER | openssl base64 -A > "${name}.pk8.b64"
    openssl pkey -in "${name}.pem" -pubout -outform DER | openssl base64 -A > "${name}.pub.b64"
    openssl pkey -in "${name}.pem" -pubout -outform DER | b64url > "${name}.pub.b64url"
done

printf '%s' '{"appOrderId":"A1001","goods":"[{\"name\":\"Espresso doppio ☕\",\"desc\":\"两杯咖啡, extra hot\"}]","notifyPage":"https://store-42.example/notify/opay","openId":"2ae04ed9165624419bad68e9e0f3f29fbd","orderAmount":"12.5","orderSceneType":"1000011","payCoinSymbol":"USDT","returnPage":"https://store-42.example/"}' \
    > create.json
printf '%s' '{"appOrderId":"A1001","orderAmount":"12.5","orderNum":"1000000009","orderStatus":"3","payCoinSymbol":"USDT"}' \
    > answer.json

encrypt_blocks() {  # $1 JSON file, $2 receiver's public key PEM: the k-byte blocks, concatenated
    local dir
    dir="$(mktemp -d)"
    split -b 245 -a 3 "$1" "${dir}/in."
    for part in "${dir}"/in.*; do
        openssl pkeyutl -encrypt -pubin -inkey "$2" -pkeyopt rsa_padding_mode:pkcs1 -in "${part}"
    done
    rm -rf "${dir}"
}

for name in create answer; do
    openssl dgst -md5 -r "${name}.json" | cut -d' ' -f1 | tr -d '\n' > "${name}.md5.txt"
done
openssl dgst -sha256 -sign merchant.pem create.md5.txt | b64url > create.sign.txt
encrypt_blocks create.json platform.pub.pem | b64url > create.data.txt
openssl dgst -sha256 -sign platform.pem answer.md5.txt | b64url > answer.sign.txt
encrypt_blocks answer.json merchant.pub.pem > answer.data.bin
printf '{"code":"0","msg":"success","data":"%s","sign":"%s"}' \
    "$(b64url < answer.data.bin)" "$(cat answer.sign.txt)" > answer.body.json
printf '{"code":"0","msg":"success","data":"%s","sign":"%s"}' \
    "$(openssl base64 -A < answer.data.bin)" \
    "$(openssl dgst -sha256 -sign platform.pem answer.md5.txt | openssl base64 -A)" \
    > answer.std.body.json
b64url < answer.data.bin > answer.data.txt
rm -f answer.data.bin
