#!/bin/sh
# Known-answer vectors for posbridge.secrets, computed by the openssl CLI (OpenSSL 3 `kdf`),
# independently of the code under test. Output: scrypt_vectors.txt, one vector per line:
#   <secret as hex of its UTF-8 bytes> <salt hex> <ln> <r> <p> <derived key hex>
# Run from this folder: sh make_scrypt_vectors.sh > scrypt_vectors.txt
set -eu

vector() {  # secret salt_hex ln r p dklen
    secret_hex=$(printf '%s' "$1" | od -An -tx1 | tr -d ' \n')
    n=$((1 << $3))
    key=$(openssl kdf -keylen "$6" -kdfopt "pass:$1" -kdfopt "hexsalt:$2" \
        -kdfopt "n:$n" -kdfopt "r:$4" -kdfopt "p:$5" SCRYPT | tr -d ':\n' | tr 'A-F' 'a-f')
    echo "$secret_hex $2 $3 $4 $5 $key"
}

# RFC 7914 section 12, third vector: "password" / "NaCl", N=1024, r=8, p=16.
vector "password" 4e61436c 10 8 16 64
# A generated-token-shaped secret at a cheap cost, as the tests use.
vector "tok1-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" 00112233445566778899aabbccddeeff 4 8 1 32
# A PIN at the production cost (ln=15, r=8, p=1).
vector "424242" 0f1e2d3c4b5a69788796a5b4c3d2e1f0 15 8 1 32
# Non-ASCII secrets are hashed as UTF-8.
vector "pässwörd€" a0a1a2a3a4a5a6a7 5 8 1 32
