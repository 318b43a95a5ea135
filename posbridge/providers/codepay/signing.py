"""CodePay RSA2 signatures: the canonical string, signing and verifying. Pure, no I/O.

The rule (PROVIDERS.md, "Signing"; the seed only points to a "Signature Specification"):

1. take every top-level key except ``sign``; drop keys whose value is ``None`` or ``""``
   (``sign_type`` **is** signed);
2. sort the keys by code point and join ``key=value`` with ``&``, without URL encoding;
3. values as text: strings as they are, integers in decimal, booleans ``true`` / ``false``,
   a nested object or array as compact JSON text (no spaces, non-ASCII kept as UTF-8, keys in
   the order they came), a :class:`~decimal.Decimal` as its exact text;
4. RSASSA-PKCS1-v1_5 with SHA-256 over the UTF-8 bytes; the signature is Base64.

Python floats are refused (``TypeError``): a float could be written two ways and the body and
the signed text would disagree. Amounts travel as JSON strings; numbers that arrive in a
gateway answer are parsed as :class:`~decimal.Decimal` (see :mod:`.messages`) so that their text
is signed exactly as it was sent.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from decimal import Decimal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

__all__ = ["SIGN_FIELD", "canonical_string", "sign", "value_text", "verify"]

SIGN_FIELD = "sign"


def value_text(value: object) -> str:
    """One value as it appears in the canonical string (see the module rule 3)."""
    if isinstance(value, str):
        return value
    if isinstance(value, (dict, list, tuple)):
        return _compact_json(value)
    return _scalar_json(value)


def canonical_string(params: Mapping[str, object]) -> str:
    """The text that is signed: sorted ``k=v`` pairs of the non-empty fields except ``sign``."""
    pairs = sorted((k, v) for k, v in params.items()
                   if k != SIGN_FIELD and v is not None and v != "")
    return "&".join(f"{k}={value_text(v)}" for k, v in pairs)


def sign(params: Mapping[str, object], private_key: RSAPrivateKey) -> str:
    """Base64 of the RSA2 (PKCS#1 v1.5, SHA-256) signature of ``canonical_string(params)``."""
    raw = private_key.sign(canonical_string(params).encode("utf-8"), padding.PKCS1v15(),
                           hashes.SHA256())
    return base64.b64encode(raw).decode("ascii")


def verify(params: Mapping[str, object], public_key: RSAPublicKey) -> bool:
    """True only if ``params["sign"]`` is a valid RSA2 signature of the other fields.

    Never raises on bad input: a missing, non-text, non-Base64 or wrong signature, or a
    field that cannot be rendered, all give False.
    """
    signature = params.get(SIGN_FIELD)
    if not isinstance(signature, str) or not signature:
        return False
    try:
        # Strict Base64, but a signature folded over lines (76-column encoders) still counts.
        raw = base64.b64decode("".join(signature.split()), validate=True)
        text = canonical_string(params)
        public_key.verify(raw, text.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())
    except (binascii.Error, ValueError, TypeError, InvalidSignature):
        return False
    return True


def _scalar_json(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):  # before int: bool is an int subclass
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    raise TypeError(f"cannot sign a value of type {type(value).__name__}")


def _compact_json(value: object) -> str:
    if isinstance(value, dict):
        items = (f"{json.dumps(str(k), ensure_ascii=False)}:{_compact_json(v)}"
                 for k, v in value.items())
        return "{" + ",".join(items) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_compact_json(v) for v in value) + "]"
    return _scalar_json(value)
