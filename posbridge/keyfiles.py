"""RSA keys as files: generate a PEM pair, load private and public keys in the usual forms.

Providers hand out keys in several shapes; all of these load:

- PKCS#8 PEM (``-----BEGIN PRIVATE KEY-----``) and PKCS#1 PEM (``-----BEGIN RSA PRIVATE KEY-----``);
- SubjectPublicKeyInfo PEM (``-----BEGIN PUBLIC KEY-----``) and PKCS#1 PEM
  (``-----BEGIN RSA PUBLIC KEY-----``);
- the bare Base64 of the DER bytes (what provider portals often show in a text box), with
  or without line breaks, in the standard alphabet (``+/``) or the URL-safe one (``-_``),
  with or without its ``=`` padding.

The other way round, :func:`public_text` gives a public key in the form a provider's portal
takes it: PEM, or one line of Base64 DER.

Encrypted private keys are not supported (the bridge has no place to keep a passphrase).
Nothing here ever logs or repeats key material in an error message.
"""

from __future__ import annotations

import base64
import binascii
from typing import Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

from posbridge.errors import PosbridgeError

__all__ = ["KeyFormatError", "PublicForm", "generate_rsa_pem", "load_private_key",
           "load_public_key", "public_pem", "public_text", "same_key"]

#: How a portal takes a public key: a PEM block, or one line of Base64 of the DER bytes.
PublicForm = Literal["pem", "base64"]

_PUBLIC_EXPONENT = 65537
_PROOF = b"posbridge: this key signs what its public half verifies"


class KeyFormatError(PosbridgeError, ValueError):
    """Bytes that are not an RSA key in a supported form (the message never quotes them)."""


def generate_rsa_pem(bits: int = 2048) -> bytes:
    """A new RSA private key of ``bits`` bits as unencrypted PKCS#8 PEM."""
    key = rsa.generate_private_key(public_exponent=_PUBLIC_EXPONENT, key_size=bits)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def public_pem(key: RSAPrivateKey | RSAPublicKey) -> bytes:
    """The SubjectPublicKeyInfo PEM of a key (the public half of a private key)."""
    public = key.public_key() if isinstance(key, RSAPrivateKey) else key
    return public.public_bytes(serialization.Encoding.PEM,
                               serialization.PublicFormat.SubjectPublicKeyInfo)


def public_text(key: RSAPrivateKey | RSAPublicKey, form: PublicForm) -> str:
    """The public half of ``key`` as text in ``form``: a SubjectPublicKeyInfo PEM block
    (with its final newline), or the Base64 of its DER bytes on one line (no newline)."""
    if form == "pem":
        return public_pem(key).decode("ascii")
    public = key.public_key() if isinstance(key, RSAPrivateKey) else key
    der = public.public_bytes(serialization.Encoding.DER,
                              serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode("ascii")


def same_key(private: RSAPrivateKey, public: RSAPublicKey) -> bool:
    """Whether ``public`` is the public half of ``private``."""
    return private.public_key().public_numbers() == public.public_numbers()


def load_private_key(pem_or_base64_der: bytes, *, full_check: bool = False) -> RSAPrivateKey:
    """An RSA private key from PKCS#8 / PKCS#1 PEM or bare Base64 DER; else KeyFormatError.

    The key is proven by a signature it makes that its own public half verifies: a key whose
    parts do not agree so that it signs wrongly (a damaged file) is refused here, before any
    signature leaves the bridge. That costs one signature; OpenSSL's full check of the parts
    (``full_check``: ``posbridge keys check`` and ``doctor``) also tests the primes and costs
    about 60 ms a 2048-bit key, which every start of the daemon would pay otherwise."""
    data = pem_or_base64_der.strip()
    skip = not full_check  # replaced by the signature below
    try:
        if data.startswith(b"-----"):
            key = serialization.load_pem_private_key(
                data, password=None, unsafe_skip_rsa_key_validation=skip)
        else:
            key = serialization.load_der_private_key(
                _b64(data), password=None, unsafe_skip_rsa_key_validation=skip)
    except (ValueError, TypeError) as exc:
        raise KeyFormatError("not an unencrypted RSA private key (PKCS#8 or PKCS#1 PEM, "
                             "or Base64 DER)") from exc
    if not isinstance(key, RSAPrivateKey):
        raise KeyFormatError("the private key is not an RSA key")
    try:
        key.public_key().verify(key.sign(_PROOF, padding.PKCS1v15(), hashes.SHA256()),
                                _PROOF, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError) as exc:
        raise KeyFormatError("the RSA private key is damaged: its parts do not agree") from exc
    return key


def load_public_key(pem_or_base64_der: bytes) -> RSAPublicKey:
    """An RSA public key from SPKI / PKCS#1 PEM or bare Base64 DER; else KeyFormatError."""
    data = pem_or_base64_der.strip()
    try:
        if data.startswith(b"-----"):
            key = serialization.load_pem_public_key(data)
        else:
            key = serialization.load_der_public_key(_b64(data))
    except (ValueError, TypeError) as exc:
        raise KeyFormatError("not an RSA public key (SPKI or PKCS#1 PEM, or Base64 DER)") from exc
    if not isinstance(key, RSAPublicKey):
        raise KeyFormatError("the public key is not an RSA key")
    return key


def _b64(data: bytes) -> bytes:
    """Base64 in either alphabet, line breaks and missing padding allowed; ValueError if not."""
    text = b"".join(data.split()).rstrip(b"=")
    if b"-" in text or b"_" in text:  # the URL-safe alphabet
        if b"+" in text or b"/" in text:
            raise ValueError("not Base64: both alphabets mixed")
        text = text.translate(bytes.maketrans(b"-_", b"+/"))
    text += b"=" * (-len(text) % 4)
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error as exc:
        raise ValueError("not Base64") from exc
