"""Per-method parameter validation: every method, every malformed-input class, money rules,
bounds, unicode and the idempotency fingerprint."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from posbridge.ecr import params as P
from posbridge.ecr.params import params_fingerprint, parse_params
from posbridge.errors import ConfigError, RequestError
from posbridge.lifecycle import State

MAX = "10000.00"

SALE: dict[str, object] = {
    "terminal": "lane-1", "order_no": "A-1", "amount": "12.34", "currency": "USD"}
VOID: dict[str, object] = {"order_no": "V-1", "orig_order_no": "A-1"}
REFUND: dict[str, object] = {"order_no": "R-1", "orig_order_no": "A-1", "amount": "5.00"}
QR: dict[str, object] = {"order_no": "Q1", "amount": "4.50", "currency": "CAD", "subject": "Latte"}


def invalid(method: str, params: object, max_amount: str = MAX) -> RequestError:
    with pytest.raises(RequestError) as info:
        parse_params(method, params, max_amount=max_amount)
    return info.value


def with_(base: Mapping[str, object], **changes: object) -> dict[str, object]:
    return {**base, **changes}


def without(base: Mapping[str, object], name: str) -> dict[str, object]:
    return {k: v for k, v in base.items() if k != name}


# -- well-formed calls ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "raw", "expected"),
    [
        ("auth", {"token": "t0k"}, P.AuthParams("t0k")),
        ("ping", {}, P.PingParams()),
        ("sale", SALE, P.SaleParams("lane-1", "A-1", 1234, "USD")),
        ("sale", with_(SALE, tip="1.50", description="Table 4", wait=False, timeout_s=30),
         P.SaleParams("lane-1", "A-1", 1234, "USD", tip=150, description="Table 4",
                      wait=False, timeout_s=30.0)),
        ("void", VOID, P.VoidParams("V-1", "A-1")),
        ("void", with_(VOID, terminal="SN123", manager_pin="4321"),
         P.VoidParams("V-1", "A-1", terminal="SN123", manager_pin="4321")),
        ("refund", REFUND, P.RefundParams("R-1", "A-1", "5.00")),
        ("refund", with_(REFUND, description="broken cup", manager_pin="1"),
         P.RefundParams("R-1", "A-1", "5.00", description="broken cup", manager_pin="1")),
        ("qr_sale", QR, P.QrSaleParams("Q1", 450, "CAD", "Latte")),
        ("qr_sale", with_(QR, body="Medium latte", display="lane-1", print=True, wait=False,
                          timeout_s=0.5, terminal="SN1"),
         P.QrSaleParams("Q1", 450, "CAD", "Latte", body="Medium latte", display="lane-1",
                        print_slip=True, wait=False, timeout_s=0.5, terminal="SN1")),
        ("cancel", {"order_no": "A-1"}, P.CancelParams("A-1")),
        ("status", {"order_no": "A-1"}, P.StatusParams("A-1")),
        ("status", {"order_no": "A-1", "refresh": True}, P.StatusParams("A-1", refresh=True)),
        ("transactions.list", {}, P.TransactionsListParams()),
        ("transactions.list",
         {"terminal": "lane-1", "state": "unknown", "since": "2024-05-01T09:30:00Z",
          "limit": 500, "cursor": "WzE3MTQsIkExIl0"},
         P.TransactionsListParams("lane-1", State.UNKNOWN,
                                  datetime(2024, 5, 1, 9, 30, tzinfo=UTC), 500,
                                  "WzE3MTQsIkExIl0")),
        ("terminals.list", {}, P.TerminalsListParams()),
        ("batch.status", {}, P.BatchStatusParams()),
        ("batch.status", {"terminal": "SN1"}, P.BatchStatusParams("SN1")),
        ("batch.close", {"terminal": "SN1"}, P.BatchCloseParams("SN1")),
        ("batch.close", {"terminal": "SN1", "manager_pin": "9"},
         P.BatchCloseParams("SN1", manager_pin="9")),
        ("events.replay", {"since_seq": 0}, P.EventsReplayParams(0)),
    ],
)
def test_valid_params_become_their_dataclass(method: str, raw: Any, expected: P.Params) -> None:
    assert parse_params(method, raw, max_amount=MAX) == expected


def test_null_means_not_given_for_optional_params() -> None:
    raw = with_(SALE, tip=None, description=None, wait=None, timeout_s=None)
    assert parse_params("sale", raw, max_amount=MAX) == P.SaleParams("lane-1", "A-1", 1234, "USD")


# -- malformed input: (method, params, field) -> -32602 invalid_params naming the field ----

LONG = "x" * 129
MALFORMED: list[tuple[str, str, object, str]] = [
    # unknown / missing / wrong shape
    ("unknown param", "sale", with_(SALE, amout="1.00"), "amout"),
    ("unknown param on ping", "ping", {"x": 1}, "x"),
    ("unknown param on terminals.list", "terminals.list", {"terminal": "a"}, "terminal"),
    ("params not an object", "sale", ["lane-1"], "params"),
    ("missing terminal", "sale", without(SALE, "terminal"), "terminal"),
    ("missing order_no", "sale", without(SALE, "order_no"), "order_no"),
    ("missing amount", "sale", without(SALE, "amount"), "amount"),
    ("missing currency", "sale", without(SALE, "currency"), "currency"),
    ("null required", "sale", with_(SALE, order_no=None), "order_no"),
    ("missing token", "auth", {}, "token"),
    ("empty token", "auth", {"token": ""}, "token"),
    ("token number", "auth", {"token": 1234}, "token"),
    # order_no
    ("order_no empty", "sale", with_(SALE, order_no=""), "order_no"),
    ("order_no 33 chars", "sale", with_(SALE, order_no="A" * 33), "order_no"),
    ("order_no space", "sale", with_(SALE, order_no="A 1"), "order_no"),
    ("order_no slash", "sale", with_(SALE, order_no="A/1"), "order_no"),
    ("order_no unicode", "sale", with_(SALE, order_no="Å1"), "order_no"),
    ("order_no number", "sale", with_(SALE, order_no=12), "order_no"),
    ("void same order_no", "void", with_(VOID, order_no="A-1"), "order_no"),
    ("void bad orig", "void", with_(VOID, orig_order_no="a b"), "orig_order_no"),
    ("refund same order_no", "refund", with_(REFUND, order_no="A-1"), "order_no"),
    # money
    ("amount JSON number", "sale", with_(SALE, amount=12.34), "amount"),
    ("amount JSON integer", "sale", with_(SALE, amount=12), "amount"),
    ("amount zero", "sale", with_(SALE, amount="0.00"), "amount"),
    ("amount negative", "sale", with_(SALE, amount="-1.00"), "amount"),
    ("amount plus sign", "sale", with_(SALE, amount="+1.00"), "amount"),
    ("amount exponent", "sale", with_(SALE, amount="1e3"), "amount"),
    ("amount comma", "sale", with_(SALE, amount="1,00"), "amount"),
    ("amount blank", "sale", with_(SALE, amount=" 1.00"), "amount"),
    ("amount leading zero", "sale", with_(SALE, amount="01.00"), "amount"),
    ("amount dot only", "sale", with_(SALE, amount="1."), "amount"),
    ("amount huge", "sale", with_(SALE, amount="9" * 400), "amount"),
    ("amount over max", "sale", with_(SALE, amount="10000.01"), "amount"),
    ("amount three decimals USD", "sale", with_(SALE, amount="1.234"), "amount"),
    ("tip JSON number", "sale", with_(SALE, tip=1), "tip"),
    ("tip negative", "sale", with_(SALE, tip="-0.50"), "tip"),
    ("amount plus tip over max", "sale", with_(SALE, amount="9999.00", tip="1.01"), "tip"),
    ("refund amount number", "refund", with_(REFUND, amount=5), "amount"),
    ("refund amount zero", "refund", with_(REFUND, amount="0"), "amount"),
    ("refund amount five decimals", "refund", with_(REFUND, amount="1.00001"), "amount"),
    ("refund amount over max", "refund", with_(REFUND, amount="10000.0001"), "amount"),
    ("qr amount zero", "qr_sale", with_(QR, amount="0"), "amount"),
    # currency
    ("currency lower case", "sale", with_(SALE, currency="usd"), "currency"),
    ("currency unknown", "sale", with_(SALE, currency="XYZ"), "currency"),
    ("currency numeric code", "sale", with_(SALE, currency="840"), "currency"),
    ("currency too long", "sale", with_(SALE, currency="USDX"), "currency"),
    ("currency number", "sale", with_(SALE, currency=840), "currency"),
    # text
    ("description too long", "sale", with_(SALE, description=LONG), "description"),
    ("description control char", "sale", with_(SALE, description="a\nb"), "description"),
    ("description NUL", "refund", with_(REFUND, description="a\x00"), "description"),
    ("description number", "sale", with_(SALE, description=5), "description"),
    ("subject missing", "qr_sale", without(QR, "subject"), "subject"),
    ("subject empty", "qr_sale", with_(QR, subject=""), "subject"),
    ("subject huge", "qr_sale", with_(QR, subject="s" * 100_000), "subject"),
    ("body huge", "qr_sale", with_(QR, body="b" * 257), "body"),
    ("terminal empty", "sale", with_(SALE, terminal=""), "terminal"),
    ("terminal too long", "sale", with_(SALE, terminal="t" * 65), "terminal"),
    ("terminal object", "sale", with_(SALE, terminal={"sn": "1"}), "terminal"),
    ("display number", "qr_sale", with_(QR, display=1), "display"),
    ("manager_pin number", "void", with_(VOID, manager_pin=1234), "manager_pin"),
    ("manager_pin empty", "batch.close", {"terminal": "SN1", "manager_pin": ""}, "manager_pin"),
    ("batch.close no terminal", "batch.close", {}, "terminal"),
    # flags and numbers
    ("wait string", "sale", with_(SALE, wait="true"), "wait"),
    ("wait number", "sale", with_(SALE, wait=1), "wait"),
    ("print string", "qr_sale", with_(QR, print="yes"), "print"),
    ("refresh number", "status", {"order_no": "A1", "refresh": 0}, "refresh"),
    ("timeout zero", "sale", with_(SALE, timeout_s=0), "timeout_s"),
    ("timeout negative", "sale", with_(SALE, timeout_s=-1), "timeout_s"),
    ("timeout too long", "sale", with_(SALE, timeout_s=600.5), "timeout_s"),
    ("timeout string", "sale", with_(SALE, timeout_s="30"), "timeout_s"),
    ("timeout bool", "qr_sale", with_(QR, timeout_s=True), "timeout_s"),
    ("timeout nan", "sale", with_(SALE, timeout_s=float("nan")), "timeout_s"),
    ("limit zero", "transactions.list", {"limit": 0}, "limit"),
    ("limit 501", "transactions.list", {"limit": 501}, "limit"),
    ("limit float", "transactions.list", {"limit": 10.0}, "limit"),
    ("limit bool", "transactions.list", {"limit": True}, "limit"),
    ("state unknown", "transactions.list", {"state": "paid"}, "state"),
    ("state upper case", "transactions.list", {"state": "APPROVED"}, "state"),
    ("since naive", "transactions.list", {"since": "2024-05-01T09:30:00"}, "since"),
    ("since date only", "transactions.list", {"since": "2024-05-01"}, "since"),
    ("since impossible", "transactions.list", {"since": "2024-02-30T00:00:00Z"}, "since"),
    # in UTC before year 1: astimezone raised OverflowError, answered -32603
    ("since before year 1 in UTC", "transactions.list",
     {"since": "0001-01-01T00:00:00+01:00"}, "since"),
    ("since after year 9999 in UTC", "transactions.list",
     {"since": "9999-12-31T23:59:59-01:00"}, "since"),
    ("since epoch number", "transactions.list", {"since": 1714555800}, "since"),
    ("cursor empty", "transactions.list", {"cursor": ""}, "cursor"),
    ("cursor space", "transactions.list", {"cursor": "a b"}, "cursor"),
    ("cursor huge", "transactions.list", {"cursor": "c" * 257}, "cursor"),
    ("since_seq missing", "events.replay", {}, "since_seq"),
    ("since_seq negative", "events.replay", {"since_seq": -1}, "since_seq"),
    ("since_seq string", "events.replay", {"since_seq": "5"}, "since_seq"),
    ("since_seq float", "events.replay", {"since_seq": 1.5}, "since_seq"),
    ("since_seq too big", "events.replay", {"since_seq": 2**63}, "since_seq"),
]


@pytest.mark.parametrize(
    ("method", "raw", "field"), [c[1:] for c in MALFORMED], ids=[c[0] for c in MALFORMED]
)
def test_malformed_params_are_refused_naming_the_field(method: str, raw: Any, field: str) -> None:
    err = invalid(method, raw)
    assert (err.code, err.reason, err.field) == (-32602, "invalid_params", field)
    assert err.message.startswith(f"{field}: ")


def test_unknown_params_are_all_named() -> None:
    err = invalid("cancel", {"order_no": "A1", "zeta": 1, "alpha": 2})
    assert err.field == "alpha"
    assert "alpha, zeta" in err.message


def test_unknown_method_is_method_not_found() -> None:
    err = invalid("refunds", {})
    assert (err.code, err.reason, err.field) == (-32601, "method_not_found", "method")


def test_error_messages_never_echo_a_pin_or_token() -> None:
    err = invalid("void", with_(VOID, manager_pin="12\n34"))
    assert "12" not in err.message
    assert "34" not in err.message
    err = invalid("auth", {"token": "sec\x00ret-" + "k" * 300})
    assert "sec" not in err.message


def test_secrets_stay_out_of_repr() -> None:
    assert "t0k" not in repr(parse_params("auth", {"token": "t0k"}, max_amount=MAX))
    void = parse_params("void", with_(VOID, manager_pin="4321"), max_amount=MAX)
    assert "4321" not in repr(void)
    close = parse_params("batch.close", {"terminal": "SN1", "manager_pin": "4321"},
                         max_amount=MAX)
    assert "4321" not in repr(close)


# -- money per currency exponent -----------------------------------------------------------


@pytest.mark.parametrize(
    ("currency", "text", "minor"),
    [
        ("JPY", "1", 1),
        ("JPY", "10000", 10000),
        ("USD", "0.01", 1),
        ("USD", "12.3", 1230),
        ("USD", "12.34", 1234),
        ("USD", "10000", 1_000_000),
        ("CAD", "10000.00", 1_000_000),
        ("KWD", "0.001", 1),
        ("KWD", "1.234", 1234),
        ("KWD", "9999.999", 9_999_999),
    ],
)
def test_amounts_follow_the_currency_exponent(currency: str, text: str, minor: int) -> None:
    sale = parse_params("sale", with_(SALE, currency=currency, amount=text), max_amount=MAX)
    assert (sale.amount, sale.currency) == (minor, currency)
    qr = parse_params("qr_sale", with_(QR, currency=currency, amount=text), max_amount=MAX)
    assert qr.amount == minor


@pytest.mark.parametrize(
    ("currency", "text"),
    [("JPY", "1.0"), ("JPY", "10001"), ("USD", "0.001"), ("USD", "10000.01"),
     ("KWD", "0.0001"), ("KWD", "10000.001"), ("JPY", "0")],
)
def test_amounts_beyond_exponent_or_limit_are_refused(currency: str, text: str) -> None:
    err = invalid("sale", with_(SALE, currency=currency, amount=text))
    assert (err.code, err.field) == (-32602, "amount")


def test_zero_tip_is_allowed_and_tip_follows_the_exponent() -> None:
    assert parse_params("sale", with_(SALE, tip="0"), max_amount=MAX).tip == 0
    assert invalid("sale", with_(SALE, currency="JPY", amount="100", tip="0.5")).field == "tip"


def test_max_amount_is_in_major_units_and_rounds_down_for_small_exponents() -> None:
    sale = parse_params("sale", with_(SALE, currency="JPY", amount="99"), max_amount="99.99")
    assert sale.amount == 99
    assert invalid("sale", with_(SALE, currency="JPY", amount="100"), "99.99").field == "amount"


def test_refund_amount_stays_the_registers_string() -> None:
    for text in ("5", "5.0", "5.00", "0.001", "0.0001"):
        refund = parse_params("refund", with_(REFUND, amount=text), max_amount=MAX)
        assert refund.amount == text


@pytest.mark.parametrize("bad", ["", "ten", "-1", "NaN", "Infinity", "0"])
def test_malformed_max_amount_is_a_config_error(bad: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_params("sale", SALE, max_amount=bad)
    assert info.value.key == "max_amount"


def test_methods_without_amounts_do_not_read_max_amount() -> None:
    assert parse_params("auth", {"token": "x"}, max_amount="0") == P.AuthParams("x")


# -- text bounds and unicode ---------------------------------------------------------------


def test_unicode_text_is_counted_in_characters() -> None:
    text = "☕" * P.MAX_DESCRIPTION_CHARS  # 384 bytes of UTF-8, 128 characters
    sale = parse_params("sale", with_(SALE, description=text), max_amount=MAX)
    assert sale.description == text
    assert invalid("sale", with_(SALE, description=text + "☕")).field == "description"


def test_unicode_subject_body_and_names_are_kept() -> None:
    raw = with_(QR, subject="Café crème", body="咖啡 · 🧾 receipt", display="Caisse-É")
    qr = parse_params("qr_sale", raw, max_amount=MAX)
    assert (qr.subject, qr.body, qr.display) == ("Café crème", "咖啡 · 🧾 receipt", "Caisse-É")


@pytest.mark.parametrize("control", ["\t", "\r", "\x1b", "\x7f", "\x85"])
def test_control_characters_are_refused(control: str) -> None:
    assert invalid("qr_sale", with_(QR, subject=f"a{control}b")).field == "subject"


# -- since ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-01T09:30:00Z", datetime(2024, 5, 1, 9, 30, tzinfo=UTC)),
        ("2024-05-01t09:30:00z", datetime(2024, 5, 1, 9, 30, tzinfo=UTC)),
        ("2024-05-01T11:30:00+02:00", datetime(2024, 5, 1, 9, 30, tzinfo=UTC)),
        ("2024-05-01T04:30:00.5-05:00", datetime(2024, 5, 1, 9, 30, 0, 500000, tzinfo=UTC)),
        ("2024-05-01T09:30:00.123456789Z", datetime(2024, 5, 1, 9, 30, 0, 123456, tzinfo=UTC)),
    ],
)
def test_since_is_rfc3339_returned_as_aware_utc(text: str, expected: datetime) -> None:
    since = parse_params("transactions.list", {"since": text}, max_amount=MAX).since
    assert since == expected
    assert since is not None
    assert since.utcoffset() == timedelta(0)


# -- crypto sales --------------------------------------------------------------------------

CRYPTO: dict[str, object] = {"order_no": "C-1", "amount": "12.345678", "coin": "USDT",
                             "payer": {"open_id": "2ae04ed9165624419bad68e9e0f3f29fbd"}}


def test_a_crypto_sale_keeps_the_amount_as_the_registers_string() -> None:
    p = parse_params("crypto_sale", with_(CRYPTO, subject="Coffee", display="lane-1",
                                          print=True, terminal="lane-1"), max_amount=MAX)
    assert p == P.CryptoSaleParams(order_no="C-1", amount="12.345678", coin="USDT",
                                   payer=("open_id", "2ae04ed9165624419bad68e9e0f3f29fbd"),
                                   subject="Coffee", display="lane-1", print_slip=True,
                                   terminal="lane-1")
    by_uid = parse_params("crypto_sale", with_(CRYPTO, payer={"user_id": "22033390"}),
                          max_amount=MAX)
    assert isinstance(by_uid, P.CryptoSaleParams) and by_uid.payer == ("user_id", "22033390")
    # 18 decimals (a coin's own limit is the engine's to check), and up to max_amount
    parse_params("crypto_sale", with_(CRYPTO, amount="0.000000000000000001"), max_amount=MAX)
    parse_params("crypto_sale", with_(CRYPTO, amount="10000.000000"), max_amount=MAX)


@pytest.mark.parametrize(("raw", "field"), [
    (with_(CRYPTO, amount=12.5), "amount"),
    (with_(CRYPTO, amount="0.000"), "amount"),
    (with_(CRYPTO, amount="-1"), "amount"),
    (with_(CRYPTO, amount="1.0000000000000000001"), "amount"),
    (with_(CRYPTO, amount="10000.000001"), "amount"),
    (without(CRYPTO, "coin"), "coin"),
    (with_(CRYPTO, coin="usdt"), "coin"),
    (with_(CRYPTO, coin="U"), "coin"),
    (without(CRYPTO, "payer"), "payer"),
    (with_(CRYPTO, payer="2ae04ed9"), "payer"),
    (with_(CRYPTO, payer={}), "payer"),
    (with_(CRYPTO, payer={"open_id": "a", "user_id": "1"}), "payer"),
    (with_(CRYPTO, payer={"uid": "1"}), "payer"),
    (with_(CRYPTO, payer={"open_id": "a b"}), "payer.open_id"),
    (with_(CRYPTO, payer={"user_id": 22033390}), "payer.user_id"),
    (with_(CRYPTO, payer={"user_id": "x" * 65}), "payer.user_id"),
    (with_(CRYPTO, currency="USD"), "currency"),
    (with_(CRYPTO, subject="s" * 129), "subject"),
])
def test_a_malformed_crypto_sale_names_the_field(raw: Any, field: str) -> None:
    err = invalid("crypto_sale", raw)
    assert (err.code, err.field) == (-32602, field)


# -- fingerprints --------------------------------------------------------------------------


def fp(method: str, raw: Mapping[str, object]) -> str:
    return params_fingerprint(parse_params(method, raw, max_amount=MAX))


@pytest.mark.parametrize(
    ("method", "base", "how_to_ask"),
    [
        ("sale", SALE, {"wait": False, "timeout_s": 5}),
        ("qr_sale", QR, {"wait": False, "timeout_s": 1.5}),
        ("void", VOID, {"manager_pin": "1234"}),
        ("refund", REFUND, {"manager_pin": "1234"}),
    ],
)
def test_fingerprint_ignores_how_the_request_waits_or_is_authorised(
    method: str, base: dict[str, object], how_to_ask: dict[str, object]
) -> None:
    assert fp(method, base) == fp(method, {**base, **how_to_ask})


@pytest.mark.parametrize(
    ("method", "base", "change"),
    [
        ("sale", SALE, {"amount": "12.35"}),
        ("sale", SALE, {"currency": "CAD"}),
        ("sale", SALE, {"terminal": "lane-2"}),
        ("sale", SALE, {"tip": "0.01"}),
        ("sale", SALE, {"description": "other"}),
        ("qr_sale", QR, {"subject": "Tea"}),
        ("qr_sale", QR, {"display": "lane-2"}),
        ("qr_sale", QR, {"print": True}),
        ("void", VOID, {"orig_order_no": "A-2"}),
        ("void", VOID, {"terminal": "SN9"}),
        ("refund", REFUND, {"amount": "5.01"}),
        ("refund", REFUND, {"orig_order_no": "A-2"}),
    ],
)
def test_fingerprint_changes_with_what_defines_the_payment(
    method: str, base: dict[str, object], change: dict[str, object]
) -> None:
    assert fp(method, base) != fp(method, {**base, **change})


def test_fingerprint_treats_equal_amount_strings_alike() -> None:
    assert fp("sale", with_(SALE, amount="12.3")) == fp("sale", with_(SALE, amount="12.30"))
    prints = {fp("refund", with_(REFUND, amount=a)) for a in ("5", "5.0", "5.00", "5.0000")}
    assert len(prints) == 1
    assert fp("refund", with_(REFUND, amount="50")) != fp("refund", with_(REFUND, amount="5"))


def test_fingerprint_tells_methods_apart_and_is_stable() -> None:
    sale = fp("sale", {**SALE, "order_no": "Q1"})
    qr = fp("qr_sale", {"order_no": "Q1", "amount": "12.34", "currency": "USD",
                        "subject": "lane-1"})
    assert sale != qr
    assert fp("sale", SALE) == (
        '{"amount":1234,"currency":"USD","description":"","method":"sale",'
        '"order_no":"A-1","terminal":"lane-1","tip":0}'
    )


# -- protocol 1.1: the card lifecycle ------------------------------------------------------------

PREAUTH: dict[str, object] = {"terminal": "lane-1", "order_no": "H-1", "amount": "200.00",
                              "currency": "USD"}


def test_the_lifecycle_methods_become_their_dataclasses() -> None:
    assert parse_params("preauth", with_(PREAUTH, on_screen_tip=True), max_amount=MAX) == (
        P.PreauthParams(terminal="lane-1", order_no="H-1", amount=20000, currency="USD",
                        on_screen_tip=True))
    assert parse_params("preauth.cancel", {"order_no": "H-1X", "orig_order_no": "H-1",
                                           "manager_pin": "1234"}, max_amount=MAX) == (
        P.PreauthCancelParams(order_no="H-1X", orig_order_no="H-1", manager_pin="1234"))
    assert parse_params("completion", {"order_no": "H-1C", "orig_order_no": "H-1",
                                       "amount": "184.2", "tip": "0"}, max_amount=MAX) == (
        P.CompletionParams(order_no="H-1C", orig_order_no="H-1", amount="184.2", tip="0"))
    assert parse_params("tip.adjust", {"order_no": "T-1", "orig_order_no": "A-1",
                                       "tip": "0"}, max_amount=MAX) == (
        P.TipAdjustParams(order_no="T-1", orig_order_no="A-1", tip="0"))
    assert parse_params("checkout_qr", {"order_no": "W-1", "amount": "25.00",
                                        "currency": "USD", "print": True},
                        max_amount=MAX) == P.CheckoutQrParams(
        order_no="W-1", amount=2500, currency="USD", print_slip=True)
    sale = parse_params("sale", with_(SALE, cashback="40.00", on_screen_tip=True),
                        max_amount=MAX)
    assert isinstance(sale, P.SaleParams) and (sale.cashback, sale.on_screen_tip) == (4000, True)
    refund = parse_params("refund", with_(REFUND, card_present=False), max_amount=MAX)
    assert isinstance(refund, P.RefundParams) and refund.card_present is False


@pytest.mark.parametrize(("method", "raw", "field"), [
    ("sale", with_(SALE, cashback="-1"), "cashback"),
    ("sale", with_(SALE, cashback=40), "cashback"),
    ("sale", with_(SALE, cashback="9990.00"), "cashback"),  # amount + cashback > max_amount
    ("sale", with_(SALE, tip="1.00", on_screen_tip=True), "tip"),
    ("sale", with_(SALE, on_screen_tip="yes"), "on_screen_tip"),
    ("refund", with_(REFUND, card_present=0), "card_present"),
    ("preauth", without(PREAUTH, "terminal"), "terminal"),
    ("preauth", with_(PREAUTH, amount="0"), "amount"),
    ("preauth", with_(PREAUTH, tip="1.00"), "tip"),
    ("preauth.cancel", {"order_no": "H-1", "orig_order_no": "H-1"}, "order_no"),
    ("completion", {"order_no": "C-1", "orig_order_no": "H-1"}, "amount"),
    ("completion", {"order_no": "C-1", "orig_order_no": "H-1", "amount": "1",
                    "tip": "-1"}, "tip"),
    ("tip.adjust", {"order_no": "T-1", "orig_order_no": "A-1"}, "tip"),
    ("tip.adjust", {"order_no": "T-1", "orig_order_no": "A-1", "tip": 5}, "tip"),
    ("checkout_qr", {"order_no": "W-1", "amount": "1.001", "currency": "USD"}, "amount"),
    ("checkout_qr", {"order_no": "W-1", "amount": "1.00", "currency": "USD",
                     "body": "x"}, "body"),
])
def test_malformed_lifecycle_params_name_the_field(method: str, raw: Any, field: str) -> None:
    err = invalid(method, raw)
    assert (err.code, err.field) == (-32602, field)


def test_a_1_0_sale_keeps_its_fingerprint_in_1_1() -> None:
    assert fp("sale", with_(SALE, cashback="0", on_screen_tip=False)) == fp("sale", SALE)
    assert fp("refund", with_(REFUND, card_present=True)) == fp("refund", REFUND)
    assert fp("sale", with_(SALE, cashback="1.00")) != fp("sale", SALE)
