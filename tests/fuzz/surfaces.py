"""The pure input surfaces under fuzz: a valid sample of each, how to mutate it, and the rule.

Shared by the fuzz tests (short, seeded runs) and ``bench/fuzz.py`` (long runs). For every
surface, :meth:`Surface.check` feeds one input to the code under test and returns
``"accepted"`` or ``"refused"``; anything else raises :class:`Unexpected`:

* an exception that is not the surface's documented refusal (a crash);
* a refusal that breaks its own contract (a -32602 without ``field``, an error frame that is
  not JSON, a ConfigError without a key);
* an accepted input whose result breaks an invariant (an amount over the limit, a control
  character reaching a printer, a pole display line that is not printable ASCII).

Hangs and memory are watched by the callers (per-input time and the process's peak RSS).
"""

from __future__ import annotations

import base64
import dataclasses
import json
import random
import re
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from hardware.displays.frames import DisplayFrame, FrameState, pole_lines
from hardware.displays.vfd import screen_bytes
from hardware.escpos import PrinterProfile, encode_text, parse_status
from hardware.receipts import batch_report_from_view, card_receipt, qr_slip
from posbridge.config import load_config, parse_config
from posbridge.ecr import params as ecr_params
from posbridge.ecr import protocol as proto
from posbridge.ecr.params import parse_params
from posbridge.errors import (
    ConfigError,
    NotificationRejected,
    OutcomeUnknown,
    PrinterError,
    ProviderRejected,
    RequestError,
)
from posbridge.keyfiles import generate_rsa_pem, load_private_key
from posbridge.providers.base import ProviderReport
from posbridge.providers.codepay import messages as cpm
from posbridge.providers.codepay import signing as cps
from posbridge.providers.opay import messages as opm
from posbridge.providers.opay.envelope import seal
from posbridge.providers.ucanpay import messages as ucm
from posbridge.providers.ucanpay.signing import SignScheme, sign_params
from posbridge.sandbox.opay_sim import APP_ID as OPAY_APP_ID
from posbridge.secrets import hash_secret

from .mutate import mutate_bytes, mutate_json, random_text

MAX_AMOUNT: Final = "10000.00"
MERCHANT_NO: Final = "FUZZMERCHANT1"
UCANPAY_MERCHANT: Final = "FUZZUCP1"
ORDER_NO: Final = re.compile(r"[A-Za-z0-9_\-|*@]{1,32}")
FRAME_CODES: Final = frozenset({-32700, -32600, -32601, -32602})
# A refusal names at most a few bounded things; it never echoes a whole 64 KiB frame.
MAX_ERROR_FRAME_CHARS: Final = 2048


class Unexpected(Exception):
    """An outcome no rule allows: what a fuzzer reports (with the input as reproducer)."""


@dataclass(frozen=True)
class Surface:
    """One input surface: ``sample(rng)`` is valid, ``mutate(sample, rng)`` probably not,
    ``check(input)`` is ``"accepted"`` / ``"refused"`` or raises :class:`Unexpected`."""

    name: str
    sample: Callable[[random.Random], Any]
    mutate: Callable[[Any, random.Random], Any]
    check: Callable[[Any], str]

    def fuzz_one(self, rng: random.Random) -> tuple[Any, str]:
        """One mutated sample and its outcome (Unexpected propagates with the input)."""
        value = self.mutate(self.sample(rng), rng)
        try:
            return value, self.check(value)
        except Unexpected:
            raise
        except Exception as exc:  # the finding: an exception no rule names
            raise Unexpected(f"{type(exc).__name__}: {exc!s:.200}") from exc


# --------------------------------------------------------------------------------------------
# ECR frames and params


def _order_no(rng: random.Random, alnum: bool = False) -> str:
    chars = "ABCXYZ0123456789" if alnum else "ABCXYZ0123456789_-|*@"
    return "".join(rng.choices(chars, k=rng.randint(1, 32)))


def _amount(rng: random.Random) -> str:
    return f"{rng.randint(0, 9999)}.{rng.randint(0, 99):02d}"


def _terminal(rng: random.Random) -> str:
    return rng.choice(("lane-1", "lane-2", "SANDBOX0000000001"))


# Plausible (mostly valid) params of each method.
_PARAMS: Final[dict[str, Callable[[random.Random], dict[str, Any]]]] = {
    "auth": lambda rng: {"token": random_text(rng, 43) or "t"},
    "ping": lambda rng: {},
    "sale": lambda rng: {"terminal": _terminal(rng), "order_no": _order_no(rng),
                         "amount": _amount(rng),
                         "currency": rng.choice(("USD", "CAD", "JPY", "KWD")), "tip": "0.50",
                         "description": "Table 4", "wait": False, "timeout_s": 5},
    "void": lambda rng: {"order_no": _order_no(rng), "orig_order_no": _order_no(rng),
                         "manager_pin": "0000", "wait": False},
    "refund": lambda rng: {"order_no": _order_no(rng), "orig_order_no": _order_no(rng),
                           "amount": _amount(rng), "description": "cold", "wait": False},
    "qr_sale": lambda rng: {"order_no": _order_no(rng, alnum=True), "amount": _amount(rng),
                            "currency": "CAD", "subject": "Latte", "body": "oat",
                            "display": "lane-1", "print": False, "wait": False,
                            "terminal": _terminal(rng)},
    "crypto_sale": lambda rng: {"order_no": _order_no(rng), "amount": _amount(rng),
                                "coin": rng.choice(("USDT", "BTC", "ETH")),
                                "payer": rng.choice(({"open_id": "2ae04ed9"},
                                                     {"user_id": "22033390"})),
                                "subject": "Latte", "display": "lane-1", "print": False,
                                "wait": False, "terminal": _terminal(rng)},
    "preauth": lambda rng: {"terminal": _terminal(rng), "order_no": _order_no(rng),
                            "amount": _amount(rng), "currency": "USD", "description": "Room 4",
                            "on_screen_tip": rng.random() < 0.5, "wait": False},
    "preauth.cancel": lambda rng: {"order_no": _order_no(rng),
                                   "orig_order_no": _order_no(rng), "manager_pin": "0000",
                                   "wait": False},
    "completion": lambda rng: {"order_no": _order_no(rng), "orig_order_no": _order_no(rng),
                               "amount": _amount(rng), "tip": "1.00", "wait": False},
    "tip.adjust": lambda rng: {"order_no": _order_no(rng), "orig_order_no": _order_no(rng),
                               "tip": _amount(rng), "manager_pin": "0000", "wait": False},
    "checkout_qr": lambda rng: {"order_no": _order_no(rng), "amount": _amount(rng),
                                "currency": "USD", "subject": "Order 17", "display": "lane-1",
                                "print": False, "wait": False, "terminal": _terminal(rng)},
    "cancel": lambda rng: {"order_no": _order_no(rng)},
    "status": lambda rng: {"order_no": _order_no(rng), "refresh": rng.random() < 0.5},
    "transactions.list": lambda rng: {"terminal": _terminal(rng), "state": "approved",
                                      "since": "2024-05-01T00:00:00Z", "limit": 5,
                                      "cursor": "abc"},
    "terminals.list": lambda rng: {},
    "batch.status": lambda rng: {"terminal": _terminal(rng)},
    "batch.close": lambda rng: {"terminal": _terminal(rng), "manager_pin": "0000"},
    "events.replay": lambda rng: {"since_seq": rng.randint(0, 10)},
}
_METHODS: Final = sorted(proto.METHODS)


def ecr_params_sample(method: str, rng: random.Random, *, every: bool = False) -> dict[str, Any]:
    """Plausible (mostly valid) ``params`` of ``method``; unless ``every``, now and then one
    is left out."""
    return {k: v for k, v in _PARAMS[method](rng).items() if every or rng.random() < 0.9}


def ecr_frame_sample(rng: random.Random) -> dict[str, Any]:
    method = rng.choice(_METHODS)
    frame: dict[str, Any] = {"jsonrpc": "2.0", "method": method,
                             "params": ecr_params_sample(method, rng)}
    if rng.random() < 0.95:
        frame["id"] = rng.choice((rng.randint(1, 10**6), f"r{rng.randint(1, 999)}"))
    return frame


def ecr_frame_mutate(frame: dict[str, Any], rng: random.Random) -> bytes:
    if rng.random() < 0.5:
        text = json.dumps(mutate_json(frame, rng), ensure_ascii=rng.random() < 0.5)
        return text.encode("utf-8", "surrogatepass")
    return mutate_bytes(json.dumps(frame).encode(), rng)


def ecr_frame_check(data: bytes) -> str:
    """parse_frame then parse_params, as the server does; the refusal must be documented."""
    call_id: proto.RequestId | None = None
    try:
        call = proto.parse_frame(data)
        call_id = call.id
        parsed = parse_params(call.method, call.params, max_amount=MAX_AMOUNT)
    except RequestError as exc:
        _check_refusal(exc, getattr(exc, "id", call_id))
        return "refused"
    _check_params(parsed)
    return "accepted"


def _check_refusal(exc: RequestError, call_id: proto.RequestId | None) -> None:
    if exc.code not in FRAME_CODES:
        raise Unexpected(f"undocumented error code {exc.code} ({exc.reason})")
    if exc.code == -32602 and exc.field is None:
        raise Unexpected("-32602 without data.field")
    frame = proto.error_frame(call_id, exc)
    if len(frame) > MAX_ERROR_FRAME_CHARS:
        raise Unexpected(f"error frame of {len(frame)} characters")
    json.loads(frame)  # strict JSON: a bad one raises, which the caller reports


def _check_params(parsed: ecr_params.Params) -> None:
    """What an accepted request guarantees the engine."""
    for name in ("order_no", "orig_order_no"):
        value = getattr(parsed, name, None)
        if value is not None and ORDER_NO.fullmatch(value) is None:
            raise Unexpected(f"accepted {name} {value!r}")
    if isinstance(parsed, ecr_params.SaleParams | ecr_params.QrSaleParams):
        tip = getattr(parsed, "tip", 0)
        limit = int(Decimal(MAX_AMOUNT).scaleb(4))  # in the widest exponent: generous
        if not parsed.amount > 0 or tip < 0 or parsed.amount + tip > limit:
            raise Unexpected(f"accepted amount {parsed.amount} tip {tip}")
    for field in dataclasses.fields(parsed):
        value = getattr(parsed, field.name)
        if isinstance(value, str) and field.name not in ("token",) and any(
                ord(c) < 32 or 0x7F <= ord(c) <= 0x9F for c in value):
            raise Unexpected(f"accepted a control character in {field.name}")
    timeout = getattr(parsed, "timeout_s", None)
    if timeout is not None and not 0 < timeout <= 600:
        raise Unexpected(f"accepted timeout_s {timeout}")


ECR_FRAMES = Surface("ecr frames", ecr_frame_sample, ecr_frame_mutate, ecr_frame_check)


# --------------------------------------------------------------------------------------------
# Provider answers and notifications


@dataclass(frozen=True)
class GatewayKeys:
    """The simulated gateways' signing keys (the fuzzer signs mutated messages with them, so
    the mutations reach the code behind the signature check)."""

    codepay: RSAPrivateKey
    ucanpay: RSAPrivateKey
    opay_platform: RSAPrivateKey  # signs the crypto platform's callbacks and answers
    opay_merchant: RSAPrivateKey  # the merchant's pair: callbacks are encrypted to its half

    @classmethod
    def generate(cls) -> GatewayKeys:
        return cls(*(load_private_key(generate_rsa_pem(2048)) for _ in range(4)))


def codepay_fields(rng: random.Random, merchant_no: str = MERCHANT_NO,
                   order_nos: Sequence[str] = ()) -> dict[str, Any]:
    """The fields of a CodePay notification or query ``data`` (as the simulator sends), about
    one of ``order_nos`` now and then (so that some reach the journal lookup)."""
    status = rng.choice((0, 1, 2, 3, 9))
    order_no = rng.choice(order_nos) if order_nos and rng.random() < 0.5 else _order_no(rng)
    fields: dict[str, Any] = {
        "merchant_no": merchant_no, "app_id": "app", "trans_no": "50" + "1" * 20,
        "merchant_order_no": order_no, "terminal_sn": "SANDBOX0000000001",
        "trans_type": rng.choice((1, 2, 3)), "trans_status": status,
        "price_currency": rng.choice(("USD", "JPY", "KWD")), "order_amount": _amount(rng),
        "terminal_online_status": "online", "sign_type": "RSA2",
    }
    if status == 2:
        fields.update(auth_no="123456", pay_method_id="Visa", card_type=2)
    if status == 1:
        fields.update(trans_error_code="51", trans_error_msg="Insufficient funds")
    return fields


def _codepay_sign(fields: dict[str, Any], key: RSAPrivateKey, rng: random.Random) -> None:
    """Sign ``fields`` in place when they can be signed (floats cannot), else leave it."""
    fields.pop("sign", None)
    if rng.random() < 0.85:
        try:
            fields["sign"] = cps.sign(fields, key)
        except (TypeError, ValueError):  # a float or an unencodable string: sent unsigned
            fields["sign"] = base64.b64encode(bytes(256)).decode()


def _encode(value: Any, rng: random.Random) -> bytes:
    if rng.random() < 0.5:
        return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")
    return json.dumps(value).encode()


def codepay_note_mutate(fields: dict[str, Any], rng: random.Random, key: RSAPrivateKey) -> bytes:
    roll = rng.random()
    if roll < 0.2:  # a signed note, then bytes edited (the signature no longer holds)
        _codepay_sign(fields, key, rng)
        return mutate_bytes(_encode(fields, rng), rng)
    mutated = mutate_json(fields, rng)
    if not isinstance(mutated, dict):
        return _encode(mutated, rng)
    _codepay_sign(mutated, key, rng)
    if roll < 0.35:  # form-encoded (the gateway may send a form)
        pairs = [(str(k), v if isinstance(v, str) else json.dumps(v)) for k, v in mutated.items()]
        return urllib.parse.urlencode(pairs, errors="surrogatepass").encode()
    return _encode(mutated, rng)


def codepay_note_check(body: bytes, key: RSAPrivateKey, merchant_no: str) -> str:
    try:
        report = cpm.parse_notification(body, gateway_key=key.public_key(),
                                        merchant_no=merchant_no)
    except NotificationRejected:
        return "refused"
    _check_report(report)
    return "accepted"


def codepay_answer_mutate(fields: dict[str, Any], rng: random.Random,
                          key: RSAPrivateKey) -> bytes:
    answer: dict[str, Any] = {"code": rng.choice(("0", "0", "ORDER_NOT_EXIST", "X")),
                              "msg": "success", "psn": "1" * 20, "data": fields}
    mutated = mutate_json(answer, rng) if rng.random() < 0.8 else answer
    if isinstance(mutated, dict):
        _codepay_sign(mutated, key, rng)
    body = _encode(mutated, rng)
    return mutate_bytes(body, rng) if rng.random() < 0.2 else body


def codepay_answer_check(body: bytes, key: RSAPrivateKey) -> str:
    from posbridge.providers.base import PaymentOrder, TxnKind

    order = PaymentOrder(order_no="A1", kind=TxnKind.SALE, amount=100, currency="USD",
                         terminal_sn="SANDBOX0000000001")
    refused = 0
    for parse in (cpm.parse_create_response, cpm.parse_query_response):
        try:
            _check_report(parse(body, order, gateway_key=key.public_key()))
        except (OutcomeUnknown, ProviderRejected):
            refused += 1
    return "refused" if refused else "accepted"


def _check_report(report: ProviderReport) -> None:
    if not isinstance(report.order_no, str):
        raise Unexpected(f"report order_no {report.order_no!r}")
    # Any integer may be reported (the engine compares it with the journal); never a float.
    if report.amount is not None and (not isinstance(report.amount, int)
                                      or isinstance(report.amount, bool)):
        raise Unexpected(f"report amount {report.amount!r}")


def ucanpay_data(rng: random.Random, merchant_id: str = UCANPAY_MERCHANT,
                 order_nos: Sequence[str] = ()) -> dict[str, Any]:
    """A UCanPay order or refund ``data`` (as the simulator sends), about one of
    ``order_nos`` now and then."""
    order_no = (rng.choice(order_nos) if order_nos and rng.random() < 0.5
                else _order_no(rng, alnum=True))
    data: dict[str, Any] = {
        "merchantId": merchant_id, "nonceStr": "sim1", "signType": "RSA",
        "timestamp": "2024-05-01T09:30:00Z", "outTradeNo": order_no,
        "ucpOrderNo": "377654578511872", "totalAmt": rng.randint(1, 10**6), "currency": "CAD",
        "tranTime": "2024-05-01T09:30:00Z",
        "tradeStatus": rng.choice(("SUCCESS", "NOTPAY", "CLOSED", "REFUND", "PAYERROR")),
    }
    if rng.random() < 0.3:
        data.update(outRefundNo=_order_no(rng, alnum=True), ucpRefundNo="377654578511873",
                    refundAmt=rng.randint(1, 1000), refundStatus="SUCCESS")
    return data


def _ucanpay_wrap(data: Any, rng: random.Random, key: RSAPrivateKey) -> dict[str, Any]:
    if isinstance(data, dict) and rng.random() < 0.85:
        try:
            data = sign_params(data, key, SignScheme.DOUBLE_HASH)
        except (TypeError, ValueError):
            data = {**data, "sign": base64.b64encode(bytes(256)).decode()}
    if rng.random() < 0.2:
        data = json.dumps(data)
    return {"code": rng.choice((0, 0, "0", 1)), "msg": "SUCCESS", "data": data}


def ucanpay_mutate(data: dict[str, Any], rng: random.Random, key: RSAPrivateKey) -> bytes:
    if rng.random() < 0.2:
        return mutate_bytes(_encode(_ucanpay_wrap(data, rng, key), rng), rng)
    wrapped = _ucanpay_wrap(mutate_json(data, rng), rng, key)
    if rng.random() < 0.2:
        wrapped = mutate_json(wrapped, rng)
    return _encode(wrapped, rng)


def ucanpay_note_check(body: bytes, key: RSAPrivateKey, merchant_id: str) -> str:
    try:
        report = ucm.parse_notification(body, key=key.public_key(),
                                        scheme=SignScheme.DOUBLE_HASH, merchant_id=merchant_id)
    except NotificationRejected:
        return "refused"
    _check_report(report)
    return "accepted"


def ucanpay_reply_check(body: bytes, key: RSAPrivateKey) -> str:
    try:
        data = ucm.open_reply(body, key=key.public_key(), scheme=SignScheme.DOUBLE_HASH)
    except (OutcomeUnknown, ProviderRejected):
        return "refused"
    refused = 0
    for read in (lambda: ucm.order_report(data, "A1"), lambda: ucm.refund_report(data, "R1")):
        try:
            _check_report(read())
        except OutcomeUnknown:
            refused += 1
    when = ucm.tran_time(data)
    if when is not None and not isinstance(when, float):
        raise Unexpected(f"tran_time {when!r}")
    ucm.clear_trade_status(data)
    return "refused" if refused == 2 else "accepted"


# -- the crypto platform: callbacks and answers, encrypted to the merchant and signed ------------

OPAY_COINS: Final = {"USDT": 6, "BTC": 8}


def opay_fields(rng: random.Random, order_nos: Sequence[str]) -> dict[str, Any]:
    """A plausible callback / orderDetail ``data``: the merchant's number, the platform's, a
    status and an amount."""
    order_no = rng.choice(order_nos) if order_nos and rng.random() < 0.3 else _order_no(rng)
    return {"outOrderId": order_no, "orderNum": str(rng.randint(10**9, 10**10)),
            "orderStatus": rng.choice(("0", "1", "2", "3")),
            "payAmount": f"{rng.randint(0, 999)}.{rng.randint(0, 999999):06d}",
            "returnUrl": "https://store.example/",
            **({"payCoinSymbol": rng.choice(("USDT", "BTC"))} if rng.random() < 0.5 else {})}


def opay_mutate(data: dict[str, Any], rng: random.Random, keys: GatewayKeys,
                app_id: str, *, answer: bool = False) -> bytes:
    """``data`` mutated, then sealed as the platform would (so the mutations reach the code
    behind the signature), or the sealed envelope or its bytes mutated. ``answer``: shaped as
    an answer to the merchant, ``{code, msg, data, sign}`` (a callback is ``{app_id, data,
    sign, time}``), with now and then a refusal's code."""
    params = mutate_json(data, rng) if rng.random() < 0.8 else data
    try:
        sealed: Any = seal(params if isinstance(params, dict) else {"value": params},
                           app_id=app_id, now_ms=1_700_000_000_000,
                           receiver_key=keys.opay_merchant.public_key(),
                           sender_key=keys.opay_platform)
    except (TypeError, ValueError):  # not JSON-able after the mutation: send raw bytes
        return mutate_bytes(json.dumps(data).encode(), rng)
    if answer:
        code = "0" if rng.random() < 0.9 else rng.choice(("1001", 0, "", None, True))
        sealed = {"code": code, "msg": "success", "data": sealed["data"],
                  "sign": sealed["sign"]}
    if rng.random() < 0.2:
        sealed = mutate_json(sealed, rng)
    encoded = _encode(sealed, rng)
    return mutate_bytes(encoded, rng) if rng.random() < 0.1 else encoded


def opay_callback_check(body: bytes, keys: GatewayKeys, app_id: str) -> str:
    try:
        data = opm.open_callback(body, app_id=app_id, merchant_key=keys.opay_merchant,
                                 platform_key=keys.opay_platform.public_key())
        _check_report(opm.order_report(data, order_no=opm.callback_order_no(data),
                                       decimals=OPAY_COINS.get(opm.callback_coin(data) or "",
                                                               18)))
    except (NotificationRejected, OutcomeUnknown):
        return "refused"
    return "accepted"


def opay_answer_check(body: bytes, keys: GatewayKeys) -> str:
    try:
        data = opm.open_answer(body, merchant_key=keys.opay_merchant,
                               platform_key=keys.opay_platform.public_key())
    except (OutcomeUnknown, ProviderRejected):
        return "refused"
    if not isinstance(data, dict):
        return "accepted"  # an answer without data (cancelOrder's)
    try:
        _check_report(opm.order_report(data, order_no=str(data.get("outOrderId", "A1")),
                                       decimals=6))
    except OutcomeUnknown:
        return "refused"
    return "accepted"


def provider_surfaces(keys: GatewayKeys, *, merchant_no: str = MERCHANT_NO,
                      ucanpay_merchant: str = UCANPAY_MERCHANT,
                      opay_app_id: str = OPAY_APP_ID,
                      order_nos: Sequence[str] = ()) -> list[Surface]:
    """The provider surfaces (CodePay notifications and answers, UCanPay notifications and
    replies, the crypto platform's callbacks and answers), signing mutated messages with
    ``keys``; samples name these merchants and, now and then, one of ``order_nos``."""
    cp, uc = keys.codepay, keys.ucanpay

    def cp_sample(rng: random.Random) -> dict[str, Any]:
        return codepay_fields(rng, merchant_no, order_nos)

    def uc_sample(rng: random.Random) -> dict[str, Any]:
        return ucanpay_data(rng, ucanpay_merchant, order_nos)

    return [
        Surface("codepay notifications", cp_sample,
                lambda v, r: codepay_note_mutate(v, r, cp),
                lambda b: codepay_note_check(b, cp, merchant_no)),
        Surface("codepay answers", cp_sample,
                lambda v, r: codepay_answer_mutate(v, r, cp),
                lambda b: codepay_answer_check(b, cp)),
        Surface("ucanpay notifications", uc_sample,
                lambda v, r: ucanpay_mutate(v, r, uc),
                lambda b: ucanpay_note_check(b, uc, ucanpay_merchant)),
        Surface("ucanpay replies", uc_sample,
                lambda v, r: ucanpay_mutate(v, r, uc), lambda b: ucanpay_reply_check(b, uc)),
        Surface("opay callbacks", lambda r: opay_fields(r, order_nos),
                lambda v, r: opay_mutate(v, r, keys, opay_app_id),
                lambda b: opay_callback_check(b, keys, opay_app_id)),
        Surface("opay answers", lambda r: opay_fields(r, order_nos),
                lambda v, r: opay_mutate(v, r, keys, opay_app_id, answer=True),
                lambda b: opay_answer_check(b, keys)),
    ]


# --------------------------------------------------------------------------------------------
# Configuration


def config_sample(folder: Path) -> Callable[[random.Random], dict[str, Any]]:
    """A valid TOML-shaped configuration whose key files exist in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for name in ("cp", "cpgw", "ucp", "ucpgw"):
        files[name] = folder / f"{name}.pem"
        files[name].write_text("-----BEGIN TEST KEY-----\n")
    token_hash = hash_secret("fuzz-token-0123456789abcdefghijklmnop", log2_n=4)
    pin_hash = hash_secret("4242", log2_n=4)

    def sample(rng: random.Random) -> dict[str, Any]:
        del rng  # one valid shape; the mutations vary it
        return {
            "bridge": {"data_dir": str(folder / "data"), "ecr_listen": "127.0.0.1:0",
                       "http_listen": "127.0.0.1:0", "public_url": "http://127.0.0.1:8766",
                       "max_amount": "500.00", "log_format": "json"},
            "ecr_clients": [{"name": "lane-1", "role": "cashier", "token_hash": token_hash}],
            "manager": {"pin_hash": pin_hash},
            "codepay": {"base_url": "https://codepay.example", "app_id": "app",
                        "merchant_no": "M1", "private_key_file": str(files["cp"]),
                        "gateway_public_key_file": str(files["cpgw"]), "expires_s": 180,
                        "poll_interval_s": 2.0},
            "ucanpay": {"base_url": "https://ucanpay.example", "merchant_id": "U1",
                        "private_key_file": str(files["ucp"]),
                        "public_key_file": str(files["ucpgw"]), "currency": "CAD"},
            "terminals": [{"sn": "WPYB002248000865", "name": "lane-1", "display": "d1",
                           "printer": "p1"}],
            "displays": [{"name": "d1", "kind": "web"},
                         {"name": "d2", "kind": "serial", "device": "/dev/ttyUSB1"}],
            "printers": [{"name": "p1", "kind": "file", "path": str(folder / "p1.bin")},
                         {"name": "p2", "kind": "tcp", "host": "10.0.0.9", "port": 9100}],
        }

    return sample


ENV_NAMES: Final = (
    "POSBRIDGE_BRIDGE__MAX_AMOUNT", "POSBRIDGE_CODEPAY__EXPIRES_S", "POSBRIDGE_SANDBOX__X",
    "POSBRIDGE_ECR_CLIENTS__0__ROLE", "POSBRIDGE_ECR_CLIENTS__1__NAME",
    "POSBRIDGE_ECR_CLIENTS__9__NAME", "POSBRIDGE_TERMINALS__0", "POSBRIDGE_TERMINALS__00__SN",
    "POSBRIDGE___", "POSBRIDGE_BRIDGE__", "posbridge_bridge__data_dir", "POSBRIDGE_X__Y__Z",
    "POSBRIDGE_UCANPAY__POLL_INTERVAL_S", "POSBRIDGE_PRINTERS__0__WIDTH_DOTS",
    "POSBRIDGE_CODEPAY__SIGN_TYPE", "POSBRIDGE_DISPLAYS__1__COLUMNS",
)


def config_mutate(data: dict[str, Any], rng: random.Random) -> tuple[Any, dict[str, str]]:
    env = {}
    if rng.random() < 0.3:
        for _ in range(rng.randint(1, 3)):
            name = rng.choice(ENV_NAMES) if rng.random() < 0.8 else "POSBRIDGE_" + random_text(
                rng, 12) + "__" + random_text(rng, 8)
            env[name] = rng.choice(("1", "-1", "true", "0.5", "", "x" * 70, "1" * 19,
                                    "USD", "manager", "RSA2", random_text(rng, 10)))
    return mutate_json(data, rng), env


def config_check(value: tuple[Any, dict[str, str]]) -> str:
    data, env = value
    if not isinstance(data, Mapping):
        return "refused"  # the TOML reader always gives a table; nothing to ask parse_config
    try:
        parse_config(data, env=env)
    except ConfigError as exc:
        if not isinstance(exc.key, str) or not exc.key:
            raise Unexpected("ConfigError without a key") from exc
        return "refused"
    return "accepted"


def config_file_mutate(folder: Path) -> Callable[[Any, random.Random], bytes]:
    """TOML text of the sample, then byte edits (the file as an operator may break it)."""

    def mutate(data: dict[str, Any], rng: random.Random) -> bytes:
        return mutate_bytes(_toml(data).encode(), rng)

    return mutate


def config_file_check(folder: Path) -> Callable[[bytes], str]:
    def check(text: bytes) -> str:
        path = folder / "fuzz.toml"
        path.write_bytes(text)
        try:
            load_config(path, env={})
        except ConfigError as exc:
            if not exc.key:
                raise Unexpected("ConfigError without a key") from exc
            return "refused"
        return "accepted"

    return check


def _toml(data: Mapping[str, Any]) -> str:
    """A small TOML writer for the sample's shape (tables, arrays of tables, scalars)."""
    lines: list[str] = []
    for name, value in data.items():
        if isinstance(value, list):
            for entry in value:
                lines.append(f"[[{name}]]")
                lines += [f"{k} = {json.dumps(v)}" for k, v in entry.items()]
        else:
            lines.append(f"[{name}]")
            lines += [f"{k} = {json.dumps(v)}" for k, v in value.items()]
    return "\n".join(lines) + "\n"


def config_surfaces(folder: Path) -> list[Surface]:
    sample = config_sample(folder)
    return [Surface("config (parse_config)", sample, config_mutate, config_check),
            Surface("config (load_config)", sample, config_file_mutate(folder),
                    config_file_check(folder))]


# --------------------------------------------------------------------------------------------
# ESC/POS slips and customer display frames


def _text_field(rng: random.Random, max_len: int = 40) -> str:
    return random_text(rng, max_len) if rng.random() < 0.7 else str(
        rng.choice(("Latte", "12.50", "A1", "", "a" * 300)))


def slip_sample(rng: random.Random) -> dict[str, Any]:
    return {"deeplink": "https://pay.example/q?o=" + "1" * rng.randint(1, 300),
            "amount_text": _amount(rng), "currency": "CAD", "subject": "Latte",
            "order_no": "Q1", "expires_text": "09:35", "kind": "sale", "state": "approved",
            "card_brand": "Visa", "card_last4": "4242", "auth_no": "123456",
            "time_text": "2024-05-01 09:30", "orig_order_no": None,
            "width_dots": rng.choice((384, 576)), "native_qr": rng.random() < 0.7}


def slip_mutate(args: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    out = dict(args)
    for name in rng.sample(sorted(out), rng.randint(1, 4)):
        if name == "width_dots":
            out[name] = rng.choice((64, 72, 128, 384, 576, 4096))
        elif name == "native_qr":
            out[name] = rng.random() < 0.5
        elif name == "deeplink":
            out[name] = rng.choice(("", random_text(rng, 50), "x" * rng.randint(1, 3000)))
        else:
            out[name] = _text_field(rng)
    return out


def slip_check(args: dict[str, Any]) -> str:
    profile = PrinterProfile(width_dots=args["width_dots"], native_qr=args["native_qr"],
                             columns=32 if args["width_dots"] < 576 else 48)
    texts = [args[k] for k in ("amount_text", "currency", "subject", "order_no", "expires_text",
                               "kind", "state", "card_brand", "card_last4", "auth_no",
                               "time_text") if args.get(k)]
    for text in texts:
        encoded = encode_text(text)
        if any((b < 0x20 and b != 0x0A) or b == 0x7F for b in encoded):
            raise Unexpected(f"encode_text let a control byte through for {text!r}")
    try:
        qr_slip(deeplink=args["deeplink"], amount_text=args["amount_text"],
                currency=args["currency"], subject=args["subject"], order_no=args["order_no"],
                expires_text=args["expires_text"], profile=profile)
        card_receipt(kind=args["kind"], state=args["state"], amount_text=args["amount_text"],
                     currency=args["currency"], card_brand=args["card_brand"],
                     card_last4=args["card_last4"], auth_no=args["auth_no"],
                     order_no=args["order_no"], time_text=args["time_text"], profile=profile,
                     orig_order_no=args["orig_order_no"])
        batch_report_from_view(
            {"terminal": args["order_no"], "batch_no": args["auth_no"],
             "opened_at": args["time_text"], "closed_at": args["expires_text"],
             "totals": {args["currency"]: {"sales": args["amount_text"], "count": 3}},
             "discrepancy": {"net": {"bridge": args["subject"], "provider": "1.00"}}},
            profile=profile)
    except (ValueError, PrinterError):
        return "refused"
    return "accepted"


def frame_sample(rng: random.Random) -> dict[str, Any]:
    return {"state": rng.choice(list(FrameState)), "amount_text": _amount(rng),
            "currency": "CAD", "deeplink": "https://pay.example/q", "expires_at": 1.7e9,
            "message": "Thank you", "order_no": "Q1", "seq": rng.randint(0, 100),
            "columns": 20, "rows": 2}


def frame_mutate(args: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    out = dict(args)
    for name in rng.sample(sorted(out), rng.randint(1, 4)):
        if name == "state":
            out[name] = rng.choice(list(FrameState))
        elif name == "seq":
            out[name] = rng.choice((-1, 0, 1, 2**63))
        elif name in ("columns", "rows"):  # the configuration allows 1-80 and 1-8
            out[name] = rng.choice((-1, 0, 1, 2, 8, 16, 20, 40, 80))
        elif name == "expires_at":
            out[name] = rng.choice((None, 0.0, -1.0, 1e300, float("nan"), float("inf")))
        else:
            out[name] = _text_field(rng, 60) if rng.random() < 0.9 else "x" * 3000
    return out


def frame_check(args: dict[str, Any]) -> str:
    fields = {k: v for k, v in args.items() if k not in ("columns", "rows")}
    try:
        frame = DisplayFrame(**fields)
        lines = pole_lines(frame, args["columns"], args["rows"])
    except ValueError:
        return "refused"
    if len(lines) != args["rows"] or any(
            len(line) > args["columns"] or not all(" " <= c <= "~" for c in line)
            for line in lines):
        raise Unexpected(f"pole lines {lines!r}")
    screen_bytes(lines)
    text = frame.to_json()
    json.loads(text, parse_constant=_no_constant)  # what a browser's JSON.parse accepts
    return "accepted"


def _no_constant(name: str) -> object:
    raise Unexpected(f"display frame JSON carries {name}, which JSON.parse refuses")


def status_sample(rng: random.Random) -> tuple[int, int]:
    return rng.choice((1, 2, 3, 4)), 0x12


def status_mutate(value: tuple[int, int], rng: random.Random) -> tuple[int, int]:
    return rng.choice((value[0], 0, 5, -1)), rng.choice((rng.randrange(256), -1, 256, 10**9))


def status_check(value: tuple[int, int]) -> str:
    try:
        parse_status(*value)
    except (PrinterError, ValueError):
        return "refused"
    return "accepted"


HARDWARE = [
    Surface("escpos slips", slip_sample, slip_mutate, slip_check),
    Surface("display frames", frame_sample, frame_mutate, frame_check),
    Surface("printer status bytes", status_sample, status_mutate, status_check),
]
