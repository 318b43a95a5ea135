"""UCanPay request, response and notification signatures (pure: no I/O, no clock).

The seed (001, "Signature Algorithm") says: take every parameter with a non-empty value except
``sign``, sort by parameter name (ASCII), join as ``key1=value1&key2=value2...`` into *stringA*,
then "sign stringA with the private key". Its Java sample first digests stringA with
``MessageDigest.getInstance(ENCODE_ALGORITHM)`` and then feeds the *digest bytes* to
``Signature.getInstance(SIGNATURE_ALGORITHM)``; the two algorithm names are never given.

We therefore offer three schemes (:class:`SignScheme`, a configuration switch):

- ``DOUBLE_HASH`` (default): SHA-256 digest of stringA, then SHA256withRSA (RSASSA-PKCS1-v1_5)
  over those 32 bytes - i.e. exactly what the Java sample does with the most common choice for
  both names (``SHA-256`` / ``SHA256withRSA``). The sample's own code shape is the strongest
  evidence the seed gives, so it is the default.
- ``RSA_SHA256``: plain SHA256withRSA over the UTF-8 bytes of stringA, for a gateway that turns
  out to sign the text itself.
- ``MD5`` (``signType=MD5`` in the seed): upper-case hex MD5 of ``stringA&key=SECRET``. The seed
  names the type but not its form; this form is inferred from the wallet APIs it is modelled on.

The seed's sample signatures are 128 bytes (RSA-1024) but no public key is published with them,
so they cannot be verified; key sizes are simply whatever the keys are (1024 and 2048 are tested).

Values are rendered as text the way they travel in JSON: strings as is, integers in decimal,
booleans ``true``/``false``, nested objects/arrays as compact JSON. ``None`` and ``""`` are
left out, as are empty objects/arrays - of stringA, and by :func:`sign_params` of the body
itself, so that nothing travels as JSON ``null`` or ``""`` and what is signed is what is sent.

A Base64 ``sign`` is read with its whitespace removed: encoders that break Base64 into lines
(``openssl base64``, older Java ``encodeBase64String``) are common on the other side.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
import json
from collections.abc import Mapping

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

__all__ = [
    "SignScheme",
    "sign",
    "sign_params",
    "sign_type",
    "string_a",
    "verify",
    "verify_params",
]


class SignScheme(enum.StrEnum):
    """How stringA is turned into ``sign``; the value is the configuration spelling."""

    DOUBLE_HASH = "double_hash"
    RSA_SHA256 = "rsa_sha256"
    MD5 = "md5"


SigningKey = RSAPrivateKey | str
"""An RSA private key, or the shared secret for :attr:`SignScheme.MD5`."""

VerifyingKey = RSAPublicKey | str
"""An RSA public key, or the shared secret for :attr:`SignScheme.MD5`."""


def sign_type(scheme: SignScheme) -> str:
    """The ``signType`` field value that goes with ``scheme`` (``RSA`` or ``MD5``)."""
    return "MD5" if scheme is SignScheme.MD5 else "RSA"


def _text(value: object) -> str:
    if isinstance(value, bool):  # before int: bool is an int subclass
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _is_empty(value: object) -> bool:
    return value is None or (isinstance(value, str | dict | list) and len(value) == 0)


def string_a(params: Mapping[str, object]) -> str:
    """stringA: all non-empty parameters except ``sign``, sorted by name, joined ``k=v&...``.

    No URL encoding is applied (the seed's rule); sorting is by code point, which equals ASCII
    order for the ASCII parameter names UCanPay uses.
    """
    return "&".join(
        f"{name}={_text(params[name])}"
        for name in sorted(params)
        if name != "sign" and not _is_empty(params[name])
    )


def sign(text: str, key: SigningKey, scheme: SignScheme = SignScheme.DOUBLE_HASH) -> str:
    """The ``sign`` value for stringA ``text``: Base64 for RSA schemes, upper hex for MD5.

    ``key`` must be an RSA private key for the RSA schemes and the shared secret for MD5;
    a mismatch raises ``TypeError`` (a programming error, not a provider answer).
    """
    data = text.encode("utf-8")
    if scheme is SignScheme.MD5:
        if not isinstance(key, str):
            raise TypeError("the MD5 scheme signs with the shared secret, not an RSA key")
        return _md5_sign(data, key)
    if not isinstance(key, RSAPrivateKey):
        raise TypeError(f"the {scheme.value} scheme signs with an RSA private key")
    message = hashlib.sha256(data).digest() if scheme is SignScheme.DOUBLE_HASH else data
    signature = key.sign(message, padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(signature).decode("ascii")


def _md5_sign(data: bytes, secret: str) -> str:
    """``MD5(stringA&key=SECRET)`` in upper-case hex: UCanPay's signType=MD5."""
    # MD5 is what the provider's signType=MD5 prescribes; it is not our choice of hash.
    digest = hashlib.md5(data + b"&key=" + secret.encode("utf-8"))  # noqa: S324
    return digest.hexdigest().upper()


def verify(
    text: str, signature: object, key: VerifyingKey, scheme: SignScheme = SignScheme.DOUBLE_HASH
) -> bool:
    """Whether ``signature`` is a valid ``sign`` of stringA ``text``. Never raises on garbage."""
    if not isinstance(signature, str) or not signature:
        return False
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate (JSON "\ud800"): nothing was signed so
        return False
    if scheme is SignScheme.MD5:
        if not isinstance(key, str):
            return False
        expected = _md5_sign(data, key)
        return hmac.compare_digest(expected.encode("ascii"), signature.encode("utf-8"))
    if not isinstance(key, RSAPublicKey):
        return False
    try:
        raw = base64.b64decode("".join(signature.split()), validate=True)
    except (binascii.Error, ValueError):
        return False
    message = hashlib.sha256(data).digest() if scheme is SignScheme.DOUBLE_HASH else data
    try:
        key.verify(raw, message, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError):
        return False
    return True


def sign_params(
    params: Mapping[str, object], key: SigningKey, scheme: SignScheme = SignScheme.DOUBLE_HASH
) -> dict[str, object]:
    """A copy of ``params`` without its empty values, with ``sign`` set over its stringA.

    Any old ``sign`` is replaced. Empty values (``None``, ``""``, ``{}``, ``[]``) are dropped
    from the copy: they are not part of stringA and must not go on the wire either.
    """
    signed = {name: value for name, value in params.items()
              if name != "sign" and not _is_empty(value)}
    signed["sign"] = sign(string_a(signed), key, scheme)
    return signed


def verify_params(
    params: Mapping[str, object], key: VerifyingKey, scheme: SignScheme = SignScheme.DOUBLE_HASH
) -> bool:
    """Whether ``params["sign"]`` verifies over the other parameters. Never raises."""
    return verify(string_a(params), params.get("sign"), key, scheme)
