"""An embedded UCanPay simulator (aiohttp) for the sandbox and the tests.

It behaves like the API reference (seed 001) says the real one does, and is deliberately at
least as strict as the merchant side has to be:

- the merchant's signature and the required fields are checked; a field that is sent must have
  a value (JSON ``null`` or ``""`` is a parameter error), text fields must be strings within the
  seed's lengths (``deviceNo`` 32, ``notifyUrl`` 64, ``refundDesc`` 64, ``nonceStr`` 32, ...),
  and a ``notifyUrl`` must be an absolute http(s) URL without parameters;
- every request must carry a fresh ``nonceStr`` (seed 000: "The nonceStr and sign parameters
  are unique for each request"): a replayed one is refused, so a retry must be re-signed;
- the ``outTradeNo`` / ``subject`` / ``body`` rules and order-number uniqueness are enforced
  (a re-entry with the same business parameters returns the same order, as the seed's
  ``INVALID_REQUEST`` note implies; nonce and signature are per request, not compared);
- every reply's ``data`` is signed with the simulator's own key; orders, refunds (at most the
  paid total, at most 10 per order, each ``outRefundNo`` once) and reverse's window (15 s ..
  7 days, on the simulator's clock) are kept. Unlike the seed's tables it accepts orderquery /
  closeorder / reverse without ``ucpOrderNo`` (found by ``outTradeNo``), because after a lost
  unifiedorder answer the merchant knows only its own number.

Two switches show the forms the seed allows but its samples do not: :attr:`data_as_string`
sends ``data`` (replies and notifications) as a JSON-encoded string ("JSON字符串格式"), and
:attr:`error_style` chooses where an error's name travels (``"errcode"``: ``data.errCode`` and
``msg``; ``"msg"``: only inside ``msg`` text; ``"opaque"``: nowhere, ``msg`` is a human reason).

The customer side: :meth:`UCanPaySimulator.scan_and_pay` (or ``POST /sandbox/pay/{ucpOrderNo}``)
marks an order paid and POSTs a signed notification to its ``notifyUrl`` every
``notify_interval_s`` until it is answered ``SUCCESS`` (at most ``notify_attempts`` times).

For tests it records every request (:attr:`requests`, :meth:`count`) and can inject failures:
:meth:`fail_next`, :meth:`drop_next_response` (processes but never answers),
:meth:`sign_with_wrong_key_next`.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, Literal
from urllib.parse import urlsplit

import structlog
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

from posbridge.providers.ucanpay import messages as m
from posbridge.providers.ucanpay.signing import SignScheme, sign_params, sign_type, verify_params
from posbridge.sandbox.base import BridgePacing, SandboxKeys, SandboxSpec, SimPacing
from posbridge.sandbox.httpsim import HttpSimulator, SimulatorError
from posbridge.sandbox.recent import Recent

__all__ = ["SimOrder", "SimRefund", "SimulatorError", "UCanPaySimulator"]

log = structlog.get_logger(__name__)

MAX_REFUNDS: Final = 10
_REQUIRED: Final[dict[m.Method, tuple[str, ...]]] = {
    m.Method.UNIFIEDORDER: ("merchantId", "outTradeNo", "subject", "body", "totalAmt", "currency",
                            "sceneType", "notifyUrl", "nonceStr", "signType", "sign"),
    m.Method.ORDERQUERY: ("merchantId", "outTradeNo", "nonceStr", "signType", "sign"),
    m.Method.CLOSEORDER: ("merchantId", "outTradeNo", "nonceStr", "signType", "sign"),
    m.Method.REVERSE: ("merchantId", "outTradeNo", "nonceStr", "signType", "sign"),
    m.Method.REFUND: ("merchantId", "outTradeNo", "outRefundNo", "totalAmt", "refundAmt",
                      "refundDesc", "notifyUrl", "nonceStr", "signType", "sign"),
    m.Method.REFUNDQUERY: ("merchantId", "outRefundNo", "nonceStr", "signType", "sign"),
}
# The seed's lengths (characters) for the text fields a merchant sends.
_MAX_LEN: Final[dict[str, int]] = {
    "merchantId": 32, "nonceStr": 32, "signType": 64, "subject": m.SUBJECT_MAX,
    "body": m.BODY_MAX, "deviceNo": 32, "sceneType": 16, "outTradeNo": 32, "currency": 16,
    "notifyUrl": 64, "ucpOrderNo": 32, "outRefundNo": 32, "ucpRefundNo": 32, "refundDesc": 64,
}
_INTEGERS: Final = frozenset({"totalAmt", "refundAmt"})
_NONCE_MEMORY: Final = 100_000
_OPEN: Final = frozenset({"NOTPAY", "USERPAYING"})  # trade states the customer can still change
ErrorStyle = Literal["errcode", "msg", "opaque"]


def _param_error(method: m.Method) -> str:
    """The seed's name for a malformed parameter: ``PARAM_ERROR`` in the refund tables,
    ``INVALID_REQUEST`` ("参数错误") in unifiedorder's."""
    return "PARAM_ERROR" if method in (m.Method.REFUND, m.Method.REFUNDQUERY) else "INVALID_REQUEST"


class _Refusal(Exception):
    """An error reply: ``code`` is the seed's error code name."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class SimRefund:
    out_refund_no: str
    ucp_refund_no: str
    amount: int
    notify_url: str
    status: str = "PROCESSING"
    created_s: float = 0.0


@dataclass
class SimOrder:
    out_trade_no: str
    ucp_order_no: str
    amount: int
    currency: str
    subject: str
    body: str
    notify_url: str
    scene_type: str
    created_s: float
    status: str = "NOTPAY"
    paid_s: float | None = None
    refunds: dict[str, SimRefund] = field(default_factory=dict)

    @property
    def refunded(self) -> int:
        """Minor units refunded or being refunded (failed refunds do not count)."""
        return sum(r.amount for r in self.refunds.values() if r.status in ("SUCCESS", "PROCESSING"))


class UCanPaySimulator(HttpSimulator):
    """The simulated UCanPay gateway. ``await start()``, use :attr:`url`, ``await stop()``.

    Memory is bounded for long runs: :attr:`requests` and :attr:`notifications` keep their
    newest ``keep`` entries (:class:`~posbridge.sandbox.recent.Recent`), and once more than
    ``keep`` orders are known the oldest settled ones are forgotten (not those the customer
    can still pay or close, nor those with a refund in progress), with their refunds.
    :meth:`count`, :meth:`order` and :meth:`recent_orders` answer for recent orders;
    :meth:`totals` counts everything since the start.
    """

    label = "UCanPay simulator"

    def __init__(
        self,
        *,
        merchant_id: str,
        private_key: RSAPrivateKey,
        merchant_public_key: RSAPublicKey,
        scheme: SignScheme = SignScheme.DOUBLE_HASH,
        md5_key: str | None = None,
        clock: Callable[[], float] = time.time,
        notify_interval_s: float = 15.0,
        notify_attempts: int = 20,
        refund_delay_s: float = 0.2,
        keep: int = 10_000,
    ) -> None:
        super().__init__()
        if keep < 1:
            raise ValueError("keep must be at least 1")
        self.keep = keep
        self.merchant_id = merchant_id
        self._private_key = private_key
        self._merchant_public_key = merchant_public_key
        self._scheme = scheme
        self._md5_key = md5_key
        self._clock = clock
        self.notify_interval_s = notify_interval_s
        self.notify_attempts = notify_attempts
        self.refund_delay_s = refund_delay_s
        self.orders: dict[str, SimOrder] = {}  # oldest first
        self.requests: Recent[tuple[str, dict[str, Any]]] = Recent(keep)
        # (url, body, answer)
        self.notifications: Recent[tuple[str, dict[str, Any], str]] = Recent(keep)
        self.orders_created = 0
        self.orders_forgotten = 0
        self._by_ucp: dict[str, SimOrder] = {}
        self._refund_owner: dict[str, str] = {}  # outRefundNo -> outTradeNo
        self._numbers = itertools.count(377654578511872)
        self._nonces: OrderedDict[str, None] = OrderedDict()
        self.data_as_string = False
        """Send ``data`` as a JSON-encoded string (replies and notifications)."""
        self.error_style: ErrorStyle = "errcode"
        """Where an error reply's code name travels (see the module docstring)."""

    def routes(self, app: web.Application) -> None:
        """The API's methods and the sandbox's pay button."""
        app.router.add_post("/payment/{method}", self._handle)
        app.router.add_post("/sandbox/pay/{ref}", self._handle_pay)

    # -- failure injection and recording ---------------------------------------------------

    def fail_next(self, method: str, code: str = "SYSTEMERROR") -> None:
        """The next ``method`` request is answered with error ``code`` without being processed."""
        super().fail_next(method, code)

    def stats(self, order_no: str) -> dict[str, object]:
        """Requests seen for ``order_no`` (its outTradeNo), by method."""
        methods = [name for name, body in self.requests if body.get("outTradeNo") == order_no]
        return {"creates": methods.count("unifiedorder"), "methods": methods}

    def count(self, method: str, out_trade_no: str | None = None) -> int:
        """How many ``method`` requests arrived (for ``out_trade_no`` if given)."""
        return sum(1 for name, body in self.requests
                   if name == method and (out_trade_no is None
                                          or body.get("outTradeNo") == out_trade_no))

    def order(self, ref: str) -> SimOrder:
        """The order with ``ucpOrderNo`` or ``outTradeNo`` ``ref``."""
        found = self._by_ucp.get(ref) or self.orders.get(ref)
        if found is None:
            raise SimulatorError(f"no such order {ref!r}")
        return found

    def recent_orders(self) -> list[dict[str, Any]]:
        """The orders it remembers, oldest first: ``order_no`` (outTradeNo), ``status``
        (tradeStatus), ``amount`` (minor units), ``currency``, ``creates`` (unifiedorder
        requests for it in the recorded window) and ``refunds`` (outRefundNo -> refundStatus)."""
        creates: dict[str, int] = {}
        for name, body in self.requests:
            if name == m.Method.UNIFIEDORDER.value:
                key = str(body.get("outTradeNo"))
                creates[key] = creates.get(key, 0) + 1
        return [{"order_no": o.out_trade_no, "status": o.status, "amount": o.amount,
                 "currency": o.currency, "creates": creates.get(o.out_trade_no, 0),
                 "refunds": {no: r.status for no, r in o.refunds.items()}}
                for o in self.orders.values()]

    def totals(self) -> dict[str, int]:
        """Counts since the start: ``requests`` received, ``orders`` created, ``forgotten``
        orders, ``kept`` orders now, ``notifications`` POSTed (each attempt)."""
        return {"requests": self.requests.appended, "orders": self.orders_created,
                "forgotten": self.orders_forgotten, "kept": len(self.orders),
                "notifications": self.notifications.appended}

    def _forget_old(self) -> None:
        """Forget the oldest settled orders while more than :attr:`keep` are known."""
        excess = len(self.orders) - self.keep
        if excess <= 0:
            return
        # Oldest first; open orders are skipped (few: the QR codes on show right now).
        victims: list[SimOrder] = []
        for order in self.orders.values():
            if len(victims) == excess:
                break
            if order.status not in _OPEN and all(
                    r.status != "PROCESSING" for r in order.refunds.values()):
                victims.append(order)
        for order in victims:
            del self.orders[order.out_trade_no]
            self._by_ucp.pop(order.ucp_order_no, None)
            for refund_no in order.refunds:
                self._refund_owner.pop(refund_no, None)
        self.orders_forgotten += len(victims)

    # -- the customer ----------------------------------------------------------------------

    async def scan_and_pay(self, ref: str) -> SimOrder:
        """The customer pays ``ref`` (ucpOrderNo or outTradeNo) in the app; notifies the shop."""
        order = self.order(ref)
        if order.status not in ("NOTPAY", "USERPAYING"):
            raise SimulatorError(f"order {order.out_trade_no} is {order.status}, not payable")
        order.status, order.paid_s = "SUCCESS", self._clock()
        self._notify_later(order.notify_url, self._payment_note(order))
        return order

    def fail_payment(self, ref: str) -> SimOrder:
        """The customer's payment fails: PAYERROR (notified like a success)."""
        order = self.order(ref)
        if order.status not in ("NOTPAY", "USERPAYING"):
            raise SimulatorError(f"order {order.out_trade_no} is {order.status}, not payable")
        order.status = "PAYERROR"
        self._notify_later(order.notify_url, self._payment_note(order))
        return order

    def start_paying(self, ref: str) -> SimOrder:
        """The customer opened the order in the app: USERPAYING (no longer closable)."""
        order = self.order(ref)
        if order.status == "NOTPAY":
            order.status = "USERPAYING"
        return order

    async def _handle_pay(self, request: web.Request) -> web.Response:
        try:
            order = await self.scan_and_pay(request.match_info["ref"])
        except SimulatorError as exc:
            return web.json_response({"ok": False, "error": str(exc)}, status=409)
        return web.json_response({"ok": True, "outTradeNo": order.out_trade_no})

    # -- the API ---------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["method"]
        try:
            method = m.Method(name)
        except ValueError:
            return web.json_response({"code": 404, "msg": "NOT_FOUND"}, status=404)
        try:
            body = json.loads(await request.read())
        except (UnicodeDecodeError, ValueError):
            return self._error(name, "INVALID_REQUEST", "body is not JSON")
        if not isinstance(body, dict):
            return self._error(name, "POST_DATA_EMPTY", "body is not a JSON object")
        self.requests.append((name, body))
        nonce = body.get("nonceStr")
        if isinstance(nonce, str) and nonce:
            if nonce in self._nonces:
                return self._error(name, _param_error(method), "nonceStr was already used")
            self._nonces[nonce] = None
            if len(self._nonces) > _NONCE_MEMORY:
                self._nonces.popitem(last=False)
        injected = self._take_failure(name)
        if injected is not None:
            return self._error(name, injected, "injected failure")
        try:
            self._check(method, body)
            data = self._process(method, body)
        except _Refusal as exc:
            return self._error(name, exc.code, exc.message)
        await self._hold_if_dropped(name)  # processed; the answer may be "lost"
        return web.json_response({"code": 0, "msg": "SUCCESS",
                                  "data": self._wire(self._signed(name, data))})

    def _check(self, method: m.Method, body: dict[str, Any]) -> None:
        missing = [k for k in _REQUIRED[method] if body.get(k) in (None, "")]
        if missing:
            raise _Refusal("LACK_PARAMS", f"missing {', '.join(missing)}")
        for name, value in body.items():
            if value is None or value == "":
                raise _Refusal(_param_error(method), f"{name} is sent without a value")
            if name in _INTEGERS:
                continue
            if not isinstance(value, str):
                raise _Refusal(_param_error(method), f"{name} must be a string")
            limit = _MAX_LEN.get(name)
            if limit is not None and len(value) > limit:
                raise _Refusal(_param_error(method), f"{name} is longer than {limit} characters")
        if "notifyUrl" in body:
            url = urlsplit(body["notifyUrl"])
            if url.scheme not in ("http", "https") or not url.netloc or url.query or url.fragment:
                raise _Refusal(_param_error(method),
                               "notifyUrl must be an absolute URL without parameters")
        if body["merchantId"] != self.merchant_id:
            raise _Refusal("NOAUTH", "unknown merchant")
        if body["signType"] == "MD5":
            ok = self._md5_key is not None and verify_params(body, self._md5_key, SignScheme.MD5)
        elif body["signType"] == "RSA" and self._scheme is not SignScheme.MD5:
            ok = verify_params(body, self._merchant_public_key, self._scheme)
        else:
            ok = False
        if not ok:
            raise _Refusal("SIGNERROR", "signature does not verify")
        for name in ("outTradeNo", "outRefundNo"):
            if name in body and m.OUT_NO_RE.fullmatch(str(body[name])) is None:
                raise _Refusal("INVALID_REQUEST", f"{name} must be 1-32 letters and digits")
        for name in ("totalAmt", "refundAmt"):
            value = body.get(name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool)
                                      or value <= 0):
                raise _Refusal("INVALID_REQUEST", f"{name} must be a positive integer")

    def _process(self, method: m.Method, body: dict[str, Any]) -> dict[str, Any]:
        handler = {
            m.Method.UNIFIEDORDER: self._unifiedorder,
            m.Method.ORDERQUERY: self._orderquery,
            m.Method.CLOSEORDER: self._closeorder,
            m.Method.REVERSE: self._reverse,
            m.Method.REFUND: self._refund,
            m.Method.REFUNDQUERY: self._refundquery,
        }[method]
        return handler(body)

    def _unifiedorder(self, body: dict[str, Any]) -> dict[str, Any]:
        for name, limit in (("subject", m.SUBJECT_MAX), ("body", m.BODY_MAX)):
            text = str(body[name])
            if len(text) > limit or m.FORBIDDEN_TEXT.intersection(text):
                raise _Refusal("INVALID_REQUEST", f"{name} too long or has / = &")
        if body["sceneType"] not in ("JSAPI", "NATIVE"):
            raise _Refusal("INVALID_REQUEST", "unknown sceneType")
        out_no = body["outTradeNo"]
        old = self.orders.get(out_no)
        if old is not None:
            same = (old.amount, old.currency, old.subject, old.body) == (
                body["totalAmt"], body["currency"], body["subject"], body["body"])
            if not same or old.status != "NOTPAY":
                raise _Refusal("OUT_TRADE_NO_USED", "outTradeNo already used")
            return self._order_data(old, with_status=False)
        order = SimOrder(
            out_trade_no=out_no, ucp_order_no=str(next(self._numbers)), amount=body["totalAmt"],
            currency=body["currency"], subject=body["subject"], body=body["body"],
            notify_url=body["notifyUrl"], scene_type=body["sceneType"], created_s=self._clock())
        self.orders[out_no] = order
        self.orders_created += 1
        self._by_ucp[order.ucp_order_no] = order
        self._forget_old()
        return self._order_data(order, with_status=False)

    def _find(self, body: dict[str, Any]) -> SimOrder:
        order = self.orders.get(body["outTradeNo"])
        ucp = body.get("ucpOrderNo")
        if order is None or (ucp not in (None, "") and ucp != order.ucp_order_no):
            raise _Refusal("ORDERNOTEXIST", "no such order")
        return order

    def _orderquery(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._order_data(self._find(body))

    def _closeorder(self, body: dict[str, Any]) -> dict[str, Any]:
        order = self._find(body)
        if order.status in ("SUCCESS", "REFUND"):
            raise _Refusal("ORDERPAID", "the order is paid")
        if order.status in ("CLOSED", "REVOKED"):
            raise _Refusal("ORDERCLOSED", "the order is already closed")
        order.status = "CLOSED"
        return self._order_data(order)

    def _reverse(self, body: dict[str, Any]) -> dict[str, Any]:
        order = self._find(body)
        age = self._clock() - order.created_s
        if age < m.REVERSE_MIN_S:
            raise _Refusal("INVALID_REQUEST", "reverse is not allowed within 15 s of the order")
        if age > m.REVERSE_MAX_S:
            raise _Refusal("TRADE_OVERDUE", "the order is past the reverse period")
        if order.status == "REVOKED":
            return self._order_data(order)
        if order.status == "CLOSED":
            raise _Refusal("ORDERCLOSED", "the order is already closed")
        if order.refunds:
            raise _Refusal("ERROR", "a refunded order cannot be reversed")
        order.status = "REVOKED"  # unpaid: closed; paid: the money goes back
        return self._order_data(order)

    def _refund(self, body: dict[str, Any]) -> dict[str, Any]:
        order = self._find(body)
        refund_no, amount = body["outRefundNo"], body["refundAmt"]
        owner = self._refund_owner.get(refund_no)
        if owner is not None and owner != order.out_trade_no:
            raise _Refusal("INVALID_REQUEST", "outRefundNo already used for another order")
        old = order.refunds.get(refund_no)
        if old is not None:  # a retry keeps its outRefundNo: the same refund again
            if old.amount != amount:
                raise _Refusal("REFUND_FEE_MISMATCH", "refundAmt differs from the first request")
            return self._refund_data(order, old, with_status=False)
        if order.status not in ("SUCCESS", "REFUND"):
            raise _Refusal("INVALID_REQUEST", f"the order is {order.status}, not paid")
        if body["totalAmt"] != order.amount:
            raise _Refusal("INVALID_REQUEST", "totalAmt is not the order amount")
        if len(order.refunds) >= MAX_REFUNDS:
            raise _Refusal("INVALID_REQUEST", "at most 10 refunds per order")
        if order.refunded + amount > order.amount:
            raise _Refusal("INVALID_REQUEST", "refunds would exceed the amount paid")
        refund = SimRefund(out_refund_no=refund_no, ucp_refund_no=str(next(self._numbers)),
                           amount=amount, notify_url=body["notifyUrl"], created_s=self._clock())
        order.refunds[refund_no] = refund
        order.status = "REFUND"
        self._refund_owner[refund_no] = order.out_trade_no
        self._spawn(self._settle_refund(order, refund))
        return self._refund_data(order, refund, with_status=False)

    def _refundquery(self, body: dict[str, Any]) -> dict[str, Any]:
        owner = self._refund_owner.get(body["outRefundNo"])
        if owner is None:
            raise _Refusal("REFUNDNOTEXIST", "no such refund")
        order = self.orders[owner]
        if body.get("outTradeNo") not in (None, "", owner):
            raise _Refusal("REFUNDNOTEXIST", "no such refund for that order")
        return self._refund_data(order, order.refunds[body["outRefundNo"]])

    async def _settle_refund(self, order: SimOrder, refund: SimRefund) -> None:
        await asyncio.sleep(self.refund_delay_s)
        refund.status = "SUCCESS"
        await self._notify(refund.notify_url, self._refund_note(order, refund))

    # -- reply data --------------------------------------------------------------------------

    def _common(self) -> dict[str, Any]:
        return {"merchantId": self.merchant_id, "nonceStr": f"sim{next(self._numbers)}",
                "signType": sign_type(self._scheme), "timestamp": m.format_time(self._clock())}

    def _order_data(self, order: SimOrder, *, with_status: bool = True) -> dict[str, Any]:
        data = {**self._common(), "outTradeNo": order.out_trade_no,
                "ucpOrderNo": order.ucp_order_no, "totalAmt": order.amount,
                "currency": order.currency, "tranTime": m.format_time(order.created_s)}
        if with_status:
            data["tradeStatus"] = order.status
        return data

    def _refund_data(self, order: SimOrder, refund: SimRefund, *,
                     with_status: bool = True) -> dict[str, Any]:
        data = {**self._common(), "outTradeNo": order.out_trade_no,
                "ucpOrderNo": order.ucp_order_no, "outRefundNo": refund.out_refund_no,
                "ucpRefundNo": refund.ucp_refund_no, "totalAmt": order.amount,
                "refundAmt": refund.amount, "totalRefundAmt": order.refunded,
                "currency": order.currency, "body": order.body, "sceneType": order.scene_type}
        if with_status:
            data["refundStatus"] = refund.status
        return data

    def _signed(self, method: str, data: dict[str, Any]) -> dict[str, Any]:
        key: RSAPrivateKey | str = self._private_key
        if self._scheme is SignScheme.MD5 and self._md5_key is not None:
            key = self._md5_key
        if self._wrong_key_due(method):
            key = self._stranger_key() if isinstance(key, RSAPrivateKey) else key + "wrong"
        return sign_params(data, key, self._scheme)

    def _wire(self, data: dict[str, Any]) -> dict[str, Any] | str:
        return json.dumps(data, ensure_ascii=False) if self.data_as_string else data

    def _error(self, method: str, code: str, message: str) -> web.Response:
        if self.error_style == "msg":
            return web.json_response({"code": 1, "msg": f"{code}: {message}"})
        if self.error_style == "opaque":
            return web.json_response({"code": 1, "msg": f"请求失败 ({message})"})
        data = self._signed(method, {**self._common(), "errCode": code, "errMsg": message})
        return web.json_response({"code": 1, "msg": code, "data": self._wire(data)})

    # -- notifications -----------------------------------------------------------------------

    def _payment_note(self, order: SimOrder) -> dict[str, Any]:
        data = {**self._order_data(order), "sceneType": order.scene_type, "body": order.body}
        if order.paid_s is not None:
            data["timeEnd"] = m.format_time(order.paid_s)
        return {"code": 0, "msg": "SUCCESS", "data": self._wire(self._signed("notify", data)),
                "timestamp": m.format_time(self._clock())}

    def _refund_note(self, order: SimOrder, refund: SimRefund) -> dict[str, Any]:
        data = {**self._refund_data(order, refund), "refundTime": m.format_time(self._clock())}
        return {"code": 0, "msg": "SUCCESS", "data": self._wire(self._signed("notify", data)),
                "timestamp": m.format_time(self._clock())}

    def _notify_later(self, url: str, note: dict[str, Any]) -> None:
        self._spawn(self._notify(url, note))

    async def _notify(self, url: str, note: dict[str, Any]) -> None:
        """POST ``note`` until answered SUCCESS, every ``notify_interval_s``, bounded."""
        for _attempt in range(self.notify_attempts):
            answer = await self._post_json(url, note)
            self.notifications.append((url, note, answer))
            try:
                ok = json.loads(answer).get("return_code") == "SUCCESS"
            except (ValueError, AttributeError):
                ok = False
            if ok:
                return
            await asyncio.sleep(self.notify_interval_s)
        log.info("ucanpay_sim_notify_gave_up", url=url)

# -- the sandbox's view of this simulator ----------------------------------------------------

MERCHANT_ID: Final = "SANDBOXUCP01"


async def _start(keys: SandboxKeys, pacing: SimPacing) -> UCanPaySimulator:
    sim = UCanPaySimulator(
        merchant_id=MERCHANT_ID, private_key=keys.private_key("ucanpay_gateway"),
        merchant_public_key=keys.public_key("ucanpay_merchant"),
        notify_interval_s=pacing.notify_interval_s)
    await sim.start()
    return sim


def _section(sim: UCanPaySimulator, keys: SandboxKeys, pacing: BridgePacing) -> dict[str, Any]:
    return {"base_url": sim.url, "merchant_id": MERCHANT_ID,
            "private_key_file": str(keys.private("ucanpay_merchant")),
            "public_key_file": str(keys.public("ucanpay_gateway")),
            "currency": "CAD", "qr_timeout_s": pacing.qr_timeout_s,
            "poll_interval_s": pacing.poll_interval_s}


SANDBOX: Final = SandboxSpec(
    provider="ucanpay", key_names=("ucanpay_merchant", "ucanpay_gateway"), start=_start,
    section=_section,
    title="wallet QR sales (CAD) are paid with the display's \"simulate scan & pay\" button")
