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
* ``order_no`` is 1-32 characters of ``[A-Za-z0-9_-|*@]``. A provider may take fewer (a wallet
  provider's order number may be letters and digits only): the provider's own limits are checked
  by its adapter (:meth:`posbridge.providers.base.Provider.check`), not here.
* Unknown parameters are refused and named. A JSON ``null`` counts as "not given", so an
  optional parameter may be sent as null, a required one may not.
* Text is bounded (in characters) and may not contain control characters: it goes on to
  providers, receipts and customer displays. Provider-specific limits (a wallet provider's
  30-character ``subject``) are checked by the provider adapters, not here.

``refund.amount`` and ``crypto_sale.amount`` stay strings: their decimals are the original
transaction's currency's, or the configured coin's, which only the engine knows; the engine
parses them with :func:`posbridge.money.parse_amount`. Here a refund's amount is checked against
the widest ISO 4217 exponent (4), a coin amount against :data:`posbridge.money.MAX_EXPONENT`, for
sign, shape, zero and ``max_amount`` (a coin amount is compared with ``max_amount`` as a number).
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
from posbridge.money import (
    CURRENCIES,
    MAX_EXPONENT,
    AmountError,
    exponent,
    format_amount,
    parse_amount,
    parse_decimal,
)

ORDER_NO_RE: Final = re.compile(r"[A-Za-z0-9_\-|*@]{1,32}")
_CURRENCY_RE: Final = re.compile(r"[A-Z]{3}")
_COIN_RE: Final = re.compile(r"[A-Z0-9]{2,10}")
_PAYER_ID_RE: Final = re.compile(r"[A-Za-z0-9_.:@\-]{1,64}")
PAYER_KEYS: Final = ("open_id", "user_id")
_CONTROL_RE: Final = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CURSOR_RE: Final = re.compile(r"[\x21-\x7e]{1,256}")
_RFC3339_RE: Final = re.compile(
    r"(\d{4}-\d{2}-\d{2})[Tt](\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})"
)

MAX_TOKEN_CHARS: Final = 256
MAX_PIN_CHARS: Final = 64
MAX_NAME_CHARS: Final = 64  # terminal and display names / serial numbers
MAX_DESCRIPTION_CHARS: Final = 128  # the card provider's ``description`` limit
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
    """A card sale. ``amount``, ``tip`` and ``cashback`` are minor units of ``currency``."""

    method: ClassVar[str] = "sale"
    terminal: str
    order_no: str
    amount: int
    currency: str
    tip: int = 0
    description: str = ""
    wait: bool = True
    timeout_s: float | None = None
    cashback: int = 0
    on_screen_tip: bool = False


@dataclass(frozen=True, slots=True)
class PreauthParams:
    """A pre-authorisation (a hold) on a terminal."""

    method: ClassVar[str] = "preauth"
    terminal: str
    order_no: str
    amount: int
    currency: str
    description: str = ""
    on_screen_tip: bool = False
    wait: bool = True
    timeout_s: float | None = None


@dataclass(frozen=True, slots=True)
class PreauthCancelParams:
    method: ClassVar[str] = "preauth.cancel"
    order_no: str
    orig_order_no: str
    manager_pin: str | None = field(default=None, repr=False)
    wait: bool = True
    timeout_s: float | None = None


@dataclass(frozen=True, slots=True)
class CompletionParams:
    """``amount`` and ``tip`` are the register's strings: their currency is the pre-auth's."""

    method: ClassVar[str] = "completion"
    order_no: str
    orig_order_no: str
    amount: str
    tip: str | None = None
    wait: bool = True
    timeout_s: float | None = None


@dataclass(frozen=True, slots=True)
class TipAdjustParams:
    """``tip`` is the new total tip, the register's string in the original's currency."""

    method: ClassVar[str] = "tip.adjust"
    order_no: str
    orig_order_no: str
    tip: str
    manager_pin: str | None = field(default=None, repr=False)
    wait: bool = True
    timeout_s: float | None = None


@dataclass(frozen=True, slots=True)
class CheckoutQrParams:
    """A pay-by-link QR: the customer pays on the card provider's hosted page."""

    method: ClassVar[str] = "checkout_qr"
    order_no: str
    amount: int
    currency: str
    subject: str = ""
    display: str | None = None
    print_slip: bool = False
    wait: bool = True
    timeout_s: float | None = None
    terminal: str | None = None


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
    card_present: bool = True


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
class CryptoSaleParams:
    """A crypto sale. ``amount`` is the register's decimal string in ``coin``; ``payer`` is
    ``("open_id", id)`` or ``("user_id", id)``: the platform user the register scanned."""

    method: ClassVar[str] = "crypto_sale"
    order_no: str
    amount: str
    coin: str
    payer: tuple[str, str]
    subject: str = ""
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
    | CryptoSaleParams | PreauthParams | PreauthCancelParams | CompletionParams
    | TipAdjustParams | CheckoutQrParams | CancelParams | StatusParams | TransactionsListParams
    | TerminalsListParams | BatchStatusParams | BatchCloseParams | EventsReplayParams
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


def parse_auth(params: object) -> AuthParams:
    """The ``auth`` call's parameters (-32602 naming ``token`` when wrong)."""
    parsed = parse_params("auth", params, max_amount="0")
    assert isinstance(parsed, AuthParams)
    return parsed


def params_fingerprint(params: Params) -> str:
    """A canonical string of the parameters that define a payment, for idempotency.

    Equal for two requests that must map onto the same transaction; different otherwise.
    Everything but ``wait``, ``timeout_s`` and ``manager_pin`` counts (they say how to ask,
    not what to pay), and the method too, so a ``sale`` and a ``qr_sale`` never match.
    A refund's decimal string is normalised (``"5"``, ``"5.0"``, ``"5.00"`` are one amount).
    """
    values: dict[str, object] = {"method": params.method}
    for name, value in asdict(params).items():
        if name in _NOT_DEFINING or (name in _ADDED_IN_1_1 and value == _ADDED_IN_1_1[name]):
            continue
        if isinstance(params, RefundParams | CompletionParams) and name == "amount":
            value = _canonical_decimal(params.amount)
        elif isinstance(params, CompletionParams | TipAdjustParams) and name == "tip":
            value = None if params.tip is None else _canonical_decimal(params.tip)
        elif isinstance(params, CryptoSaleParams) and name == "amount":
            value = format(parse_decimal(params.amount).normalize(), "f")
        elif isinstance(value, datetime):
            value = value.isoformat()
        values[name] = value
    return json.dumps(values, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


_NOT_DEFINING: Final = frozenset({"wait", "timeout_s", "manager_pin"})
#: Parameters protocol 1.1 added to 1.0 methods, with their defaults: left out when at their
#: default, so a 1.0 request keeps its fingerprint.
_ADDED_IN_1_1: Final[Mapping[str, object]] = {"cashback": 0, "on_screen_tip": False,
                                              "card_present": True}


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

    def given(self, name: str) -> bool:
        """Whether ``name`` is there (and not null)."""
        return self._raw.get(name) is not None

    def decimal_text(self, name: str, *, zero_ok: bool = False) -> str:
        """A positive (or, with ``zero_ok``, zero) amount kept as the register's string;
        checked against the widest ISO 4217 exponent, since the currency is not known here."""
        self.money(name, _WIDEST_CURRENCY, required=True, zero_ok=zero_ok)
        value = self._raw[name]
        assert isinstance(value, str)  # money() accepted it, so it is a decimal string
        return value

    def coin_amount(self, name: str) -> str:
        """A positive amount in a coin, kept as the register's string: at most
        :data:`MAX_EXPONENT` decimals here (the coin's own are checked by the engine), and
        not above ``max_amount`` as a number."""
        value = self._value(name, True)
        try:
            amount = parse_decimal(value, MAX_EXPONENT)
        except AmountError as exc:
            raise invalid_params(name, str(exc)) from None
        if amount == 0:
            raise invalid_params(name, "must be more than zero")
        if amount > self.limit(_WIDEST_CURRENCY) / 10 ** exponent(_WIDEST_CURRENCY):
            raise invalid_params(name, f"must not exceed max_amount {self._max_amount}")
        assert isinstance(value, str)  # parse_decimal accepted it, so it is a decimal string
        return value

    def coin(self, name: str = "coin") -> str:
        value = self._value(name, True)
        if not isinstance(value, str) or _COIN_RE.fullmatch(value) is None:
            raise invalid_params(name, 'must be an upper-case coin symbol such as "USDT"')
        return value

    def payer(self, name: str = "payer") -> tuple[str, str]:
        """``{"open_id": ...}`` or ``{"user_id": ...}``: exactly one of them."""
        value = self._value(name, True)
        if not isinstance(value, Mapping):
            raise invalid_params(name, 'must be an object: {"open_id": ...} or {"user_id": ...}')
        keys = [k for k in value if value[k] is not None]
        if len(keys) != 1 or keys[0] not in PAYER_KEYS:
            raise invalid_params(name, "must hold exactly one of open_id or user_id")
        key = str(keys[0])
        ident = value[key]
        if not isinstance(ident, str) or _PAYER_ID_RE.fullmatch(ident) is None:
            raise invalid_params(f"{name}.{key}",
                                 "must be 1-64 letters, digits or _ . : @ -")
        return key, ident

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
    cashback = r.money("cashback", currency, required=False, zero_ok=True)
    on_screen_tip = r.boolean("on_screen_tip", False)
    if tip and on_screen_tip:
        raise invalid_params("tip", "no tip with on_screen_tip: the customer enters it")
    if amount + tip > r.limit(currency):
        raise invalid_params("tip", "amount plus tip must not exceed max_amount")
    if amount + tip + cashback > r.limit(currency):
        raise invalid_params("cashback", "amount, tip and cashback must not exceed max_amount")
    return SaleParams(
        terminal=terminal, order_no=order_no, amount=amount, currency=currency, tip=tip,
        description=r.text("description", MAX_DESCRIPTION_CHARS),
        wait=r.boolean("wait", True), timeout_s=r.timeout(), cashback=cashback,
        on_screen_tip=on_screen_tip,
    )


def _preauth(r: _Reader) -> PreauthParams:
    terminal = r.text("terminal", MAX_NAME_CHARS, required=True)
    order_no = r.order_no()
    currency = r.currency()
    return PreauthParams(
        terminal=terminal, order_no=order_no, currency=currency,
        amount=r.money("amount", currency, required=True, zero_ok=False),
        description=r.text("description", MAX_DESCRIPTION_CHARS),
        on_screen_tip=r.boolean("on_screen_tip", False),
        wait=r.boolean("wait", True), timeout_s=r.timeout(),
    )


def _preauth_cancel(r: _Reader) -> PreauthCancelParams:
    order_no, orig = _new_and_original(r)
    return PreauthCancelParams(order_no=order_no, orig_order_no=orig,
                               manager_pin=r.optional_text("manager_pin", MAX_PIN_CHARS),
                               wait=r.boolean("wait", True), timeout_s=r.timeout())


def _completion(r: _Reader) -> CompletionParams:
    order_no, orig = _new_and_original(r)
    tip = r.decimal_text("tip", zero_ok=True) if r.given("tip") else None
    return CompletionParams(order_no=order_no, orig_order_no=orig,
                            amount=r.decimal_text("amount"), tip=tip,
                            wait=r.boolean("wait", True), timeout_s=r.timeout())


def _tip_adjust(r: _Reader) -> TipAdjustParams:
    order_no, orig = _new_and_original(r)
    return TipAdjustParams(order_no=order_no, orig_order_no=orig,
                           tip=r.decimal_text("tip", zero_ok=True),
                           manager_pin=r.optional_text("manager_pin", MAX_PIN_CHARS),
                           wait=r.boolean("wait", True), timeout_s=r.timeout())


def _checkout_qr(r: _Reader) -> CheckoutQrParams:
    order_no = r.order_no()
    currency = r.currency()
    return CheckoutQrParams(
        order_no=order_no, currency=currency,
        amount=r.money("amount", currency, required=True, zero_ok=False),
        subject=r.text("subject", MAX_SUBJECT_CHARS),
        display=r.optional_text("display", MAX_NAME_CHARS),
        print_slip=r.boolean("print", False),
        wait=r.boolean("wait", True), timeout_s=r.timeout(),
        terminal=r.optional_text("terminal", MAX_NAME_CHARS),
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
                        wait=r.boolean("wait", True), timeout_s=r.timeout(),
                        card_present=r.boolean("card_present", True))


def _new_and_original(r: _Reader) -> tuple[str, str]:
    order_no = r.order_no()
    orig = r.order_no("orig_order_no")
    if order_no == orig:
        raise invalid_params("order_no", "a void or refund needs its own new order_no")
    return order_no, orig


def _qr_sale(r: _Reader) -> QrSaleParams:
    order_no = r.order_no()
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


def _crypto_sale(r: _Reader) -> CryptoSaleParams:
    return CryptoSaleParams(
        order_no=r.order_no(), amount=r.coin_amount("amount"), coin=r.coin(),
        payer=r.payer(), subject=r.text("subject", MAX_SUBJECT_CHARS),
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
    "crypto_sale": _crypto_sale,
    "preauth": _preauth,
    "preauth.cancel": _preauth_cancel,
    "completion": _completion,
    "tip.adjust": _tip_adjust,
    "checkout_qr": _checkout_qr,
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
                       "wait", "timeout_s", "cashback", "on_screen_tip"}),
    # wait / timeout_s on void and refund: an extension (the spec lists them for payments)
    "void": frozenset({"order_no", "orig_order_no", "terminal", "manager_pin", "wait",
                       "timeout_s"}),
    "refund": frozenset({"order_no", "orig_order_no", "amount", "description", "manager_pin",
                         "wait", "timeout_s", "card_present"}),
    "qr_sale": frozenset({"order_no", "amount", "currency", "subject", "body", "display",
                          "print", "wait", "timeout_s", "terminal"}),
    # wait / timeout_s on crypto_sale: as for qr_sale (the protocol lists them for payments)
    "crypto_sale": frozenset({"order_no", "amount", "coin", "payer", "subject", "display",
                              "print", "wait", "timeout_s", "terminal"}),
    "preauth": frozenset({"terminal", "order_no", "amount", "currency", "description",
                          "on_screen_tip", "wait", "timeout_s"}),
    "preauth.cancel": frozenset({"order_no", "orig_order_no", "manager_pin", "wait",
                                 "timeout_s"}),
    "completion": frozenset({"order_no", "orig_order_no", "amount", "tip", "wait",
                             "timeout_s"}),
    "tip.adjust": frozenset({"order_no", "orig_order_no", "tip", "manager_pin", "wait",
                             "timeout_s"}),
    "checkout_qr": frozenset({"order_no", "amount", "currency", "subject", "display", "print",
                              "wait", "timeout_s", "terminal"}),
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
