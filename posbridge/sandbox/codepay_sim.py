"""An embedded CodePay Cloud simulator (aiohttp) with simulated terminals, for sandbox and tests.

It checks requests like the real gateway (seed 003, PROVIDERS.md): the merchant's RSA2 signature
(or HTTP Basic auth with ``sign_type=NONE``), ``app_id`` / ``format`` / ``charset`` /
``sign_type`` / ``version``, a ``timestamp`` within 15 minutes of its clock, the required fields
of each method (and of each ``trans_type``), the seed's length limits, ``merchant_order_no``
characters and uniqueness (a second create with the same number is refused as a duplicate), and
the card lifecycle's rules:

- ``orig_merchant_order_no`` (trans_type 2, 3, 5, 6, 7, 8) names an approved original of the
  right type: a sale (1 or 11) for 2 and 3, a pre-auth (4) for 5 and 6, a completion (6) for
  7 and 8, in the same currency;
- a void (2) or completion void (7) is for the original's whole amount and only while the
  original is in its terminal's open batch; refunds (3, 8, and Submit Order Refund) never
  exceed what was captured (amount and tip) less earlier refunds;
- a pre-auth cancel (5) is for the whole authorised amount; a completion (6) may capture at
  most ``completion_max_percent`` of it (amount and tip together; more is refused with
  ``COMPLETION_AMOUNT_EXCEEDED``); once cancelled or completed a pre-auth takes neither again;
- ``cashback_amount`` only with trans_type 11 (and 11 needs it); ``on_screen_tip`` only with
  1, 3 and 4;
- Tip Adjustment only on an approved sale or completion of the terminal's open batch
  (``BATCH_CLOSED`` after the batch close);
- the hosted checkout's ``expires`` is at most 7 days, and it takes no card data.

Every answer ``{code, msg, psn, sign, data}`` is signed with the gateway key. Results are
POSTed, signed, to the order's ``notify_url`` until it answers ``success`` (a bounded number
of times, :attr:`CodePaySimulator.notify_retry_s` apart); a notification carries the query's
fields (``trans_type``, ``order_amount``, ``tip_amount``, ``cashback_amount``,
``trans_amount``, ``orig_merchant_order_no`` ...) plus ``merchant_no``, ``app_id``,
``sign_type`` and ``sign``.

A simulated terminal takes ``approve_delay_s`` per card: the order is ``9`` (created, waiting
for the card, closable) for the first half, ``0`` (in progress) for the second, then final.
What happens is chosen by the amount's cents (minor units % 100) for the orders whose amount
the register chooses: sales (1), cashback sales (11, by ``order_amount``), pre-auths (4),
completions (6), refunds without the card (Submit Order Refund) and hosted checkouts:

====== ==================================================================================
cents  behaviour
====== ==================================================================================
00     approve
05     decline (status 1, ``trans_error_code`` "51", insufficient funds)
10     terminal silent: in progress (0) until ``expires``, then the order closes itself (3)
15     terminal offline: created (9), ``terminal_online_status`` offline, until closed/expired
20     response lost: the create is processed, but its HTTP connection is dropped unanswered
25     duplicate notification: approve, notify twice, then re-send an older in-progress one
30     late approval after cancel: close answers success, yet the terminal approves a moment
       later and notifies status 2
35     result by notification only: queries say in progress until a notification is answered
40     result by polling only: no notification is sent
45     slow approval: approved after 20 x ``approve_delay_s`` (cancel-in-flight tests)
other  approve
====== ==================================================================================

Voids (2), refunds on the terminal (3), pre-auth cancels (5), completion voids (7) and
completion refunds (8) are approved after ``approve_delay_s`` whatever their cents (a void's
or cancel's amount is its original's; a register's test refunds any amount it likes);
:meth:`CodePaySimulator.behave` gives any order number any behaviour, whatever its amount.

A refund without the card is processed by the gateway, not a terminal: in progress (0) from
the start, final after ``approve_delay_s``; 10, 15 and 30 (terminal behaviours) approve, 05
fails with ``trans_error_code`` "REFUND_FAILED". A hosted checkout waits (status 9) for the
customer: the Pay button of its page at ``pay_url`` or :meth:`CodePaySimulator.scan_and_pay`
pays it (05: the payment fails), or it closes itself at ``expires``; 10, 15, 30 and 45 wait
like 00. Tip Adjustment answers at once and goes by the cents of ``tip_adjustment_amount``:
05 is refused (``TIP_ADJUST_DECLINED``), 20 is applied but its answer is lost, others apply.

The tip the customer enters on the terminal (``on_screen_tip`` true) is
:data:`ON_SCREEN_TIP_PERCENT` % of ``order_amount``, rounded half up to the currency's minor
unit; it is stated as ``tip_amount`` once approved (the pre-auth's hold includes it).

What the open-batch figures (Get Open Batch, ``batch.close``) count, per currency of a
terminal's open batch: ``count`` the approved transactions that settle, namely sales (1),
cashback sales (11), completions (6), voids (2), completion voids (7), refunds (3), completion
refunds (8) and refunds without the card (booked to the original's terminal); ``total_amount``
the net: sales with tip and cash back, plus completions with tip, less voids (the original's
whole amount), less refunds; a tip adjustment moves the total by the change of the tip and
adds nothing to the count. Pre-auths (4) and pre-auth cancels (5) move no money and are not
counted; hosted checkouts are online payments, which no terminal batch settles (seed, "Batch
close").

Inferred where the seed is silent (documented deviations): the "Get Open Batch" method name
(:data:`posbridge.providers.codepay.messages.DEFAULT_OPEN_BATCH_METHOD`), the error codes
(:data:`REFUSALS`), the notification's fields (the query's ``data`` fields plus ``merchant_no``,
``sign_type`` and ``sign``), ``batch.close`` answering the closed batch's ``count`` and
``total_amount`` (the seed's sample shows an empty ``data``), what ``tip_adjustment_amount``
means (``tip_adjustment``: "total" by default, "delta" for the other reading), that Cancel
Order of a paid checkout returns the money and leaves the order at status 3, and that the
pay page lives at ``/checkout/<token>`` of the simulator.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import enum
import html
import itertools
import secrets
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import aiohttp
import structlog
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

from posbridge.errors import PosbridgeError
from posbridge.money import AmountError, exponent, format_amount, parse_amount
from posbridge.providers.codepay import messages as m
from posbridge.providers.codepay import signing
from posbridge.providers.codepay.client import ENTRY_PATH
from posbridge.providers.codepay.messages import TransStatus, TransType
from posbridge.sandbox.base import BridgePacing, SandboxKeys, SandboxSpec, SimPacing
from posbridge.sandbox.recent import Recent

__all__ = ["BEHAVIOURS", "ON_SCREEN_TIP_PERCENT", "REFUSALS", "Behaviour", "Channel",
           "CodePaySimulator", "SentNotification", "SimOrder", "behaviour_for"]

log = structlog.get_logger(__name__)

MAX_SKEW_MS: Final = 15 * 60 * 1000
MAX_BODY_BYTES: Final = 64 * 1024
SLOW_FACTOR: Final = 20
FINAL: Final = frozenset({TransStatus.FAILED, TransStatus.SUCCESS, TransStatus.CANCELLED})
#: The tip a simulated customer enters on the terminal, in % of ``order_amount``.
ON_SCREEN_TIP_PERCENT: Final = 15
#: Where a hosted checkout's page is served (``pay_url`` = the simulator's URL + this + token).
CHECKOUT_PATH: Final = "/checkout/"
#: A refund without the card has no ``expires``; the simulator keeps it this long at most.
REFUND_EXPIRES_S: Final = 24 * 3600


class Behaviour(enum.Enum):
    """What a simulated terminal does with a sale (chosen by the amount's cents)."""

    APPROVE = 0
    DECLINE = 5
    SILENT = 10
    OFFLINE = 15
    RESPONSE_LOST = 20
    DUPLICATE_NOTIFY = 25
    LATE_APPROVAL = 30
    NOTIFY_ONLY = 35
    POLL_ONLY = 40
    SLOW = 45


#: cents -> what the simulated terminal does (the module docstring's table).
BEHAVIOURS: Final[Mapping[int, str]] = {
    0: "approve",
    5: "decline (status 1, trans_error_code 51)",
    10: "terminal silent: in progress until expires, then closed",
    15: "terminal offline: created (9) until closed or expired",
    20: "response lost: create processed, HTTP answer never sent",
    25: "duplicate notifications, then an older in-progress one",
    30: "late approval after cancel: close succeeds, approved anyway",
    35: "result by notification only (queries say in progress)",
    40: "result by polling only (no notification)",
    45: f"slow approval ({SLOW_FACTOR} x approve delay)",
}

#: Behaviours that need a terminal: an order without one (a refund without the card, a
#: hosted checkout) behaves as APPROVE instead.
TERMINAL_ONLY: Final = frozenset({Behaviour.SILENT, Behaviour.OFFLINE, Behaviour.LATE_APPROVAL})

#: trans_types whose behaviour the cents of ``order_amount`` choose (the others approve).
CENTS_TYPES: Final = frozenset({TransType.SALE, TransType.CASHBACK, TransType.PREAUTH,
                                TransType.COMPLETION})

#: The refusal codes of the simulator (the seed lists none).
REFUSALS: Final[Mapping[str, str]] = {
    "AUTH_FAILED": "signature or credentials do not verify",
    "INVALID_PARAMETER": "a field is missing, malformed or has a wrong fixed value",
    "TIMESTAMP_EXPIRED": "timestamp more than 15 minutes from the gateway's clock",
    "METHOD_NOT_SUPPORTED": "unknown method",
    "ORDER_DUPLICATE": "duplicate merchant_order_no",
    "ORDER_NOT_EXIST": "order not exist",
    "ORIG_ORDER_INVALID": "the original order is unknown, not approved or not voidable",
    "REFUND_AMOUNT_EXCEEDED": "refunds would exceed the original amount",
    "COMPLETION_AMOUNT_EXCEEDED": "the completion exceeds the authorised amount",
    "ORDER_STATUS_ERROR": "the order cannot be closed in its current status",
    "TERMINAL_OFFLINE": "the terminal is offline and the order asked to be rejected",
    "BATCH_CLOSED": "the transaction's batch is closed",
    "TIP_ADJUST_DECLINED": "the tip adjustment was declined",
    "REVOKE_NOT_SUPPORTED": "Cancel Order takes QR and online orders only",
}

#: The originals each trans_type may name (Create Order), and Submit Order Refund's.
_ORIGINALS: Final[Mapping[TransType, frozenset[TransType]]] = {
    TransType.VOID: frozenset({TransType.SALE, TransType.CASHBACK}),
    TransType.REFUND: frozenset({TransType.SALE, TransType.CASHBACK}),
    TransType.PREAUTH_CANCEL: frozenset({TransType.PREAUTH}),
    TransType.COMPLETION: frozenset({TransType.PREAUTH}),
    TransType.COMPLETION_CANCEL: frozenset({TransType.COMPLETION}),
    TransType.COMPLETION_REFUND: frozenset({TransType.COMPLETION}),
}
_REFUNDABLE: Final = frozenset({TransType.SALE, TransType.CASHBACK, TransType.COMPLETION})
_VOIDS: Final = frozenset({TransType.VOID, TransType.COMPLETION_CANCEL})
_REFUNDS: Final = frozenset({TransType.REFUND, TransType.COMPLETION_REFUND})
_HOLD_ENDS: Final = frozenset({TransType.PREAUTH_CANCEL, TransType.COMPLETION})


def behaviour_for(amount_minor: int) -> Behaviour:
    """The behaviour of a sale of ``amount_minor`` (by its cents; unknown cents approve)."""
    try:
        return Behaviour(abs(amount_minor) % 100)
    except ValueError:
        return Behaviour.APPROVE


class Channel(enum.Enum):
    """How an order came to the gateway."""

    TERMINAL = "terminal"  # Create Order, carried out on a terminal
    REFUND = "refund"  # Submit Order Refund: to the original card, no terminal
    CHECKOUT = "checkout"  # CodePay Hosted Checkout: the customer pays on CodePay's page


class _Refusal(PosbridgeError):
    """A request the gateway refuses: answered with ``code`` (signed, HTTP 200)."""

    def __init__(self, code: str, detail: str = "") -> None:
        self.message = f"{REFUSALS[code]}{': ' + detail if detail else ''}"
        super().__init__(self.message)
        self.code = code


@dataclass
class SimOrder:
    """One order as the simulated gateway keeps it (amounts in minor units)."""

    merchant_order_no: str
    trans_no: str
    trans_type: TransType
    terminal_sn: str  # "" for a hosted checkout; a refund without the card: the original's
    currency: str
    amount: int
    tip: int
    behaviour: Behaviour
    notify_url: str | None
    expires_s: int
    created_at: float  # the simulator's clock (timestamps)
    started: float  # the event loop's monotonic time (the terminal's timing)
    status: TransStatus = TransStatus.CREATED
    channel: Channel = Channel.TERMINAL
    cashback: int = 0
    on_screen_tip: bool = False
    orig_order_no: str | None = None
    store_no: str | None = None
    attach: str | None = None
    auth_no: str | None = None
    error_code: str | None = None
    error_msg: str | None = None
    end_time: float | None = None
    batch_no: int | None = None
    voided: bool = False
    #: of an approved pre-auth: "cancelled" or "completed" once a child ended its hold
    hold_ended: str | None = None
    acknowledged: bool = False
    online: bool = True
    #: of a hosted checkout: the last part of its ``pay_url``, and where the customer goes
    pay_token: str | None = None
    return_url: str | None = None
    #: of an original: its voids and refunds not yet final, and the refund totals that hold
    #: money against it (approved or still open), so neither needs the children kept
    open_children: int = 0
    refund_hold: int = 0

    @property
    def total(self) -> int:
        """Amount plus tip (what the card pays, cash back aside)."""
        return self.amount + self.tip


@dataclass(frozen=True)
class SentNotification:
    """One POST of a notification: what was sent and what the merchant answered."""

    merchant_order_no: str
    trans_status: int
    url: str
    answer: str | None  # the body text, or None when the POST failed


@dataclass(frozen=True)
class TipAdjusted:
    """One tip adjustment the simulated gateway applied."""

    merchant_order_no: str  # the original's
    old_tip: int
    new_tip: int


@dataclass
class _Batch:
    no: int
    #: per currency (count, net total in minor units) of the approved orders
    figures: dict[str, tuple[int, int]] = field(default_factory=dict)
    adjustments: dict[str, int] = field(default_factory=dict)

    def add(self, currency: str, count: int, value: int) -> None:
        had_count, had_total = self.figures.get(currency, (0, 0))
        self.figures[currency] = (had_count + count, had_total + value)


class CodePaySimulator:
    """The simulated gateway: ``await start()``, talk to :attr:`url`, ``await stop()``.

    Recording API for tests: :attr:`requests` (every accepted-for-processing request body),
    :attr:`creates` (every request that creates an order: Create Order, Submit Order Refund,
    hosted checkout), :meth:`create_count`, :meth:`method_log`, :attr:`orders`,
    :attr:`notifications_sent`, :attr:`batch_closes`, :attr:`tip_adjustments`,
    :meth:`recent_orders`, :meth:`stats`; knobs: :meth:`set_terminal_online`,
    :meth:`adjust_open_batch`, :meth:`behave`; the customer: :meth:`scan_and_pay`.

    ``completion_max_percent`` is the most a completion may capture, in % of its pre-auth;
    ``tip_adjustment`` is what ``tip_adjustment_amount`` means to this gateway ("total" or
    "delta", as the bridge's configuration key of the same name).

    Memory is bounded for long runs: the recordings keep their newest ``keep`` entries
    (:class:`~posbridge.sandbox.recent.Recent`), and once more than ``keep`` orders are known
    the oldest final ones are forgotten (an order still on its terminal, or with a void or
    refund in flight, is kept). The inspection helpers therefore answer for recent orders;
    :meth:`totals` counts everything since the start. A forgotten order is unknown to later
    queries, voids and refunds, as an order older than the gateway's retention would be.
    """

    def __init__(
        self,
        *,
        app_id: str,
        merchant_no: str,
        gateway_private_key: RSAPrivateKey,
        merchant_public_key: RSAPublicKey | None = None,
        basic_auth: tuple[str, str] | None = None,
        approve_delay_s: float = 3.0,
        clock: Callable[[], float] = time.time,
        notify_retry_s: Sequence[float] = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0),
        notify_timeout_s: float = 5.0,
        open_batch_method: str = m.DEFAULT_OPEN_BATCH_METHOD,
        keep: int = 10_000,
        completion_max_percent: int = 100,
        tip_adjustment: m.TipAdjustmentMode = "total",
    ) -> None:
        if merchant_public_key is None and basic_auth is None:
            raise ValueError("give the merchant public key (RSA2) or basic-auth credentials")
        if keep < 1:
            raise ValueError("keep must be at least 1")
        if completion_max_percent < 100:
            raise ValueError("completion_max_percent must be at least 100")
        if tip_adjustment not in m.TIP_ADJUSTMENT_MODES:
            raise ValueError("tip_adjustment must be total or delta")
        self.keep = keep
        self.app_id = app_id
        self.merchant_no = merchant_no
        self.completion_max_percent = completion_max_percent
        self.tip_adjustment: m.TipAdjustmentMode = tip_adjustment
        self._gateway_key = gateway_private_key
        self._merchant_key = merchant_public_key
        self._basic = basic_auth
        self.approve_delay_s = approve_delay_s
        self._clock = clock
        self.notify_retry_s = tuple(notify_retry_s)
        self._notify_timeout = aiohttp.ClientTimeout(total=notify_timeout_s)
        self._methods: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            m.CREATE: self._create, m.CLOSE: self._close, m.QUERY: self._query,
            m.BATCH_CLOSE: self._batch_close, open_batch_method: self._open_batch,
            m.REFUND_SUBMIT: self._refund_submit, m.REFUND_QUERY: self._refund_query,
            m.TIP_ADJUST: self._tip_adjust, m.CHECKOUT: self._checkout, m.REVOKE: self._revoke,
        }
        self._required: dict[str, tuple[str, ...]] = {
            m.CREATE: ("merchant_no", "terminal_sn", "message_receiving_application",
                       "price_currency", "order_amount", "trans_type", "merchant_order_no",
                       "description", "expires", "api_version"),
            m.CLOSE: ("merchant_no", "terminal_sn", "merchant_order_no",
                      "message_receiving_application"),
            m.QUERY: ("merchant_no",),
            m.BATCH_CLOSE: ("merchant_no", "terminal_sn"),
            open_batch_method: ("merchant_no",),
            m.REFUND_SUBMIT: ("merchant_no", "merchant_order_no", "price_currency",
                              "order_amount", "description"),
            m.REFUND_QUERY: ("merchant_no",),
            m.TIP_ADJUST: ("merchant_no", "merchant_order_no", "tip_adjustment_amount"),
            m.CHECKOUT: ("merchant_no", "merchant_order_no", "price_currency", "order_amount",
                         "expires", "description"),
            m.REVOKE: ("merchant_no", "merchant_order_no"),
        }
        self.requests: Recent[dict[str, Any]] = Recent(keep)
        self.creates: Recent[dict[str, Any]] = Recent(keep)
        self.orders: dict[str, SimOrder] = {}  # oldest first
        self.notifications_sent: Recent[SentNotification] = Recent(keep)
        self.batch_closes: Recent[str] = Recent(keep)
        self.tip_adjustments: Recent[TipAdjusted] = Recent(keep)
        self.orders_created = 0
        self.orders_forgotten = 0
        # What a closed or expired order reports: 3 (cancelled). PROVIDERS.md gives 1 as
        # "closed/failed", so a test may set FAILED to play a gateway that reports closes so.
        self.closed_status = TransStatus.CANCELLED
        # Some gateways add an error code to such a status 1 (code, message): a test sets it.
        self.closed_error: tuple[str, str] | None = None
        # How long past ``expires`` the gateway waits before it closes an order itself; a
        # test sets it to leave the close to the bridge (which closes at ``expires``).
        self.expiry_grace_s = 0.0
        self._online: dict[str, bool] = {}
        self._batches: dict[str, _Batch] = {}
        self._by_trans_no: dict[str, SimOrder] = {}
        self._by_pay_token: dict[str, SimOrder] = {}
        self._forced: dict[str, Behaviour] = {}
        self._terminal_tasks: dict[str, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._serial = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._url = ""
        # Set by a method handler that processed its request but whose answer is "lost".
        self._drop_answer = False

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Listen on ``host:port`` (0: any free port); :attr:`url` is then the base URL."""
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        app.router.add_post(ENTRY_PATH, self._handle)
        app.router.add_get(CHECKOUT_PATH + "{token}", self._pay_page)
        app.router.add_post(CHECKOUT_PATH + "{token}/pay", self._pay_button)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound_host, bound_port = self._runner.addresses[0][:2]
        self._url = f"http://{bound_host}:{bound_port}"
        self._session = aiohttp.ClientSession(timeout=self._notify_timeout,
                                              cookie_jar=aiohttp.DummyCookieJar())
        log.info("codepay_sim_started", url=self._url)

    @property
    def url(self) -> str:
        """The base URL to give the provider (``{url}/api/entry`` is the entry point)."""
        if not self._url:
            raise RuntimeError("the simulator is not started")
        return self._url

    async def stop(self) -> None:
        """Stop terminals and notifications, then the server."""
        tasks = [*self._tasks, *self._terminal_tasks.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        self._terminal_tasks.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- recording and knobs ------------------------------------------------------------------

    async def scan_and_pay(self, provider_ref: str) -> None:
        """The customer pays order ``provider_ref`` (its ``trans_no`` or its
        ``merchant_order_no``) now: a terminal order is approved whatever its behaviour (the
        sandbox display's button; tests); a hosted checkout is paid as its page's Pay button
        pays it (cents 05: the payment fails). Either is notified. A final or unknown order
        is left as it is."""
        order = self._by_trans_no.get(provider_ref) or self.orders.get(provider_ref)
        if order is None or order.status in FINAL:
            return
        if order.channel is Channel.CHECKOUT:
            self._checkout_pay(order)
            await self._notify_result(order)
            return
        self._stop_terminal(order)
        self._approve(order)
        await self._notify_result(order)

    def behave(self, merchant_order_no: str, behaviour: Behaviour) -> None:
        """The next order created with ``merchant_order_no`` behaves so, whatever its amount
        (a void's or a pre-auth cancel's amount is its original's: tests pick its behaviour
        here)."""
        self._forced[merchant_order_no] = behaviour

    def stats(self, order_no: str) -> dict[str, object]:
        """Creates and methods seen for ``order_no``, and every batch closed."""
        return {"creates": self.create_count(order_no),
                "methods": list(self.method_log(order_no)),
                "batch_closes": list(self.batch_closes)}

    def create_count(self, merchant_order_no: str) -> int:
        """How many creates for ``merchant_order_no`` arrived (refused duplicates included)."""
        return sum(1 for body in self.creates if body.get("merchant_order_no") == merchant_order_no)

    def method_log(self, merchant_order_no: str) -> list[str]:
        """The methods called for one order, in order of arrival (a tip adjustment is logged
        under its original's number, which it names)."""
        return [str(body.get("method")) for body in self.requests
                if body.get("merchant_order_no") == merchant_order_no]

    def set_terminal_online(self, terminal_sn: str, online: bool) -> None:
        """Take a terminal off-line (new orders wait at status 9) or back on-line."""
        self._online[terminal_sn] = online

    def adjust_open_batch(self, terminal_sn: str, currency: str, delta_minor: int) -> None:
        """Make the terminal's open-batch total differ by ``delta_minor`` (discrepancy tests)."""
        batch = self._batch(terminal_sn)
        batch.adjustments[currency] = batch.adjustments.get(currency, 0) + delta_minor

    def open_batch_figures(self, terminal_sn: str) -> dict[str, tuple[int, int]]:
        """Per currency (count, net total in minor units) of the terminal's open batch (what
        they count: the module's docstring)."""
        batch = self._batch(terminal_sn)
        figures = dict(batch.figures)
        for currency, delta in batch.adjustments.items():
            count, total = figures.get(currency, (0, 0))
            figures[currency] = (count, total + delta)
        return figures

    def recent_orders(self) -> list[dict[str, Any]]:
        """The orders it remembers, oldest first: ``order_no``, ``trans_type``, ``status``
        (the gateway's ``trans_status``), ``amount``, ``tip`` and ``cashback`` (minor units),
        ``currency``, ``channel`` (terminal, refund, checkout), and ``creates``: how many
        creates for it are in the recorded window."""
        creates: dict[str, int] = {}
        for body in self.creates:
            key = str(body.get("merchant_order_no"))
            creates[key] = creates.get(key, 0) + 1
        return [{"order_no": o.merchant_order_no, "trans_type": int(o.trans_type),
                 "status": int(o.status), "amount": o.amount, "tip": o.tip,
                 "cashback": o.cashback, "currency": o.currency, "channel": o.channel.value,
                 "creates": creates.get(o.merchant_order_no, 0)}
                for o in self.orders.values()]

    def totals(self) -> dict[str, int]:
        """Counts since the start: ``creates`` received (refused ones too), ``orders``
        created, ``forgotten`` orders, ``kept`` orders now, ``requests``, ``notifications``
        sent (each POST), ``tip_adjustments`` applied."""
        return {"creates": self.creates.appended, "orders": self.orders_created,
                "forgotten": self.orders_forgotten, "kept": len(self.orders),
                "requests": self.requests.appended,
                "notifications": self.notifications_sent.appended,
                "tip_adjustments": self.tip_adjustments.appended}

    # -- HTTP -------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body = m.parse_json(raw)
        if body is None:
            return self._answer("INVALID_PARAMETER", {}, "body is not a JSON object")
        method = str(body.get("method", ""))
        try:
            self._check_envelope(body, request.headers.get("Authorization"))
        except _Refusal as exc:
            if exc.code == "AUTH_FAILED" and body.get("sign_type") == "NONE":
                return web.Response(status=401, text="unauthorized")
            return self._answer(exc.code, {}, exc.message)
        self.requests.append(body)
        if method in (m.CREATE, m.REFUND_SUBMIT, m.CHECKOUT):
            self.creates.append(body)
        self._drop_answer = False
        try:
            handler = self._methods.get(method)
            if handler is None:
                raise _Refusal("METHOD_NOT_SUPPORTED", method)
            missing = [f for f in self._required[method] if body.get(f) in (None, "")]
            if missing:
                raise _Refusal("INVALID_PARAMETER", f"missing {', '.join(missing)}")
            if str(body["merchant_no"]) != self.merchant_no:
                raise _Refusal("INVALID_PARAMETER", "unknown merchant_no")
            data = handler(body)
        except _Refusal as exc:
            log.info("codepay_sim_refused", method=method, code=exc.code)
            return self._answer(exc.code, {}, exc.message)
        if self._drop_answer and request.transport is not None:
            # Processed, but the answer is lost: the connection drops without a response.
            request.transport.close()
        return self._answer("0", data)

    def _check_envelope(self, body: dict[str, Any], authorization: str | None) -> None:
        if body.get("app_id") != self.app_id:
            raise _Refusal("AUTH_FAILED", "unknown app_id")
        sign_type = body.get("sign_type")
        if sign_type == "RSA2":
            if self._merchant_key is None or not signing.verify(body, self._merchant_key):
                raise _Refusal("AUTH_FAILED")
        elif sign_type == "NONE":
            if self._basic is None or not _basic_ok(authorization, self._basic):
                raise _Refusal("AUTH_FAILED")
        else:
            raise _Refusal("INVALID_PARAMETER", "sign_type must be RSA2 or NONE")
        for name, fixed in (("format", m.FORMAT), ("charset", m.CHARSET),
                            ("version", m.VERSION)):
            if body.get(name) != fixed:
                raise _Refusal("INVALID_PARAMETER", f"{name} must be {fixed}")
        stamp = body.get("timestamp")
        text = str(stamp) if isinstance(stamp, (int, str)) and not isinstance(stamp, bool) else ""
        if not (len(text) == 13 and text.isdigit()):
            raise _Refusal("INVALID_PARAMETER", "timestamp must be 13-digit epoch milliseconds")
        if abs(int(text) - m.timestamp_ms(self._clock())) > MAX_SKEW_MS:
            raise _Refusal("TIMESTAMP_EXPIRED")

    def _answer(self, code: str, data: dict[str, Any], detail: str = "") -> web.Response:
        msg = "success" if code == "0" else (detail or REFUSALS.get(code, "refused"))
        answer: dict[str, Any] = {"code": code, "msg": msg, "psn": _digits(20), "data": data}
        answer["sign"] = signing.sign(answer, self._gateway_key)
        return web.Response(text=m.dumps(answer), content_type="application/json",
                            charset="utf-8")

    # -- methods: Create Order --------------------------------------------------------------

    def _create(self, body: dict[str, Any]) -> dict[str, Any]:
        if body.get("message_receiving_application") != m.RECEIVING_APPLICATION:
            raise _Refusal("INVALID_PARAMETER", "message_receiving_application")
        if body.get("api_version") != m.API_VERSION:
            raise _Refusal("INVALID_PARAMETER", "api_version must be 2.0")
        order_no = self._new_order_no(body)
        try:
            trans_type = TransType(_int(body["trans_type"]))
        except ValueError as exc:
            raise _Refusal("INVALID_PARAMETER", "trans_type not supported") from exc
        currency = str(body["price_currency"])
        amount = _order_amount(body, currency)
        tip = _optional_amount(body, "tip_amount", currency)
        cashback = _optional_amount(body, "cashback_amount", currency)
        if (trans_type is TransType.CASHBACK) != (cashback > 0):
            raise _Refusal("INVALID_PARAMETER", "cashback_amount goes with trans_type 11 only, "
                                                "and 11 needs it")
        on_screen_tip = body.get("on_screen_tip", False)
        if not isinstance(on_screen_tip, bool):
            raise _Refusal("INVALID_PARAMETER", "on_screen_tip must be true or false")
        if on_screen_tip and trans_type not in m.ON_SCREEN_TIP_TYPES:
            raise _Refusal("INVALID_PARAMETER", "on_screen_tip only for trans_type 1, 3, 4")
        _limit(body, "description", m.MAX_DESCRIPTION)
        _limit(body, "notify_url", m.MAX_URL)
        expires = _expires(body, None)
        sn = str(body["terminal_sn"])
        orig = None
        if trans_type in m.ORIGINAL_TYPES:
            orig_no = _text(body.get("orig_merchant_order_no"))
            if orig_no is None:
                raise _Refusal("INVALID_PARAMETER", "missing orig_merchant_order_no")
            orig = self._check_original(self.orders.get(orig_no), trans_type, currency,
                                        amount + tip, _ORIGINALS[trans_type], on_terminal=True)
        online = self._online.get(sn, True)
        behaviour = self._behaviour(order_no, amount if trans_type in CENTS_TYPES else None)
        if behaviour is Behaviour.OFFLINE:
            online = False
        if not online and body.get("reject_trade_when_terminal_offline") is True:
            raise _Refusal("TERMINAL_OFFLINE")
        order = self._add(SimOrder(
            merchant_order_no=order_no, trans_no="50" + _digits(20), trans_type=trans_type,
            terminal_sn=sn, currency=currency, amount=amount, tip=tip, behaviour=behaviour,
            notify_url=_text(body.get("notify_url")), expires_s=expires,
            created_at=self._clock(), started=asyncio.get_running_loop().time(),
            cashback=cashback, on_screen_tip=on_screen_tip, store_no=_text(body.get("store_no")),
            attach=_text(body.get("attach")), online=online), orig)
        self._start_terminal(order_no, self._terminal(order))
        self._drop_answer = behaviour is Behaviour.RESPONSE_LOST
        return {"message_id": "M" + _digits(21), "trans_no": order.trans_no,
                "terminal_online_status": "online" if online else "offline"}

    def _new_order_no(self, body: Mapping[str, Any]) -> str:
        """The request's ``merchant_order_no``, if well formed and not used before."""
        order_no = str(body["merchant_order_no"])
        if not m.ORDER_NO.fullmatch(order_no):
            raise _Refusal("INVALID_PARAMETER", "merchant_order_no characters")
        if order_no in self.orders:
            raise _Refusal("ORDER_DUPLICATE")
        return order_no

    def _behaviour(self, order_no: str, amount: int | None,
                   terminal: bool = True) -> Behaviour:
        """A forced behaviour (:meth:`behave`), else by ``amount``'s cents (None: approve);
        without a terminal the terminal's own behaviours approve."""
        forced = self._forced.pop(order_no, None)
        chosen = forced or (behaviour_for(amount) if amount is not None else Behaviour.APPROVE)
        if not terminal and chosen in TERMINAL_ONLY:
            return Behaviour.APPROVE
        return chosen

    def _add(self, order: SimOrder, orig: SimOrder | None) -> SimOrder:
        """Record a new order (and hold it against its original)."""
        if orig is not None:
            order.orig_order_no = orig.merchant_order_no
            orig.open_children += 1
            if order.trans_type in _REFUNDS:
                orig.refund_hold += order.total
        self.orders[order.merchant_order_no] = order
        self.orders_created += 1
        self._by_trans_no[order.trans_no] = order
        self._forget_old()
        log.info("codepay_sim_created", order_no=order.merchant_order_no,
                 trans_type=int(order.trans_type), channel=order.channel.value,
                 behaviour=order.behaviour.name)
        return order

    def _check_original(self, orig: SimOrder | None, trans_type: TransType, currency: str,
                        total: int, allowed: frozenset[TransType], *,
                        on_terminal: bool) -> SimOrder:
        """The original a void, refund, cancel or completion names, checked (a refund may
        be made on any terminal). ``on_terminal``: the child is a Create Order, whose original
        must have been made on a terminal too (Submit Order Refund also refunds a checkout)."""
        if (orig is None or orig.trans_type not in allowed
                or orig.status is not TransStatus.SUCCESS or orig.currency != currency
                or (on_terminal and orig.channel is not Channel.TERMINAL)):
            names = "/".join(str(int(t)) for t in sorted(allowed))
            raise _Refusal("ORIG_ORDER_INVALID", f"no approved trans_type {names} with that "
                                                 "number")
        if trans_type in _VOIDS:
            if orig.voided or orig.batch_no != self._batch(orig.terminal_sn).no:
                raise _Refusal("ORIG_ORDER_INVALID", "only a transaction in the open batch "
                                                     "can be voided")
            if total != orig.total:
                raise _Refusal("INVALID_PARAMETER", "a void is for the original's whole amount")
            if orig.open_children:
                raise _Refusal("ORIG_ORDER_INVALID", "the original has a void or refund in "
                                                     "progress")
        elif trans_type in _HOLD_ENDS:
            if orig.hold_ended is not None:
                raise _Refusal("ORIG_ORDER_INVALID", f"the pre-auth is already {orig.hold_ended}")
            if orig.open_children:
                raise _Refusal("ORIG_ORDER_INVALID", "the pre-auth has a cancel or completion "
                                                     "in progress")
            if trans_type is TransType.PREAUTH_CANCEL and total != orig.total:
                raise _Refusal("INVALID_PARAMETER", "a pre-auth cancel is for the whole "
                                                    "authorised amount")
            if (trans_type is TransType.COMPLETION
                    and total * 100 > orig.total * self.completion_max_percent):
                raise _Refusal("COMPLETION_AMOUNT_EXCEEDED",
                               f"at most {self.completion_max_percent}% of "
                               f"{format_amount(orig.total, currency)}")
        elif orig.voided or orig.refund_hold + total > orig.total:
            raise _Refusal("REFUND_AMOUNT_EXCEEDED")
        return orig

    def _close(self, body: dict[str, Any]) -> dict[str, Any]:
        order = self._known(str(body["merchant_order_no"]))
        if order.channel is not Channel.TERMINAL:
            raise _Refusal("ORDER_STATUS_ERROR", "not an order on a terminal")
        if order.status is TransStatus.CREATED:
            self._stop_terminal(order)
            self._closed(order)
            if order.behaviour is Behaviour.LATE_APPROVAL:
                self._start_terminal(order.merchant_order_no, self._late_approval(order))
        elif order.status is not self.closed_status or order.error_code:
            raise _Refusal("ORDER_STATUS_ERROR", f"trans_status {int(order.status)}")
        return {"message_id": "M" + _digits(21), "trans_no": order.trans_no}

    def _query(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._order_now(self._find(body))

    def _find(self, body: Mapping[str, Any]) -> SimOrder:
        """The order a query names."""
        return self._known(self._named(body, "merchant_order_no", "trans_no"))

    def _known(self, order: SimOrder | str | None) -> SimOrder:
        """``order`` (or the order of that number), else the refusal ORDER_NOT_EXIST."""
        found = self.orders.get(order) if isinstance(order, str) else order
        if found is None:
            raise _Refusal("ORDER_NOT_EXIST")
        return found

    def _named(self, body: Mapping[str, Any], number: str, trans_no: str) -> SimOrder | None:
        """The order that field ``trans_no`` or field ``number`` of ``body`` names (one of the
        two is needed; ``trans_no`` first, as the seed says), None if there is none."""
        by_trans = _text(body.get(trans_no))
        by_number = _text(body.get(number))
        if by_trans is None and by_number is None:
            raise _Refusal("INVALID_PARAMETER", f"{number} or {trans_no}")
        if by_trans is not None:
            return self._by_trans_no.get(by_trans)
        return self.orders.get(by_number or "")

    def _order_now(self, order: SimOrder) -> dict[str, Any]:
        """A query's ``data``: in progress while a notification-only result is unanswered."""
        status = order.status
        if (order.behaviour is Behaviour.NOTIFY_ONLY and status in FINAL
                and not order.acknowledged):
            status = TransStatus.IN_PROGRESS
        return self._order_data(order, status)

    def _batch_close(self, body: dict[str, Any]) -> dict[str, Any]:
        sn = str(body["terminal_sn"])
        data = self._figures_data(sn)
        closing = self._batch(sn)
        self._batches[sn] = _Batch(no=closing.no + 1)
        self.batch_closes.append(sn)
        log.info("codepay_sim_batch_closed", terminal=sn, batch_no=closing.no)
        return data

    def _open_batch(self, body: dict[str, Any]) -> dict[str, Any]:
        sns = body.get("terminal_sn_list")
        if sns in (None, "", []):
            sns = sorted(self._batches)
        if not isinstance(sns, list) or not all(isinstance(s, str) for s in sns):
            raise _Refusal("INVALID_PARAMETER", "terminal_sn_list must be a list of strings")
        if len(sns) == 1:
            return self._figures_data(sns[0])
        merged: dict[str, tuple[int, int]] = {}
        for sn in sns:
            for cur, (count, total) in self.open_batch_figures(sn).items():
                c0, t0 = merged.get(cur, (0, 0))
                merged[cur] = (c0 + count, t0 + total)
        return _figures_json(merged)

    def _figures_data(self, sn: str) -> dict[str, Any]:
        return _figures_json(self.open_batch_figures(sn))

    # -- methods: refunds without the card ---------------------------------------------------

    def _refund_submit(self, body: dict[str, Any]) -> dict[str, Any]:
        order_no = self._new_order_no(body)
        found = self._named(body, "orig_merchant_order_no", "orig_trans_no")
        currency = str(body["price_currency"])
        amount = _order_amount(body, currency)
        _limit(body, "description", m.MAX_REFUND_DESCRIPTION)
        _limit(body, "notify_url", m.MAX_URL)
        orig = self._check_original(found, TransType.REFUND, currency, amount, _REFUNDABLE,
                                    on_terminal=False)
        order = self._add(SimOrder(
            merchant_order_no=order_no, trans_no="51" + _digits(20),
            trans_type=TransType.REFUND, terminal_sn=orig.terminal_sn, currency=currency,
            amount=amount, tip=0, behaviour=self._behaviour(order_no, amount, terminal=False),
            notify_url=_text(body.get("notify_url")), expires_s=REFUND_EXPIRES_S,
            created_at=self._clock(), started=asyncio.get_running_loop().time(),
            status=TransStatus.IN_PROGRESS, channel=Channel.REFUND), orig)
        self._start_terminal(order_no, self._gateway_refund(order))
        self._drop_answer = order.behaviour is Behaviour.RESPONSE_LOST
        return {"trans_no": order.trans_no, "trans_amount": format_amount(amount, currency),
                "trans_fee_c": "0", "vat_amount": "0"}

    def _refund_query(self, body: dict[str, Any]) -> dict[str, Any]:
        order = self._find(body)
        if order.trans_type not in _REFUNDS:
            raise _Refusal("ORDER_NOT_EXIST", "no refund with that number")
        return self._order_now(order)

    # -- methods: tip adjustment ------------------------------------------------------------

    def _tip_adjust(self, body: dict[str, Any]) -> dict[str, Any]:
        order = self._known(str(body["merchant_order_no"]))
        if (order.channel is not Channel.TERMINAL or order.status is not TransStatus.SUCCESS
                or order.trans_type not in _REFUNDABLE or order.voided):
            raise _Refusal("ORIG_ORDER_INVALID", "only an approved sale or completion can have "
                                                 "its tip adjusted")
        batch = self._batch(order.terminal_sn)
        if order.batch_no != batch.no:
            raise _Refusal("BATCH_CLOSED", "its tip can no longer be adjusted")
        if order.open_children:
            raise _Refusal("ORIG_ORDER_INVALID", "it has a void or refund in progress")
        value = _signed_amount(body["tip_adjustment_amount"], order.currency,
                               negative=self.tip_adjustment == "delta")
        new_tip = value if self.tip_adjustment == "total" else order.tip + value
        if new_tip < 0:
            raise _Refusal("INVALID_PARAMETER", "the tip would be negative")
        if order.refund_hold > order.amount + new_tip:
            raise _Refusal("REFUND_AMOUNT_EXCEEDED", "more was refunded than that total")
        behaviour = behaviour_for(value)
        if behaviour is Behaviour.DECLINE:
            raise _Refusal("TIP_ADJUST_DECLINED")
        self.tip_adjustments.append(TipAdjusted(order.merchant_order_no, order.tip, new_tip))
        batch.add(order.currency, 0, new_tip - order.tip)
        order.tip = new_tip
        self._drop_answer = behaviour is Behaviour.RESPONSE_LOST
        log.info("codepay_sim_tip_adjusted", order_no=order.merchant_order_no, tip=new_tip)
        return {"trans_status": int(TransStatus.SUCCESS), "trans_time": self._time_text()}

    # -- methods: hosted checkout and Cancel Order -------------------------------------------

    def _checkout(self, body: dict[str, Any]) -> dict[str, Any]:
        for card_field in ("card", "card_info", "billing_address"):
            if card_field in body:
                raise _Refusal("INVALID_PARAMETER", f"{card_field}: pay.checkout takes no card "
                                                    "data")
        order_no = self._new_order_no(body)
        currency = str(body["price_currency"])
        amount = _order_amount(body, currency)
        for name, limit in (("description", m.MAX_DESCRIPTION), ("notify_url", m.MAX_URL),
                            ("return_url", m.MAX_URL)):
            _limit(body, name, limit)
        expires = _expires(body, m.MAX_CHECKOUT_EXPIRES_S)
        token = secrets.token_urlsafe(16)
        order = self._add(SimOrder(
            merchant_order_no=order_no, trans_no="52" + _digits(20), trans_type=TransType.SALE,
            terminal_sn="", currency=currency, amount=amount, tip=0,
            behaviour=self._behaviour(order_no, amount, terminal=False),
            notify_url=_text(body.get("notify_url")), expires_s=expires,
            created_at=self._clock(), started=asyncio.get_running_loop().time(),
            channel=Channel.CHECKOUT, store_no=_text(body.get("store_no")),
            attach=_text(body.get("attach")), pay_token=token,
            return_url=_text(body.get("return_url"))), None)
        self._by_pay_token[token] = order
        self._start_terminal(order_no, self._expire(order))
        self._drop_answer = order.behaviour is Behaviour.RESPONSE_LOST
        return {"pay_url": self.url + CHECKOUT_PATH + token}

    def _revoke(self, body: dict[str, Any]) -> dict[str, Any]:
        order = self._known(str(body["merchant_order_no"]))
        if order.channel is not Channel.CHECKOUT:
            raise _Refusal("REVOKE_NOT_SUPPORTED", "not an online order")
        self._stop_terminal(order)
        if order.status is TransStatus.SUCCESS:
            # "If the user pays successfully, the CodePay system will refund the funds".
            order.status = TransStatus.CANCELLED
            order.end_time = self._clock()
            log.info("codepay_sim_revoked_paid", order_no=order.merchant_order_no)
        elif order.status not in FINAL:
            self._set_final(order, TransStatus.CANCELLED)
        return {"message_id": "M" + _digits(21), "trans_no": order.trans_no}

    async def _pay_page(self, request: web.Request) -> web.Response:
        """A stand-in for CodePay's hosted checkout page: the order and a Pay button."""
        order = self._by_pay_token.get(request.match_info["token"])
        if order is None:
            return web.Response(status=404, text="no such checkout")
        status = {TransStatus.CREATED: "awaiting payment", TransStatus.IN_PROGRESS: "paying",
                  TransStatus.FAILED: "payment failed", TransStatus.SUCCESS: "paid",
                  TransStatus.CANCELLED: "closed"}[order.status]
        button = ""
        if order.status is TransStatus.CREATED:
            action = html.escape(CHECKOUT_PATH + (order.pay_token or "") + "/pay")
            button = f'<form method="post" action="{action}"><button type="submit">Pay</button>' \
                     "</form>"
        amount = format_amount(order.amount, order.currency)
        body = (f"<!doctype html><title>Pay {html.escape(order.merchant_order_no)}</title>"
                f"<h1>{html.escape(amount)} {html.escape(order.currency)}</h1>"
                f"<p>Order {html.escape(order.merchant_order_no)}: {status}</p>{button}")
        return web.Response(text=body, content_type="text/html")

    async def _pay_button(self, request: web.Request) -> web.Response:
        """The page's Pay button: the payment is made (or fails, cents 05) and notified."""
        order = self._by_pay_token.get(request.match_info["token"])
        if order is None:
            return web.Response(status=404, text="no such checkout")
        if order.status is not TransStatus.CREATED:
            return web.Response(status=409, text="this checkout cannot be paid now")
        self._checkout_pay(order)
        self._spawn(self._notify_result(order))
        back = ""
        if order.return_url:
            back = f'<p><a href="{html.escape(order.return_url)}">Back to the shop</a></p>'
        return web.Response(text=f"<!doctype html><title>Thank you</title><p>Payment sent.</p>"
                                 f"{back}", content_type="text/html")

    def _checkout_pay(self, order: SimOrder) -> None:
        """The customer pays a hosted checkout still awaiting payment: approved, or failed
        for cents 05 (the caller sends the notification)."""
        self._stop_terminal(order)
        if order.behaviour is Behaviour.DECLINE:
            order.error_code, order.error_msg = "51", "Insufficient funds"
            self._set_final(order, TransStatus.FAILED)
        else:
            self._set_final(order, TransStatus.SUCCESS)

    # -- the simulated terminal -------------------------------------------------------------

    async def _terminal(self, order: SimOrder) -> None:
        """Drive one order through the terminal as its behaviour says."""
        d = self.approve_delay_s
        if not order.online or not self._online.get(order.terminal_sn, True):
            await self._expire(order)
            return
        total = SLOW_FACTOR * d if order.behaviour is Behaviour.SLOW else d
        if not await self._wait_until(order, total - d / 2):
            return
        order.status = TransStatus.IN_PROGRESS
        if order.behaviour is Behaviour.SILENT:
            await self._expire(order)
            return
        if not await self._wait_until(order, total):
            return
        if order.behaviour is Behaviour.DECLINE:
            order.error_code, order.error_msg = "51", "Insufficient funds"
            self._set_final(order, TransStatus.FAILED)
        else:
            self._approve(order)
        await self._notify_result(order)

    async def _gateway_refund(self, order: SimOrder) -> None:
        """A refund without the card: the gateway decides after the approve delay."""
        d = self.approve_delay_s
        await _sleep_until(order.started + (SLOW_FACTOR * d if order.behaviour is Behaviour.SLOW
                                            else d))
        if order.behaviour is Behaviour.DECLINE:
            order.error_code, order.error_msg = "REFUND_FAILED", "the issuer refused the refund"
            self._set_final(order, TransStatus.FAILED)
        else:
            self._set_final(order, TransStatus.SUCCESS)
        await self._notify_result(order)

    def _approve(self, order: SimOrder) -> None:
        """The card is approved; the customer enters the tip first when asked to."""
        if order.on_screen_tip and order.status not in FINAL:
            order.tip = (order.amount * ON_SCREEN_TIP_PERCENT + 50) // 100
        self._set_final(order, TransStatus.SUCCESS)

    async def _late_approval(self, order: SimOrder) -> None:
        """Behaviour 30: the close was answered, but the card went through anyway."""
        await asyncio.sleep(self.approve_delay_s)
        order.status = TransStatus.IN_PROGRESS  # leave CANCELLED so _set_final applies
        self._approve(order)
        await self._notify_result(order)

    async def _wait_until(self, order: SimOrder, after_s: float) -> bool:
        """Sleep until ``after_s`` past creation; False (order closed) if it expires first."""
        if after_s >= order.expires_s:
            await self._expire(order)
            return False
        await _sleep_until(order.started + after_s)
        return True

    async def _expire(self, order: SimOrder) -> None:
        await _sleep_until(order.started + order.expires_s + self.expiry_grace_s)
        self._expired(order)

    def _expired(self, order: SimOrder) -> None:
        if order.status not in FINAL:
            self._closed(order)
            log.info("codepay_sim_expired", order_no=order.merchant_order_no)

    def _closed(self, order: SimOrder) -> None:
        if self.closed_error is not None and self.closed_status is TransStatus.FAILED:
            order.error_code, order.error_msg = self.closed_error
        self._set_final(order, self.closed_status)

    def _stop_terminal(self, order: SimOrder) -> None:
        task = self._terminal_tasks.pop(order.merchant_order_no, None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    def _set_final(self, order: SimOrder, status: TransStatus) -> None:
        if order.status in FINAL:
            return
        order.status = status
        order.end_time = self._clock()
        orig = self.orders.get(order.orig_order_no) if order.orig_order_no else None
        if orig is not None:
            orig.open_children -= 1
            if order.trans_type in _REFUNDS and status is not TransStatus.SUCCESS:
                orig.refund_hold -= order.total
        if status is not TransStatus.SUCCESS:
            return
        order.auth_no = _digits(6)
        if order.terminal_sn:  # a checkout, or a refund of one, is in no terminal's batch
            batch = self._batch(order.terminal_sn)
            value = _batch_value(order, orig)
            if value is not None:
                batch.add(order.currency, 1, value)
            order.batch_no = batch.no
        if orig is None:
            return
        if order.trans_type in _VOIDS:
            orig.voided = True
        elif order.trans_type is TransType.PREAUTH_CANCEL:
            orig.hold_ended = "cancelled"
        elif order.trans_type is TransType.COMPLETION:
            orig.hold_ended = "completed"

    # -- notifications ----------------------------------------------------------------------

    async def _notify_result(self, order: SimOrder) -> None:
        if order.notify_url is None or order.behaviour is Behaviour.POLL_ONLY:
            return
        final = self._note(order, order.status)
        await self._deliver(order, final)
        if order.behaviour is Behaviour.DUPLICATE_NOTIFY:
            await self._deliver(order, final)
            await self._deliver(order, self._note(order, TransStatus.IN_PROGRESS))

    def _note(self, order: SimOrder, status: TransStatus) -> dict[str, Any]:
        note = {"merchant_no": self.merchant_no, "app_id": self.app_id,
                **self._order_data(order, status), "sign_type": "RSA2"}
        note["sign"] = signing.sign(note, self._gateway_key)
        return note

    async def _deliver(self, order: SimOrder, note: dict[str, Any]) -> None:
        """POST until the merchant answers ``success`` (bounded by notify_retry_s)."""
        assert order.notify_url is not None and self._session is not None
        for delay in (*self.notify_retry_s, None):
            answer = await self._post_note(order.notify_url, note)
            self.notifications_sent.append(SentNotification(
                order.merchant_order_no, int(note["trans_status"]), order.notify_url, answer))
            if answer is not None and answer.strip() == "success":
                order.acknowledged = True
                return
            if delay is None:
                log.warning("codepay_sim_notify_gave_up", order_no=order.merchant_order_no)
                return
            await asyncio.sleep(delay)

    async def _post_note(self, url: str, note: dict[str, Any]) -> str | None:
        assert self._session is not None
        try:
            async with self._session.post(
                    url, data=m.dumps(note).encode("utf-8"),
                    headers={"Content-Type": "application/json; charset=UTF-8"}) as resp:
                text = await resp.text()
                return text if resp.status == 200 else None
        except (aiohttp.ClientError, TimeoutError):
            return None

    # -- helpers ----------------------------------------------------------------------------

    def _order_data(self, order: SimOrder, status: TransStatus) -> dict[str, Any]:
        cur = order.currency
        data: dict[str, Any] = {
            "trans_no": order.trans_no,
            "merchant_order_no": order.merchant_order_no,
            "trans_type": int(order.trans_type),
            "trans_status": int(status),
            "price_currency": cur,
            "order_amount": format_amount(order.amount, cur),
            "trans_amount": format_amount(order.total + order.cashback, cur),
        }
        if order.channel is Channel.TERMINAL:
            data["terminal_sn"] = order.terminal_sn
            data["terminal_online_status"] = "online" if order.online else "offline"
        if order.tip or (order.on_screen_tip and status is TransStatus.SUCCESS):
            data["tip_amount"] = format_amount(order.tip, cur)
        if order.cashback:
            data["cashback_amount"] = format_amount(order.cashback, cur)
        if order.store_no:
            data["store_no"] = order.store_no
        if order.orig_order_no:
            data["orig_merchant_order_no"] = order.orig_order_no
        if order.attach:
            data["attach"] = order.attach
        if status is TransStatus.SUCCESS:
            data.update(auth_no=order.auth_no, pay_method_id="Visa", card_type=2)
        if status is TransStatus.FAILED:
            data.update(trans_error_code=order.error_code, trans_error_msg=order.error_msg)
        if status in FINAL and order.end_time is not None:
            data["trans_end_time"] = self._time_text(order.end_time)
        return data

    def _time_text(self, when: float | None = None) -> str:
        return time.strftime("%Y-%m-%d %H:%M:%S",
                             time.gmtime(self._clock() if when is None else when))

    def _batch(self, sn: str) -> _Batch:
        return self._batches.setdefault(sn, _Batch(no=1))

    def _start_terminal(self, order_no: str, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` as the order's terminal task; the entry goes when the task ends."""
        task = self._spawn(coro)
        self._terminal_tasks[order_no] = task

        def done(finished: asyncio.Task[None]) -> None:
            if self._terminal_tasks.get(order_no) is finished:
                del self._terminal_tasks[order_no]

        task.add_done_callback(done)

    def _forget_old(self) -> None:
        """Forget the oldest final orders while more than :attr:`keep` are known."""
        excess = len(self.orders) - self.keep
        if excess <= 0:
            return
        # Oldest first; orders still busy are skipped (they are few: the ones in flight).
        victims: list[SimOrder] = []
        for order_no, order in self.orders.items():
            if len(victims) == excess:
                break
            if (order.status in FINAL and not order.open_children
                    and order_no not in self._terminal_tasks):
                victims.append(order)
        for order in victims:
            del self.orders[order.merchant_order_no]
            self._by_trans_no.pop(order.trans_no, None)
            if order.pay_token is not None:
                self._by_pay_token.pop(order.pay_token, None)
        self.orders_forgotten += len(victims)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task


def _batch_value(order: SimOrder, orig: SimOrder | None) -> int | None:
    """What an approved order adds to its terminal's open-batch total (None: it is not
    counted); see the module's docstring."""
    if order.trans_type in (TransType.PREAUTH, TransType.PREAUTH_CANCEL):
        return None
    if order.trans_type in _VOIDS:
        return -(orig.total + orig.cashback) if orig is not None else -order.total
    if order.trans_type in _REFUNDS:
        return -order.total
    return order.total + order.cashback


async def _sleep_until(loop_time: float) -> None:
    await asyncio.sleep(max(0.0, loop_time - asyncio.get_running_loop().time()))


def _figures_json(figures: Mapping[str, tuple[int, int]]) -> dict[str, Any]:
    """Open-batch ``data``: ``count`` and ``total_amount`` (major-unit text) of the batch; with
    several currencies, ``total_amount`` is the first's and ``totals`` lists each."""
    currencies = sorted(figures)
    count = sum(c for c, _t in figures.values())
    if not currencies:
        return {"count": 0, "total_amount": "0"}
    first = currencies[0]
    data: dict[str, Any] = {"count": count,
                            "total_amount": format_amount(figures[first][1], first),
                            "price_currency": first}
    if len(currencies) > 1:
        data["totals"] = [{"price_currency": cur, "count": figures[cur][0],
                           "total_amount": format_amount(figures[cur][1], cur)}
                          for cur in currencies]
    return data


def _basic_ok(header: str | None, expected: tuple[str, str]) -> bool:
    if header is None or not header.startswith("Basic "):
        return False
    try:
        user, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    return (secrets.compare_digest(user.encode(), expected[0].encode())
            and secrets.compare_digest(password.encode(), expected[1].encode()))


def _amount(value: object, currency: str, name: str) -> int:
    try:
        exponent(currency)
        return parse_amount(str(value), currency)
    except AmountError as exc:
        raise _Refusal("INVALID_PARAMETER", f"{name}: {exc}") from exc


def _order_amount(body: Mapping[str, Any], currency: str) -> int:
    """``order_amount`` in minor units; it must be positive."""
    amount = _amount(body["order_amount"], currency, "order_amount")
    if amount <= 0:
        raise _Refusal("INVALID_PARAMETER", "order_amount must be positive")
    return amount


def _optional_amount(body: Mapping[str, Any], name: str, currency: str) -> int:
    """An optional amount field in minor units (0 when absent)."""
    value = body.get(name)
    return 0 if value in (None, "") else _amount(value, currency, name)


def _signed_amount(value: object, currency: str, *, negative: bool) -> int:
    """An amount that may carry a leading minus sign when ``negative`` is allowed."""
    text = str(value)
    if negative and text.startswith("-"):
        return -_amount(text[1:], currency, "tip_adjustment_amount")
    return _amount(text, currency, "tip_adjustment_amount")


def _limit(body: Mapping[str, Any], name: str, limit: int) -> None:
    """Refuse a text field longer than the seed's limit for it."""
    value = body.get(name)
    if value is not None and len(str(value)) > limit:
        raise _Refusal("INVALID_PARAMETER", f"{name} is longer than {limit} characters")


def _expires(body: Mapping[str, Any], most: int | None) -> int:
    """``expires``: a positive whole number of seconds, at most ``most`` when given."""
    try:
        expires = _int(body["expires"])
    except ValueError as exc:
        raise _Refusal("INVALID_PARAMETER", "expires") from exc
    if expires <= 0:
        raise _Refusal("INVALID_PARAMETER", "expires must be positive")
    if most is not None and expires > most:
        raise _Refusal("INVALID_PARAMETER", f"expires must be at most {most} seconds")
    return expires


def _int(value: object) -> int:
    if isinstance(value, bool):
        raise ValueError("not an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    raise ValueError("not an integer")


def _text(value: object) -> str | None:
    return None if value is None or value == "" else str(value)


def _digits(n: int) -> str:
    return f"{secrets.randbelow(10 ** n):0{n}d}"


# -- the sandbox's view of this simulator ----------------------------------------------------

APP_ID: Final = "sandbox-app"
MERCHANT_NO: Final = "SANDBOX000001"
STORE_NO: Final = "SANDBOXSTORE1"
#: The simulated terminals: (serial number, lane name).
TERMINALS: Final = (("SANDBOX0000000001", "lane-1"), ("SANDBOX0000000002", "lane-2"))


async def _start(keys: SandboxKeys, pacing: SimPacing) -> CodePaySimulator:
    sim = CodePaySimulator(
        app_id=APP_ID, merchant_no=MERCHANT_NO,
        gateway_private_key=keys.private_key("codepay_gateway"),
        merchant_public_key=keys.public_key("merchant"),
        approve_delay_s=pacing.approve_delay_s)
    await sim.start()
    return sim


def _section(sim: CodePaySimulator, keys: SandboxKeys, pacing: BridgePacing) -> dict[str, Any]:
    return {"base_url": sim.url, "app_id": APP_ID, "merchant_no": MERCHANT_NO,
            "store_no": STORE_NO, "private_key_file": str(keys.private("merchant")),
            "gateway_public_key_file": str(keys.public("codepay_gateway")),
            "expires_s": pacing.expires_s, "poll_interval_s": pacing.poll_interval_s,
            "tip_adjustment_amount": sim.tip_adjustment,
            "completion_max_percent": sim.completion_max_percent}


#: The banner's rows beyond the cents table: what the cents apply to, and the rest.
_MORE_BEHAVIOURS: Final = (
    ("cents", "apply to sales, cashback, pre-auths, completions, no-card refunds, checkouts"),
    ("others", "voids, terminal refunds, pre-auth cancels, completion voids/refunds approve"),
    ("tip", f"an on-screen tip is {ON_SCREEN_TIP_PERCENT}% of the amount"),
    ("adj.05", "tip adjustment declined"),
    ("adj.20", "tip adjustment applied, its answer lost"),
    ("pay", "a checkout waits for its page's Pay button (.05: the payment fails)"),
)

SANDBOX: Final = SandboxSpec(
    provider="codepay", key_names=("merchant", "codepay_gateway"), start=_start,
    section=_section, terminals=TERMINALS,
    title="simulated card terminals decide by the amount's cents",
    behaviours=(*((f".{cents:02d}", what) for cents, what in sorted(BEHAVIOURS.items())),
                *_MORE_BEHAVIOURS))
