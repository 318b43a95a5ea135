"""RSA2 signing: openssl-made known answers, the canonical-string rules, robust verification."""

from __future__ import annotations

import base64
import json
from decimal import Decimal
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from posbridge.keyfiles import (
    KeyFormatError,
    generate_rsa_pem,
    load_private_key,
    load_public_key,
)
from posbridge.providers.codepay.signing import canonical_string, sign, verify

from .conftest import VECTORS, merchant_private, merchant_public

NAMES = ["seed_create", "unicode_refund", "nested_open_batch", "query_answer"]


def params_of(name: str) -> dict[str, Any]:
    text = (VECTORS / f"{name}.params.json").read_text(encoding="utf-8")
    loaded: dict[str, Any] = json.loads(text, parse_float=Decimal)
    return loaded


@pytest.mark.parametrize("name", NAMES)
def test_canonical_string_matches_the_hand_written_vector(name: str) -> None:
    expected = (VECTORS / f"{name}.canonical.txt").read_text(encoding="utf-8")
    assert canonical_string(params_of(name)) == expected


@pytest.mark.parametrize("name", NAMES)
def test_signature_equals_the_openssl_signature(name: str) -> None:
    expected = (VECTORS / f"{name}.sig").read_text(encoding="ascii").strip()
    assert sign(params_of(name), merchant_private()) == expected


@pytest.mark.parametrize("name", NAMES)
def test_the_openssl_signature_verifies(name: str) -> None:
    params = params_of(name)
    params["sign"] = (VECTORS / f"{name}.sig").read_text(encoding="ascii").strip()
    assert verify(params, merchant_public())


def test_sign_and_empty_values_are_left_out_but_sign_type_and_zero_are_kept() -> None:
    text = canonical_string({"sign": "xyz", "a": "", "b": None, "sign_type": "RSA2", "c": 0,
                             "d": False})
    assert text == "c=0&d=false&sign_type=RSA2"


def test_keys_sort_by_code_point_not_alphabetically() -> None:
    assert canonical_string({"b": "1", "B": "2", "a_b": "3", "ab": "4", "é": "5"}) == (
        "B=2&a_b=3&ab=4&b=1&é=5")


def test_values_are_not_url_encoded_and_nested_values_are_compact_json() -> None:
    text = canonical_string({"u": "http://x/y?a=1&b=2", "l": ["a b", 1, True, None],
                             "o": {"k": "ü", "n": {"x": Decimal("1.50")}}})
    assert text == ('l=["a b",1,true,null]&o={"k":"ü","n":{"x":1.50}}'
                    '&u=http://x/y?a=1&b=2')


def test_floats_are_refused() -> None:
    with pytest.raises(TypeError):
        canonical_string({"order_amount": 12.3})


def test_altered_field_or_added_field_fails_verification() -> None:
    params = params_of("unicode_refund")
    params["sign"] = sign(params, merchant_private())
    assert verify(params, merchant_public())
    assert not verify({**params, "order_amount": "12.31"}, merchant_public())
    assert not verify({**params, "extra": "x"}, merchant_public())
    # an empty extra field is not signed, so it may appear without breaking the signature
    assert verify({**params, "extra": ""}, merchant_public())


@pytest.mark.parametrize("bad", [None, "", 42, "not base64!!", "QUJD",
                                 base64.b64encode(b"\0" * 256).decode()])
def test_garbage_signatures_verify_false_without_raising(bad: object) -> None:
    params: dict[str, Any] = {"a": "1"}
    if bad is not None:
        params["sign"] = bad
    assert verify(params, merchant_public()) is False


def test_unrenderable_field_verifies_false() -> None:
    params = {"a": "1", "sign": sign({"a": "1"}, merchant_private()), "f": 1.5}
    assert verify(params, merchant_public()) is False


def test_other_key_does_not_verify(stranger_key: RSAPrivateKey) -> None:
    params: dict[str, Any] = {"a": "1"}
    params["sign"] = sign(params, stranger_key)
    assert not verify(params, merchant_public())
    assert verify(params, stranger_key.public_key())


def test_keys_load_from_pkcs8_pkcs1_and_bare_base64_der() -> None:
    key = load_private_key(generate_rsa_pem(1024))
    pkcs1 = key.private_bytes(serialization.Encoding.PEM,
                              serialization.PrivateFormat.TraditionalOpenSSL,
                              serialization.NoEncryption())
    assert pkcs1.startswith(b"-----BEGIN RSA PRIVATE KEY")
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    for form in (pkcs1, base64.b64encode(der), base64.encodebytes(der)):
        assert load_private_key(form).private_numbers() == key.private_numbers()
    pub = key.public_key()
    spki_der = pub.public_bytes(serialization.Encoding.DER,
                                serialization.PublicFormat.SubjectPublicKeyInfo)
    pkcs1_pub = pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1)
    for form in (pkcs1_pub, base64.b64encode(spki_der),
                 (VECTORS / "rsa2048.pub.pem").read_bytes()):
        assert load_public_key(form).key_size in (1024, 2048)
    assert load_public_key(base64.b64encode(spki_der)).public_numbers() == pub.public_numbers()


@pytest.mark.parametrize("blob", [b"", b"hello", b"-----BEGIN PRIVATE KEY-----\nAAAA\n"])
def test_bad_key_bytes_raise_key_format_error(blob: bytes) -> None:
    with pytest.raises(KeyFormatError):
        load_private_key(blob)
    with pytest.raises(KeyFormatError):
        load_public_key(blob)
