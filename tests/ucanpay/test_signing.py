"""Signing: stringA rules and known-answer vectors made by openssl (make_vectors.sh)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from posbridge.providers.ucanpay.signing import (
    SignScheme,
    sign,
    sign_params,
    string_a,
    verify,
    verify_params,
)

NAMES = ("seed_unifiedorder", "unicode_refund")
KEYS = ("rsa1024", "rsa2048")

# The seed's unifiedorder request sample signature (seed 001, "统一下单").
SEED_SIGN = ("cD+L65u/UNRX+y2uUjgnAbgwGmETu67hEhmZ6+h/aHpNertHbrJvWjpecVTMqeap2qX6KJYF4587ZNXFvAC02"
             "ZSlG+aWpU0o/IeRLKLhTL9Biv2U2w7OAknXDcV3GNsaObhNh272IYdup8ri4Mj3BKl8pO8rKPrp9tRWlLf4"
             "2VY=")


@pytest.mark.parametrize("name", NAMES)
def test_string_a_matches_the_hand_written_vector(vectors: Any, name: str) -> None:
    params = json.loads(vectors.text(f"{name}.params.json"))
    assert string_a(params) == vectors.text(f"{name}.string_a.txt")


def test_string_a_drops_sign_and_empty_values_and_sorts_by_name() -> None:
    params = {"b": "2", "a": 1, "sign": "x", "empty": "", "none": None, "flag": True,
              "nested": {"k": [1, "v"]}, "zero": 0}
    assert string_a(params) == 'a=1&b=2&flag=true&nested={"k":[1,"v"]}&zero=0'


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize("scheme", [SignScheme.DOUBLE_HASH, SignScheme.RSA_SHA256])
def test_rsa_signatures_equal_openssl_vectors(vectors: Any, name: str, key: str,
                                              scheme: SignScheme) -> None:
    text = vectors.text(f"{name}.string_a.txt")
    expected = vectors.text(f"{name}.{key}.{scheme.value}.sig").strip()
    assert sign(text, vectors.private(key), scheme) == expected
    assert verify(text, expected, vectors.public(key), scheme)


@pytest.mark.parametrize("name", NAMES)
def test_md5_signature_equals_openssl_vector(vectors: Any, name: str) -> None:
    text = vectors.text(f"{name}.string_a.txt")
    secret = vectors.text("md5_secret.txt")
    expected = vectors.text(f"{name}.md5.txt")
    assert sign(text, secret, SignScheme.MD5) == expected
    assert verify(text, expected, secret, SignScheme.MD5)
    assert not verify(text, expected, secret + "x", SignScheme.MD5)


def test_the_two_rsa_schemes_do_not_verify_each_other(vectors: Any) -> None:
    text = vectors.text("seed_unifiedorder.string_a.txt")
    double = vectors.text("seed_unifiedorder.rsa2048.double_hash.sig").strip()
    assert not verify(text, double, vectors.public("rsa2048"), SignScheme.RSA_SHA256)


@pytest.mark.parametrize("garbage", ["", "not base64!!", "AAAA", "x" * 400, None, 12, b"ab"])
def test_verify_never_raises_on_garbage(vectors: Any, garbage: object) -> None:
    for scheme in SignScheme:
        assert not verify("a=1", garbage, vectors.public("rsa1024"), scheme)
        assert not verify("a=1", garbage, "secret", scheme)


def test_verify_with_the_wrong_kind_of_key_is_false_not_an_error(vectors: Any) -> None:
    sig = sign("a=1", vectors.private("rsa1024"))
    assert not verify("a=1", sig, "a-secret", SignScheme.DOUBLE_HASH)
    assert not verify("a=1", "ABC", vectors.public("rsa1024"), SignScheme.MD5)


def test_sign_params_round_trip_and_tamper(vectors: Any) -> None:
    signed = sign_params({"totalAmt": 850, "outTradeNo": "Q1"}, vectors.private("rsa1024"))
    assert verify_params(signed, vectors.public("rsa1024"))
    assert not verify_params({**signed, "totalAmt": 851}, vectors.public("rsa1024"))
    assert not verify_params({**signed, "extra": "field"}, vectors.public("rsa1024"))
    assert not verify_params(signed, vectors.public("rsa2048"))


def test_seed_sample_signature_is_rsa_1024_but_cannot_be_verified(vectors: Any) -> None:
    """The seed publishes no UCanPay public key, so its sample cannot be checked; we check
    what can be: it is a 128-byte (RSA-1024) value, and our test key does not accept it."""
    assert len(base64.b64decode(SEED_SIGN)) == 128
    text = vectors.text("seed_unifiedorder.string_a.txt")
    for scheme in (SignScheme.DOUBLE_HASH, SignScheme.RSA_SHA256):
        assert not verify(text, SEED_SIGN, vectors.public("rsa1024"), scheme)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_a_base64_signature_broken_into_lines_verifies(vectors: Any, name: str, key: str,
                                                      newline: str) -> None:
    """Review item 11: openssl (and Java's chunked encoders) break Base64 into lines."""
    text = vectors.text(f"{name}.string_a.txt")
    wrapped = vectors.text(f"{name}.{key}.double_hash.wrapped.sig")
    assert "\n" in wrapped.strip()
    assert verify(text, wrapped.replace("\n", newline), vectors.public(key))
    assert not verify(text.replace("=", "~", 1), wrapped, vectors.public(key))


def test_sign_params_leaves_empty_values_out_of_the_body(vectors: Any) -> None:
    """Review item 1: what is signed is what is sent; nothing goes as null or ''."""
    signed = sign_params({"outTradeNo": "Q1", "ucpOrderNo": None, "deviceNo": "",
                          "totalAmt": 0, "extra": {}}, vectors.private("rsa1024"))
    assert set(signed) == {"outTradeNo", "totalAmt", "sign"}
    assert verify_params(signed, vectors.public("rsa1024"))


def test_text_with_a_lone_surrogate_verifies_as_false(vectors: Any) -> None:
    # JSON may carry "\ud800"; such text cannot be UTF-8 encoded, so nothing signed it.
    sig = sign("a=1", vectors.private("rsa1024"))
    for scheme in SignScheme:
        assert not verify("a=\ud800", sig, vectors.public("rsa1024"), scheme)
    assert not verify_params({"a": "\ud800", "sign": sig}, vectors.public("rsa1024"))
