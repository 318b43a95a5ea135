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

The card lifecycle (seed: "Create Order", "Submit Order Refund", "Query Refund", "Tip
Adjustment", "CodePay Hosted Checkout", "Cancel Order"): :func:`route` says which API carries a
:class:`~posbridge.providers.base.PaymentOrder` and :func:`trans_type_for` which ``trans_type``
a Create Order sends (the table is :data:`TRANS_TYPES`). :func:`order_problem` names what
CodePay would refuse in an order before anything is sent.

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
    "CHECKOUT",
    "CLOSE",
    "CREATE",
    "DEFAULT_OPEN_BATCH_METHOD",
    "DUPLICATE_CODES",
    "DUPLICATE_WORDS",
    "MAX_CHECKOUT_EXPIRES_S",
    "MAX_DESCRIPTION",
    "MAX_REFUND_DESCRIPTION",
    "NOT_FOUND_CODES",
    "NOT_FOUND_WORDS",
    "ON_SCREEN_TIP_TYPES",
    "ORDER_NO",
    "ORIGINAL_TYPES",
    "QUERY",
    "RECEIVING_APPLICATION",
    "REFUND_QUERY",
    "REFUND_SUBMIT",
    "REVOKE",
    "TIP_ADJUST",
    "TIP_ADJUSTMENT_MODES",
    "TRANS_TYPES",
    "Route",
    "SignType",
    "TipAdjustmentMode",
    "TransStatus",
    "TransType",
    "batch_close_body",
    "check_order_no",
    "checkout_body",
    "close_body",
    "create_body",
    "dumps",
    "envelope",
    "is_duplicate",
    "is_not_found",
    "notification_answer_body",
    "open_batch_body",
    "order_problem",
    "parse_checkout_response",
    "parse_create_response",
    "parse_json",
    "parse_notification",
    "parse_query_response",
    "parse_refund_submit_response",
    "parse_response",
    "parse_tip_adjustment_response",
    "plain_data",
    "query_body",
    "query_trans_types",
    "refund_query_body",
    "refund_submit_body",
    "report_from_data",
    "revoke_body",
    "route",
    "timestamp_ms",
    "tip_adjustment_body",
    "tip_adjustment_from_original",
    "trans_type_for",
]

CREATE: Final = "wisehub.cloud.pay.order"
CLOSE: Final = "wisehub.cloud.pay.close"
QUERY: Final = "order.query"
BATCH_CLOSE: Final = "batch.close"
REFUND_SUBMIT: Final = "order.refund.submit"  # seed: "Submit Order Refund" (no card)
REFUND_QUERY: Final = "order.refund.query"  # seed: "Query Refund"
TIP_ADJUST: Final = "tip.adjustment"  # seed: "Tip Adjustment" (merchant_order_no form)
CHECKOUT: Final = "pay.checkout"  # seed: "CodePay Hosted Checkout" (pay-by-link)
REVOKE: Final = "order.revoker"  # seed: "Cancel Order" (QR and online orders only)
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
#: Submit Order Refund: ``description`` "<= 64 characters" (the reason for the refund).
MAX_REFUND_DESCRIPTION: Final = 64
#: CodePay Hosted Checkout: "Maximum expiration time is 7 days".
MAX_CHECKOUT_EXPIRES_S: Final = 7 * 24 * 3600
#: ``notify_url`` / ``return_url``: "<= 256 characters".
MAX_URL: Final = 256

DUPLICATE_CODES: Final = frozenset({"ORDER_DUPLICATE"})
DUPLICATE_WORDS: Final = ("duplicate", "repeat", "already exist")
NOT_FOUND_CODES: Final = frozenset({"ORDER_NOT_EXIST"})
NOT_FOUND_WORDS: Final = ("not exist", "not found", "no such order")


class TransType(enum.IntEnum):
    """``trans_type`` of Create Order (only those the bridge sends; 12, cash withdrawal, is
    not one of them)."""

    SALE = 1
    VOID = 2
    REFUND = 3
    PREAUTH = 4
    PREAUTH_CANCEL = 5
    COMPLETION = 6
    COMPLETION_CANCEL = 7  # the void of a completion
    COMPLETION_REFUND = 8
    CASHBACK = 11  # a sale with cash back: order amount + cash back = transaction amount


#: Create Order: "when trans_type=1, 3, 4, this parameter [on_screen_tip] can be set".
ON_SCREEN_TIP_TYPES: Final = frozenset({TransType.SALE, TransType.REFUND, TransType.PREAUTH})

#: The trans_types that name their original by ``orig_merchant_order_no``. The seed says it
#: is "required for trans_type = 2, 3, 6" and PROVIDERS.md that voids, refunds and
#: completions need it. A pre-auth cancel (5), a completion void (7) and a completion refund
#: (8) act on one original transaction just as 2, 3 and 6 do, and Create Order has no other
#: field that could name it: our reading is that they address it the same way.
ORIGINAL_TYPES: Final = frozenset({TransType.VOID, TransType.REFUND, TransType.PREAUTH_CANCEL,
                                   TransType.COMPLETION, TransType.COMPLETION_CANCEL,
                                   TransType.COMPLETION_REFUND})

#: (kind, the original's kind) -> trans_type of Create Order. A SALE with cash back is 11
#: (see :func:`trans_type_for`); an original of unknown kind is read as a sale (a 1.0 record).
TRANS_TYPES: Final[Mapping[tuple[TxnKind, TxnKind | None], TransType]] = {
    (TxnKind.SALE, None): TransType.SALE,
    (TxnKind.PREAUTH, None): TransType.PREAUTH,
    (TxnKind.VOID, None): TransType.VOID,
    (TxnKind.VOID, TxnKind.SALE): TransType.VOID,
    (TxnKind.VOID, TxnKind.COMPLETION): TransType.COMPLETION_CANCEL,
    (TxnKind.REFUND, None): TransType.REFUND,
    (TxnKind.REFUND, TxnKind.SALE): TransType.REFUND,
    (TxnKind.REFUND, TxnKind.COMPLETION): TransType.COMPLETION_REFUND,
    (TxnKind.PREAUTH_CANCEL, None): TransType.PREAUTH_CANCEL,
    (TxnKind.PREAUTH_CANCEL, TxnKind.PREAUTH): TransType.PREAUTH_CANCEL,
    (TxnKind.COMPLETION, None): TransType.COMPLETION,
    (TxnKind.COMPLETION, TxnKind.PREAUTH): TransType.COMPLETION,
}

#: What ``tip_adjustment_amount`` means (the seed does not say): the new total tip, or the
#: change to the tip. A configuration switch (``[codepay] tip_adjustment_amount``), "total"
#: by default: CodePay's own public clients send one tip amount for the original's
#: merchant_order_no as the cashier types it (codepay-us/codepay-register-sdk-android,
#: TipAdjustmentActivity; codepay-us/gateway-api-sdk-java, TipAdjustmentRequest), the seed's
#: other Tip Adjustment section calls its field the "tip amount to be added or modified", and
#: ECR Hub integrations describe the call as setting or changing the tip.
TipAdjustmentMode = Literal["total", "delta"]
TIP_ADJUSTMENT_MODES: Final[tuple[TipAdjustmentMode, ...]] = ("total", "delta")


class Route(enum.Enum):
    """Which CodePay API carries an order."""

    CREATE_ORDER = CREATE  # pushed to a terminal (trans_type 1-8, 11)
    REFUND_SUBMIT = REFUND_SUBMIT  # a refund to the original card, no terminal
    TIP_ADJUST = TIP_ADJUST  # a new tip on an approved sale or completion
    CHECKOUT = CHECKOUT  # the customer pays on CodePay's hosted page


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


def route(order: PaymentOrder) -> Route:
    """The API that carries ``order``: a refund with ``card_present=False`` goes to Submit
    Order Refund, a TIP_ADJUST to Tip Adjustment, a CHECKOUT_QR to the hosted checkout; every
    other kind is a Create Order pushed to a terminal."""
    if order.kind is TxnKind.REFUND and not order.card_present:
        return Route.REFUND_SUBMIT
    if order.kind is TxnKind.TIP_ADJUST:
        return Route.TIP_ADJUST
    if order.kind is TxnKind.CHECKOUT_QR:
        return Route.CHECKOUT
    return Route.CREATE_ORDER


def trans_type_for(order: PaymentOrder) -> TransType:
    """The Create Order ``trans_type`` of ``order`` (:data:`TRANS_TYPES`); a SALE with
    ``cashback`` is 11. ProviderRejected for a kind no terminal does."""
    trans_type = TRANS_TYPES.get((order.kind, order.orig_kind))
    if trans_type is None:
        orig = f" of a {order.orig_kind.value}" if order.orig_kind else ""
        raise ProviderRejected(f"CodePay terminals do not do a {order.kind.value}{orig}")
    if trans_type is TransType.SALE and order.cashback > 0:
        return TransType.CASHBACK
    return trans_type


def query_trans_types(order: PaymentOrder) -> frozenset[int]:
    """The ``trans_type`` values a query may state for a terminal order: the one it was sent
    with; for a void or refund whose original's kind is not known, either of its pair (2 or 7,
    3 or 8)."""
    if order.orig_kind is None and order.kind in (TxnKind.VOID, TxnKind.REFUND):
        kinds = (TxnKind.SALE, TxnKind.COMPLETION)
        return frozenset(int(TRANS_TYPES[(order.kind, k)]) for k in kinds)
    return frozenset({int(trans_type_for(order))})


def order_problem(order: PaymentOrder) -> tuple[str, str] | None:
    """What CodePay would refuse in ``order``, as (the PaymentOrder field, the problem), or
    None. The adapter's ``check`` turns it into -32602 naming the field; the body builders
    into ProviderRejected (nothing is sent)."""
    if not ORDER_NO.fullmatch(order.order_no):
        return "order_no", "must be 1-32 of letters, digits and _-|*@ for CodePay"
    if order.cashback < 0:
        return "cashback", "must not be negative"
    if order.cashback and order.kind is not TxnKind.SALE:
        return "cashback", "only a sale can hand out cash back (trans_type 11)"
    which = route(order)
    if which is Route.CHECKOUT:
        if order.tip:
            return "tip", "the hosted checkout has no tip"
        if order.on_screen_tip:
            return "on_screen_tip", "the hosted checkout has no terminal"
        if order.expires_s > MAX_CHECKOUT_EXPIRES_S:
            return "expires_s", "a hosted checkout expires after at most 7 days"
    elif which is Route.TIP_ADJUST:
        if order.tip < 0:
            return "tip", "the new total tip must not be negative"
    elif order.on_screen_tip and which is Route.CREATE_ORDER:
        try:
            trans_type = trans_type_for(order)
        except ProviderRejected:
            return None  # not a terminal kind: create_body says so
        if trans_type not in ON_SCREEN_TIP_TYPES:
            return "on_screen_tip", ("CodePay takes an on-screen tip for a sale, a refund or a "
                                     "pre-auth only (not with cash back)")
        if order.tip:
            return "tip", "the customer enters the tip on the terminal: give none"
    return None


def _refuse_problems(order: PaymentOrder) -> None:
    problem = order_problem(order)
    if problem is not None:
        field, text = problem
        raise ProviderRejected(f"{field}: {text}")


def _original(order: PaymentOrder) -> str:
    if not order.orig_order_no:
        raise ProviderRejected(f"a {order.kind.value} needs the original order number")
    return check_order_no(order.orig_order_no, "orig_merchant_order_no")


def _description(order: PaymentOrder, limit: int, text: str = "") -> str:
    """The order's description (else ``text``, else one made of its kind and number), cut
    to ``limit`` characters (the seed's limit for the method)."""
    return (order.description or text or f"{order.kind.value} {order.order_no}")[:limit]


def create_body(
    order: PaymentOrder,
    *,
    merchant_no: str,
    store_no: str | None,
    notify_url: str | None,
    expires_s: int,
) -> dict[str, object]:
    """Business fields of ``wisehub.cloud.pay.order`` for a terminal order (trans_type by
    :func:`trans_type_for`).

    ``order_amount`` is the order's amount without tip (for a completion: the final amount
    to capture), ``tip_amount`` is sent only when non-zero, ``on_screen_tip`` only when true
    (trans_type 1, 3, 4), ``cashback_amount`` only for trans_type 11, and
    ``orig_merchant_order_no`` for every trans_type of :data:`ORIGINAL_TYPES`.
    """
    _refuse_problems(order)
    trans_type = trans_type_for(order)
    if not order.terminal_sn:
        raise ProviderRejected("a CodePay order needs a terminal_sn (a void, cancel, completion "
                               "or refund: the original's)")
    orig = _original(order) if trans_type in ORIGINAL_TYPES else None
    return {
        "merchant_no": merchant_no,
        "store_no": store_no or None,
        "terminal_sn": order.terminal_sn,
        "message_receiving_application": RECEIVING_APPLICATION,
        "price_currency": order.currency,
        "order_amount": format_amount(order.amount, order.currency),
        "tip_amount": format_amount(order.tip, order.currency) if order.tip else None,
        "on_screen_tip": True if order.on_screen_tip else None,
        "cashback_amount": (format_amount(order.cashback, order.currency)
                            if trans_type is TransType.CASHBACK else None),
        "trans_type": int(trans_type),
        "merchant_order_no": check_order_no(order.order_no),
        "orig_merchant_order_no": orig,
        "description": _description(order, MAX_DESCRIPTION),
        "notify_url": notify_url or None,
        "expires": expires_s,
        "api_version": API_VERSION,
    }


def refund_submit_body(order: PaymentOrder, *, merchant_no: str,
                       notify_url: str | None) -> dict[str, object]:
    """Business fields of ``order.refund.submit`` (Submit Order Refund): a refund of
    ``order.amount`` to the card of the original, without the card or a terminal.

    The original is named by ``orig_merchant_order_no`` (the seed takes it or
    ``orig_trans_no``); ``merchant_order_no`` is the refund's own number; ``description``, the
    reason, is cut to 64 characters. The field list says ``order_amount`` (the seed's sample
    body shows ``trans_amount``; the schema is followed).
    """
    _refuse_problems(order)
    return {
        "merchant_no": merchant_no,
        "orig_merchant_order_no": _original(order),
        "merchant_order_no": check_order_no(order.order_no),
        "price_currency": order.currency,
        "order_amount": format_amount(order.amount, order.currency),
        "description": _description(order, MAX_REFUND_DESCRIPTION, "refund"),
        "notify_url": notify_url or None,
    }


def refund_query_body(*, merchant_no: str, merchant_order_no: str) -> dict[str, object]:
    """Business fields of ``order.refund.query`` (Query Refund) by the refund's own number."""
    return {"merchant_no": merchant_no, "merchant_order_no": check_order_no(merchant_order_no)}


def tip_adjustment_body(order: PaymentOrder, *, merchant_no: str,
                        mode: TipAdjustmentMode) -> dict[str, object]:
    """Business fields of ``tip.adjustment`` for a TIP_ADJUST: ``merchant_order_no`` is the
    ORIGINAL sale's or completion's number (the adjustment has none of its own at CodePay).

    ``tip_adjustment_amount`` is the new total tip (``order.tip``) in mode ``"total"``, or the
    change (``order.amount``, which may be negative) in mode ``"delta"``.
    """
    _refuse_problems(order)
    value = order.tip if mode == "total" else order.amount
    return {"merchant_no": merchant_no, "merchant_order_no": _original(order),
            "tip_adjustment_amount": format_amount(value, order.currency)}


def checkout_body(order: PaymentOrder, *, merchant_no: str, store_no: str | None,
                  notify_url: str | None, return_url: str | None,
                  expires_s: int) -> dict[str, object]:
    """Business fields of ``pay.checkout`` (CodePay Hosted Checkout): the customer pays on
    CodePay's page at the answer's ``pay_url``. Never any card data (``pay.merchant.checkout``,
    which takes the card, is not used)."""
    _refuse_problems(order)
    if not 0 < expires_s <= MAX_CHECKOUT_EXPIRES_S:
        raise ProviderRejected("expires: a hosted checkout expires after at most 7 days")
    return {
        "merchant_no": merchant_no,
        "store_no": store_no or None,
        "merchant_order_no": check_order_no(order.order_no),
        "price_currency": order.currency,
        "order_amount": format_amount(order.amount, order.currency),
        "expires": expires_s,
        "description": _description(order, MAX_DESCRIPTION, order.subject),
        "notify_url": notify_url or None,
        "return_url": return_url or None,
    }


def revoke_body(*, merchant_no: str, merchant_order_no: str) -> dict[str, object]:
    """Business fields of ``order.revoker`` (Cancel Order). CodePay closes an unpaid order and
    REFUNDS a paid one, and takes QR and online orders only (not a terminal's card order)."""
    return {"merchant_no": merchant_no, "merchant_order_no": check_order_no(merchant_order_no)}


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


#: Numbers with decimals as Decimal, never float (one decoder for every answer).
_DECODER = json.JSONDecoder(parse_float=Decimal)


def parse_json(body: bytes) -> dict[str, object] | None:
    """A JSON object with numbers as Decimal / int, or None if ``body`` is not one (or nests
    deeper than :data:`~posbridge.providers.json_depth.MAX_DEPTH`)."""
    try:
        value = _DECODER.decode(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError, ArithmeticError):
        # ArithmeticError: a number whose exponent Decimal cannot hold (1e-99999999999999999999)
        return None
    return value if isinstance(value, dict) and not too_deep(value, text=body) else None


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


def _created(body: bytes, order: PaymentOrder,
             gateway_key: RSAPublicKey | None) -> dict[str, object]:
    """The ``data`` of an answer to a request that creates an order; a refusal as a
    *duplicate* ``merchant_order_no`` is OutcomeUnknown (an earlier one of ours arrived)."""
    try:
        return parse_response(body, gateway_key=gateway_key)
    except ProviderRejected as exc:
        if is_duplicate(exc):
            raise OutcomeUnknown(f"CodePay already has order {order.order_no!r}: query it",
                                 provider_code=exc.provider_code) from exc
        raise


def parse_create_response(body: bytes, order: PaymentOrder, *,
                          gateway_key: RSAPublicKey | None) -> ProviderReport:
    """The first report of a create: PENDING and closable, with ``trans_no`` and whether the
    terminal is online. A duplicate ``merchant_order_no`` refusal is OutcomeUnknown."""
    data = _created(body, order, gateway_key)
    return ProviderReport(order_no=order.order_no, outcome=Outcome.PENDING,
                          provider_ref=_text(data.get("trans_no")), closable=True,
                          terminal_online=_online(data.get("terminal_online_status")))


def parse_refund_submit_response(body: bytes, order: PaymentOrder, *,
                                 gateway_key: RSAPublicKey | None) -> ProviderReport:
    """The first report of Submit Order Refund. The seed's answer carries ``trans_no`` and
    ``trans_amount`` but no status ("refunds may not be immediate": Query Refund tells): then
    PENDING; a ``trans_status`` when one is stated. Never closable. A duplicate
    ``merchant_order_no`` is OutcomeUnknown."""
    data = _created(body, order, gateway_key)
    if data.get("trans_status") is not None:
        return report_from_data(data, order.order_no, order.currency, closable=False)
    return ProviderReport(order_no=order.order_no, outcome=Outcome.PENDING,
                          provider_ref=_text(data.get("trans_no")),
                          amount=_minor(data.get("trans_amount"), order.currency))


def parse_checkout_response(body: bytes, order: PaymentOrder, *,
                            gateway_key: RSAPublicKey | None) -> ProviderReport:
    """The first report of CodePay Hosted Checkout: PENDING, closable, ``qr_text`` the answer's
    ``pay_url`` exactly as sent. The answer has no ``trans_no`` (queries by
    ``merchant_order_no`` give it). An answer without ``pay_url`` is OutcomeUnknown (the
    order may exist; nobody can pay it), a duplicate ``merchant_order_no`` too."""
    data = _created(body, order, gateway_key)
    pay_url = data.get("pay_url")
    if not isinstance(pay_url, str) or not pay_url:
        raise OutcomeUnknown("CodePay's checkout answer has no pay_url")
    return ProviderReport(order_no=order.order_no, outcome=Outcome.PENDING,
                          provider_ref=_text(data.get("trans_no")), closable=True,
                          qr_text=pay_url)


def parse_tip_adjustment_response(body: bytes, order: PaymentOrder, *,
                                  gateway_key: RSAPublicKey | None) -> ProviderReport:
    """The report of a Tip Adjustment, which answers at once: ``code`` "0" is APPROVED (a
    ``data.trans_status`` other than 2, when stated, is mapped instead); a refusal is
    ProviderRejected. An approved report states ``tip`` = the new total tip (``order.tip``,
    which the request set); ``amount`` is not stated (the answer names none)."""
    data = parse_response(body, gateway_key=gateway_key)
    outcome = Outcome.APPROVED
    if data.get("trans_status") is not None:
        outcome = report_from_data(data, order.order_no, order.currency).outcome
    return ProviderReport(order_no=order.order_no, outcome=outcome,
                          provider_ref=_text(data.get("trans_no")),
                          tip=order.tip if outcome is Outcome.APPROVED else None,
                          provider_code=_text(data.get("trans_error_code")),
                          message=_text(data.get("trans_error_msg")))


def tip_adjustment_from_original(original: ProviderReport, order: PaymentOrder, *,
                                 mode: TipAdjustmentMode) -> ProviderReport:
    """Where a TIP_ADJUST whose answer was lost stands, from an ``order.query`` of its
    ORIGINAL (a tip adjustment has no number of its own at CodePay).

    The original's stated tip equal to the new total (``order.tip``) is APPROVED. Otherwise
    the adjustment did not happen: NOT_FOUND in mode ``"total"`` (sending it again sets the
    same total: harmless), OutcomeUnknown in mode ``"delta"`` (a resend would add the change
    twice if an adjustment of ours is still to come, so nothing may be concluded).
    """
    stated = original.tip or 0
    if original.outcome is Outcome.APPROVED and stated == order.tip:
        return ProviderReport(order_no=order.order_no, outcome=Outcome.APPROVED, tip=stated)
    if mode == "delta":
        raise OutcomeUnknown(f"the tip of {order.orig_order_no!r} is not the new total; a "
                             "change (delta) may not be sent again blindly")
    return ProviderReport(order_no=order.order_no, outcome=Outcome.NOT_FOUND,
                          message=f"the tip of {order.orig_order_no!r} is not the new total")


def parse_query_response(body: bytes, order: PaymentOrder, *,
                         gateway_key: RSAPublicKey | None,
                         trans_types: frozenset[int] | None = None,
                         closable: bool = True) -> ProviderReport:
    """The report of an ``order.query`` or ``order.refund.query``; NOT_FOUND when the gateway
    has no such order. ``trans_types``: the ``trans_type`` values the order may have; an
    answer stating another one is about another transaction (OutcomeUnknown). ``closable``
    False: the order can never be closed (a refund without the card)."""
    try:
        data = parse_response(body, gateway_key=gateway_key)
    except ProviderRejected as exc:
        if is_not_found(exc):
            return ProviderReport(order_no=order.order_no, outcome=Outcome.NOT_FOUND,
                                  provider_code=exc.provider_code, message=exc.message)
        raise
    stated = _status_int(data.get("trans_type"))
    if trans_types is not None and stated is not None and stated not in trans_types:
        raise OutcomeUnknown(f"CodePay reports trans_type {stated} for {order.order_no!r}, "
                             f"expected one of {sorted(trans_types)}")
    return report_from_data(data, order.order_no, order.currency, closable=closable)


_OUTCOMES: Final = {
    TransStatus.CREATED: Outcome.PENDING, TransStatus.IN_PROGRESS: Outcome.PENDING,
    TransStatus.FAILED: Outcome.DECLINED, TransStatus.SUCCESS: Outcome.APPROVED,
    TransStatus.CANCELLED: Outcome.CANCELLED,
}


def report_from_data(data: Mapping[str, object], order_no: str,
                     currency: str | None, *, closable: bool = True) -> ProviderReport:
    """Map a query's or notification's fields onto a ProviderReport.

    ``trans_status`` 9 → PENDING (closable unless ``closable`` is False), 0 → PENDING, 1 →
    DECLINED (``trans_error_code`` as provider_code), 2 → APPROVED, 3 → CANCELLED; anything
    else is OutcomeUnknown. Amounts are minor units of ``price_currency`` (else
    ``currency``), None when missing, not exact or of no known currency: ``amount`` is
    ``order_amount`` (without tip or cash back; the refund answers that state only
    ``trans_amount`` give it less the stated tip and cash back), ``tip`` is ``tip_amount``
    (the tip the customer entered on the terminal comes back here), ``cashback`` is
    ``cashback_amount``. The card brand is ``pay_method_id`` (e.g. ``Visa``); the seed shows
    no masked card number, so ``card_last4`` stays None.
    """
    status = _status(data.get("trans_status"))
    if status is None:
        raise OutcomeUnknown(f"CodePay gave an unknown trans_status {data.get('trans_status')!r}")
    declined = status is TransStatus.FAILED
    cur = _text(data.get("price_currency")) or currency
    tip = _minor(data.get("tip_amount"), cur)
    cashback = _minor(data.get("cashback_amount"), cur)
    amount = _minor(data.get("order_amount"), cur)
    if amount is None and data.get("order_amount") is None:
        whole = _minor(data.get("trans_amount"), cur)
        if whole is not None and whole >= (tip or 0) + (cashback or 0):
            amount = whole - (tip or 0) - (cashback or 0)
    return ProviderReport(
        order_no=order_no,
        outcome=_OUTCOMES[status],
        provider_ref=_text(data.get("trans_no")),
        amount=amount,
        closable=closable and status is TransStatus.CREATED,
        auth_no=_text(data.get("auth_no")),
        card_brand=_text(data.get("pay_method_id")),
        provider_code=_text(data.get("trans_error_code")) if declined else None,
        message=_text(data.get("trans_error_msg")) if declined else None,
        terminal_online=_online(data.get("terminal_online_status")),
        tip=tip,
        cashback=cashback,
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
    number = _status_int(value)
    if number is None:
        return None
    try:
        return TransStatus(number)
    except ValueError:
        return None


def _status_int(value: object) -> int | None:
    """A small whole number stated as a JSON integer or as ASCII digits, else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        # ASCII digits only: str.isdigit() also takes "²", which int() refuses.
        if _STATUS_TEXT.fullmatch(value) is None:
            return None
        return int(value)
    return value if isinstance(value, int) else None


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
