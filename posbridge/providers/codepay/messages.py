"""CodePay request bodies and the reading of answers and notifications. Pure: no I/O, no clock.

Requests are flat JSON objects: the envelope (``app_id``, ``method``, ``format``, ``charset``,
``sign_type``, ``version``, ``timestamp``, ``sign``) beside the business fields. Amounts are
sent as JSON strings in major units with the currency's exponent (``"12.30"``), so the body and
the signed text agree exactly (PROVIDERS.md; the seed's samples show numbers, which the
gateway's ``number`` fields also accept as text — an inference recorded here).

Answers ``{code, msg, psn, sign, data}`` are verified with the gateway public key over every
top-level field except ``sign`` (``data`` as compact JSON text). Numbers are parsed as
:class:`~decimal.Decimal` so their text is verified as it was sent. What can go wrong:

- not JSON / not an object / unverifiable signature: :class:`~posbridge.errors.OutcomeUnknown`
  (:class:`~posbridge.errors.BadSignature` for the signature) — the request may have worked;
- ``code != "0"``: :class:`~posbridge.errors.ProviderRejected` with ``provider_code=code``,
  except a create refused as a *duplicate* ``merchant_order_no``, which is ``OutcomeUnknown``
  (an earlier create of ours arrived: query, never treat it as a failure);
- a query for an order the gateway does not know: ``Outcome.NOT_FOUND``.

The seed lists no error codes, so "duplicate" and "not found" are recognised by the codes in
:data:`DUPLICATE_CODES` / :data:`NOT_FOUND_CODES` (the simulator's) or by words in ``msg``
(:data:`DUPLICATE_WORDS`, :data:`NOT_FOUND_WORDS`). This is inferred; adjust when the real
gateway's codes are known.

The seed does not name the "Get Open Batch" method (it gives the fields only: ``merchant_no``,
``store_no``, ``terminal_sn_list``); :data:`DEFAULT_OPEN_BATCH_METHOD` is our name for it and
the provider and simulator take it as a parameter.
"""

from __future__ import annotations

import enum
import json
import re
import urllib.parse
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Final, Literal

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

from posbridge import money
from posbridge.errors import (
    BadSignature,
    NotificationRejected,
    OutcomeUnknown,
    ProviderRejected,
)
from posbridge.money import AmountError, exponent, format_amount, parse_amount
from posbridge.providers.base import BatchFigures, Outcome, PaymentOrder, ProviderReport, TxnKind
from posbridge.providers.codepay import signing
from posbridge.providers.json_depth import too_deep

__all__ = [
    "API_VERSION",
    "BATCH_CLOSE",
    "CLOSE",
    "CREATE",
    "DEFAULT_OPEN_BATCH_METHOD",
    "DUPLICATE_CODES",
    "DUPLICATE_WORDS",
    "NOT_FOUND_CODES",
    "NOT_FOUND_WORDS",
    "ORDER_NO",
    "QUERY",
    "RECEIVING_APPLICATION",
    "SignType",
    "TransStatus",
    "TransType",
    "batch_close_body",
    "check_order_no",
    "close_body",
    "create_body",
    "dumps",
    "envelope",
    "is_duplicate",
    "is_not_found",
    "notification_answer_body",
    "open_batch_body",
    "parse_create_response",
    "parse_json",
    "parse_notification",
    "parse_query_response",
    "parse_response",
    "plain_data",
    "query_body",
    "report_from_data",
    "timestamp_ms",
]

CREATE: Final = "wisehub.cloud.pay.order"
CLOSE: Final = "wisehub.cloud.pay.close"
QUERY: Final = "order.query"
BATCH_CLOSE: Final = "batch.close"
DEFAULT_OPEN_BATCH_METHOD: Final = "batch.open.query"  # not named in the seed; see module doc

FORMAT: Final = "JSON"
CHARSET: Final = "UTF-8"
VERSION: Final = "1.0"
API_VERSION: Final = "2.0"
RECEIVING_APPLICATION: Final = "CodePay Register"

SignType = Literal["RSA2", "NONE"]

#: merchant_order_no: up to 32 of digits, letters and ``_ - | * @`` (seed, Create Order).
ORDER_NO: Final = re.compile(r"[0-9A-Za-z_\-|*@]{1,32}")
MAX_DESCRIPTION: Final = 128

DUPLICATE_CODES: Final = frozenset({"ORDER_DUPLICATE"})
DUPLICATE_WORDS: Final = ("duplicate", "repeat", "already exist")
NOT_FOUND_CODES: Final = frozenset({"ORDER_NOT_EXIST"})
NOT_FOUND_WORDS: Final = ("not exist", "not found", "no such order")


class TransType(enum.IntEnum):
    """``trans_type`` of Create Order (only those the bridge sends)."""

    SALE = 1
    VOID = 2
    REFUND = 3


class TransStatus(enum.IntEnum):
    """``trans_status`` of queries and notifications."""

    IN_PROGRESS = 0
    FAILED = 1
    SUCCESS = 2
    CANCELLED = 3
    CREATED = 9


_STATUS_TEXT: Final = re.compile(r"[0-9]{1,4}")
# Whole digits of the largest amount read from an answer (as posbridge.money parses them).
_MAX_WHOLE_DIGITS: Final = 18

_KIND_TYPE: Final = {TxnKind.SALE: TransType.SALE, TxnKind.VOID: TransType.VOID,
                     TxnKind.REFUND: TransType.REFUND}


# -- requests -------------------------------------------------------------------------------


def timestamp_ms(now_s: float) -> int:
    """The 13-digit epoch-millisecond ``timestamp`` for a clock reading in seconds."""
    return int(now_s * 1000)


def envelope(
    method: str,
    business: Mapping[str, object],
    *,
    app_id: str,
    sign_type: SignType,
    now_s: float,
    private_key: RSAPrivateKey | None,
) -> dict[str, object]:
    """The full request body: envelope + business fields, signed when ``sign_type`` is RSA2.

    Business fields whose value is ``None`` are left out of the body (and so of the signature).
    """
    body: dict[str, object] = {
        "app_id": app_id, "method": method, "format": FORMAT, "charset": CHARSET,
        "sign_type": sign_type, "version": VERSION, "timestamp": timestamp_ms(now_s),
    }
    body.update((k, v) for k, v in business.items() if v is not None)
    if sign_type == "RSA2":
        if private_key is None:
            raise ValueError("sign_type RSA2 needs the merchant private key")
        body[signing.SIGN_FIELD] = signing.sign(body, private_key)
    return body


def check_order_no(order_no: str, field: str = "merchant_order_no") -> str:
    """``order_no`` if CodePay accepts it, else ProviderRejected (nothing is sent)."""
    if not ORDER_NO.fullmatch(order_no):
        raise ProviderRejected(f"{field} must be 1-32 of letters, digits and _-|*@ for CodePay")
    return order_no


def create_body(
    order: PaymentOrder,
    *,
    merchant_no: str,
    store_no: str | None,
    notify_url: str | None,
    expires_s: int,
) -> dict[str, object]:
    """Business fields of ``wisehub.cloud.pay.order`` for a SALE, VOID or REFUND.

    VOID and REFUND carry ``orig_merchant_order_no``; a tip is sent only when non-zero.
    """
    trans_type = _KIND_TYPE.get(order.kind)
    if trans_type is None:
        raise ProviderRejected(f"CodePay terminals do not do {order.kind.value} transactions")
    if not order.terminal_sn:
        raise ProviderRejected("a CodePay order needs a terminal_sn")
    orig: str | None = None
    if trans_type is not TransType.SALE:
        if not order.orig_order_no:
            raise ProviderRejected(f"a {order.kind.value} needs the original order number")
        orig = check_order_no(order.orig_order_no, "orig_merchant_order_no")
    description = (order.description or f"{order.kind.value} {order.order_no}")[:MAX_DESCRIPTION]
    return {
        "merchant_no": merchant_no,
        "store_no": store_no or None,
        "terminal_sn": order.terminal_sn,
        "message_receiving_application": RECEIVING_APPLICATION,
        "price_currency": order.currency,
        "order_amount": format_amount(order.amount, order.currency),
        "tip_amount": format_amount(order.tip, order.currency) if order.tip else None,
        "trans_type": int(trans_type),
        "merchant_order_no": check_order_no(order.order_no),
        "orig_merchant_order_no": orig,
        "description": description,
        "notify_url": notify_url or None,
        "expires": expires_s,
        "api_version": API_VERSION,
    }


def close_body(order: PaymentOrder, *, merchant_no: str, store_no: str | None,
               reason: str = "") -> dict[str, object]:
    """Business fields of ``wisehub.cloud.pay.close`` (remove a not-yet-paid order)."""
    if not order.terminal_sn:
        raise ProviderRejected("closing a CodePay order needs its terminal_sn")
    return {
        "merchant_no": merchant_no, "store_no": store_no or None,
        "terminal_sn": order.terminal_sn, "merchant_order_no": check_order_no(order.order_no),
        "description": reason[:MAX_DESCRIPTION] or None,
        "message_receiving_application": RECEIVING_APPLICATION,
    }


def query_body(*, merchant_no: str, merchant_order_no: str,
               trans_no: str | None = None) -> dict[str, object]:
    """Business fields of ``order.query`` (the gateway prefers ``trans_no`` when both are set)."""
    return {"merchant_no": merchant_no, "merchant_order_no": check_order_no(merchant_order_no),
            "trans_no": trans_no or None}


def batch_close_body(*, merchant_no: str, terminal_sn: str) -> dict[str, object]:
    """Business fields of ``batch.close`` (one terminal's batch)."""
    return {"merchant_no": merchant_no, "terminal_sn": terminal_sn}


def open_batch_body(*, merchant_no: str, store_no: str | None,
                    terminal_sn: str) -> dict[str, object]:
    """Business fields of Get Open Batch for one terminal (``terminal_sn_list`` of one)."""
    return {"merchant_no": merchant_no, "store_no": store_no or None,
            "terminal_sn_list": [terminal_sn]}


def dumps(body: Mapping[str, object]) -> str:
    """A request or answer body as sent: compact JSON, non-ASCII as UTF-8."""
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


# -- answers --------------------------------------------------------------------------------


def parse_json(body: bytes) -> dict[str, object] | None:
    """A JSON object with numbers as Decimal / int, or None if ``body`` is not one (or nests
    deeper than :data:`~posbridge.providers.json_depth.MAX_DEPTH`)."""
    try:
        value = json.loads(body.decode("utf-8"), parse_float=Decimal)
    except (UnicodeDecodeError, ValueError, RecursionError, ArithmeticError):
        # ArithmeticError: a number whose exponent Decimal cannot hold (1e-99999999999999999999)
        return None
    return value if isinstance(value, dict) and not too_deep(value) else None


def parse_response(body: bytes, *, gateway_key: RSAPublicKey | None) -> dict[str, object]:
    """The ``data`` of a successful answer (``{}`` when absent).

    With a gateway key the signature must verify (else BadSignature); without one (Basic-auth
    mode) it is not checked. ``code != "0"`` raises ProviderRejected.
    """
    answer = parse_json(body)
    if answer is None:
        raise OutcomeUnknown("CodePay answered something that is not a JSON object")
    code = str(answer.get("code", ""))
    if gateway_key is not None and not signing.verify(answer, gateway_key):
        # What it said is kept for the log (never the signature): an unsigned refusal
        # explains itself here, though it is not believed.
        said = str(answer.get("msg") or "")[:120]
        raise BadSignature("CodePay's answer does not carry a valid gateway signature "
                           f"(it said code {code[:16]!r}, msg {said!r})")
    if code != "0":
        msg = str(answer.get("msg") or "refused")
        raise ProviderRejected(f"CodePay refused: {msg}", provider_code=code or None)
    data = answer.get("data")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise OutcomeUnknown("CodePay's answer has a data field that is not an object")
    return data


def is_duplicate(exc: ProviderRejected) -> bool:
    """Whether a refusal says the ``merchant_order_no`` was already used."""
    return _says(exc, DUPLICATE_CODES, DUPLICATE_WORDS)


def is_not_found(exc: ProviderRejected) -> bool:
    """Whether a refusal says the gateway has no such order."""
    return _says(exc, NOT_FOUND_CODES, NOT_FOUND_WORDS)


def _says(exc: ProviderRejected, codes: frozenset[str], words: tuple[str, ...]) -> bool:
    if exc.provider_code in codes:
        return True
    text = exc.message.lower()
    return any(word in text for word in words)


def parse_create_response(body: bytes, order: PaymentOrder, *,
                          gateway_key: RSAPublicKey | None) -> ProviderReport:
    """The first report of a create: PENDING and closable, with ``trans_no`` and whether the
    terminal is online. A duplicate ``merchant_order_no`` refusal is OutcomeUnknown."""
    try:
        data = parse_response(body, gateway_key=gateway_key)
    except ProviderRejected as exc:
        if is_duplicate(exc):
            raise OutcomeUnknown(f"CodePay already has order {order.order_no!r}: query it",
                                 provider_code=exc.provider_code) from exc
        raise
    return ProviderReport(order_no=order.order_no, outcome=Outcome.PENDING,
                          provider_ref=_text(data.get("trans_no")), closable=True,
                          terminal_online=_online(data.get("terminal_online_status")))


def parse_query_response(body: bytes, order: PaymentOrder, *,
                         gateway_key: RSAPublicKey | None) -> ProviderReport:
    """The report of an ``order.query``; NOT_FOUND when the gateway has no such order."""
    try:
        data = parse_response(body, gateway_key=gateway_key)
    except ProviderRejected as exc:
        if is_not_found(exc):
            return ProviderReport(order_no=order.order_no, outcome=Outcome.NOT_FOUND,
                                  provider_code=exc.provider_code, message=exc.message)
        raise
    return report_from_data(data, order.order_no, order.currency)


_OUTCOMES: Final = {
    TransStatus.CREATED: Outcome.PENDING, TransStatus.IN_PROGRESS: Outcome.PENDING,
    TransStatus.FAILED: Outcome.DECLINED, TransStatus.SUCCESS: Outcome.APPROVED,
    TransStatus.CANCELLED: Outcome.CANCELLED,
}


def report_from_data(data: Mapping[str, object], order_no: str,
                     currency: str | None) -> ProviderReport:
    """Map a query's or notification's fields onto a ProviderReport.

    ``trans_status`` 9 → PENDING (closable), 0 → PENDING, 1 → DECLINED (``trans_error_code`` as
    provider_code), 2 → APPROVED, 3 → CANCELLED; anything else is OutcomeUnknown. The amount is
    ``order_amount`` (without tip) in minor units of ``price_currency`` (else ``currency``), or
    None when missing, not exact or of no known currency. The card brand is ``pay_method_id``
    (e.g. ``Visa``); the seed shows no masked card number, so ``card_last4`` stays None.
    """
    status = _status(data.get("trans_status"))
    if status is None:
        raise OutcomeUnknown(f"CodePay gave an unknown trans_status {data.get('trans_status')!r}")
    declined = status is TransStatus.FAILED
    return ProviderReport(
        order_no=order_no,
        outcome=_OUTCOMES[status],
        provider_ref=_text(data.get("trans_no")),
        amount=_minor(data.get("order_amount"), _text(data.get("price_currency")) or currency),
        closable=status is TransStatus.CREATED,
        auth_no=_text(data.get("auth_no")),
        card_brand=_text(data.get("pay_method_id")),
        provider_code=_text(data.get("trans_error_code")) if declined else None,
        message=_text(data.get("trans_error_msg")) if declined else None,
        terminal_online=_online(data.get("terminal_online_status")),
    )


def parse_notification(body: bytes, *, gateway_key: RSAPublicKey | None,
                       merchant_no: str) -> ProviderReport:
    """Verify and read one payment / refund result notification (a flat signed object).

    The signature covers whatever top-level fields arrive. NotificationRejected when there is
    no gateway key to check with, the signature is bad or missing, the body is not a JSON
    object, it is for another merchant, or it lacks ``merchant_order_no`` / a known status.
    """
    if gateway_key is None:
        raise NotificationRejected("no CodePay gateway key configured: cannot verify")
    fields = parse_json(body)
    if fields is None:
        fields = _parse_form(body)
    if fields is None:
        raise NotificationRejected("CodePay notification is neither a JSON object nor a form")
    if not signing.verify(fields, gateway_key):
        raise NotificationRejected("CodePay notification signature does not verify")
    other = fields.get("merchant_no")
    if other is not None and str(other) != merchant_no:
        raise NotificationRejected("CodePay notification for another merchant")
    order_no = _text(fields.get("merchant_order_no"))
    if order_no is None:
        raise NotificationRejected("CodePay notification without merchant_order_no")
    try:
        return report_from_data(fields, order_no, None)
    except OutcomeUnknown as exc:
        raise NotificationRejected(exc.message) from exc


def _parse_form(body: bytes) -> dict[str, object] | None:
    """A form-encoded notification (``a=1&b=2``) as text fields, or None if it is not one.

    Seed 003 does not show the notification's encoding; JSON is expected, a form is accepted
    too (the signature is checked the same way over the fields as they arrive)."""
    try:
        pairs = urllib.parse.parse_qsl(body.decode("utf-8"), keep_blank_values=True,
                                       strict_parsing=True)
    except (UnicodeDecodeError, ValueError):
        return None
    fields: dict[str, object] = dict(pairs)
    return fields if pairs and len(fields) == len(pairs) else None


def notification_answer_body(ok: bool) -> bytes:
    """The plain-text answer the gateway expects: ``success`` (else ``fail``, so it retries)."""
    return b"success" if ok else b"fail"


def plain_data(data: Mapping[str, object]) -> dict[str, object]:
    """``data`` with every Decimal turned back into its exact text (JSON-safe, no floats)."""
    return {k: _plain(v) for k, v in data.items()}


def _plain(value: object) -> object:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _text(value: object) -> str | None:
    if value is None or value == "" or isinstance(value, (dict, list, bool)):
        return None
    return str(value)


def _online(value: object) -> bool | None:
    """``terminal_online_status`` ("online" / "offline"; a boolean is accepted too)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("online", "offline"):
        return value.lower() == "online"
    return None


def _status(value: object) -> TransStatus | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        # ASCII digits only: str.isdigit() also takes "²", which int() refuses.
        if _STATUS_TEXT.fullmatch(value) is None:
            return None
        value = int(value)
    if isinstance(value, int):
        try:
            return TransStatus(value)
        except ValueError:
            return None
    return None


def _minor(value: object, currency: str | None) -> int | None:
    if value is None or isinstance(value, bool) or currency is None:
        return None
    text = str(value)
    try:
        return parse_amount(text, currency)
    except AmountError:
        pass
    # The gateway may write "12.3" for 12.30 or "100.00" for JPY 100: accept any exact form.
    try:
        number = Decimal(text)
        # Not a sum of money: infinite, or more whole digits than any amount (the int of
        # "1e999990" would take half a minute to build).
        if not number.is_finite() or number.adjusted() >= _MAX_WHOLE_DIGITS:
            return None
        scaled = number.scaleb(exponent(currency))
    except (ArithmeticError, AmountError):
        return None
    if scaled != scaled.to_integral_value() or scaled < 0:
        return None
    return int(scaled)


def open_batch_figures(data: Mapping[str, object], currency: str | None) -> BatchFigures:
    """The count and total (minor units of ``currency``) of a Get Open Batch answer's
    ``data`` (``{"count": 3, "total_amount": "12.30"}``); None figures when it states none.
    Without a currency, the answer's ``price_currency`` (else USD) is assumed."""
    cur = currency or str(data.get("price_currency") or "USD")
    if cur not in money.CURRENCIES:
        return BatchFigures(currency=cur, count=None, total=None, detail=data)
    try:
        count = int(str(data["count"]))
        total = Decimal(str(data["total_amount"])) * 10 ** money.exponent(cur)
    except (KeyError, ValueError, InvalidOperation):
        return BatchFigures(currency=cur, count=None, total=None, detail=data)
    if total != total.to_integral_value():
        return BatchFigures(currency=cur, count=None, total=None, detail=data)
    return BatchFigures(currency=cur, count=count, total=int(total), detail=data)
