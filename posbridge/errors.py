"""The one exception root of posbridge.

::

    PosbridgeError
    ├── ConfigError                 a configuration key is missing or wrong (names the key)
    ├── RequestError                bad input from a register; carries the ECR error code
    ├── PaymentError                something a provider said, or failed to say
    │   ├── Declined                the payment was refused (card declined, customer cancelled)
    │   ├── ProviderRejected        the provider refused the request itself; no money moved
    │   ├── ProviderUnreachable     the request surely did not reach the provider
    │   ├── OutcomeUnknown          the request may have been processed: reconcile, never resend
    │   │   └── BadSignature        an answer whose signature does not verify counts as no answer
    │   └── NotificationRejected    a provider notification that must not be acted on
    ├── JournalError                the journal could not record something durably
    └── DeviceError                 hardware trouble; never blocks a payment
        ├── PrinterError
        └── DisplayError

Library errors (aiohttp, asyncio timeouts, pyserial, sqlite3) are translated into these at the
one module that talks to the library, with ``raise ... from exc``. The root and the device
errors live in :mod:`hardware.errors` (the device layer imports nothing from ``posbridge``) and
are re-exported here.
"""

from __future__ import annotations

from hardware.errors import DeviceError, DisplayError, PosbridgeError, PrinterError

__all__ = ["BadSignature", "ConfigError", "Declined", "DeviceError", "DisplayError",
           "JournalError", "NotificationRejected", "OutcomeUnknown", "PaymentError",
           "PosbridgeError", "PrinterError", "ProviderRejected", "ProviderUnreachable",
           "RequestError"]


class ConfigError(PosbridgeError):
    """A configuration value is missing or wrong; ``key`` is its dotted name."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem


class RequestError(PosbridgeError):
    """A register request that cannot be served; maps one-to-one onto a JSON-RPC error."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        *,
        field: str | None = None,
        provider_code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.field = field
        self.provider_code = provider_code


class PaymentError(PosbridgeError):
    """Something about a payment that a provider said, or failed to say."""

    def __init__(self, message: str, *, provider_code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.provider_code = provider_code


class Declined(PaymentError):
    """The payment was refused by the card, the customer or the issuer."""


class ProviderRejected(PaymentError):
    """The provider refused the request itself (bad field, duplicate order, ...). No money moved."""


class ProviderUnreachable(PaymentError):
    """The request surely never reached the provider (connection refused, DNS failure)."""


class OutcomeUnknown(PaymentError):
    """The request may or may not have been processed: query before deciding anything."""


class BadSignature(OutcomeUnknown):
    """A provider answer whose signature does not verify: treated exactly like no answer."""


class NotificationRejected(PaymentError):
    """A provider notification that is forged, malformed or contradicts the journal."""


class JournalError(PosbridgeError):
    """The journal could not record something durably."""
