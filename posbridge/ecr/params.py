"""Per-method parameter validation for the ECR protocol (pure).

:func:`parse_params` turns the ``params`` object of one call into a frozen dataclass, or
raises a :class:`~posbridge.errors.RequestError`: -32601 for an unknown method, -32602 with
``field`` naming the offending parameter for everything else. The rules are those of
``ECR-PROTOCOL.md``:

* ``amount`` and ``tip`` are decimal strings in major units; a JSON number is refused. At most
  the currency's ISO 4217 exponent of decimals; zero (for ``amount``), negative, malformed and
  more-than-``max_amount`` values are refused. ``max_amount`` bounds a whole payment, so for a
  sale ``amount + tip`` must not exceed it.
* ``currency`` is an upper-case ISO 4217 alphabetic code.
* ``order_no`` is 1-32 characters of ``[A-Za-z0-9_-|*@]``; a ``qr_sale`` goes to UCanPay, whose
  ``outTradeNo`` allows letters and digits only, so there the order number is stricter.
* Unknown parameters are refused and named. A JSON ``null`` counts as "not given", so an
  optional parameter may be sent as null, a required one may not.
* Text is bounded (in characters) and may not contain control characters: it goes on to
  providers, receipts and customer displays. Provider-specific limits (UCanPay's 30-character
  ``subject``) are checked by the provider adapters, not here.

``refund.amount`` stays a string: its currency is the original transaction's, which only the
engine knows; the engine parses it with :func:`posbridge.money.parse_amount`. Here it is checked
against the widest ISO 4217 exponent (4), for sign, shape, zero and ``max_amount``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_FLOOR, Decimal, InvalidOperation
from typing import ClassVar, Final

from posbridge.ecr.protocol import METHODS, invalid_params, method_not_found
from posbridge.errors import ConfigError
from posbridge.lifecycle import State
from posbridge.money import CURRENCIES, AmountError, exponent, format_amount, parse_amount

ORDER_NO_RE: Final = re.compile(r"[A-Za-z0-9_\-|*@]{1,32}")
UCANPAY_ORDER_NO_RE: Final = re.compile(r"[A-Za-z0-9]{1,32}")
_CURRENCY_RE: Final = re.compile(r"[A-Z]{3}")
_CONTROL_RE: Final = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CURSOR_RE: Final = re.compile(r"[\x21-\x7e]{1,256}")
_RFC3339_RE: Final = re.compile(
    r"(\d{4}-\d{2}-\d{2})[Tt](\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})"
)

MAX_TOKEN_CHARS: Final = 256
MAX_PIN_CHARS: Final = 64
MAX_NAME_CHARS: Final = 64  # terminal and display names / serial numbers
MAX_DESCRIPTION_CHARS: Final = 128  # CodePay's ``description`` limit
MAX_SUBJECT_CHARS: Final = 128
MAX_BODY_CHARS: Final = 256
MAX_TIMEOUT_S: Final = 600.0
LIST_LIMIT_DEFAULT: Final = 50
LIST_LIMIT_MAX: Final = 500
MAX_SEQ: Final = 2**63 - 1  # SQLite INTEGER

# The ISO 4217 currency with the most decimals: a refund amount is shape-checked against it.
_WIDEST_CURRENCY: Final = max(sorted(CURRENCIES), key=exponent)


# -- parameter objects ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuthParams:
    method: ClassVar[str] = "auth"
    token: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class PingParams:
    method: ClassVar[str] = "ping"


@dataclass(frozen=True, slots=True)
class SaleParams:
    """A card sale. ``amount`` and ``tip`` are minor units of ``currency``."""

    method: ClassVar[str] = "sale"
    terminal: str
    order_no: str
    amount: int
    currency: str
    tip: int = 0
    description: str = ""
    wait: bool = True
    timeout_s: float | None = None


@dataclass(frozen=True, slots=True)
class VoidParams:
    method: ClassVar[str] = "void"
    order_no: str
    orig_order_no: str
    terminal: str | None = None
    manager_pin: str | None = field(default=None, repr=False)
    wait: bool = True
    timeout_s: float | None = None


@dataclass(frozen=True, slots=True)
class RefundParams:
    """``amount`` is the register's decimal string; its currency is the original's."""

    method: ClassVar[str] = "refund"
    order_no: str
    orig_order_no: str
    amount: str
    description: str = ""
    manager_pin: str | None = field(default=None, repr=False)
    wait: bool = True
    timeout_s: float | None = None


@dataclass(frozen=True, slots=True)
class QrSaleParams:
    """A wallet QR sale. ``print_slip`` is the wire's ``print``; ``terminal`` is an extension:
    the lane whose open batch the sale counts in (no terminal: the QR provider's own batch)."""

    method: ClassVar[str] = "qr_sale"
    order_no: str
    amount: int
    currency: str
    subject: str
    body: str = ""
    display: str | None = None
    print_slip: bool = False
    wait: bool = True
    timeout_s: float | None = None
    terminal: str | None = None


@dataclass(frozen=True, slots=True)
class CancelParams:
    method: ClassVar[str] = "cancel"
    order_no: str


@dataclass(frozen=True, slots=True)
class StatusParams:
    method: ClassVar[str] = "status"
    order_no: str
    refresh: bool = False


@dataclass(frozen=True, slots=True)
class TransactionsListParams:
    method: ClassVar[str] = "transactions.list"
    terminal: str | None = None
    state: State | None = None
    since: datetime | None = None  # aware, UTC
    limit: int = LIST_LIMIT_DEFAULT
    cursor: str | None = None


@dataclass(frozen=True, slots=True)
class TerminalsListParams:
    method: ClassVar[str] = "terminals.list"


@dataclass(frozen=True, slots=True)
class BatchStatusParams:
    method: ClassVar[str] = "batch.status"
    terminal: str | None = None


@dataclass(frozen=True, slots=True)
class BatchCloseParams:
    method: ClassVar[str] = "batch.close"
    terminal: str
    manager_pin: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class EventsReplayParams:
    method: ClassVar[str] = "events.replay"
    since_seq: int


Params = (
    AuthParams | PingParams | SaleParams | VoidParams | RefundParams | QrSaleParams
    | CancelParams | StatusParams | TransactionsListParams | TerminalsListParams
    | BatchStatusParams | BatchCloseParams | EventsReplayParams
)


# -- the entry points ----------------------------------------------------------------------


def parse_params(method: str, params: object, *, max_amount: str) -> Params:
    """Validate ``params`` (the call's JSON object) for ``method``.

    ``max_amount`` is the configured limit of one payment, a decimal string in major units
    (``"10000.00"``); it is read only by methods that carry amounts, and a malformed one raises
    :class:`~posbridge.errors.ConfigError`. Raises RequestError -32601 for an unknown method and
    -32602 (with ``field``) for any bad parameter.
    """
    parser = _PARSERS.get(method)
    if parser is None:
        raise method_not_found(method)
    if not isinstance(params, Mapping):
        raise invalid_params("params", "must be an object")
    reader = _Reader(params, _WIRE_NAMES[method], max_amount)
    return parser(reader)


def params_fingerprint(params: Params) -> str:
    """A canonical string of the parameters that define a payment, for idempotency.

    Equal for two requests that must map onto the same transaction; different otherwise.
    Everything but ``wait``, ``timeout_s`` and ``manager_pin`` counts (they say how to ask,
    not what to pay), and the method too, so a ``sale`` and a ``qr_sale`` never match.
    A refund's decimal string is normalised (``"5"``, ``"5.0"``, ``"5.00"`` are one amount).
    """
    values: dict[str, object] = {"method": params.method}
    for name, value in asdict(params).items():
        if name in _NOT_DEFINING:
            continue
        if isinstance(params, RefundParams) and name == "amount":
            value = _canonical_decimal(params.amount)
        elif isinstance(value, datetime):
            value = value.isoformat()
        values[name] = value
    return json.dumps(values, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def ucanpay_order_no(order_no: str, *, field: str = "order_no") -> str:
    """``order_no`` if UCanPay accepts it (``outTradeNo``/``outRefundNo``: letters and digits).

    The engine calls this for a refund whose original went to UCanPay; ``qr_sale`` applies it.
    """
    if UCANPAY_ORDER_NO_RE.fullmatch(order_no) is None:
        raise invalid_params(field, "a wallet (UCanPay) order number is letters and digits only")
    return order_no


_NOT_DEFINING: Final = frozenset({"wait", "timeout_s", "manager_pin"})


def _canonical_decimal(text: str) -> str:
    minor = parse_amount(text, _WIDEST_CURRENCY)
    return format_amount(minor, _WIDEST_CURRENCY).rstrip("0").rstrip(".")


# -- reading fields ------------------------------------------------------------------------


class _Reader:
    """Takes the fields out of one ``params`` object; each getter refuses a bad value with
    -32602 naming the field. Unknown fields are refused as soon as the reader is made."""

    def __init__(self, raw: Mapping[object, object], allowed: frozenset[str],
                 max_amount: str) -> None:
        unknown = sorted(str(k)[:40] for k in raw if k not in allowed)
        if unknown:
            raise invalid_params(unknown[0], f"unknown parameter(s): {', '.join(unknown)}")
        self._raw = raw
        self._max_amount = max_amount

    def _value(self, name: str, required: bool) -> object:
        value = self._raw.get(name)
        if value is None and required:
            raise invalid_params(name, "is required")
        return value

    def text(self, name: str, max_chars: int, *, required: bool = False,
             default: str = "") -> str:
        value = self._value(name, required)
        if value is None:
            return default
        if not isinstance(value, str):
            raise invalid_params(name, "must be a string")
        if required and not value:
            raise invalid_params(name, "must not be empty")
        if len(value) > max_chars:
            raise invalid_params(name, f"must be at most {max_chars} characters")
        if _CONTROL_RE.search(value):
            raise invalid_params(name, "must not contain control characters")
        return value

    def optional_text(self, name: str, max_chars: int) -> str | None:
        if self._raw.get(name) is None:
            return None
        return self.text(name, max_chars, required=True)

    def order_no(self, name: str = "order_no") -> str:
        value = self._value(name, True)
        if not isinstance(value, str):
            raise invalid_params(name, "must be a string")
        if ORDER_NO_RE.fullmatch(value) is None:
            raise invalid_params(name, "must be 1-32 characters of A-Z a-z 0-9 _ - | * @")
        return value

    def boolean(self, name: str, default: bool) -> bool:
        value = self._value(name, False)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise invalid_params(name, "must be true or false")
        return value

    def integer(self, name: str, low: int, high: int, *, default: int | None = None) -> int:
        value = self._value(name, default is None)
        if value is None and default is not None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            raise invalid_params(name, "must be an integer")
        if not low <= value <= high:
            raise invalid_params(name, f"must be between {low} and {high}")
        return value

    def timeout(self, name: str = "timeout_s") -> float | None:
        value = self._value(name, False)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise invalid_params(name, "must be a number of seconds")
        if not (math.isfinite(value) and 0 < value <= MAX_TIMEOUT_S):
            raise invalid_params(name, f"must be more than 0 and at most {MAX_TIMEOUT_S:g}")
        return float(value)

    def currency(self, name: str = "currency") -> str:
        value = self._value(name, True)
        if not isinstance(value, str) or _CURRENCY_RE.fullmatch(value) is None:
            raise invalid_params(name, "must be an upper-case ISO 4217 code such as \"USD\"")
        if value not in CURRENCIES:
            raise invalid_params(name, f"{value} is not an ISO 4217 currency")
        return value

    def money(self, name: str, currency: str, *, required: bool, zero_ok: bool) -> int:
        """Minor units of a decimal-string amount; at most :meth:`limit` in ``currency``."""
        value = self._value(name, required)
        if value is None:
            return 0
        try:
            minor = parse_amount(value, currency)
        except AmountError as exc:
            raise invalid_params(name, str(exc)) from None
        if minor == 0 and not zero_ok:
            raise invalid_params(name, "must be more than zero")
        if minor > self.limit(currency):
            raise invalid_params(name, f"must not exceed max_amount {self._max_amount}")
        return minor

    def limit(self, currency: str) -> int:
        """``max_amount`` in minor units of ``currency`` (rounded down)."""
        try:
            limit = Decimal(self._max_amount)
        except InvalidOperation:
            raise ConfigError("max_amount", 'must be a decimal amount such as "10000.00"') from None
        if not limit.is_finite() or limit <= 0:
            raise ConfigError("max_amount", "must be a positive decimal amount")
        return int(limit.scaleb(exponent(currency)).to_integral_value(rounding=ROUND_FLOOR))

    def decimal_text(self, name: str) -> str:
        """A positive amount kept as the register's string; checked against the widest
        ISO 4217 exponent, since the currency is not known here."""
        self.money(name, _WIDEST_CURRENCY, required=True, zero_ok=False)
        value = self._raw[name]
        assert isinstance(value, str)  # money() accepted it, so it is a decimal string
        return value

    def state(self, name: str = "state") -> State | None:
        value = self._value(name, False)
        if value is None:
            return None
        if not isinstance(value, str) or value not in _STATES:
            raise invalid_params(name, f"must be one of {', '.join(sorted(_STATES))}")
        return State(value)

    def timestamp(self, name: str) -> datetime | None:
        """An RFC 3339 date-time with an offset, returned as an aware UTC datetime."""
        value = self._value(name, False)
        if value is None:
            return None
        match = _RFC3339_RE.fullmatch(value) if isinstance(value, str) else None
        if match is None:
            raise invalid_params(name, "must be an RFC 3339 time such as 2024-05-01T09:30:00Z")
        date, time, fraction, offset = match.groups()
        # datetime keeps microseconds: nanosecond digits are cut, which only moves ``since``
        # earlier by less than a microsecond.
        micro = f".{fraction[:6]}" if fraction else ""
        offset = "+00:00" if offset in ("Z", "z") else offset
        try:
            return datetime.fromisoformat(f"{date}T{time}{micro}{offset}").astimezone(UTC)
        except (ValueError, OverflowError):  # OverflowError: in UTC it is before year 1
            raise invalid_params(name, "is not a valid date and time") from None

    def cursor(self, name: str = "cursor") -> str | None:
        value = self._value(name, False)
        if value is None:
            return None
        if not isinstance(value, str) or _CURSOR_RE.fullmatch(value) is None:
            raise invalid_params(name, "must be a cursor returned by transactions.list")
        return value


_STATES: Final = frozenset(s.value for s in State)


# -- one parser per method -----------------------------------------------------------------


def _auth(r: _Reader) -> AuthParams:
    return AuthParams(r.text("token", MAX_TOKEN_CHARS, required=True))


def _sale(r: _Reader) -> SaleParams:
    terminal = r.text("terminal", MAX_NAME_CHARS, required=True)
    order_no = r.order_no()
    currency = r.currency()
    amount = r.money("amount", currency, required=True, zero_ok=False)
    tip = r.money("tip", currency, required=False, zero_ok=True)
    if amount + tip > r.limit(currency):
        raise invalid_params("tip", "amount plus tip must not exceed max_amount")
    return SaleParams(
        terminal=terminal, order_no=order_no, amount=amount, currency=currency, tip=tip,
        description=r.text("description", MAX_DESCRIPTION_CHARS),
        wait=r.boolean("wait", True), timeout_s=r.timeout(),
    )


def _void(r: _Reader) -> VoidParams:
    order_no, orig = _new_and_original(r)
    return VoidParams(order_no=order_no, orig_order_no=orig,
                      terminal=r.optional_text("terminal", MAX_NAME_CHARS),
                      manager_pin=r.optional_text("manager_pin", MAX_PIN_CHARS),
                      wait=r.boolean("wait", True), timeout_s=r.timeout())


def _refund(r: _Reader) -> RefundParams:
    order_no, orig = _new_and_original(r)
    # Shape, sign, zero and max_amount now; the original's exponent later, in the engine.
    amount = r.decimal_text("amount")
    return RefundParams(order_no=order_no, orig_order_no=orig, amount=amount,
                        description=r.text("description", MAX_DESCRIPTION_CHARS),
                        manager_pin=r.optional_text("manager_pin", MAX_PIN_CHARS),
                        wait=r.boolean("wait", True), timeout_s=r.timeout())


def _new_and_original(r: _Reader) -> tuple[str, str]:
    order_no = r.order_no()
    orig = r.order_no("orig_order_no")
    if order_no == orig:
        raise invalid_params("order_no", "a void or refund needs its own new order_no")
    return order_no, orig


def _qr_sale(r: _Reader) -> QrSaleParams:
    order_no = ucanpay_order_no(r.order_no())
    currency = r.currency()
    return QrSaleParams(
        order_no=order_no, currency=currency,
        amount=r.money("amount", currency, required=True, zero_ok=False),
        subject=r.text("subject", MAX_SUBJECT_CHARS, required=True),
        body=r.text("body", MAX_BODY_CHARS),
        display=r.optional_text("display", MAX_NAME_CHARS),
        print_slip=r.boolean("print", False),
        wait=r.boolean("wait", True), timeout_s=r.timeout(),
        terminal=r.optional_text("terminal", MAX_NAME_CHARS),
    )


def _cancel(r: _Reader) -> CancelParams:
    return CancelParams(r.order_no())


def _status(r: _Reader) -> StatusParams:
    return StatusParams(r.order_no(), refresh=r.boolean("refresh", False))


def _transactions_list(r: _Reader) -> TransactionsListParams:
    return TransactionsListParams(
        terminal=r.optional_text("terminal", MAX_NAME_CHARS), state=r.state(),
        since=r.timestamp("since"),
        limit=r.integer("limit", 1, LIST_LIMIT_MAX, default=LIST_LIMIT_DEFAULT),
        cursor=r.cursor(),
    )


def _batch_status(r: _Reader) -> BatchStatusParams:
    return BatchStatusParams(r.optional_text("terminal", MAX_NAME_CHARS))


def _batch_close(r: _Reader) -> BatchCloseParams:
    return BatchCloseParams(r.text("terminal", MAX_NAME_CHARS, required=True),
                            manager_pin=r.optional_text("manager_pin", MAX_PIN_CHARS))


def _events_replay(r: _Reader) -> EventsReplayParams:
    return EventsReplayParams(r.integer("since_seq", 0, MAX_SEQ))


_PARSERS: Final[dict[str, Callable[[_Reader], Params]]] = {
    "auth": _auth,
    "ping": lambda r: PingParams(),
    "sale": _sale,
    "void": _void,
    "refund": _refund,
    "qr_sale": _qr_sale,
    "cancel": _cancel,
    "status": _status,
    "transactions.list": _transactions_list,
    "terminals.list": lambda r: TerminalsListParams(),
    "batch.status": _batch_status,
    "batch.close": _batch_close,
    "events.replay": _events_replay,
}

# The parameter names each method accepts on the wire (``print`` is QrSaleParams.print_slip).
_WIRE_NAMES: Final[dict[str, frozenset[str]]] = {
    "auth": frozenset({"token"}),
    "ping": frozenset(),
    "sale": frozenset({"terminal", "order_no", "amount", "currency", "tip", "description",
                       "wait", "timeout_s"}),
    # wait / timeout_s on void and refund: an extension (the spec lists them for payments)
    "void": frozenset({"order_no", "orig_order_no", "terminal", "manager_pin", "wait",
                       "timeout_s"}),
    "refund": frozenset({"order_no", "orig_order_no", "amount", "description", "manager_pin",
                         "wait", "timeout_s"}),
    "qr_sale": frozenset({"order_no", "amount", "currency", "subject", "body", "display",
                          "print", "wait", "timeout_s", "terminal"}),
    "cancel": frozenset({"order_no"}),
    "status": frozenset({"order_no", "refresh"}),
    "transactions.list": frozenset({"terminal", "state", "since", "limit", "cursor"}),
    "terminals.list": frozenset(),
    "batch.status": frozenset({"terminal"}),
    "batch.close": frozenset({"terminal", "manager_pin"}),
    "events.replay": frozenset({"since_seq"}),
}

# Every protocol method has a parser and a list of names; checked once at import.
assert set(_PARSERS) == set(_WIRE_NAMES) == set(METHODS)
