"""The envelope against known answers made by the openssl CLI (tests/vectors/opay)."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from posbridge.keyfiles import load_private_key, load_public_key
from posbridge.providers.opay.envelope import (
    Alphabet,
    EnvelopeError,
    SignInput,
    Suite,
    b64decode_any,
    b64encode,
    decrypt,
    encrypt,
    json_text,
    open_text,
    seal,
    sign,
    signed_text,
    verify,
)

from .conftest import VECTORS, private_key, public_key, text


def test_signed_text_is_the_lower_hex_md5_of_the_json_text() -> None:
    json_doc = text("create.json")
    assert signed_text(json_doc) == text("create.md5.txt").encode("ascii")
    assert signed_text(json_doc, SignInput.JSON) == json_doc.encode("utf-8")


def test_json_text_is_sorted_and_compact_and_keeps_unicode() -> None:
    # The vector's text was written by hand in that form.
    params = json.loads(text("create.json"))
    assert json_text(params) == text("create.json")


def test_sign_equals_the_openssl_signature_over_the_md5_hex() -> None:
    expected = text("create.sign.txt")
    assert sign(text("create.json"), private_key("merchant")) == expected
    assert verify(text("create.json"), expected, public_key("merchant"))


def test_verify_reads_both_alphabets_and_refuses_another_text_or_key() -> None:
    good = text("create.sign.txt")
    standard = base64.b64encode(b64decode_any(good)).decode()
    assert not set(good) & set("+/=") and standard.endswith("=")  # 256 bytes: padded
    assert verify(text("create.json"), standard, public_key("merchant"))
    assert not verify(text("create.json") + " ", good, public_key("merchant"))
    assert not verify(text("create.json"), good, public_key("platform"))
    assert not verify(text("create.json"), "not base64 !", public_key("merchant"))
    assert not verify(text("create.json"), None, public_key("merchant"))


def test_decrypt_opens_openssl_blocks_made_for_the_platform() -> None:
    cipher = b64decode_any(text("create.data.txt"))
    assert len(cipher) == 2 * 256  # 316 bytes of JSON: a 245-byte block and a 71-byte one
    assert decrypt(cipher, private_key("platform")) == (VECTORS / "create.json").read_bytes()


def test_open_text_reads_the_openssl_answer_in_either_alphabet() -> None:
    for body_file in ("answer.body.json", "answer.std.body.json"):
        body = json.loads(text(body_file))
        opened = open_text(body["data"], body["sign"], receiver_key=private_key("merchant"),
                           sender_key=public_key("platform"))
        assert opened == text("answer.json")


def test_open_text_none_for_a_wrong_signature_and_error_for_a_wrong_key() -> None:
    data, good = text("answer.data.txt"), text("answer.sign.txt")
    assert open_text(data, text("create.sign.txt"), receiver_key=private_key("merchant"),
                     sender_key=public_key("platform")) is None
    assert open_text(data, good, receiver_key=private_key("merchant"),
                     sender_key=public_key("platform")) == text("answer.json")
    with pytest.raises(EnvelopeError):
        open_text(data, good, receiver_key=private_key("platform"),
                  sender_key=public_key("platform"))
    with pytest.raises(EnvelopeError):
        open_text("", good, receiver_key=private_key("merchant"),
                  sender_key=public_key("platform"))


@pytest.mark.parametrize("size", [0, 1, 245, 246, 490, 491, 1000])
def test_encrypt_makes_k_byte_blocks_of_at_most_k_minus_11_bytes(size: int) -> None:
    plain = bytes(range(256)) * 4
    plain = plain[:size]
    cipher = encrypt(plain, public_key("platform"))
    blocks = [cipher[i:i + 256] for i in range(0, len(cipher), 256)]
    assert len(blocks) == max(1, -(-size // 245))
    # Each block opened on its own with the library directly, not through decrypt().
    opened = b"".join(private_key("platform").decrypt(b, padding.PKCS1v15()) for b in blocks)
    assert opened == plain
    assert decrypt(cipher, private_key("platform")) == plain


def test_block_size_follows_the_key_size() -> None:
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    cipher = encrypt(b"x" * 118, small.public_key())
    assert len(cipher) == 2 * 128  # 117 bytes fit one 1024-bit block, 118 need two
    assert decrypt(cipher, small) == b"x" * 118
    with pytest.raises(EnvelopeError):
        decrypt(cipher[:-1], small)


def test_seal_then_open_round_trips_with_the_other_party_keys() -> None:
    params = {"appOrderId": "A1", "orderAmount": "0.00000001", "goods": "咖啡 ☕"}
    body = seal(params, app_id="app", now_ms=1_700_000_000_123,
                receiver_key=public_key("platform"), sender_key=private_key("merchant"))
    assert body["app_id"] == "app" and body["time"] == "1700000000123"
    assert not set(body["data"] + body["sign"]) & set("+/=")  # URL-safe, no padding
    opened = open_text(body["data"], body["sign"], receiver_key=private_key("platform"),
                       sender_key=public_key("merchant"))
    assert opened == json_text(params)
    md5 = hashlib.md5(json_text(params).encode()).hexdigest()
    assert signed_text(json_text(params)) == md5.encode()


def test_standard_alphabet_and_json_sign_input_are_switches() -> None:
    suite = Suite(alphabet=Alphabet.STANDARD, sign_input=SignInput.JSON)
    body = seal({"k": "v" * 300}, app_id="a", now_ms=1, receiver_key=public_key("platform"),
                sender_key=private_key("merchant"), suite=suite)
    assert body["sign"].endswith("=") and base64.b64decode(body["sign"], validate=True)
    assert open_text(body["data"], body["sign"], receiver_key=private_key("platform"),
                     sender_key=public_key("merchant"), suite=suite) == '{"k":"' + "v" * 300 + '"}'
    # The default suite signs another text: the same answer does not verify under it.
    assert open_text(body["data"], body["sign"], receiver_key=private_key("platform"),
                     sender_key=public_key("merchant")) is None


def test_b64_decoder_accepts_padding_line_breaks_and_refuses_mixtures() -> None:
    raw = bytes(range(250))
    for alphabet in Alphabet:
        encoded = b64encode(raw, alphabet)
        assert b64decode_any(encoded) == raw
        assert b64decode_any("\n".join(encoded[i:i + 64] for i in range(0, len(encoded), 64))) \
            == raw
    with pytest.raises(EnvelopeError):
        b64decode_any("ab+-")
    with pytest.raises(EnvelopeError):
        b64decode_any("abcde")
    with pytest.raises(EnvelopeError):
        b64decode_any("ab$d")


@pytest.mark.parametrize("name", ["merchant", "platform"])
def test_portal_key_forms_load_pem_base64_and_urlsafe_base64(name: str) -> None:
    pem_public = load_public_key((VECTORS / f"{name}.pub.pem").read_bytes())
    for form in ("pub.b64", "pub.b64url"):
        assert load_public_key((VECTORS / f"{name}.{form}").read_bytes()) == pem_public
    one_line = load_private_key((VECTORS / f"{name}.pk8.b64").read_bytes())
    assert one_line.private_numbers() == private_key(name).private_numbers()
