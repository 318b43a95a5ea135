"""The crypto payment API's parameters, answers and callbacks (pure: no I/O, no clock).

Builders return the *plain* parameter objects that :func:`.envelope.seal` encrypts and signs;
readers take raw bytes from the wire and return verified, decrypted parameters or raise the
:mod:`posbridge.errors` error the answer amounts to.

Amounts travel as decimal strings in the paying coin (``orderAmount`` ``"10"`` in the
documents' example); inside the bridge they are integers in the coin's smallest configured
unit (``coins = { USDT = 6 }``: 12.5 USDT is 12500000). An amount read from the platform may
be a string or a JSON number (read as ``Decimal``, never a float); one with more decimals than
the coin is configured with cannot be the order's amount and is refused.

Answers are ``{code, msg, data, sign}``: ``code`` ``"0"`` (or the number 0) is success and
``data`` must then open and verify (:func:`open_answer`); anything else is the platform's
refusal with ``msg``. The documents give no list of error codes, so a refusal carries the
platform's ``code`` as ``provider_code`` and is never read further.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

from posbridge.errors import (
    BadSignature,
    NotificationRejected,
    OutcomeUnknown,
    ProviderRejected,
)
from posbridge.providers.base import NotificationAnswer, Outcome, ProviderReport, invalid_input
from posbridge.providers.opay.envelope import (
    DEFAULT_SUITE,
    EnvelopeError,
    Suite,
    json_text,
    load_json,
    open_text,
)

__all__ = [
    "API_PREFIX",
    "AmountStyle",
    "CallbackAnswer",
    "Method",
    "Payer",
    "callback_answer",
    "callback_coin",
    "callback_order_no",
    "cancel_params",
    "check_sale",
    "coin_minor",
    "coin_text",
    "create_params",
    "detail_params",
    "goods_text",
    "open_answer",
    "open_callback",
    "order_report",
    "payer_of",
    "statement_params",
    "text_field",
    "text_value",
]

API_PREFIX: Final = "/platformapi/chainup/open/opay"


class Method(enum.StrEnum):
    """The API methods the bridge calls, by the last part of their path."""

    CREATE = "createThirdOrder"
    DETAIL = "orderDetail"
    STATEMENT = "merchantBillingDay"
    CANCEL = "cancelOrder"

    @property
    def path(self) -> str:
        """The path below the base URL. "Cancel Pending Orders" sits at ``/opay/cancelOrder``,
        outside the others' prefix, as the documents give it."""
        if self is Method.CANCEL:
            return "/opay/cancelOrder"
        return f"{API_PREFIX}/{self.value}"


class AmountStyle(enum.StrEnum):
    """How ``orderAmount`` is written; the value is the configuration spelling."""

    PLAIN = "plain"  # no trailing zeros: "12.5", "10" (the documents' example form)
    FIXED = "fixed"  # every configured decimal: "12.500000"


class CallbackAnswer(enum.StrEnum):
    """What the bridge answers a callback it has durably recorded."""

    TEXT = "text"  # the plain text ``success``
    JSON = "json"  # ``{"data":"success"}``, the answer object of the platform's API reference


# orderStatus: "1 Pending payment; 2 Payment failed; 3 Payment successful; 0 Closed"
_STATUS: Final[dict[str, tuple[Outcome, bool]]] = {
    "1": (Outcome.PENDING, True),
    "2": (Outcome.DECLINED, False),
    "3": (Outcome.APPROVED, False),
    "0": (Outcome.CANCELLED, False),
}
PAYER_ID_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")
TOKEN_RE: Final = re.compile(r"[\x21-\x7e]{1,256}")  # printable ASCII, no blanks
COIN_RE: Final = re.compile(r"[A-Z0-9]{2,16}")
GOODS_TEXT_MAX: Final = 64  # characters of the goods' name and desc we send (none is stated)
_DECIMAL_TEXT: Final = re.compile(r"(0|[1-9][0-9]{0,30})(\.[0-9]{1,30})?")


# -- amounts ----------------------------------------------------------------------------------


def coin_text(minor: int, decimals: int, style: AmountStyle = AmountStyle.PLAIN) -> str:
    """``minor`` units of a coin with ``decimals`` decimals as a decimal string."""
    if minor < 0:
        raise ValueError("a coin amount is never negative")
    whole, frac = divmod(minor, 10**decimals)
    digits = f"{frac:0{decimals}d}" if decimals else ""
    if style is AmountStyle.PLAIN:
        digits = digits.rstrip("0")
    return f"{whole}.{digits}" if digits else str(whole)


def coin_minor(value: object, decimals: int) -> int:
    """A platform amount (decimal string, integer or ``Decimal``) in minor units.

    ValueError when it is not a plain non-negative decimal or has non-zero digits beyond
    ``decimals`` (it then cannot be any amount the bridge asked for).
    """
    if isinstance(value, bool):
        raise ValueError("an amount is not a boolean")
    if isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, Decimal):
        number = value
    elif isinstance(value, str) and _DECIMAL_TEXT.fullmatch(value.strip()):
        number = Decimal(value.strip())
    else:
        raise ValueError(f"{str(value)[:40]!r} is not a plain decimal amount")
    if not number.is_finite() or number < 0:
        raise ValueError(f"{str(value)[:40]!r} is not a plain decimal amount")
    try:
        scaled = number.scaleb(decimals)
        if scaled != scaled.to_integral_value():
            raise ValueError(f"{str(value)[:40]!r} has more than {decimals} decimals")
        return int(scaled)
    except InvalidOperation as exc:
        raise ValueError(f"{str(value)[:40]!r} is out of range") from exc


# -- the payer and the register's input -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Payer:
    """The paying platform user: ``open_id`` wins over ``user_id`` (the documents: "OpenID
    takes priority if both exist"); ``token`` is the optional authorised token."""

    open_id: str | None = None
    user_id: str | None = None
    token: str | None = None

    def id_param(self) -> tuple[str, str]:
        """The one identifying parameter sent: ``("openId", …)`` or ``("userId", …)``."""
        if self.open_id:
            return "openId", self.open_id
        assert self.user_id, "a payer has an open_id or a user_id"
        return "userId", self.user_id


def payer_of(extra: Mapping[str, str]) -> Payer:
    """The payer from a crypto sale's ``extra`` (``open_id``, ``user_id``, ``token``).

    RequestError -32602 naming ``payer`` (or ``payer.<key>``) when neither id is given or one
    is malformed: 1-64 letters, digits, ``_ . -``, starting with a letter or digit.
    """
    open_id = extra.get("open_id") or None
    user_id = extra.get("user_id") or None
    token = extra.get("token") or None
    if open_id is None and user_id is None:
        raise invalid_input("payer", "give the platform user as {open_id} or {user_id}")
    for key, value in (("open_id", open_id), ("user_id", user_id)):
        if value is not None and not PAYER_ID_RE.fullmatch(value):
            raise invalid_input(f"payer.{key}", "must be 1-64 letters, digits, '_', '.' or '-'")
    if token is not None and not TOKEN_RE.fullmatch(token):
        raise invalid_input("payer.token", "must be 1-256 printable ASCII characters")
    return Payer(open_id=open_id, user_id=user_id, token=token)


def check_sale(*, coin: str, amount: int, exponent: int | None, extra: Mapping[str, str],
               coins: Mapping[str, int]) -> Payer:
    """Refuse a crypto sale the platform or the configuration cannot take; its payer.

    The coin must be configured (``coin``), the amount positive (``amount``) and recorded
    with the coin's configured decimals, and the payer well formed (:func:`payer_of`).
    """
    decimals = coins.get(coin)
    if decimals is None:
        raise invalid_input("coin", f"{coin[:16]!r} is not a configured coin "
                                    f"({', '.join(sorted(coins))})")
    if exponent is not None and exponent != decimals:
        raise invalid_input("amount", f"{coin} amounts have {decimals} decimals here")
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise invalid_input("amount", "must be more than zero")
    return payer_of(extra)


# -- request parameters -----------------------------------------------------------------------


def _cut(text: str) -> str:
    return text[:GOODS_TEXT_MAX]


def goods_text(subject: str, body: str) -> str | None:
    """``goods``: the JSON **text** of ``[{"name", "desc"}]`` (the documents: "passed must be
    legal json format"), or None without a subject. Both are cut to 64 characters."""
    if not subject:
        return None
    return json.dumps([{"name": _cut(subject), "desc": _cut(body or subject)}],
                      ensure_ascii=False, separators=(",", ":"))


def create_params(*, order_no: str, amount: str, coin: str, payer: Payer, return_page: str,
                  notify_page: str, scene_type: str | None = None,
                  goods: str | None = None) -> dict[str, str]:
    """createThirdOrder's parameters. Only one of ``openId`` / ``userId`` is sent (the one
    that wins anyway); ``token``, ``orderSceneType`` and ``goods`` only when given."""
    id_name, id_value = payer.id_param()
    params = {"appOrderId": order_no, id_name: id_value, "orderAmount": amount,
              "payCoinSymbol": coin, "returnPage": return_page, "notifyPage": notify_page}
    for name, value in (("token", payer.token), ("orderSceneType", scene_type),
                        ("goods", goods)):
        if value:
            params[name] = value
    return params


def detail_params(*, app_id: str, order_num: str, token: str | None = None,
                  with_app_key: bool = True) -> dict[str, str]:
    """orderDetail's parameters: ``orderNum`` (+ ``token``), and ``appKey`` where the
    documents' table lists it (``with_app_key``)."""
    params = {"orderNum": order_num}
    if with_app_key:
        params["appKey"] = app_id
    if token:
        params["token"] = token
    return params


def cancel_params(order_num: str) -> dict[str, str]:
    """cancelOrder's parameters."""
    return {"orderNum": order_num}


def statement_params(*, day: str, page: int, page_size: int) -> dict[str, str]:
    """merchantBillingDay's parameters for payment orders (``orderType`` 1) of ``day``
    (``yyyy-MM-dd``); every value is a string, as the documents type them."""
    if not 1 <= page_size <= 2000:
        raise ValueError("pageSize is 1 to 2000")
    return {"orderType": "1", "day": day, "pageNum": str(page), "pageSize": str(page_size)}


# -- answers ----------------------------------------------------------------------------------


def _object(raw: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _is_success(code: object) -> bool:
    if isinstance(code, bool):
        return False
    if isinstance(code, int):
        return code == 0
    return isinstance(code, str) and code.strip() == "0"


def _open(data: object, signature: object, *, merchant_key: RSAPrivateKey,
          platform_key: RSAPublicKey, suite: Suite) -> dict[str, Any] | None:
    """The verified parameter object in ``data``; None if it does not open or verify."""
    try:
        text = open_text(data, signature, receiver_key=merchant_key, sender_key=platform_key,
                         suite=suite)
    except EnvelopeError:
        return None
    if text is None:
        return None
    try:
        value = load_json(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def open_answer(raw: bytes, *, merchant_key: RSAPrivateKey, platform_key: RSAPublicKey,
                suite: Suite = DEFAULT_SUITE, data_required: bool = True,
                what: str = "request") -> dict[str, Any] | None:
    """The verified parameters of an answer, or the error the answer amounts to.

    - not a JSON object with a ``code``: ``OutcomeUnknown``;
    - success with ``data`` that does not open or whose ``sign`` does not verify:
      ``BadSignature`` (an unverifiable answer is no answer);
    - success without ``data``: ``BadSignature`` when ``data_required``, else None
      (cancelOrder's answer is ``{code, msg}`` only in the platform's API reference);
    - any other ``code``: ``ProviderRejected`` with that code and ``msg``.
    """
    answer = _object(raw)
    if answer is None or "code" not in answer:
        raise OutcomeUnknown(f"the crypto platform answered {what} with something that is "
                             "not an answer object")
    code = answer["code"]
    if not _is_success(code):
        msg = str(answer.get("msg") or "")[:128]
        provider_code = str(code)[:32]
        raise ProviderRejected(f"the crypto platform refused {what} ({provider_code}: {msg})",
                               provider_code=provider_code)
    data = answer.get("data")
    if data is None or data == "":
        if data_required:
            raise BadSignature(f"the crypto platform's answer to {what} carries no data")
        return None
    opened = _open(data, answer.get("sign"), merchant_key=merchant_key,
                   platform_key=platform_key, suite=suite)
    if opened is None:
        raise BadSignature(f"the crypto platform's answer to {what} does not open or verify")
    return opened


def text_value(value: object) -> str | None:
    """A parameter value as text: a non-empty string stripped, a number in decimal; else
    None (absent, empty, a boolean, an object)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | Decimal):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def text_field(data: Mapping[str, Any], *names: str) -> str | None:
    """The first of ``names`` that has a :func:`text_value`."""
    for name in names:
        found = text_value(data.get(name))
        if found is not None:
            return found
    return None


def order_report(data: Mapping[str, Any], *, order_no: str, decimals: int,
                 coin: str | None = None, order_num: str | None = None,
                 qr_text: str | None = None) -> ProviderReport:
    """A verified order description (orderDetail's answer, a callback) as a report.

    The merchant number (``appOrderId`` or the callback's ``outOrderId``), ``orderNum`` and
    ``payCoinSymbol``, when stated, must be the order's; another or an unknown
    ``orderStatus``, or an amount that cannot be one of ``decimals`` decimals, is
    ``OutcomeUnknown``. The amount is ``payAmount`` or else ``orderAmount``.
    """
    stated_no = text_field(data, "appOrderId", "outOrderId")
    if stated_no is not None and stated_no != order_no:
        raise OutcomeUnknown(f"the crypto platform answered about order {stated_no[:32]!r}")
    stated_num = text_field(data, "orderNum")
    if order_num is not None and stated_num is not None and stated_num != order_num:
        raise OutcomeUnknown(f"the crypto platform answered about orderNum {stated_num[:32]!r}")
    stated_coin = text_field(data, "payCoinSymbol")
    if coin is not None and stated_coin is not None and stated_coin.upper() != coin:
        raise OutcomeUnknown(f"the crypto platform states coin {stated_coin[:16]!r}, "
                             f"not {coin}")
    status = text_field(data, "orderStatus")
    mapped = _STATUS.get(status or "")
    if mapped is None:
        raise OutcomeUnknown(f"unknown crypto platform orderStatus {str(status)[:16]!r}")
    outcome, closable = mapped
    amount_value = data.get("payAmount", data.get("orderAmount"))
    amount = None
    if amount_value is not None and amount_value != "":
        try:
            amount = coin_minor(amount_value, decimals)
        except ValueError as exc:
            raise OutcomeUnknown(f"crypto platform amount: {exc}") from exc
    return ProviderReport(order_no=order_no, outcome=outcome,
                          provider_ref=stated_num or order_num, amount=amount,
                          closable=closable, provider_code=f"orderStatus={status}",
                          qr_text=qr_text)


# -- the callback -----------------------------------------------------------------------------


def open_callback(raw: bytes, *, app_id: str, merchant_key: RSAPrivateKey,
                  platform_key: RSAPublicKey,
                  suite: Suite = DEFAULT_SUITE) -> dict[str, Any]:
    """The verified parameters of a payment callback ``{app_id, data, sign, time}``.

    NotificationRejected when it is not such an object, names another ``app_id``, does not
    open or verify, or lacks ``outOrderId`` / ``orderStatus``. Fields beyond the documented
    ones are kept (they are covered by the signature like the rest).
    """
    note = _object(raw)
    if note is None:
        raise NotificationRejected("callback is not a JSON object")
    if "app_id" in note and str(note["app_id"]) != app_id:
        raise NotificationRejected("callback is for another app_id")
    data = _open(note.get("data"), note.get("sign"), merchant_key=merchant_key,
                 platform_key=platform_key, suite=suite)
    if data is None:
        raise NotificationRejected("callback does not open or its signature does not verify")
    if (text_field(data, "outOrderId", "appOrderId") is None
            or text_field(data, "orderStatus") is None):
        raise NotificationRejected("callback lacks outOrderId or orderStatus")
    return data


def callback_order_no(data: Mapping[str, Any]) -> str:
    """The merchant's order number of an opened callback."""
    found = text_field(data, "outOrderId", "appOrderId")
    assert found is not None, "open_callback checked it"
    return found


def callback_coin(data: Mapping[str, Any]) -> str | None:
    """The coin a callback states, if it states one (the documented callback does not)."""
    found = text_field(data, "payCoinSymbol")
    return found.upper() if found else None


def callback_answer(ok: bool, style: CallbackAnswer = CallbackAnswer.TEXT,
                    reason: str = "") -> NotificationAnswer:
    """``success`` once the result is durable; otherwise ``fail`` and the reason, so that
    the platform sends the callback again."""
    word = "success" if ok else "fail"
    if style is CallbackAnswer.JSON:
        body: dict[str, str] = {"data": word}
        if not ok and reason:
            body["msg"] = reason[:128]
        return NotificationAnswer(status=200, body=json_text(body).encode("utf-8"),
                                  content_type="application/json; charset=utf-8")
    text = word if ok or not reason else f"{word}: {reason[:128]}"
    return NotificationAnswer(status=200, body=text.encode("utf-8"),
                              content_type="text/plain; charset=utf-8")
