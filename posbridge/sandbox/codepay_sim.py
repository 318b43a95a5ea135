"""An embedded CodePay Cloud simulator (aiohttp) with simulated terminals, for sandbox and tests.

It checks requests like the real gateway (seed 003, PROVIDERS.md): the merchant's RSA2 signature
(or HTTP Basic auth with ``sign_type=NONE``), ``app_id`` / ``format`` / ``charset`` /
``sign_type`` / ``version``, a ``timestamp`` within 15 minutes of its clock, the required fields
of each method, ``merchant_order_no`` characters and uniqueness (a second create with the same
number is refused as a duplicate), that a void or refund names a known approved sale, that
refunds never exceed the sale, and that only a sale still in the terminal's open batch can be
voided. Every answer ``{code, msg, psn, sign, data}`` is signed with the gateway key. Results
are POSTed, signed, to the order's ``notify_url`` until it answers ``success`` (a bounded number
of times, :attr:`CodePaySimulator.notify_retry_s` apart).

A simulated terminal takes ``approve_delay_s`` per card: the order is ``9`` (created, waiting
for the card, closable) for the first half, ``0`` (in progress) for the second, then final.
What the terminal does is chosen by the amount's cents (minor units % 100):

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

Voids and refunds are approved after ``approve_delay_s`` whatever their cents.

Inferred where the seed is silent (documented deviations): the "Get Open Batch" method name
(:data:`posbridge.providers.codepay.messages.DEFAULT_OPEN_BATCH_METHOD`), the error codes
(:data:`REFUSALS`), the notification's fields (the query's ``data`` fields plus ``merchant_no``,
``sign_type`` and ``sign``), and ``batch.close`` answering the closed batch's ``count`` and
``total_amount`` (the seed's sample shows an empty ``data``).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import enum
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

__all__ = ["BEHAVIOURS", "REFUSALS", "Behaviour", "CodePaySimulator", "SentNotification",
           "SimOrder", "behaviour_for"]

log = structlog.get_logger(__name__)

MAX_SKEW_MS: Final = 15 * 60 * 1000
MAX_BODY_BYTES: Final = 64 * 1024
SLOW_FACTOR: Final = 20
FINAL: Final = frozenset({TransStatus.FAILED, TransStatus.SUCCESS, TransStatus.CANCELLED})


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

#: The simulator's refusal codes (the seed lists none).
REFUSALS: Final[Mapping[str, str]] = {
    "AUTH_FAILED": "signature or credentials do not verify",
    "INVALID_PARAMETER": "a field is missing, malformed or has a wrong fixed value",
    "TIMESTAMP_EXPIRED": "timestamp more than 15 minutes from the gateway's clock",
    "METHOD_NOT_SUPPORTED": "unknown method",
    "ORDER_DUPLICATE": "duplicate merchant_order_no",
    "ORDER_NOT_EXIST": "order not exist",
    "ORIG_ORDER_INVALID": "the original order is unknown, not approved or not voidable",
    "REFUND_AMOUNT_EXCEEDED": "refunds would exceed the original amount",
    "ORDER_STATUS_ERROR": "the order cannot be closed in its current status",
    "TERMINAL_OFFLINE": "the terminal is offline and the order asked to be rejected",
}


def behaviour_for(amount_minor: int) -> Behaviour:
    """The behaviour of a sale of ``amount_minor`` (by its cents; unknown cents approve)."""
    try:
        return Behaviour(amount_minor % 100)
    except ValueError:
        return Behaviour.APPROVE


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
    terminal_sn: str
    currency: str
    amount: int
    tip: int
    behaviour: Behaviour
    notify_url: str | None
    expires_s: int
    created_at: float  # the simulator's clock (timestamps)
    started: float  # the event loop's monotonic time (the terminal's timing)
    status: TransStatus = TransStatus.CREATED
    orig_order_no: str | None = None
    store_no: str | None = None
    attach: str | None = None
    auth_no: str | None = None
    error_code: str | None = None
    error_msg: str | None = None
    end_time: float | None = None
    batch_no: int | None = None
    voided: bool = False
    acknowledged: bool = False
    online: bool = True
    #: of an original: its voids and refunds not yet final, and the refund totals that hold
    #: money against it (approved or still open), so neither needs the children kept
    open_children: int = 0
    refund_hold: int = 0

    @property
    def total(self) -> int:
        """Amount plus tip."""
        return self.amount + self.tip


@dataclass(frozen=True)
class SentNotification:
    """One POST of a notification: what was sent and what the merchant answered."""

    merchant_order_no: str
    trans_status: int
    url: str
    answer: str | None  # the body text, or None when the POST failed


@dataclass
class _Batch:
    no: int
    #: per currency (count, net total in minor units) of the approved orders
    figures: dict[str, tuple[int, int]] = field(default_factory=dict)
    adjustments: dict[str, int] = field(default_factory=dict)

    def add(self, order: SimOrder) -> None:
        count, total = self.figures.get(order.currency, (0, 0))
        sign = 1 if order.trans_type is TransType.SALE else -1
        self.figures[order.currency] = (count + 1, total + sign * order.total)


class CodePaySimulator:
    """The simulated gateway: ``await start()``, talk to :attr:`url`, ``await stop()``.

    Recording API for tests: :attr:`requests` (every accepted-for-processing request body),
    :attr:`creates`, :meth:`create_count`, :meth:`method_log`, :attr:`orders`,
    :attr:`notifications_sent`, :attr:`batch_closes`, :meth:`recent_orders`, :meth:`stats`;
    knobs: :meth:`set_terminal_online`, :meth:`adjust_open_batch`.

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
    ) -> None:
        if merchant_public_key is None and basic_auth is None:
            raise ValueError("give the merchant public key (RSA2) or basic-auth credentials")
        if keep < 1:
            raise ValueError("keep must be at least 1")
        self.keep = keep
        self.app_id = app_id
        self.merchant_no = merchant_no
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
        }
        self.requests: Recent[dict[str, Any]] = Recent(keep)
        self.creates: Recent[dict[str, Any]] = Recent(keep)
        self.orders: dict[str, SimOrder] = {}  # oldest first
        self.notifications_sent: Recent[SentNotification] = Recent(keep)
        self.batch_closes: Recent[str] = Recent(keep)
        self.orders_created = 0
        self.orders_forgotten = 0
        # What a closed or expired order reports: 3 (cancelled). PROVIDERS.md gives 1 as
        # "closed/failed", so a test may set FAILED to play a gateway that reports closes so.
        self.closed_status = TransStatus.CANCELLED
        # Some gateways add an error code to such a status 1 (code, message): a test sets it.
        self.closed_error: tuple[str, str] | None = None
        self._online: dict[str, bool] = {}
        self._batches: dict[str, _Batch] = {}
        self._by_trans_no: dict[str, SimOrder] = {}
        self._terminal_tasks: dict[str, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._serial = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._url = ""

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Listen on ``host:port`` (0: any free port); :attr:`url` is then the base URL."""
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        app.router.add_post(ENTRY_PATH, self._handle)
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
        """The customer pays order ``provider_ref`` (its ``trans_no``) now: it is approved and
        notified, whatever its behaviour (the sandbox display's button; tests)."""
        order = self._by_trans_no.get(provider_ref)
        if order is None or order.status in FINAL:
            return
        self._stop_terminal(order)
        self._set_final(order, TransStatus.SUCCESS)
        await self._notify_result(order)

    def stats(self, order_no: str) -> dict[str, object]:
        """Creates and methods seen for ``order_no``, and every batch closed."""
        return {"creates": self.create_count(order_no),
                "methods": list(self.method_log(order_no)),
                "batch_closes": list(self.batch_closes)}

    def create_count(self, merchant_order_no: str) -> int:
        """How many creates for ``merchant_order_no`` arrived (refused duplicates included)."""
        return sum(1 for body in self.creates if body.get("merchant_order_no") == merchant_order_no)

    def method_log(self, merchant_order_no: str) -> list[str]:
        """The methods called for one order, in order of arrival."""
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
        """Per currency (count, net total in minor units) of the terminal's open batch."""
        batch = self._batch(terminal_sn)
        figures = dict(batch.figures)
        for currency, delta in batch.adjustments.items():
            count, total = figures.get(currency, (0, 0))
            figures[currency] = (count, total + delta)
        return figures

    def recent_orders(self) -> list[dict[str, Any]]:
        """The orders it remembers, oldest first: ``order_no``, ``trans_type``, ``status``
        (the gateway's ``trans_status``), ``amount`` and ``tip`` (minor units), ``currency``,
        and ``creates``: how many creates for it are in the recorded window."""
        creates: dict[str, int] = {}
        for body in self.creates:
            key = str(body.get("merchant_order_no"))
            creates[key] = creates.get(key, 0) + 1
        return [{"order_no": o.merchant_order_no, "trans_type": int(o.trans_type),
                 "status": int(o.status), "amount": o.amount, "tip": o.tip,
                 "currency": o.currency, "creates": creates.get(o.merchant_order_no, 0)}
                for o in self.orders.values()]

    def totals(self) -> dict[str, int]:
        """Counts since the start: ``creates`` received (refused ones too), ``orders``
        created, ``forgotten`` orders, ``kept`` orders now, ``requests``, ``notifications``
        sent (each POST)."""
        return {"creates": self.creates.appended, "orders": self.orders_created,
                "forgotten": self.orders_forgotten, "kept": len(self.orders),
                "requests": self.requests.appended,
                "notifications": self.notifications_sent.appended}

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
        if method == m.CREATE:
            self.creates.append(body)
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
        lost = method == m.CREATE and self.orders[str(body["merchant_order_no"])].behaviour is (
            Behaviour.RESPONSE_LOST)
        if lost and request.transport is not None:
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

    # -- methods ----------------------------------------------------------------------------

    def _create(self, body: dict[str, Any]) -> dict[str, Any]:
        if body.get("message_receiving_application") != m.RECEIVING_APPLICATION:
            raise _Refusal("INVALID_PARAMETER", "message_receiving_application")
        if body.get("api_version") != m.API_VERSION:
            raise _Refusal("INVALID_PARAMETER", "api_version must be 2.0")
        order_no = str(body["merchant_order_no"])
        if not m.ORDER_NO.fullmatch(order_no):
            raise _Refusal("INVALID_PARAMETER", "merchant_order_no characters")
        if order_no in self.orders:
            raise _Refusal("ORDER_DUPLICATE")
        try:
            trans_type = TransType(_int(body["trans_type"]))
        except ValueError as exc:
            raise _Refusal("INVALID_PARAMETER", "trans_type not supported") from exc
        currency = str(body["price_currency"])
        amount = _amount(body["order_amount"], currency, "order_amount")
        tip = _amount(body["tip_amount"], currency, "tip_amount") if body.get(
            "tip_amount") not in (None, "") else 0
        if amount <= 0:
            raise _Refusal("INVALID_PARAMETER", "order_amount must be positive")
        try:
            expires = _int(body["expires"])
        except ValueError as exc:
            raise _Refusal("INVALID_PARAMETER", "expires") from exc
        if expires <= 0:
            raise _Refusal("INVALID_PARAMETER", "expires must be positive")
        sn = str(body["terminal_sn"])
        orig = self._check_original(body, trans_type, currency, amount + tip)
        online = self._online.get(sn, True)
        behaviour = behaviour_for(amount) if trans_type is TransType.SALE else Behaviour.APPROVE
        if behaviour is Behaviour.OFFLINE:
            online = False
        if not online and body.get("reject_trade_when_terminal_offline") is True:
            raise _Refusal("TERMINAL_OFFLINE")
        order = SimOrder(
            merchant_order_no=order_no, trans_no="50" + _digits(20), trans_type=trans_type,
            terminal_sn=sn, currency=currency, amount=amount, tip=tip, behaviour=behaviour,
            notify_url=_text(body.get("notify_url")), expires_s=expires,
            created_at=self._clock(), started=asyncio.get_running_loop().time(),
            orig_order_no=orig.merchant_order_no if orig else None,
            store_no=_text(body.get("store_no")), attach=_text(body.get("attach")),
            online=online)
        self.orders[order_no] = order
        self.orders_created += 1
        self._by_trans_no[order.trans_no] = order
        if orig is not None:
            orig.open_children += 1
            if trans_type is TransType.REFUND:
                orig.refund_hold += order.total
        self._start_terminal(order_no, self._terminal(order))
        self._forget_old()
        log.info("codepay_sim_created", order_no=order_no, behaviour=behaviour.name)
        return {"message_id": "M" + _digits(21), "trans_no": order.trans_no,
                "terminal_online_status": "online" if online else "offline"}

    def _check_original(self, body: dict[str, Any], trans_type: TransType, currency: str,
                        total: int) -> SimOrder | None:
        """The original of a void / refund, checked (a refund may be made on any terminal)."""
        if trans_type is TransType.SALE:
            return None
        orig_no = _text(body.get("orig_merchant_order_no"))
        if orig_no is None:
            raise _Refusal("INVALID_PARAMETER", "missing orig_merchant_order_no")
        orig = self.orders.get(orig_no)
        if (orig is None or orig.trans_type is not TransType.SALE
                or orig.status is not TransStatus.SUCCESS or orig.currency != currency):
            raise _Refusal("ORIG_ORDER_INVALID", "no approved sale with that number")
        if trans_type is TransType.VOID:
            if orig.voided or orig.batch_no != self._batch(orig.terminal_sn).no:
                raise _Refusal("ORIG_ORDER_INVALID", "only a sale in the open batch can be voided")
            if total != orig.total:
                raise _Refusal("INVALID_PARAMETER", "a void is for the sale's whole amount")
            if orig.open_children:
                raise _Refusal("ORIG_ORDER_INVALID", "the sale has a void or refund in progress")
            return orig
        if orig.voided or orig.refund_hold + total > orig.total:
            raise _Refusal("REFUND_AMOUNT_EXCEEDED")
        return orig

    def _close(self, body: dict[str, Any]) -> dict[str, Any]:
        order = self.orders.get(str(body["merchant_order_no"]))
        if order is None:
            raise _Refusal("ORDER_NOT_EXIST")
        if order.status is TransStatus.CREATED:
            self._stop_terminal(order)
            self._closed(order)
            if order.behaviour is Behaviour.LATE_APPROVAL:
                self._start_terminal(order.merchant_order_no, self._late_approval(order))
        elif order.status is not self.closed_status or order.error_code:
            raise _Refusal("ORDER_STATUS_ERROR", f"trans_status {int(order.status)}")
        return {"message_id": "M" + _digits(21), "trans_no": order.trans_no}

    def _query(self, body: dict[str, Any]) -> dict[str, Any]:
        trans_no = _text(body.get("trans_no"))
        order_no = _text(body.get("merchant_order_no"))
        if trans_no is None and order_no is None:
            raise _Refusal("INVALID_PARAMETER", "merchant_order_no or trans_no")
        order = (self._by_trans_no.get(trans_no) if trans_no is not None
                 else self.orders.get(order_no or ""))
        if order is None:
            raise _Refusal("ORDER_NOT_EXIST")
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
            self._set_final(order, TransStatus.SUCCESS)
        await self._notify_result(order)

    async def _late_approval(self, order: SimOrder) -> None:
        """Behaviour 30: the close was answered, but the card went through anyway."""
        await asyncio.sleep(self.approve_delay_s)
        order.status = TransStatus.IN_PROGRESS  # leave CANCELLED so _set_final applies
        self._set_final(order, TransStatus.SUCCESS)
        await self._notify_result(order)

    async def _wait_until(self, order: SimOrder, after_s: float) -> bool:
        """Sleep until ``after_s`` past creation; False (order closed) if it expires first."""
        if after_s >= order.expires_s:
            await self._expire(order)
            return False
        await _sleep_until(order.started + after_s)
        return True

    async def _expire(self, order: SimOrder) -> None:
        await _sleep_until(order.started + order.expires_s)
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
            if order.trans_type is TransType.REFUND and status is not TransStatus.SUCCESS:
                orig.refund_hold -= order.total
        if status is TransStatus.SUCCESS:
            order.auth_no = _digits(6)
            batch = self._batch(order.terminal_sn)
            batch.add(order)
            order.batch_no = batch.no
            if order.trans_type is TransType.VOID and orig is not None:
                orig.voided = True

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
        data: dict[str, Any] = {
            "trans_no": order.trans_no,
            "merchant_order_no": order.merchant_order_no,
            "terminal_sn": order.terminal_sn,
            "trans_type": int(order.trans_type),
            "trans_status": int(status),
            "price_currency": order.currency,
            "order_amount": format_amount(order.amount, order.currency),
            "terminal_online_status": "online" if order.online else "offline",
        }
        if order.tip:
            data["tip_amount"] = format_amount(order.tip, order.currency)
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
            data["trans_end_time"] = time.strftime("%Y-%m-%d %H:%M:%S",
                                                   time.gmtime(order.end_time))
        return data

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
        self.orders_forgotten += len(victims)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task


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
            "expires_s": pacing.expires_s, "poll_interval_s": pacing.poll_interval_s}


SANDBOX: Final = SandboxSpec(
    provider="codepay", key_names=("merchant", "codepay_gateway"), start=_start,
    section=_section, terminals=TERMINALS,
    title="simulated card terminals decide by the amount's cents",
    behaviours=tuple((f".{cents:02d}", what) for cents, what in sorted(BEHAVIOURS.items())))
