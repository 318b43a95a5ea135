"""An embedded simulator of the crypto payment platform (aiohttp) for the sandbox and tests.

It speaks the envelope of the crypto payment API (see
:mod:`posbridge.providers.opay.envelope`) with its own key pair and the merchant's public key,
and is deliberately at least as strict as the merchant side has to be:

- every request must be ``{app_id, data, sign, time}`` with the known ``app_id``, a 13-digit
  ``time``, ``data`` that decrypts with the platform's key and a ``sign`` that verifies with
  the merchant's; every parameter inside must be a string (the documents type them String);
- createThirdOrder needs ``appOrderId``, ``orderAmount`` (a positive decimal with at most the
  coin's decimals), an upper-case configured ``payCoinSymbol``, absolute http(s)
  ``returnPage`` / ``notifyPage``, and ``openId`` or ``userId``; ``goods``, when sent, must be
  the JSON text of a list of ``{name, desc}``; an ``appOrderId`` is taken once: a second
  create with it is refused, whatever its parameters;
- orderDetail and cancelOrder address an order by ``orderNum`` only; cancelOrder ends an
  unpaid order (again: no change) and refuses a paid or failed one;
- merchantBillingDay lists a day's payment orders, days counted in the platform's own zone
  (:attr:`OPaySimulator.zone_offset_h`, UTC+8 by default), in pages of ``pageSize``; lines
  carry the fields of the platform's API reference, and ``orderNum`` only when
  :attr:`OPaySimulator.statement_order_num` is set.

The documents list no error codes: the simulator's refusals are ``{code, msg}`` with codes of
its own (:class:`Code`), unsigned and without ``data``, as the reference shows them.

What happens to an order after its create is chosen by the amount's hundredths, as the CodePay
simulator does by cents (:data:`BEHAVIOURS`; ``12.05`` USDT declines, ``0.0005`` BTC waits).

The customer side: :meth:`OPaySimulator.pay` (``scan_and_pay`` for the sandbox display, or
``POST /sandbox/pay/{orderNum}``, or the button of the simulated pay page at
``GET /platform/pay.html``) marks an order paid and sends the signed callback to its
``notifyPage`` every ``notify_interval_s`` until it is answered ``success`` (at most
``notify_attempts`` times); :meth:`OPaySimulator.fail` does the same with a failed payment.

Memory is bounded for long runs: :attr:`requests` and :attr:`callbacks` keep their newest
``keep`` entries, and once more than ``keep`` orders are known the oldest settled ones are
forgotten (never one still pending payment).

For tests it records every opened request (:attr:`requests`, :meth:`count`) and injects
failures: :meth:`fail_next` (a refusal without processing), :meth:`drop_next_response`
(processed, never answered), :meth:`sign_with_wrong_key_next`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import enum
import html
import itertools
import json
import re
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final
from urllib.parse import urlsplit

import structlog
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

from posbridge.providers.opay import messages as m
from posbridge.providers.opay.envelope import (
    DEFAULT_SUITE,
    EnvelopeError,
    Suite,
    load_json,
    open_text,
    seal,
)
from posbridge.sandbox.base import BridgePacing, SandboxKeys, SandboxSpec, SimPacing
from posbridge.sandbox.httpsim import HttpSimulator, SimulatorError
from posbridge.sandbox.recent import Recent

__all__ = ["BEHAVIOURS", "SANDBOX", "Behaviour", "Code", "OPaySimulator", "SimOrder",
           "SimulatorError", "behaviour_for"]

log = structlog.get_logger(__name__)

APP_ID: Final = "sandbox-opay-app"
COINS: Final[Mapping[str, int]] = {"USDT": 6, "BTC": 8}
_TIME_RE: Final = re.compile(r"[0-9]{13}")
_DAY_RE: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_AMOUNT_RE: Final = re.compile(r"(0|[1-9][0-9]{0,17})(\.[0-9]{1,18})?")
_DIGITS_RE: Final = re.compile(r"[0-9]{1,9}")
_MERCHANT_USER_ID: Final = 20_000_001


class Code(enum.StrEnum):
    """The simulator's refusal codes (the platform documents none)."""

    BAD_REQUEST = "10001"  # not an envelope, unknown app_id, bad time
    SIGNATURE = "10002"  # data does not decrypt, or sign does not verify
    PARAMETER = "10003"  # a missing or malformed parameter
    ORDER_EXISTS = "70002"  # appOrderId already used
    NO_ORDER = "70003"  # no such orderNum
    NOT_PENDING = "70004"  # the order is paid or failed: it cannot be cancelled
    INJECTED = "99999"  # fail_next's default


class Behaviour(enum.Enum):
    """What the simulated platform does with an order (by the amount's hundredths)."""

    WAIT_FOR_SCAN = 0
    PAYMENT_FAILED = 5
    CLOSED_BY_PLATFORM = 10
    RESPONSE_LOST = 20
    DUPLICATE_CALLBACKS = 25
    CALLBACK_ONLY = 35
    POLL_ONLY = 40
    PAID_AT_ONCE = 45


#: hundredths of the amount -> what the simulated platform does (the README's table).
BEHAVIOURS: Final[Mapping[int, str]] = {
    0: "waits for the customer: the display's \"simulate scan & pay\" or the pay page",
    5: "payment failed (orderStatus 2) after the approve delay",
    10: "closed by the platform (orderStatus 0) after the approve delay",
    20: "create processed, its answer lost (found again by callback or statement)",
    25: "paid, then duplicate and out-of-order callbacks",
    35: "paid; the result by callback only (orderDetail keeps saying pending)",
    40: "paid; the result by polling only (no callback)",
    45: "paid after the approve delay without a scan",
}


def behaviour_for(amount: str) -> Behaviour:
    """The behaviour of an order of ``amount`` (unknown hundredths wait for the scan)."""
    hundredths = int(Decimal(amount) * 100) % 100
    try:
        return Behaviour(hundredths)
    except ValueError:
        return Behaviour.WAIT_FOR_SCAN


class _Refusal(Exception):
    def __init__(self, code: Code | str, message: str) -> None:
        super().__init__(message)
        self.code = str(code)
        self.message = message


@dataclass
class SimOrder:
    """One platform order as the simulator keeps it."""

    app_order_id: str
    order_num: str
    amount: str
    coin: str
    notify_page: str
    return_page: str
    created_ms: int
    open_id: str | None = None
    user_id: str | None = None
    token: str | None = None
    status: str = "1"  # 1 pending payment, 2 failed, 3 paid, 0 closed
    paid_ms: int | None = None
    behaviour: Behaviour = Behaviour.WAIT_FOR_SCAN


class OPaySimulator(HttpSimulator):
    """The simulated platform. ``await start()``, use :attr:`url`, ``await stop()``."""

    label = "crypto platform simulator"

    def __init__(
        self,
        *,
        app_id: str = APP_ID,
        platform_key: RSAPrivateKey,
        merchant_public_key: RSAPublicKey,
        coins: Mapping[str, int] = COINS,
        suite: Suite = DEFAULT_SUITE,
        clock: Callable[[], float] = time.time,
        notify_interval_s: float = 1.0,
        notify_attempts: int = 20,
        approve_delay_s: float = 1.0,
        keep: int = 10_000,
    ) -> None:
        super().__init__()
        if keep < 1:
            raise ValueError("keep must be at least 1")
        self.approve_delay_s = approve_delay_s
        self.app_id = app_id
        self._platform_key = platform_key
        self._merchant_public_key = merchant_public_key
        self.coins = dict(coins)
        self._suite = suite
        self._clock = clock
        self.notify_interval_s = notify_interval_s
        self.notify_attempts = notify_attempts
        self.zone_offset_h = 8
        """The platform's time zone (hours east of UTC) for the statement's days."""
        self.statement_order_num = False
        """Whether statement lines carry ``orderNum`` (the API reference lists none)."""
        self.keep = keep
        self.orders: dict[str, SimOrder] = {}  # by orderNum, oldest first
        self.requests: Recent[tuple[str, dict[str, Any]]] = Recent(keep)
        # (url, params, answer)
        self.callbacks: Recent[tuple[str, dict[str, Any], str]] = Recent(keep)
        self.orders_created = 0
        self.orders_forgotten = 0
        self._by_app_order: dict[str, SimOrder] = {}
        self._numbers = itertools.count(1_000_000_001)

    def routes(self, app: web.Application) -> None:
        """The API's paths, the pay page and the sandbox's pay button."""
        for method in m.Method:
            app.router.add_post(method.path, self._handler(method))
        app.router.add_get("/platform/pay.html", self._pay_page)
        app.router.add_post("/sandbox/pay/{ref}", self._handle_pay)

    # -- recording ----------------------------------------------------------------------------

    def fail_next(self, method: str, code: str = Code.INJECTED) -> None:
        """The next ``method`` request is refused with ``code`` without being processed."""
        super().fail_next(method, code)

    def count(self, method: str, app_order_id: str | None = None) -> int:
        """How many ``method`` requests were opened (for ``app_order_id`` if given)."""
        return sum(1 for name, params in self.requests
                   if name == method and (app_order_id is None
                                          or params.get("appOrderId") == app_order_id))

    def stats(self, order_no: str) -> dict[str, object]:
        """Requests seen for appOrderId ``order_no``: creates, and every method by name."""
        methods = [name for name, params in self.requests
                   if params.get("appOrderId") == order_no
                   or (order_no in self._by_app_order
                       and params.get("orderNum") == self._by_app_order[order_no].order_num)]
        return {"creates": methods.count("createThirdOrder"), "methods": methods}

    def totals(self) -> dict[str, int]:
        """Counts since the start: requests received, orders created and forgotten, orders
        kept now, callbacks POSTed (each attempt)."""
        return {"requests": self.requests.appended, "orders": self.orders_created,
                "forgotten": self.orders_forgotten, "kept": len(self.orders),
                "callbacks": self.callbacks.appended}

    def _forget_old(self) -> None:
        """Forget the oldest settled orders (paid, failed, closed) while more than
        :attr:`keep` are known; a pending one stays (its customer may still pay)."""
        excess = len(self.orders) - self.keep
        for order_num in list(self.orders):
            if excess <= 0:
                return
            order = self.orders[order_num]
            if order.status == "1":
                continue
            del self.orders[order_num]
            self._by_app_order.pop(order.app_order_id, None)
            self.orders_forgotten += 1
            excess -= 1

    def recent_orders(self) -> list[dict[str, Any]]:
        """The orders, oldest first: ``order_no`` (appOrderId), ``status`` (orderStatus),
        ``amount`` (as sent), ``currency`` (the coin) and ``creates``."""
        return [{"order_no": o.app_order_id, "status": o.status, "amount": o.amount,
                 "currency": o.coin, "creates": self.count("createThirdOrder", o.app_order_id)}
                for o in self.orders.values()]

    def order(self, ref: str) -> SimOrder:
        """The order with ``orderNum`` or ``appOrderId`` ``ref``."""
        found = self.orders.get(ref) or self._by_app_order.get(ref)
        if found is None:
            raise SimulatorError(f"no such order {ref!r}")
        return found

    # -- the customer ----------------------------------------------------------------------

    def pay(self, ref: str) -> SimOrder:
        """The customer pays ``ref`` (orderNum or appOrderId); the callback follows."""
        return self._settle(ref, "3")

    def fail(self, ref: str) -> SimOrder:
        """The customer's payment fails (orderStatus 2); the callback follows."""
        return self._settle(ref, "2")

    async def scan_and_pay(self, provider_ref: str) -> None:
        """The sandbox display's "simulate scan & pay" button."""
        self.pay(provider_ref)

    def _settle(self, ref: str, status: str) -> SimOrder:
        order = self.order(ref)
        if order.status != "1":
            raise SimulatorError(f"order {order.app_order_id} is not pending payment")
        order.status = status
        if status == "3":
            order.paid_ms = self._now_ms()
        if order.behaviour is not Behaviour.POLL_ONLY:
            self._spawn(self._call_back(order))
        if order.behaviour is Behaviour.DUPLICATE_CALLBACKS:
            self._spawn(self._call_back(order))
            self._spawn(self._call_back(order, status="1"))  # an older "pending", late
        return order

    async def _handle_pay(self, request: web.Request) -> web.Response:
        try:
            order = self.pay(request.match_info["ref"])
        except SimulatorError as exc:
            return web.json_response({"ok": False, "error": str(exc)}, status=409)
        return web.json_response({"ok": True, "appOrderId": order.app_order_id})

    async def _pay_page(self, request: web.Request) -> web.Response:
        """A stand-in for the platform's pay page: the order and a button that pays it."""
        query = request.query
        order = self.orders.get(query.get("orderNum", ""))
        if order is None or query.get("appKey") != self.app_id:
            return web.Response(status=404, text="no such order for this app")
        payer_ok = (query.get("openId") == order.open_id if order.open_id
                    else query.get("userId") == order.user_id)
        if not payer_ok:
            return web.Response(status=403, text="the payer must be the order's creator")
        status = {"1": "awaiting payment", "2": "payment failed", "3": "paid",
                  "0": "closed"}[order.status]
        button = ""
        if order.status == "1":
            button = (f'<form method="post" action="/sandbox/pay/{html.escape(order.order_num)}">'
                      '<button type="submit">Pay</button></form>')
        body = (f"<!doctype html><title>Pay {html.escape(order.app_order_id)}</title>"
                f"<h1>{html.escape(order.amount)} {html.escape(order.coin)}</h1>"
                f"<p>Order {html.escape(order.app_order_id)}: {status}</p>{button}")
        return web.Response(text=body, content_type="text/html")

    # -- the API ---------------------------------------------------------------------------

    def _handler(self, method: m.Method) -> Callable[[web.Request], Coroutine[Any, Any,
                                                                                web.Response]]:
        async def handle(request: web.Request) -> web.Response:
            return await self._handle(method, request)
        return handle

    async def _handle(self, method: m.Method, request: web.Request) -> web.Response:
        name = method.value
        try:
            params = self._open_request(await request.read())
            self.requests.append((name, params))
            injected = self._take_failure(name)
            if injected is not None:
                raise _Refusal(injected, "injected failure")
            data = self._process(method, params)
        except _Refusal as exc:
            return web.json_response({"code": exc.code, "msg": exc.message})
        await self._hold_if_dropped(name)  # processed; the answer may be "lost"
        lost = (method is m.Method.CREATE and data is not None
                and self.orders[str(data["orderNum"])].behaviour is Behaviour.RESPONSE_LOST)
        if lost and request.transport is not None:
            # Processed, but the answer is lost: the connection drops without a response.
            request.transport.close()
        if data is None:
            return web.json_response({"code": "0", "msg": "success"})
        return web.json_response({"code": "0", "msg": "success", **self._sealed(name, data)})

    def _open_request(self, raw: bytes) -> dict[str, Any]:
        try:
            body = json.loads(raw)
        except (UnicodeDecodeError, ValueError) as exc:
            raise _Refusal(Code.BAD_REQUEST, "body is not JSON") from exc
        if not isinstance(body, dict) or not all(
                isinstance(body.get(k), str) and body.get(k)
                for k in ("app_id", "data", "sign", "time")):
            raise _Refusal(Code.BAD_REQUEST, "body must be {app_id, data, sign, time}")
        if body["app_id"] != self.app_id:
            raise _Refusal(Code.BAD_REQUEST, "unknown app_id")
        if not _TIME_RE.fullmatch(body["time"]):
            raise _Refusal(Code.BAD_REQUEST, "time must be milliseconds since the epoch")
        try:
            text = open_text(body["data"], body["sign"], receiver_key=self._platform_key,
                             sender_key=self._merchant_public_key, suite=self._suite)
        except EnvelopeError as exc:
            raise _Refusal(Code.SIGNATURE, f"data does not decrypt: {exc}") from exc
        if text is None:
            raise _Refusal(Code.SIGNATURE, "sign does not verify")
        try:
            params = load_json(text)
        except ValueError as exc:
            raise _Refusal(Code.PARAMETER, "data is not JSON") from exc
        if not isinstance(params, dict):
            raise _Refusal(Code.PARAMETER, "data is not a JSON object")
        for key, value in params.items():
            if not isinstance(value, str):
                raise _Refusal(Code.PARAMETER, f"{key} must be a string")
        return params

    def _process(self, method: m.Method, params: dict[str, str]) -> dict[str, Any] | None:
        handler = {
            m.Method.CREATE: self._create,
            m.Method.DETAIL: self._detail,
            m.Method.CANCEL: self._cancel,
            m.Method.STATEMENT: self._statement,
        }[method]
        return handler(params)

    def _create(self, p: dict[str, str]) -> dict[str, Any]:
        for key in ("appOrderId", "orderAmount", "payCoinSymbol", "returnPage", "notifyPage"):
            if not p.get(key):
                raise _Refusal(Code.PARAMETER, f"{key} is required")
        if not p.get("openId") and not p.get("userId"):
            raise _Refusal(Code.PARAMETER, "openId or userId is required")
        coin = p["payCoinSymbol"]
        if coin not in self.coins:
            raise _Refusal(Code.PARAMETER, "payCoinSymbol is not an accepted coin "
                                           "(capitalized, e.g. BTC)")
        match = _AMOUNT_RE.fullmatch(p["orderAmount"])
        if (match is None or Decimal(p["orderAmount"]) <= 0
                or len((match.group(2) or ".")[1:]) > self.coins[coin]):
            raise _Refusal(Code.PARAMETER, f"orderAmount is not a positive {coin} amount")
        for key in ("returnPage", "notifyPage"):
            url = urlsplit(p[key])
            if url.scheme not in ("http", "https") or not url.netloc:
                raise _Refusal(Code.PARAMETER, f"{key} must be an absolute http(s) URL")
        if "goods" in p and not _goods_ok(p["goods"]):
            raise _Refusal(Code.PARAMETER, "goods must be legal json: [{name, desc}]")
        if "orderSceneType" in p and not p["orderSceneType"].isdigit():
            raise _Refusal(Code.PARAMETER, "orderSceneType is a numerical enumeration")
        if p["appOrderId"] in self._by_app_order:
            raise _Refusal(Code.ORDER_EXISTS, "Order already exists")
        order = SimOrder(
            app_order_id=p["appOrderId"], order_num=str(next(self._numbers)),
            amount=p["orderAmount"], coin=coin, notify_page=p["notifyPage"],
            return_page=p["returnPage"], created_ms=self._now_ms(),
            open_id=p.get("openId") or None,
            user_id=None if p.get("openId") else p.get("userId"), token=p.get("token"))
        order.behaviour = behaviour_for(order.amount)
        self.orders[order.order_num] = order
        self._by_app_order[order.app_order_id] = order
        self.orders_created += 1
        self._forget_old()
        if order.behaviour is not Behaviour.WAIT_FOR_SCAN:
            self._spawn(self._course(order))
        return {"orderNum": order.order_num}

    async def _course(self, order: SimOrder) -> None:
        """What the order's behaviour does by itself, after the approve delay."""
        await asyncio.sleep(self.approve_delay_s)
        if order.status != "1":
            return  # cancelled or paid meanwhile
        if order.behaviour is Behaviour.PAYMENT_FAILED:
            self._settle(order.order_num, "2")
        elif order.behaviour is Behaviour.CLOSED_BY_PLATFORM:
            self._settle(order.order_num, "0")
        elif order.behaviour is not Behaviour.RESPONSE_LOST:
            self._settle(order.order_num, "3")

    def _find(self, p: dict[str, str]) -> SimOrder:
        if not p.get("orderNum"):
            raise _Refusal(Code.PARAMETER, "orderNum is required")
        order = self.orders.get(p["orderNum"])
        if order is None:
            raise _Refusal(Code.NO_ORDER, "no such order")
        return order

    def _detail(self, p: dict[str, str]) -> dict[str, Any]:
        if p.get("appKey") not in (None, self.app_id):
            raise _Refusal(Code.PARAMETER, "appKey is not this merchant's")
        order = self._find(p)
        shown = "1" if order.behaviour is Behaviour.CALLBACK_ONLY else order.status
        data: dict[str, Any] = {
            "orderNum": order.order_num, "appOrderId": order.app_order_id,
            "orderStatus": shown, "orderAmount": order.amount,
            "payCoinSymbol": order.coin, "appKey": self.app_id,
            "ctime": str(order.created_ms)}
        if order.user_id:
            data["userId"] = order.user_id
        return data

    def _cancel(self, p: dict[str, str]) -> None:
        order = self._find(p)
        if order.status in ("2", "3"):
            raise _Refusal(Code.NOT_PENDING, "the order is not pending payment")
        order.status = "0"

    def _statement(self, p: dict[str, str]) -> dict[str, Any]:
        if p.get("orderType") not in (None, "1", "11"):
            raise _Refusal(Code.PARAMETER, "orderType is 1 or 11")
        day = p.get("day") or self._day(self._now_ms())
        if not _DAY_RE.fullmatch(day):
            raise _Refusal(Code.PARAMETER, "day must be yyyy-MM-dd")
        page_text, size_text = p.get("pageNum", "1"), p.get("pageSize", "2000")
        if not (_DIGITS_RE.fullmatch(page_text) and _DIGITS_RE.fullmatch(size_text)):
            raise _Refusal(Code.PARAMETER, "pageNum and pageSize are numbers")
        page, size = int(page_text), int(size_text)
        if page < 1 or not 1 <= size <= 2000:
            raise _Refusal(Code.PARAMETER, "pageNum from 1, pageSize 1 to 2000")
        lines = [self._line(o) for o in self.orders.values()
                 if self._day(o.created_ms) == day and p.get("orderType") != "11"]
        return {"count": len(lines), "list": lines[(page - 1) * size:page * size]}

    def _line(self, order: SimOrder) -> dict[str, Any]:
        line: dict[str, Any] = {
            "merchantUserId": _MERCHANT_USER_ID, "appOrderId": order.app_order_id,
            "payCoinSymbol": order.coin, "orderAmount": order.amount, "orderType": 1,
            "createTime": str(order.created_ms)}
        if order.open_id:
            line["openId"] = order.open_id
        if order.user_id:
            line["userId"] = order.user_id
        if order.paid_ms is not None:
            line["payTime"] = str(order.paid_ms)
        if self.statement_order_num:
            line["orderNum"] = order.order_num
        return line

    # -- answers and callbacks ---------------------------------------------------------------

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def _day(self, epoch_ms: int) -> str:
        zone = dt.timezone(dt.timedelta(hours=self.zone_offset_h))
        return dt.datetime.fromtimestamp(epoch_ms / 1000, zone).strftime("%Y-%m-%d")

    def _signing_key(self, method: str) -> RSAPrivateKey:
        return self._stranger_key() if self._wrong_key_due(method) else self._platform_key

    def _sealed(self, method: str, data: Mapping[str, Any]) -> dict[str, str]:
        """``data`` and ``sign`` for the merchant (the envelope's app_id and time dropped:
        an answer is ``{code, msg, data, sign}``)."""
        body = seal(data, app_id=self.app_id, now_ms=self._now_ms(),
                    receiver_key=self._merchant_public_key,
                    sender_key=self._signing_key(method), suite=self._suite)
        return {"data": body["data"], "sign": body["sign"]}

    async def _call_back(self, order: SimOrder, status: str | None = None) -> None:
        """POST the signed callback (of ``status``, default the order's) until answered
        ``success``, every ``notify_interval_s``, at most ``notify_attempts`` times."""
        params = {"outOrderId": order.app_order_id, "orderNum": order.order_num,
                  "orderStatus": status or order.status, "payAmount": order.amount,
                  "returnUrl": order.return_page}
        for _attempt in range(self.notify_attempts):
            body = seal(params, app_id=self.app_id, now_ms=self._now_ms(),
                        receiver_key=self._merchant_public_key,
                        sender_key=self._signing_key("callback"), suite=self._suite)
            answer = await self._post_json(order.notify_page, body)
            self.callbacks.append((order.notify_page, params, answer))
            if _is_success(answer):
                return
            await asyncio.sleep(self.notify_interval_s)
        log.info("opay_sim_callback_gave_up", app_order_id=order.app_order_id)


def _is_success(answer: str) -> bool:
    """``success``, or ``{"data":"success"}`` (either answer form of the bridge)."""
    if answer.strip() == "success":
        return True
    try:
        parsed = json.loads(answer)
    except ValueError:
        return False
    return isinstance(parsed, dict) and parsed.get("data") == "success"


def _goods_ok(text: str) -> bool:
    try:
        goods = json.loads(text)
    except ValueError:
        return False
    return isinstance(goods, list) and all(
        isinstance(g, dict) and isinstance(g.get("name"), str) and isinstance(g.get("desc"), str)
        for g in goods)


# -- the sandbox ---------------------------------------------------------------------------------


async def _start(keys: SandboxKeys, pacing: SimPacing) -> OPaySimulator:
    sim = OPaySimulator(platform_key=keys.private_key("opay_platform"),
                        merchant_public_key=keys.public_key("opay_merchant"),
                        notify_interval_s=pacing.notify_interval_s,
                        approve_delay_s=pacing.approve_delay_s)
    await sim.start()
    return sim


def _section(sim: OPaySimulator, keys: SandboxKeys, pacing: BridgePacing) -> dict[str, Any]:
    return {"base_url": sim.url, "pay_page_url": sim.url + "/platform/pay.html",
            "app_id": sim.app_id, "private_key_file": str(keys.private("opay_merchant")),
            "platform_public_key_file": str(keys.public("opay_platform")),
            "coins": dict(sim.coins), "expires_s": max(30, pacing.qr_timeout_s),
            "poll_interval_s": pacing.poll_interval_s}


SANDBOX: Final = SandboxSpec(
    provider="opay", key_names=("opay_merchant", "opay_platform"), start=_start,
    section=_section,
    title="the simulated crypto platform decides by the amount's hundredths",
    behaviours=tuple((f".{h:02d}", what) for h, what in sorted(BEHAVIOURS.items())))
