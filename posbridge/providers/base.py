"""What a payment provider is to the bridge: a plug-in that declares what it can do, and an
adapter object that does it.

A provider is one package, ``posbridge/providers/<name>/``, that exports a
:class:`ProviderPlugin`: its name, how to read its configuration section, how to build its
adapter, its key files, its notification URL limits and its sandbox simulator. The bridge's
core (engine, ECR methods, batches, displays, journal) never names a provider: it reads the
adapter's :class:`Capabilities` and calls the :class:`Provider` methods.

The engine never sees a provider's wire format: it hands over a :class:`PaymentOrder` and
gets back :class:`ProviderReport` values, or one of the :mod:`posbridge.errors` payment errors:

- ``ProviderRejected``    the provider refused the request; no money moved (final ``failed``).
- ``ProviderUnreachable`` the request surely never reached the provider; safe to try again.
- ``OutcomeUnknown``      the request may have been processed: query, never resend blindly.
  ``BadSignature`` is an ``OutcomeUnknown``: an unverifiable answer is no answer.
- ``NotificationRejected`` from :meth:`Provider.parse_notification`: forged or malformed.
- ``RequestError`` (-32602, naming the field) from :meth:`Provider.check`: the provider's own
  input limits, before anything is recorded.
"""

from __future__ import annotations

import abc
import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from posbridge.errors import ProviderRejected, RequestError


class TxnKind(enum.StrEnum):
    """What a transaction is; each kind is one row of :data:`posbridge.operations.OPERATIONS`."""

    SALE = "sale"
    VOID = "void"
    REFUND = "refund"
    QR_SALE = "qr_sale"
    QR_REFUND = "qr_refund"
    CRYPTO_SALE = "crypto_sale"
    PREAUTH = "preauth"  # a hold on the card (CodePay trans_type 4)
    PREAUTH_CANCEL = "preauth_cancel"  # releases a hold (5)
    COMPLETION = "completion"  # captures a hold for the final amount (6)
    TIP_ADJUST = "tip_adjust"  # sets a new total tip on an approved sale or completion
    CHECKOUT_QR = "checkout_qr"  # the customer pays on the provider's hosted page (pay-by-link)


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

    Amounts are integers in minor units of ``currency``; ``exponent`` is the number of decimals
    of those units when the currency is not an ISO 4217 one (a provider's coin).
    ``extra`` holds an operation's own parameters that only some providers read (the crypto
    sale's payer), as text.
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
    orig_kind: TxnKind | None = None
    expires_s: int = 180
    provider_ref: str | None = None
    exponent: int | None = None
    extra: Mapping[str, str] = field(default_factory=dict)
    created_at_ms: int | None = None  # when the bridge recorded the intent (epoch ms)
    cashback: int = 0  # cash the register hands out, charged to the card with the amount
    on_screen_tip: bool = False  # the customer enters the tip on the terminal
    card_present: bool = True  # a refund on the terminal (False: to the original card, no card)
    #: for a tip adjustment: the original's tip before it (``tip`` is the new total tip and
    #: ``amount`` the difference)
    orig_tip: int | None = None


@dataclass(frozen=True, slots=True)
class ProviderReport:
    """One statement of the provider about one order (a response, a query or a notification)."""

    order_no: str
    outcome: Outcome
    provider_ref: str | None = None
    amount: int | None = None  # minor units, as the provider states it (None: not stated)
    #: the amount as the provider wrote it, in major units, when only the journal knows its
    #: decimals (a coin a notification does not name): the engine reads it with the record's
    amount_text: str | None = None
    closable: bool = False  # still open and may be closed (CodePay status 9, UCanPay NOTPAY)
    auth_no: str | None = None
    card_brand: str | None = None
    card_last4: str | None = None
    provider_code: str | None = None
    message: str | None = None
    terminal_online: bool | None = None
    qr_text: str | None = None  # the exact text the customer's QR encodes (deeplink, pay page)
    tip: int | None = None  # the final tip, when the provider states it (entered on the terminal)
    cashback: int | None = None  # the cash back the provider states, minor units
    reversed: bool = False  # :meth:`Provider.reverse` undid the order (any payment returned)


@dataclass(frozen=True, slots=True)
class NotificationAnswer:
    """The HTTP answer a provider expects to a notification."""

    status: int
    body: bytes
    content_type: str


@dataclass(frozen=True, slots=True)
class PreparedCreate:
    """A create request built and signed ahead of sending it: the engine signs while the
    intent is being committed, and sends only once it is (DESIGN: intent first)."""

    order_no: str
    body: bytes
    signed_at: float  # the provider's clock (seconds) when it was signed


@dataclass(frozen=True, slots=True)
class Pacing:
    """How the engine paces one provider's orders."""

    expires_s: int = 180  # the bridge closes an order it has not seen end after this long
    poll_interval_s: float = 2.0
    poll_max_s: float = 15.0
    create_retry_s: float = 1.0
    #: how often an order whose create answer was lost is looked for when the provider cannot
    #: be asked about it directly (:meth:`Provider.find_lost`: a statement, not a status query)
    lost_poll_s: float = 60.0


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What one configured provider can do; the engine, the ECR methods, batches and displays
    work from this, never from the provider's name.

    ``currencies`` maps each accepted currency to its decimals. ``None`` accepts any ISO 4217
    currency with its standard exponent. A provider whose currencies are its own coins (not
    ISO 4217) sets ``coins`` and lists every coin with its configured decimals; amounts in a
    coin are then recorded with their exponent.
    """

    kinds: frozenset[TxnKind]
    currencies: Mapping[str, int] | None = None
    coins: bool = False
    pacing: Pacing = field(default_factory=Pacing)
    #: :meth:`Provider.close` can withdraw an order that is not paid yet.
    closable: bool = True
    #: :meth:`Provider.reverse` resolves an order whose create answer was lost (query, then
    #: close it, or return the money if it was paid).
    reversible: bool = False
    #: :meth:`Provider.query` finds an order by ``order_no`` alone. When False only the
    #: provider's own reference addresses an order: a create whose answer was lost can then not
    #: be queried, closed or sent again; :meth:`Provider.find_lost` looks for it instead.
    query_by_order_no: bool = True
    #: :meth:`Provider.prepare_create` signs a create ahead, while the intent is committing.
    sign_ahead: bool = False
    #: At most this many refunds of one original (None: no limit but the amount).
    max_refunds: int | None = None
    #: :meth:`Provider.batch_close` closes a terminal's batch at the provider.
    batch_close: bool = False
    #: :meth:`Provider.batch_figures` gives the provider's figures to check a batch against.
    batch_figures: bool = False
    #: Why a void or refund of this provider's payments is refused, when it has no refunds.
    no_refund_reason: str | None = None
    #: A completion may capture at most this percentage of the authorised amount (100: no
    #: more than the hold; a provider configured for tips on completion may allow more).
    completion_max_percent: int = 100
    #: The kinds its batch figures (:meth:`Provider.batch_figures`) add up (None: all), and
    #: those of them that move the total but not the count (a tip adjustment).
    batch_kinds: frozenset[TxnKind] | None = None
    batch_uncounted: frozenset[TxnKind] = frozenset()


@dataclass(frozen=True, slots=True)
class BatchFigures:
    """A provider's own count and total (minor units) for the transactions of one batch in one
    currency, to check the bridge's totals against. ``None`` fields: not stated."""

    currency: str
    count: int | None
    total: int | None
    exponent: int | None = None
    #: the provider's answer, for the batch report
    detail: Mapping[str, object] = field(default_factory=dict)


class Provider(abc.ABC):
    """The adapter of one configured provider: transport over a pure protocol core.

    Subclasses set :attr:`name` and :attr:`caps` and implement the required methods; the
    optional ones are called only when :attr:`caps` says the provider can.
    """

    name: str
    caps: Capabilities

    # -- required ------------------------------------------------------------------------

    @abc.abstractmethod
    async def create(self, order: PaymentOrder,
                     prepared: PreparedCreate | None = None) -> ProviderReport:
        """Create the order (sale, void, refund, QR order). Returns the first report."""

    @abc.abstractmethod
    async def query(self, order: PaymentOrder) -> ProviderReport:
        """Ask the provider where the order stands; ``NOT_FOUND`` if it has none."""

    @abc.abstractmethod
    def parse_notification(self, body: bytes, headers: Mapping[str, str]) -> ProviderReport:
        """Verify and parse one notification; NotificationRejected if it must be ignored."""

    @abc.abstractmethod
    def notification_answer(self, ok: bool, reason: str = "") -> NotificationAnswer:
        """The answer to send: ``ok`` only once the result is durably recorded."""

    @abc.abstractmethod
    def set_notify_url(self, url: str) -> None:
        """Where the provider should send notifications (known once the listener is bound)."""

    async def aclose(self) -> None:  # noqa: B027 (optional: most adapters hold a session)
        """Release HTTP sessions."""

    # -- optional, by capability ---------------------------------------------------------

    def check(self, order: PaymentOrder) -> None:  # noqa: B027 (optional: no limits of its own)
        """The provider's own input limits for a new order (a RequestError -32602 naming the
        field); called before the intent is recorded."""

    def prepare_create(self, order: PaymentOrder) -> PreparedCreate:
        """The signed create for ``order``, not sent (``caps.sign_ahead``)."""
        raise ProviderRejected(f"{self.name} does not sign ahead")

    async def close(self, order: PaymentOrder) -> None:
        """Ask the provider to stop an order that is not paid; ProviderRejected if it cannot."""
        raise ProviderRejected(f"{self.name} cannot close an order")

    async def reverse(self, order: PaymentOrder) -> ProviderReport:
        """Close the order, or return the money if it was paid (``caps.reversible``)."""
        raise ProviderRejected(f"{self.name} cannot reverse an order")

    async def find_lost(self, order: PaymentOrder) -> ProviderReport:
        """Look for an order whose create answer was lost, by ``order_no`` (for providers
        whose query needs their own reference): its report with ``provider_ref`` when found;
        ``NOT_FOUND`` only when the provider's records prove there is none; OutcomeUnknown
        while that cannot be told yet."""
        raise ProviderRejected(f"{self.name} cannot look for a lost order")

    def probe_order(self) -> PaymentOrder:
        """An order that does not exist, for the health probe's status query."""
        kind = min(self.caps.kinds)
        currency = next(iter(self.caps.currencies or {"USD": 2}))
        return PaymentOrder(order_no="PBHEALTHPROBE", kind=kind, amount=1, currency=currency)

    async def batch_close(self, terminal_sn: str) -> dict[str, object]:
        """Close a terminal's batch at the provider (``caps.batch_close``); its answer."""
        raise ProviderRejected(f"{self.name} has no batch close")

    async def batch_figures(self, terminal_sn: str,
                            orders: list[PaymentOrder]) -> list[BatchFigures]:
        """The provider's figures for a batch of a terminal (``caps.batch_figures``).
        ``orders`` are the batch's approved transactions of this provider."""
        raise ProviderRejected(f"{self.name} has no batch figures")


def invalid_input(field_name: str, problem: str) -> RequestError:
    """The error :meth:`Provider.check` raises: -32602 naming the field."""
    return RequestError(-32602, "invalid_params", f"{field_name}: {problem}", field=field_name)


# -- the plug-in declaration ---------------------------------------------------------------


def notify_path(name: str) -> str:
    """Where provider ``name``'s notifications arrive on the HTTP listener (its plug-in's
    ``notify_suffixes`` are appended for the kinds that have their own URL)."""
    return f"/notify/{name}"


@dataclass(frozen=True, slots=True)
class KeySpec:
    """One key file of a provider's configuration section.

    ``role`` ``merchant`` is the merchant's private key (``posbridge keys new`` makes it; its
    public half goes to the provider's portal in ``portal_format``); ``provider`` is the
    provider's public key, which the merchant downloads from the portal.
    """

    config_key: str  # e.g. "private_key_file"
    role: Literal["merchant", "provider"]
    file_name: str  # the default file name in the configuration folder
    portal_format: Literal["pem", "base64"] = "pem"
    bits: int = 2048
    note: str = ""  # what an installer must know (e.g. a signature length limit)


@dataclass(frozen=True, slots=True)
class ProviderPlugin:
    """A provider package's declaration; see :mod:`posbridge.providers.registry`.

    ``parse_section`` validates the provider's configuration section (a
    :class:`posbridge.config_table.Table`) into its frozen settings object and raises
    ConfigError naming the key. ``build`` makes the adapter from those settings and the
    notification URL. ``sandbox`` names the simulator module (``module:attribute``) that
    ``serve --sandbox`` starts for it.
    """

    name: str  # the config section, ``Transaction.provider``, the notify path segment
    title: str
    parse_section: Callable[[Any], Any]
    build: Callable[[Any, str], Provider]
    keys: tuple[KeySpec, ...] = ()
    #: It drives card terminals: ``[[terminals]]`` entries may name it as their ``provider``.
    terminals: bool = False
    #: The notification URLs it is given: ``/notify/<name>`` plus these suffixes.
    notify_suffixes: tuple[str, ...] = ("",)
    #: The longest notification URL it accepts (None: no limit stated).
    notify_url_max: int | None = None
    sandbox: str | None = None
    #: Values ``posbridge init`` writes for keys it was not given and no placeholder can
    #: stand for (a table of coins, say), for the installer to check
    setup_defaults: Mapping[str, object] = field(default_factory=dict)
