"""The crypto payment API's envelope (pure: no I/O, no clock, no state).

Every request, every answer and the payment callback carry their parameters the same way
(the crypto payment API, "Create a payment order": "package the data in the parameter table
into JSON strings and use rsa for parameter encryption and signature as data and sign"):

- the parameters become one JSON text (:func:`json_text`; UTF-8);
- ``data`` is that text encrypted with the **receiver's** public key: RSAES-PKCS1-v1_5 in
  blocks of at most k-11 bytes (k = the key's size in bytes: 245 for RSA-2048), the k-byte
  cipher blocks concatenated, then Base64;
- ``sign`` is SHA256withRSA (RSASSA-PKCS1-v1_5) with the **sender's** private key over the
  ASCII bytes of the lower-case hex MD5 of that same JSON text (not over the text itself),
  then Base64.

So a request is sealed with the platform's public key and the merchant's private key, and
an answer or callback is opened with the merchant's private key and verified with the
platform's public key. The platform writes Base64 in the URL-safe alphabet without padding;
that is what :func:`seal` writes by default (``alphabet``), and every decoder here reads
either alphabet, with or without padding or line breaks.

Which text is signed (:class:`SignInput`) is a configuration switch: the MD5 hex digest is
what the platform's developer notes describe and the default; the JSON text itself is the
other reading.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

__all__ = [
    "Alphabet",
    "EnvelopeError",
    "SignInput",
    "Suite",
    "b64decode_any",
    "b64encode",
    "decrypt",
    "encrypt",
    "json_text",
    "load_json",
    "open_text",
    "seal",
    "sign",
    "signed_text",
    "verify",
]

PKCS1_V15_OVERHEAD: Final = 11  # bytes of padding in every RSAES-PKCS1-v1_5 block
_B64_JUNK: Final = re.compile(r"\s+")


class EnvelopeError(ValueError):
    """``data`` that does not open: not Base64, wrong block length, wrong key, not UTF-8."""


class Alphabet(enum.StrEnum):
    """The Base64 written into ``data`` and ``sign``; the value is the configuration spelling."""

    URLSAFE = "urlsafe"  # "-" and "_", no "=" padding: the platform's own form
    STANDARD = "standard"  # "+" and "/", with padding


class SignInput(enum.StrEnum):
    """The text ``sign`` is computed over; the value is the configuration spelling."""

    MD5_HEX = "md5_hex"  # the lower-case hex MD5 of the JSON text (32 ASCII characters)
    JSON = "json"  # the JSON text itself


@dataclass(frozen=True, slots=True)
class Suite:
    """The two switchable readings of the envelope, chosen together in configuration."""

    alphabet: Alphabet = Alphabet.URLSAFE
    sign_input: SignInput = SignInput.MD5_HEX


DEFAULT_SUITE: Final = Suite()


def json_text(params: Mapping[str, object]) -> str:
    """The JSON text of ``params``: keys sorted, no spaces, non-ASCII kept as UTF-8.

    Any text would do (the receiver hashes the text it decrypts), but one fixed form makes
    requests reproducible and the known-answer vectors writable by hand.
    """
    return json.dumps(params, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


_DECODER = json.JSONDecoder(parse_float=Decimal)


def load_json(text: str) -> Any:
    """Parse a decrypted JSON text with every non-integer number as a ``Decimal`` (amounts
    may arrive as JSON numbers and must never pass through a float)."""
    return _DECODER.decode(text)


def b64encode(raw: bytes, alphabet: Alphabet = Alphabet.URLSAFE) -> str:
    """Base64 of ``raw``: URL-safe without padding, or standard with padding."""
    if alphabet is Alphabet.URLSAFE:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")
    return base64.b64encode(raw).decode("ascii")


def b64decode_any(text: str) -> bytes:
    """Bytes of Base64 ``text`` in either alphabet, padded or not, line breaks ignored.

    Raises :class:`EnvelopeError` for anything else (a mix of both alphabets included).
    """
    compact = _B64_JUNK.sub("", text).rstrip("=")
    if ("-" in compact or "_" in compact) and ("+" in compact or "/" in compact):
        raise EnvelopeError("Base64 mixes the standard and the URL-safe alphabet")
    compact = compact.replace("-", "+").replace("_", "/")
    if len(compact) % 4 == 1:
        raise EnvelopeError("Base64 of an impossible length")
    try:
        return base64.b64decode(compact + "=" * (-len(compact) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise EnvelopeError("not Base64") from exc


def _key_bytes(key: RSAPrivateKey | RSAPublicKey) -> int:
    return (key.key_size + 7) // 8


def encrypt(plain: bytes, public_key: RSAPublicKey) -> bytes:
    """RSAES-PKCS1-v1_5 of ``plain`` in blocks of at most k-11 bytes, cipher blocks joined.

    Each block is padded with fresh random bytes, so the result differs on every call.
    An empty ``plain`` is one empty block (a JSON text is never empty).
    """
    chunk = _key_bytes(public_key) - PKCS1_V15_OVERHEAD
    pieces = [plain[i:i + chunk] for i in range(0, len(plain), chunk)] or [b""]
    return b"".join(public_key.encrypt(piece, padding.PKCS1v15()) for piece in pieces)


def decrypt(cipher: bytes, private_key: RSAPrivateKey) -> bytes:
    """The plain bytes of :func:`encrypt`'s output; EnvelopeError if it does not decrypt."""
    size = _key_bytes(private_key)
    if not cipher or len(cipher) % size:
        raise EnvelopeError(f"cipher text is not a whole number of {size}-byte blocks")
    out = bytearray()
    for i in range(0, len(cipher), size):
        try:
            out += private_key.decrypt(cipher[i:i + size], padding.PKCS1v15())
        except ValueError as exc:
            raise EnvelopeError("cipher text does not decrypt with this key") from exc
    return bytes(out)


def signed_text(text: str, sign_input: SignInput = SignInput.MD5_HEX) -> bytes:
    """The bytes ``sign`` covers for the JSON ``text``."""
    raw = text.encode("utf-8")
    if sign_input is SignInput.JSON:
        return raw
    # MD5 only makes a fixed-length stand-in for the text; SHA-256 inside the signature
    # does the work.
    return hashlib.md5(raw).hexdigest().encode("ascii")  # noqa: S324 (the platform's rule)


def sign(text: str, private_key: RSAPrivateKey, suite: Suite = DEFAULT_SUITE) -> str:
    """``sign`` for the JSON ``text``: SHA256withRSA over :func:`signed_text`, Base64."""
    signature = private_key.sign(signed_text(text, suite.sign_input), padding.PKCS1v15(),
                                 hashes.SHA256())
    return b64encode(signature, suite.alphabet)


def verify(text: str, signature: object, public_key: RSAPublicKey,
           suite: Suite = DEFAULT_SUITE) -> bool:
    """Whether ``signature`` is a valid ``sign`` of the JSON ``text``. Never raises."""
    if not isinstance(signature, str) or not signature:
        return False
    try:
        raw = b64decode_any(signature)
    except EnvelopeError:
        return False
    try:
        public_key.verify(raw, signed_text(text, suite.sign_input), padding.PKCS1v15(),
                          hashes.SHA256())
    except (InvalidSignature, ValueError):
        return False
    return True


def seal(params: Mapping[str, object], *, app_id: str, now_ms: int,
         receiver_key: RSAPublicKey, sender_key: RSAPrivateKey,
         suite: Suite = DEFAULT_SUITE) -> dict[str, str]:
    """The body ``{app_id, data, sign, time}`` carrying ``params`` to the holder of
    ``receiver_key``, signed with ``sender_key``; ``time`` is ``now_ms`` in decimal."""
    text = json_text(params)
    data = b64encode(encrypt(text.encode("utf-8"), receiver_key), suite.alphabet)
    return {"app_id": app_id, "data": data, "sign": sign(text, sender_key, suite),
            "time": str(now_ms)}


def open_text(data: object, signature: object, *, receiver_key: RSAPrivateKey,
              sender_key: RSAPublicKey, suite: Suite = DEFAULT_SUITE) -> str | None:
    """The JSON text inside ``data`` if ``signature`` verifies over it, else None.

    Raises :class:`EnvelopeError` when ``data`` does not decrypt to UTF-8 text at all
    (garbage, or sealed for another key); None means it opened but the signature is wrong.
    """
    if not isinstance(data, str) or not data:
        raise EnvelopeError("data is not a non-empty string")
    try:
        text = decrypt(b64decode_any(data), receiver_key).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EnvelopeError("data does not decrypt to UTF-8 text") from exc
    return text if verify(text, signature, sender_key, suite) else None
