"""UCanPay wire format (pure): request bodies, validation, replies, notifications.

Nothing here awaits, reads a clock or draws randomness: the nonce and "now" are passed in.
Request builders return *unsigned* dicts; :func:`posbridge.providers.ucanpay.signing.sign_params`
adds ``sign``.

Replies are ``{code, msg, data}``. ``code == 0`` only says the request was understood; the trade
result is in ``data.tradeStatus`` / ``data.refundStatus``, and ``data.sign`` must verify before
anything in ``data`` is believed. The seed lists error codes (``SYSTEMERROR``, ``ORDERPAID``, ...)
but not where they travel in a reply; we read ``data.errCode`` when present, else ``msg``
(inferred). An unsigned error reply is believed as a refusal: it cannot move money, and the
engine's query afterwards decides the final state of anything that was already created.

``SYSTEMERROR`` and ``BIZERR_NEED_RETRY`` raise :class:`RetryableError` (an ``OutcomeUnknown``):
the client resends the very same body a bounded number of times and, if it never clears, the
engine reconciles by query like any unknown outcome.
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
    NotificationRejected,
    OutcomeUnknown,
    ProviderRejected,
    RequestError,
)
from posbridge.money import AmountError, exponent
from posbridge.providers.base import NotificationAnswer, Outcome, ProviderReport
from posbridge.providers.ucanpay.signing import SignScheme, VerifyingKey, sign_type, verify_params

__all__ = [
    "REVERSE_MAX_S",
    "REVERSE_MIN_S",
    "SCENE_TYPE",
    "Method",
    "RetryableError",
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
    """``SYSTEMERROR`` / ``BIZERR_NEED_RETRY``: resend the same body; unknown if it persists."""


# The dynamic QR is shown by the merchant and scanned in the UCanPay app: a NATIVE order
# (seed: "JSAPI - JSAPI支付, NATIVE - Native支付").
SCENE_TYPE: Final = "NATIVE"

OUT_NO_RE: Final = re.compile(r"[A-Za-z0-9]{1,32}")
SUBJECT_MAX: Final = 30
BODY_MAX: Final = 64
FORBIDDEN_TEXT: Final = frozenset("/=&")
RETRYABLE: Final = frozenset({"SYSTEMERROR", "BIZERR_NEED_RETRY"})
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
    """The unifiedorder body for a dynamic QR. ``body`` defaults to the subject (it is required)."""
    return {
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
    }


def _order_ref(
    *, merchant_id: str, order_no: str, ucp_order_no: str | None, nonce: str, scheme: SignScheme
) -> dict[str, object]:
    # ucpOrderNo is "required" in the seed, but after a lost unifiedorder answer only our
    # outTradeNo is known; it is then left out (empty values are not sent nor signed).
    return {
        "merchantId": merchant_id,
        "outTradeNo": order_no,
        "ucpOrderNo": ucp_order_no,
        "nonceStr": nonce,
        "signType": sign_type(scheme),
    }


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
    ``outRefundNo`` (kept the same on every retry), ``total_amount`` the original order's."""
    return {
        "merchantId": merchant_id,
        "outTradeNo": order_no,
        "ucpOrderNo": ucp_order_no,
        "outRefundNo": refund_no,
        "totalAmt": total_amount,
        "refundAmt": refund_amount,
        "refundDesc": reason,
        "notifyUrl": notify_url,
        "nonceStr": nonce,
        "signType": sign_type(scheme),
    }


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
    return {
        "merchantId": merchant_id,
        "outTradeNo": order_no,
        "ucpOrderNo": ucp_order_no,
        "outRefundNo": refund_no,
        "ucpRefundNo": ucp_refund_no,
        "nonceStr": nonce,
        "signType": sign_type(scheme),
    }


# -- replies ----------------------------------------------------------------------------------


def _load_object(raw: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def open_reply(raw: bytes, *, key: VerifyingKey, scheme: SignScheme) -> dict[str, Any]:
    """The verified ``data`` of a reply, or the error the reply amounts to.

    - not a JSON object, or ``code == 0`` without a signed ``data``: ``OutcomeUnknown``;
    - ``data.sign`` present but wrong: ``BadSignature`` (an unverifiable answer is no answer);
    - ``SYSTEMERROR`` / ``BIZERR_NEED_RETRY``: :class:`RetryableError`;
    - any other error code: ``ProviderRejected`` with ``provider_code``.
    """
    reply = _load_object(raw)
    if reply is None or "code" not in reply:
        raise OutcomeUnknown("UCanPay answered something that is not a reply object")
    data = reply.get("data")
    if data is not None and not isinstance(data, dict):
        raise OutcomeUnknown("UCanPay reply data is not an object")
    code = reply["code"]
    if code == 0 and not isinstance(code, bool):
        if data is None or "sign" not in data:
            raise BadSignature("UCanPay reply carries no signed data")
        if not verify_params(data, key, scheme):
            raise BadSignature("UCanPay reply signature does not verify")
        return data
    if data is not None and "sign" in data and not verify_params(data, key, scheme):
        raise BadSignature("UCanPay error reply signature does not verify")
    error = _error_code(reply, data)
    detail = str((data or {}).get("errMsg") or reply.get("msg") or "")[:128]
    message = f"{error}: {detail}" if detail and detail != error else error
    if error in RETRYABLE:
        raise RetryableError(f"UCanPay asks to retry ({message})", provider_code=error)
    raise ProviderRejected(f"UCanPay refused the request ({message})", provider_code=error)


def _error_code(reply: Mapping[str, Any], data: Mapping[str, Any] | None) -> str:
    if data is not None and isinstance(data.get("errCode"), str) and data["errCode"]:
        return str(data["errCode"])
    msg = reply.get("msg")
    if isinstance(msg, str) and re.fullmatch(r"[A-Z][A-Z0-9_]*", msg.strip()):
        return msg.strip()
    return str(reply.get("code"))


def _amount(data: Mapping[str, Any], name: str) -> int | None:
    """An amount field as int; the seed shows both ``188`` and ``"188"`` (orderquery)."""
    value = data.get(name)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit():
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

    The signature is checked over ``data`` as it arrived (unknown fields included). A refund
    notification (it has ``refundStatus`` / ``outRefundNo``) reports on ``outRefundNo``;
    a payment notification on ``outTradeNo``. Anything doubtful: ``NotificationRejected``.
    Checking the amount against the journal is the engine's job (``report.amount``).
    """
    note = _load_object(raw)
    if note is None:
        raise NotificationRejected("notification is not a JSON object")
    data = note.get("data")
    if not isinstance(data, dict):
        raise NotificationRejected("notification has no data object")
    if not verify_params(data, key, scheme):
        raise NotificationRejected("notification signature does not verify")
    if note.get("code", 0) != 0:
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
