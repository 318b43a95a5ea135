"""What the engine needs from a payment provider, and what a provider tells the engine.

A provider adapter is a thin async object over a pure protocol core. The engine never sees
a provider's wire format: it hands over a :class:`PaymentOrder` and gets back
:class:`ProviderReport` values, or one of the :mod:`posbridge.errors` payment errors:

- ``ProviderRejected``    the provider refused the request; no money moved (final ``failed``).
- ``ProviderUnreachable`` the request surely never reached the provider; safe to try again.
- ``OutcomeUnknown``      the request may have been processed: query, never resend blindly.
  ``BadSignature`` is an ``OutcomeUnknown``: an unverifiable answer is no answer.
- ``NotificationRejected`` from :meth:`Provider.parse_notification`: forged or malformed.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


class TxnKind(enum.StrEnum):
    SALE = "sale"
    VOID = "void"
    REFUND = "refund"
    QR_SALE = "qr_sale"
    QR_REFUND = "qr_refund"


class Outcome(enum.StrEnum):
    """A provider's view of one order, mapped from its own status codes."""

    PENDING = "pending"  # known to the provider, not final (created, on the terminal, user paying)
    APPROVED = "approved"  # money moved (or the void/refund went through)
    DECLINED = "declined"  # the payment failed at the card / wallet
    CANCELLED = "cancelled"  # closed or cancelled before payment
    NOT_FOUND = "not_found"  # the provider has no such order


@dataclass(frozen=True, slots=True)
class PaymentOrder:
    """Everything a provider needs to create, query or close one order.

    Amounts are integers in minor units of ``currency``.
    """

    order_no: str
    kind: TxnKind
    amount: int
    currency: str
    tip: int = 0
    terminal_sn: str | None = None
    description: str = ""
    subject: str = ""
    body: str = ""
    orig_order_no: str | None = None
    orig_provider_ref: str | None = None
    orig_amount: int | None = None
    expires_s: int = 180
    provider_ref: str | None = None


@dataclass(frozen=True, slots=True)
class ProviderReport:
    """One statement of the provider about one order (a response, a query or a notification)."""

    order_no: str
    outcome: Outcome
    provider_ref: str | None = None
    amount: int | None = None  # minor units, as the provider states it (None: not stated)
    closable: bool = False  # still open and may be closed (CodePay status 9, UCanPay NOTPAY)
    auth_no: str | None = None
    card_brand: str | None = None
    card_last4: str | None = None
    provider_code: str | None = None
    message: str | None = None
    terminal_online: bool | None = None


@dataclass(frozen=True, slots=True)
class NotificationAnswer:
    """The HTTP answer a provider expects to a notification."""

    status: int
    body: bytes
    content_type: str


class Provider(Protocol):
    """The async surface of a provider adapter (transport + pure core)."""

    name: str

    async def create(self, order: PaymentOrder) -> ProviderReport:
        """Create the order (sale, void, refund, QR order). Returns the first report."""

    async def query(self, order: PaymentOrder) -> ProviderReport:
        """Ask the provider where the order stands; ``NOT_FOUND`` if it has none."""

    async def close(self, order: PaymentOrder) -> None:
        """Ask the provider to stop an order that is not paid; ProviderRejected if it cannot."""

    def parse_notification(self, body: bytes, headers: Mapping[str, str]) -> ProviderReport:
        """Verify and parse one notification; NotificationRejected if it must be ignored."""

    def notification_answer(self, ok: bool, reason: str = "") -> NotificationAnswer:
        """The answer to send: ``ok`` only once the result is durably recorded."""

    def set_notify_url(self, url: str) -> None:
        """Where the provider should send notifications (known once the listener is bound)."""

    async def aclose(self) -> None:
        """Release HTTP sessions."""


@dataclass(frozen=True, slots=True)
class PreparedCreate:
    """A create request built and signed ahead of sending it: the engine signs while the
    intent is being committed, and sends only once it is (DESIGN: intent first)."""

    order_no: str
    body: bytes
    signed_at: float  # the provider's clock (seconds) when it was signed


@runtime_checkable
class Preparable(Protocol):
    """A provider whose create can be signed before it is sent (CodePay)."""

    def prepare_create(self, order: PaymentOrder) -> PreparedCreate:
        """The signed create for ``order``, not sent."""

    async def create(self, order: PaymentOrder,
                     prepared: PreparedCreate | None = None) -> ProviderReport:
        """As :meth:`Provider.create`; sends ``prepared`` when it is for this order and
        still fresh, else signs anew."""


@runtime_checkable
class Reversible(Protocol):
    """A provider that can reverse an order whose create answer was lost (UCanPay)."""

    async def reverse(self, order: PaymentOrder) -> ProviderReport:
        """Close the order, or return the money if it was paid; CANCELLED when done."""
