"""UCanPay wire format (pure): request bodies, validation, replies, notifications.

Nothing here awaits, reads a clock or draws randomness: the nonce and "now" are passed in.
Request builders return *unsigned* dicts; :func:`posbridge.providers.ucanpay.signing.sign_params`
adds ``sign``.

Request bodies carry no empty field: a value that is not known (no lane terminal, no
``ucpOrderNo`` yet) is left out, never sent as ``null``. The seed's lengths are kept:
``deviceNo`` (String(32)) is sent only when it fits, ``refundDesc`` (String(64)) is cut to 64
characters, and a ``notifyUrl`` over 64 characters is a configuration error
(:func:`check_notify_url`).

Replies are ``{code, msg, data}``. ``code == 0`` (the number, or the string ``"0"``) only says
the request was understood; the trade result is in ``data.tradeStatus`` / ``data.refundStatus``,
and ``data.sign`` must verify before anything in ``data`` is believed. ``data`` is an object in
the seed's samples but described as "JSON字符串格式"; a JSON string is parsed and then verified
like an object.

The seed lists error codes (``SYSTEMERROR``, ``ORDERPAID``, ...) but not where they travel in a
reply (``msg`` is "the reason", e.g. "签名失败"). A documented name is looked for in code-like
keys (``data.errCode`` and its spellings), then as a word inside ``msg`` and similar texts, then
as the whole value of any other field (:data:`KNOWN_CODES`). An error without one is an
:class:`UnrecognizedRefusal` - the client treats it on a create as an unknown outcome (query
first), elsewhere as a refusal. An unsigned error reply is believed as a refusal: it cannot move
money, and the engine's query afterwards decides the final state of anything already created.

``SYSTEMERROR`` and ``BIZERR_NEED_RETRY`` raise :class:`RetryableError` (an ``OutcomeUnknown``):
the client resends the same parameters (same numbers and amounts, a fresh nonce and signature)
a bounded number of times and, if it never clears, the engine reconciles by query like any
unknown outcome.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import re
from collections.abc import Mapping
from typing import Any, Final

from posbridge.errors import (
    BadSignature,
    ConfigError,
    NotificationRejected,
    OutcomeUnknown,
    ProviderRejected,
    RequestError,
)
from posbridge.money import AmountError, exponent
from posbridge.providers.base import NotificationAnswer, Outcome, ProviderReport
from posbridge.providers.json_depth import too_deep
from posbridge.providers.ucanpay.signing import SignScheme, VerifyingKey, sign_type, verify_params

__all__ = [
    "DEVICE_NO_MAX",
    "KNOWN_CODES",
    "NOTIFY_URL_MAX",
    "REFUND_DESC_MAX",
    "REVERSE_MAX_S",
    "REVERSE_MIN_S",
    "SCENE_TYPE",
    "Method",
    "RetryableError",
    "UnrecognizedRefusal",
    "check_notify_url",
    "clear_trade_status",
    "closeorder",
    "format_time",
    "notification_answer",
    "open_reply",
    "order_report",
    "orderquery",
    "parse_notification",
    "refund",
    "refund_report",
    "refundquery",
    "refusal_is_final",
    "reverse",
    "reverse_window_problem",
    "tran_time",
    "unifiedorder",
    "validate_qr_order",
    "validate_refund",
]


class Method(enum.StrEnum):
    """The API methods; each is ``POST {base_url}/payment/{value}``."""

    UNIFIEDORDER = "unifiedorder"
    ORDERQUERY = "orderquery"
    CLOSEORDER = "closeorder"
    REVERSE = "reverse"
    REFUND = "refund"
    REFUNDQUERY = "refundquery"

    @property
    def path(self) -> str:
        return f"/payment/{self.value}"


class RetryableError(OutcomeUnknown):
    """``SYSTEMERROR`` / ``BIZERR_NEED_RETRY``: resend the same parameters (fresh nonce and
    signature); unknown if it persists."""


class UnrecognizedRefusal(ProviderRejected):
    """An error reply that names none of the seed's error codes (``provider_code`` is the
    ``code`` or the undocumented name). Nothing says the request was not carried out."""


# The dynamic QR is shown by the merchant and scanned in the UCanPay app: a NATIVE order
# (seed: "JSAPI - JSAPI支付, NATIVE - Native支付").
SCENE_TYPE: Final = "NATIVE"

OUT_NO_RE: Final = re.compile(r"[A-Za-z0-9]{1,32}")
SUBJECT_MAX: Final = 30
BODY_MAX: Final = 64
FORBIDDEN_TEXT: Final = frozenset("/=&")
RETRYABLE: Final = frozenset({"SYSTEMERROR", "BIZERR_NEED_RETRY"})
DEVICE_NO_MAX: Final = 32  # deviceNo string(32)
REFUND_DESC_MAX: Final = 64  # refundDesc String(64)
NOTIFY_URL_MAX: Final = 64  # notifyUrl String(64), for payments and refunds
MAX_REFUNDS: Final = 10  # partial refunds of one order, each with its own outRefundNo (seed 001)
NOTIFY_URL_KEY: Final = "bridge.public_url"  # the notify URLs are made from it
# Every error code name in the seed's tables (unifiedorder, orderquery, closeorder, reverse,
# refund, refundquery).
KNOWN_CODES: Final = frozenset({
    "BIZERR_NEED_RETRY", "ERROR", "FREQUENCY_LIMITED", "INVALID_REQUEST",
    "INVALID_REQ_TOO_MUCH", "LACK_PARAMS", "NOAUTH", "NOTENOUGH", "NOT_UTF8", "ORDERCLOSED",
    "ORDERNOTEXIST", "ORDERPAID", "ORDER_NOT_READY", "OUT_TRADE_NO_USED", "PARAM_ERROR",
    "POST_DATA_EMPTY", "REFUNDNOTEXIST", "REFUND_FEE_MISMATCH", "REQUIRE_POST_METHOD",
    "SIGNERROR", "SYSTEMERROR", "TRADE_OVERDUE", "USER_ACCOUNT_ABNORMAL",
})
# Refusals of a create that mean the order number already exists at UCanPay - possibly our own
# earlier attempt, since paid or closed: the create's outcome is unknown, query it.
_EXISTS_ON_CREATE: Final[dict[str, frozenset[str]]] = {
    "unifiedorder": frozenset({"ORDERPAID", "OUT_TRADE_NO_USED", "ORDERCLOSED"}),
    "refund": frozenset(),
}
REVERSE_MIN_S: Final = 15  # seed: "建议支付后至少15s后再调用撤销订单接口"
REVERSE_MAX_S: Final = 7 * 24 * 3600  # seed: "7天以内的交易单可调用撤销"

_TRADE_STATUS: Final[dict[str, tuple[Outcome, bool]]] = {
    "SUCCESS": (Outcome.APPROVED, False),
    "REFUND": (Outcome.APPROVED, False),  # paid, then (partly) refunded: the sale stands
    "NOTPAY": (Outcome.PENDING, True),
    "USERPAYING": (Outcome.PENDING, False),
    "CLOSED": (Outcome.CANCELLED, False),
    "REVOKED": (Outcome.CANCELLED, False),
    "PAYERROR": (Outcome.DECLINED, False),
}
_REFUND_STATUS: Final[dict[str, Outcome]] = {
    "SUCCESS": Outcome.APPROVED,
    "PROCESSING": Outcome.PENDING,
    "REFUNDCLOSE": Outcome.DECLINED,
    "FAIL": Outcome.DECLINED,
}


def _invalid(field: str, message: str) -> RequestError:
    return RequestError(-32602, "invalid_params", message, field=field)


def _check_text(field: str, value: str, limit: int) -> None:
    if len(value) > limit:
        raise _invalid(field, f"{field} is at most {limit} characters for a wallet (UCanPay) order")
    bad = sorted(FORBIDDEN_TEXT.intersection(value))
    if bad:
        raise _invalid(field, f"{field} may not contain {' '.join(bad)} (UCanPay rule)")


def _check_out_no(field: str, value: str) -> None:
    if OUT_NO_RE.fullmatch(value) is None:
        raise _invalid(field, f"{field} must be 1-32 letters and digits for UCanPay")


def _check_amount(amount_minor: int, currency: str) -> None:
    try:
        exponent(currency)
    except AmountError as exc:
        raise _invalid("currency", str(exc)) from exc
    if isinstance(amount_minor, bool) or not isinstance(amount_minor, int) or amount_minor <= 0:
        raise _invalid("amount", "amount must be a positive whole number of minor units")
    if amount_minor > 2**31 - 1:  # totalAmt is an Int in the seed
        raise _invalid("amount", "amount is too large for UCanPay")


def validate_qr_order(
    order_no: str, subject: str, body: str, amount_minor: int, currency: str
) -> None:
    """Refuse what UCanPay would refuse, naming the ECR field (RequestError -32602).

    ``order_no`` becomes ``outTradeNo`` (1-32 letters/digits); ``subject`` is required,
    at most 30 characters; ``body`` (may be empty: the subject is sent instead) at most 64;
    neither may contain ``/ = &``; ``amount`` is positive minor units.
    """
    _check_out_no("order_no", order_no)
    if not subject:
        raise _invalid("subject", "subject is required for a wallet (UCanPay) order")
    _check_text("subject", subject, SUBJECT_MAX)
    _check_text("body", body, BODY_MAX)
    _check_amount(amount_minor, currency)


def validate_refund(order_no: str, orig_order_no: str, amount_minor: int, currency: str) -> None:
    """Refuse a refund UCanPay would refuse: ``outRefundNo``/``outTradeNo`` rules, amount."""
    _check_out_no("order_no", order_no)
    _check_out_no("orig_order_no", orig_order_no)
    _check_amount(amount_minor, currency)


# -- request bodies (unsigned) --------------------------------------------------------------


def check_notify_url(url: str) -> None:
    """Raise ``ConfigError`` (naming ``bridge.public_url``) if ``url`` exceeds notifyUrl's 64
    characters (seed: String(64), for payment and refund notifications alike)."""
    if len(url) > NOTIFY_URL_MAX:
        raise ConfigError(
            NOTIFY_URL_KEY,
            f"UCanPay takes a notify URL of at most {NOTIFY_URL_MAX} characters "
            f"(notifyUrl String(64)); {url!r} has {len(url)}: use a shorter public URL")


def _compact(fields: Mapping[str, object]) -> dict[str, object]:
    """``fields`` without the empty ones: an unknown value is left out, never sent as null."""
    return {name: value for name, value in fields.items() if value is not None and value != ""}


def unifiedorder(
    *,
    merchant_id: str,
    order_no: str,
    subject: str,
    body: str,
    amount: int,
    currency: str,
    notify_url: str,
    nonce: str,
    scheme: SignScheme,
    device_no: str | None = None,
) -> dict[str, object]:
    """The unifiedorder body for a dynamic QR. ``body`` defaults to the subject (it is required).

    ``device_no`` (the lane terminal's serial) is sent only when it fits deviceNo's 32
    characters; a longer one is left out rather than cut (a cut serial could name another).
    """
    if device_no is not None and len(device_no) > DEVICE_NO_MAX:
        device_no = None
    return _compact({
        "merchantId": merchant_id,
        "outTradeNo": order_no,
        "subject": subject,
        "body": body or subject,
        "totalAmt": amount,
        "currency": currency,
        "sceneType": SCENE_TYPE,
        "notifyUrl": notify_url,
        "deviceNo": device_no,
        "nonceStr": nonce,
        "signType": sign_type(scheme),
    })


def _order_ref(
    *, merchant_id: str, order_no: str, ucp_order_no: str | None, nonce: str, scheme: SignScheme
) -> dict[str, object]:
    # ucpOrderNo is "required" in the seed, but after a lost unifiedorder answer only our
    # outTradeNo is known; the key is then left out of the body (and so of stringA).
    return _compact({
        "merchantId": merchant_id,
        "outTradeNo": order_no,
        "ucpOrderNo": ucp_order_no,
        "nonceStr": nonce,
        "signType": sign_type(scheme),
    })


def orderquery(
    *, merchant_id: str, order_no: str, ucp_order_no: str | None, nonce: str, scheme: SignScheme
) -> dict[str, object]:
    """The orderquery body (by ``outTradeNo``, and ``ucpOrderNo`` when known)."""
    return _order_ref(merchant_id=merchant_id, order_no=order_no, ucp_order_no=ucp_order_no,
                      nonce=nonce, scheme=scheme)


def closeorder(
    *, merchant_id: str, order_no: str, ucp_order_no: str | None, nonce: str, scheme: SignScheme
) -> dict[str, object]:
    """The closeorder body: stops an unpaid order."""
    return _order_ref(merchant_id=merchant_id, order_no=order_no, ucp_order_no=ucp_order_no,
                      nonce=nonce, scheme=scheme)


def reverse(
    *, merchant_id: str, order_no: str, ucp_order_no: str | None, nonce: str, scheme: SignScheme
) -> dict[str, object]:
    """The reverse body: closes an unpaid order or returns the money of a paid one."""
    return _order_ref(merchant_id=merchant_id, order_no=order_no, ucp_order_no=ucp_order_no,
                      nonce=nonce, scheme=scheme)


def refund(
    *,
    merchant_id: str,
    order_no: str,
    ucp_order_no: str | None,
    refund_no: str,
    total_amount: int,
    refund_amount: int,
    reason: str,
    notify_url: str,
    nonce: str,
    scheme: SignScheme,
) -> dict[str, object]:
    """The refund body: ``order_no`` is the original ``outTradeNo``, ``refund_no`` the
    ``outRefundNo`` (kept the same on every retry), ``total_amount`` the original order's.

    ``reason`` becomes ``refundDesc``, cut to its first 64 characters (String(64); the ECR
    description may be longer). It only words the message the customer gets, so a cut text
    is better than a refused refund.
    """
    return _compact({
        "merchantId": merchant_id,
        "outTradeNo": order_no,
        "ucpOrderNo": ucp_order_no,
        "outRefundNo": refund_no,
        "totalAmt": total_amount,
        "refundAmt": refund_amount,
        "refundDesc": reason[:REFUND_DESC_MAX],
        "notifyUrl": notify_url,
        "nonceStr": nonce,
        "signType": sign_type(scheme),
    })


def refundquery(
    *,
    merchant_id: str,
    order_no: str | None,
    ucp_order_no: str | None,
    refund_no: str,
    ucp_refund_no: str | None,
    nonce: str,
    scheme: SignScheme,
) -> dict[str, object]:
    """The refundquery body (by ``outRefundNo``, plus whatever other numbers are known)."""
    return _compact({
        "merchantId": merchant_id,
        "outTradeNo": order_no,
        "ucpOrderNo": ucp_order_no,
        "outRefundNo": refund_no,
        "ucpRefundNo": ucp_refund_no,
        "nonceStr": nonce,
        "signType": sign_type(scheme),
    })


# -- replies ----------------------------------------------------------------------------------


def _load_object(raw: bytes) -> dict[str, Any] | None:
    """A JSON object, or None (also for one nested deeper than ``json_depth.MAX_DEPTH``)."""
    try:
        value = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) and not too_deep(value, text=raw) else None


def _is_zero(code: object) -> bool:
    """``code`` is 0: the JSON number, or the string ``"0"`` some servers send."""
    if isinstance(code, bool):
        return False
    if isinstance(code, int):
        return code == 0
    return isinstance(code, str) and code.strip() == "0"


def _data_object(data: object) -> dict[str, Any] | None:
    """``data`` as an object: as is, or parsed from a JSON string ("JSON字符串格式").

    None when absent; raises ``ValueError`` when present but not (a JSON text of) an object.
    """
    if data is None or isinstance(data, dict):
        return data
    if isinstance(data, str):
        if not data.strip():
            return None
        try:
            parsed = json.loads(data)
        except (ValueError, RecursionError) as exc:
            raise ValueError("data is a string but not JSON") from exc
        if isinstance(parsed, dict) and not too_deep(parsed, text=data):
            return parsed
    raise ValueError("data is not an object")


def open_reply(raw: bytes, *, key: VerifyingKey, scheme: SignScheme) -> dict[str, Any]:
    """The verified ``data`` of a reply, or the error the reply amounts to.

    - not a JSON object, or ``data`` neither an object nor a JSON text of one: ``OutcomeUnknown``;
    - ``code == 0`` without a signed ``data``, or ``data.sign`` present but wrong:
      ``BadSignature`` (an unverifiable answer is no answer);
    - ``SYSTEMERROR`` / ``BIZERR_NEED_RETRY``: :class:`RetryableError`;
    - another documented code: ``ProviderRejected`` with ``provider_code``;
    - an error naming no documented code: :class:`UnrecognizedRefusal`.
    """
    reply = _load_object(raw)
    if reply is None or "code" not in reply:
        raise OutcomeUnknown("UCanPay answered something that is not a reply object")
    try:
        data = _data_object(reply.get("data"))
    except ValueError as exc:
        raise OutcomeUnknown(f"UCanPay reply {exc}") from exc
    code = reply["code"]
    if _is_zero(code):
        if data is None or "sign" not in data:
            raise BadSignature("UCanPay reply carries no signed data")
        if not verify_params(data, key, scheme):
            raise BadSignature("UCanPay reply signature does not verify")
        return data
    if data is not None and "sign" in data and not verify_params(data, key, scheme):
        raise BadSignature("UCanPay error reply signature does not verify")
    error, known = _error_code(reply, data)
    detail = str((data or {}).get("errMsg") or reply.get("msg") or "")[:128]
    message = f"{error}: {detail}" if detail and detail != error else error
    if error in RETRYABLE:
        raise RetryableError(f"UCanPay asks to retry ({message})", provider_code=error)
    if not known:
        raise UnrecognizedRefusal(f"UCanPay answered an undocumented error ({message})",
                                  provider_code=error)
    raise ProviderRejected(f"UCanPay refused the request ({message})", provider_code=error)


def refusal_is_final(method: Method, code: str | None) -> bool:
    """Whether a documented refusal ``code`` of a create (``method``) means it was not done.

    ``ORDERPAID``, ``OUT_TRADE_NO_USED`` and ``ORDERCLOSED`` on a (re)sent unifiedorder say the
    order number exists at UCanPay - perhaps our own earlier attempt, since paid or closed - so
    they are not final: the engine must query.
    """
    return code not in _EXISTS_ON_CREATE.get(method.value, frozenset())


# Keys an error code name may travel under (data first, then the envelope), and free texts it
# may be written into. "ERROR" alone is too common a word to be recognised inside a text.
_CODE_KEYS: Final = ("errCode", "err_code", "errorCode", "error_code", "subCode", "sub_code",
                     "resultCode", "result_code", "returnCode", "return_code", "code")
_TEXT_KEYS: Final = ("errMsg", "err_msg", "errorMsg", "error_msg", "subMsg", "sub_msg", "msg",
                     "message", "error", "returnMsg", "return_msg")
_SKIP_KEYS: Final = frozenset({"sign", "nonceStr", "timestamp"})
_GENERIC_CODES: Final = frozenset({"ERROR"})
_WORD_RE: Final = re.compile(r"[A-Za-z0-9_]+")
_NAME_RE: Final = re.compile(r"[A-Z][A-Z0-9_]*")


def _known_value(value: object) -> str | None:
    if isinstance(value, str) and value.strip().upper() in KNOWN_CODES:
        return value.strip().upper()
    return None


def _known_word(text: object) -> str | None:
    if not isinstance(text, str):
        return None
    for match in _WORD_RE.finditer(text):
        word = match.group()
        if word in KNOWN_CODES and word not in _GENERIC_CODES:
            return word
    return None


def _error_code(reply: Mapping[str, Any], data: Mapping[str, Any] | None) -> tuple[str, bool]:
    """The error's code name and whether it is one of :data:`KNOWN_CODES`.

    Without a documented name: an undocumented name given under a code-like key or as the whole
    ``msg`` (so it is logged), else the reply's ``code`` as text.
    """
    places: list[Mapping[str, Any]] = [d for d in (data, reply) if d is not None]
    for place in places:
        for name in _CODE_KEYS:
            found = _known_value(place.get(name))
            if found is not None:
                return found, True
    for place in places:
        for name in _TEXT_KEYS:
            found = _known_value(place.get(name)) or _known_word(place.get(name))
            if found is not None:
                return found, True
    for place in places:
        for name, value in place.items():
            if name not in _SKIP_KEYS and name not in _CODE_KEYS and name not in _TEXT_KEYS:
                found = _known_value(value)
                if found is not None:
                    return found, True
    for place in places:
        for name in _CODE_KEYS:
            value = place.get(name)
            if isinstance(value, str) and _NAME_RE.fullmatch(value.strip()):
                return value.strip()[:64], False
    msg = reply.get("msg")
    if isinstance(msg, str) and _NAME_RE.fullmatch(msg.strip()):
        return msg.strip()[:64], False
    return str(reply.get("code"))[:32], False


def _amount(data: Mapping[str, Any], name: str) -> int | None:
    """An amount field as int; the seed shows both ``188`` and ``"188"`` (orderquery)."""
    value = data.get(name)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    # At most 18 digits: int() refuses texts past 4,300 digits, and no amount is that long.
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 18:
        return int(value)
    return None


def _ref(data: Mapping[str, Any], name: str) -> str | None:
    value = data.get(name)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value if isinstance(value, str) and value else None


def order_report(data: Mapping[str, Any], order_no: str) -> ProviderReport:
    """A verified order ``data`` (unifiedorder, orderquery, closeorder, reverse, notification).

    A reply without ``tradeStatus`` (unifiedorder) is a fresh, unpaid order: PENDING, closable.
    A reply about another ``outTradeNo`` or with an unknown status is ``OutcomeUnknown``.
    """
    out_no = data.get("outTradeNo")
    if out_no is not None and str(out_no) != order_no:
        raise OutcomeUnknown(f"UCanPay answered about order {str(out_no)[:32]!r}")
    status = data.get("tradeStatus")
    if status is None:
        outcome, closable = Outcome.PENDING, True
    else:
        mapped = _TRADE_STATUS.get(str(status).upper())
        if mapped is None:
            raise OutcomeUnknown(f"unknown UCanPay tradeStatus {str(status)[:32]!r}")
        outcome, closable = mapped
    return ProviderReport(
        order_no=order_no, outcome=outcome, provider_ref=_ref(data, "ucpOrderNo"),
        amount=_amount(data, "totalAmt"), closable=closable,
        provider_code=None if status is None else str(status).upper())


def clear_trade_status(data: Mapping[str, Any]) -> bool:
    """Whether ``data`` gives a clear payment result: a known ``tradeStatus`` that is not
    NOTPAY / USERPAYING (seed, reverse: "没有明确的支付结果再调用撤销")."""
    mapped = _TRADE_STATUS.get(str(data.get("tradeStatus")).upper())
    return mapped is not None and mapped[0] is not Outcome.PENDING


def refund_report(data: Mapping[str, Any], refund_no: str) -> ProviderReport:
    """A verified refund ``data`` (refund, refundquery, refund notification).

    The refund reply only says the request was accepted (no ``refundStatus``): PENDING.
    ``provider_ref`` is ``ucpRefundNo``; ``amount`` is ``refundAmt``.
    """
    out_no = data.get("outRefundNo")
    if out_no is not None and str(out_no) != refund_no:
        raise OutcomeUnknown(f"UCanPay answered about refund {str(out_no)[:32]!r}")
    status = data.get("refundStatus")
    if status is None:
        outcome = Outcome.PENDING
    else:
        found = _REFUND_STATUS.get(str(status).upper())  # the seed's sample says "success"
        if found is None:
            raise OutcomeUnknown(f"unknown UCanPay refundStatus {str(status)[:32]!r}")
        outcome = found
    return ProviderReport(
        order_no=refund_no, outcome=outcome, provider_ref=_ref(data, "ucpRefundNo"),
        amount=_amount(data, "refundAmt"),
        provider_code=None if status is None else str(status).upper())


def tran_time(data: Mapping[str, Any]) -> float | None:
    """``tranTime`` as epoch seconds (the seed shows it with and without ``Z``; UTC assumed)."""
    value = data.get("tranTime")
    if not isinstance(value, str):
        return None
    try:
        when = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp()


def format_time(epoch_s: float) -> str:
    """Epoch seconds as the seed's ``yyyy-MM-ddTHH:mm:ssZ`` (RFC 3339, UTC)."""
    return dt.datetime.fromtimestamp(epoch_s, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def reverse_window_problem(created_s: float, now_s: float) -> str | None:
    """Why ``reverse`` may not be called now, or None: not before 15 s, not after 7 days."""
    age = now_s - created_s
    if age < REVERSE_MIN_S:
        return f"reverse is allowed {REVERSE_MIN_S} s after the order at the earliest"
    if age > REVERSE_MAX_S:
        return "reverse is allowed within 7 days of the order only; refund it instead"
    return None


# -- notifications ------------------------------------------------------------------------------


def parse_notification(
    raw: bytes, *, key: VerifyingKey, scheme: SignScheme, merchant_id: str
) -> ProviderReport:
    """Verify and read a payment or refund notification ``{code, msg, data{..., sign}}``.

    ``data`` may be an object or a JSON text of one; the signature is checked over its fields
    as they arrived (unknown fields included). ``code`` 0 may be a number or ``"0"``. A refund
    notification (it has ``refundStatus`` / ``outRefundNo``) reports on ``outRefundNo``;
    a payment notification on ``outTradeNo``. Anything doubtful: ``NotificationRejected``.
    Checking the amount against the journal is the engine's job (``report.amount``).
    """
    note = _load_object(raw)
    if note is None:
        raise NotificationRejected("notification is not a JSON object")
    try:
        data = _data_object(note.get("data"))
    except ValueError:
        data = None
    if data is None:
        raise NotificationRejected("notification has no data object")
    if not verify_params(data, key, scheme):
        raise NotificationRejected("notification signature does not verify")
    if not _is_zero(note.get("code", 0)):
        raise NotificationRejected(f"notification code is {str(note.get('code'))[:16]}")
    if "merchantId" in data and str(data["merchantId"]) != merchant_id:
        raise NotificationRejected("notification is for another merchant")
    try:
        if "refundStatus" in data or "outRefundNo" in data:
            refund_no = _ref(data, "outRefundNo")
            if refund_no is None or "refundStatus" not in data:
                raise NotificationRejected("refund notification lacks outRefundNo/refundStatus")
            return refund_report(data, refund_no)
        order_no = _ref(data, "outTradeNo")
        if order_no is None or "tradeStatus" not in data:
            raise NotificationRejected("payment notification lacks outTradeNo/tradeStatus")
        return order_report(data, order_no)
    except OutcomeUnknown as exc:
        raise NotificationRejected(exc.message) from exc


def notification_answer(ok: bool, reason: str = "") -> NotificationAnswer:
    """``{"return_code":"SUCCESS","return_msg":"OK"}``, or ``FAIL`` with the reason."""
    body = (
        {"return_code": "SUCCESS", "return_msg": "OK"}
        if ok
        else {"return_code": "FAIL", "return_msg": (reason or "FAIL")[:128]}
    )
    return NotificationAnswer(
        status=200,
        body=json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8"),
        content_type="application/json; charset=utf-8",
    )
