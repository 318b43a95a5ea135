"""Key files in the shapes portals hand out, and public keys in the shapes portals take."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from posbridge.keyfiles import (
    KeyFormatError,
    generate_rsa_pem,
    load_private_key,
    load_public_key,
    public_pem,
    public_text,
    same_key,
)

PEM = generate_rsa_pem(1024)
KEY = load_private_key(PEM)
SPKI_DER = KEY.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)
PKCS8_DER = KEY.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption())


def _urlsafe_with_minus_and_underscore(der: bytes) -> bytes:
    """URL-safe Base64 of ``der`` without padding; the test needs both special characters."""
    text = base64.urlsafe_b64encode(der).rstrip(b"=")
    assert b"-" in text or b"_" in text
    return text


def _shapes(der: bytes) -> list[bytes]:
    unpadded = _urlsafe_with_minus_and_underscore(der)
    wrapped = b"\n".join(unpadded[i:i + 64] for i in range(0, len(unpadded), 64))
    return [unpadded, base64.urlsafe_b64encode(der), wrapped]


def test_url_safe_base64_der_loads_with_and_without_padding() -> None:
    expected = KEY.public_key().public_numbers()
    for text in _shapes(SPKI_DER):
        assert load_public_key(text).public_numbers() == expected
    for text in _shapes(PKCS8_DER):
        assert load_private_key(text).public_key().public_numbers() == expected


def test_standard_base64_without_padding_loads() -> None:
    text = base64.b64encode(SPKI_DER).rstrip(b"=")
    assert load_public_key(text).public_numbers() == KEY.public_key().public_numbers()


def test_mixed_alphabets_are_refused_without_quoting_the_key() -> None:
    text = base64.b64encode(SPKI_DER)
    mixed = text[:10] + b"-_" + text[12:]
    if b"+" not in mixed and b"/" not in mixed:
        mixed = b"+" + mixed[1:]
    with pytest.raises(KeyFormatError) as err:
        load_public_key(mixed)
    assert mixed[20:40].decode() not in str(err.value)


def test_public_text_is_what_the_portal_takes() -> None:
    assert public_text(KEY, "pem") == public_pem(KEY).decode()
    one_line = public_text(KEY, "base64")
    assert "\n" not in one_line and base64.b64decode(one_line) == SPKI_DER
    assert public_text(KEY.public_key(), "base64") == one_line


def test_same_key_tells_a_pair_from_two_keys() -> None:
    other = load_private_key(generate_rsa_pem(1024))
    assert same_key(KEY, KEY.public_key())
    assert not same_key(KEY, other.public_key())


def _damaged_pem() -> bytes:
    """KEY with its private exponent and one CRT exponent changed: a file whose parts no
    longer agree. (One CRT value alone is not enough: OpenSSL checks each CRT result and
    falls back to the private exponent, so such a key still signs correctly.)"""
    n = KEY.private_numbers()
    bad = rsa.RSAPrivateNumbers(p=n.p, q=n.q, d=n.d ^ 2, dmp1=n.dmp1 ^ 2, dmq1=n.dmq1,
                                iqmp=n.iqmp, public_numbers=n.public_numbers)
    return bad.private_key(unsafe_skip_rsa_key_validation=True).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())


@pytest.mark.parametrize("full_check", [False, True])
def test_a_key_whose_parts_do_not_agree_is_refused(full_check: bool) -> None:
    """By default the key must sign what its public half verifies (a damaged key would send
    wrong signatures); the full check (keys check, doctor) is OpenSSL's own."""
    with pytest.raises(KeyFormatError) as exc:
        load_private_key(_damaged_pem(), full_check=full_check)
    assert "BEGIN" not in str(exc.value)
    assert same_key(load_private_key(PEM, full_check=full_check), KEY.public_key())
