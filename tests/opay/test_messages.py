"""Parameters, answers, callbacks and amounts of the crypto payment API (pure)."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from posbridge.errors import (
    BadSignature,
    NotificationRejected,
    OutcomeUnknown,
    ProviderRejected,
    RequestError,
)
from posbridge.providers.base import Outcome
from posbridge.providers.opay import messages as m
from posbridge.providers.opay.envelope import seal

from .conftest import private_key, public_key, text

KEYS = {"merchant_key": private_key("merchant"), "platform_key": public_key("platform")}


def answer(params: dict[str, object], **over: object) -> bytes:
    """An answer as the platform seals it for the merchant."""
    body = seal(params, app_id="x", now_ms=1, receiver_key=public_key("merchant"),
                sender_key=private_key("platform"))
    return json.dumps({"code": "0", "msg": "success", "data": body["data"],
                       "sign": body["sign"], **over}).encode()


def callback(params: dict[str, object], app_id: str = "app") -> bytes:
    return json.dumps(seal(params, app_id=app_id, now_ms=1, receiver_key=public_key("merchant"),
                           sender_key=private_key("platform"))).encode()


# -- amounts ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("minor", "decimals", "plain", "fixed"), [
    (12_500_000, 6, "12.5", "12.500000"),
    (10_000_000, 6, "10", "10.000000"),
    (1, 8, "0.00000001", "0.00000001"),
    (7, 0, "7", "7"),
    (0, 2, "0", "0.00"),
])
def test_coin_text(minor: int, decimals: int, plain: str, fixed: str) -> None:
    assert m.coin_text(minor, decimals) == plain
    assert m.coin_text(minor, decimals, m.AmountStyle.FIXED) == fixed


@pytest.mark.parametrize(("value", "decimals", "minor"), [
    ("12.5", 6, 12_500_000), ("12.500000000", 6, 12_500_000), (Decimal("0.00000001"), 8, 1),
    (10, 6, 10_000_000), (" 3 ", 0, 3), (Decimal("1E+2"), 2, 10_000),
])
def test_coin_minor_reads_strings_numbers_and_decimals(value: object, decimals: int,
                                                       minor: int) -> None:
    assert m.coin_minor(value, decimals) == minor


@pytest.mark.parametrize("value", ["12.5000001", "-1", "1e3", "", "12,5", True, 1.5, None,
                                   Decimal("NaN"), "01"])
def test_coin_minor_refuses_what_cannot_be_an_amount_of_six_decimals(value: object) -> None:
    with pytest.raises(ValueError, match=r"amount|decimals|range|boolean"):
        m.coin_minor(value, 6)


# -- the register's input ---------------------------------------------------------------------

def test_payer_open_id_wins_and_user_id_alone_is_enough() -> None:
    both = m.payer_of({"open_id": "2ae04ed9165624419bad68e9e0f3f29fbd", "user_id": "22033390"})
    assert both.id_param() == ("openId", "2ae04ed9165624419bad68e9e0f3f29fbd")
    assert m.payer_of({"user_id": "22033390"}).id_param() == ("userId", "22033390")


@pytest.mark.parametrize(("extra", "field"), [
    ({}, "payer"), ({"open_id": ""}, "payer"), ({"open_id": "a b"}, "payer.open_id"),
    ({"user_id": "x" * 65}, "payer.user_id"), ({"user_id": "1", "token": "t t"}, "payer.token"),
])
def test_payer_refusals_name_the_field(extra: dict[str, str], field: str) -> None:
    with pytest.raises(RequestError) as info:
        m.payer_of(extra)
    assert (info.value.code, info.value.field) == (-32602, field)


@pytest.mark.parametrize(("kw", "field"), [
    ({"coin": "ETH"}, "coin"), ({"exponent": 2}, "amount"), ({"amount": 0}, "amount"),
    ({"extra": {}}, "payer"),
])
def test_check_sale_refusals(kw: dict[str, object], field: str) -> None:
    args: dict[str, object] = {"coin": "USDT", "amount": 1, "exponent": 6,
                               "extra": {"open_id": "U1"}, "coins": {"USDT": 6}, **kw}
    with pytest.raises(RequestError) as info:
        m.check_sale(**args)  # type: ignore[arg-type]  # mixed test arguments
    assert info.value.field == field


# -- request parameters -----------------------------------------------------------------------

def test_create_params_send_one_payer_id_and_only_given_options() -> None:
    payer = m.payer_of({"open_id": "O1", "user_id": "9", "token": "tok"})
    params = m.create_params(order_no="A1", amount="12.5", coin="USDT", payer=payer,
                             return_page="https://s.example/", notify_page="https://s/n",
                             goods=m.goods_text("Coffee", ""))
    assert params == {"appOrderId": "A1", "openId": "O1", "orderAmount": "12.5",
                      "payCoinSymbol": "USDT", "returnPage": "https://s.example/",
                      "notifyPage": "https://s/n", "token": "tok",
                      "goods": '[{"name":"Coffee","desc":"Coffee"}]'}
    assert all(isinstance(v, str) for v in params.values())


def test_goods_is_legal_json_text_cut_to_64_characters() -> None:
    goods = m.goods_text('He said "☕" & left' + "x" * 100, "")
    assert goods is not None
    parsed = json.loads(goods)
    assert len(parsed[0]["name"]) == 64 and parsed[0]["name"].startswith('He said "☕"')
    assert m.goods_text("", "body") is None


def test_detail_and_statement_params() -> None:
    assert m.detail_params(app_id="k", order_num="N1", token="t") == {
        "orderNum": "N1", "appKey": "k", "token": "t"}
    assert m.detail_params(app_id="k", order_num="N1", with_app_key=False) == {"orderNum": "N1"}
    assert m.statement_params(day="2099-01-01", page=2, page_size=200) == {
        "orderType": "1", "day": "2099-01-01", "pageNum": "2", "pageSize": "200"}
    with pytest.raises(ValueError, match="pageSize"):
        m.statement_params(day="2099-01-01", page=1, page_size=2001)
    assert m.Method.CANCEL.path == "/opay/cancelOrder"
    assert m.Method.DETAIL.path == "/platformapi/chainup/open/opay/orderDetail"


# -- answers ----------------------------------------------------------------------------------

def test_open_answer_reads_the_openssl_vector() -> None:
    data = m.open_answer((text("answer.body.json")).encode(), **KEYS)
    assert data == json.loads(text("answer.json"))


@pytest.mark.parametrize("code", ["0", 0])
def test_open_answer_success_code_as_text_or_number(code: object) -> None:
    assert m.open_answer(answer({"orderNum": "1"}, code=code), **KEYS) == {"orderNum": "1"}


def test_open_answer_refusal_carries_the_code() -> None:
    raw = json.dumps({"code": "70002", "msg": "Order already exists"}).encode()
    with pytest.raises(ProviderRejected) as info:
        m.open_answer(raw, **KEYS)
    assert info.value.provider_code == "70002" and "Order already exists" in info.value.message


@pytest.mark.parametrize("raw", [b"<html>", b"[]", b'{"msg":"no code"}'])
def test_open_answer_garbage_is_an_unknown_outcome(raw: bytes) -> None:
    with pytest.raises(OutcomeUnknown) as info:
        m.open_answer(raw, **KEYS)
    assert not isinstance(info.value, BadSignature)


def test_open_answer_unverifiable_success_is_no_answer() -> None:
    good = json.loads(answer({"orderNum": "1"}))
    forged = {**good, "sign": json.loads(answer({"orderNum": "2"}))["sign"]}
    for raw in (json.dumps(forged), json.dumps({"code": "0", "msg": "ok"}),
                json.dumps({**good, "data": "AAAA"})):
        with pytest.raises(BadSignature):
            m.open_answer(raw.encode(), **KEYS)
    assert m.open_answer(b'{"code":"0","msg":"ok"}', **KEYS, data_required=False) is None


def test_answers_with_json_numbers_never_pass_through_float() -> None:
    data = m.open_answer(answer({"n": 1}), **KEYS)
    assert data == {"n": 1}
    report = m.order_report({"appOrderId": "A1", "orderStatus": 3,
                             "orderAmount": Decimal("0.1")}, order_no="A1", decimals=6)
    assert report.amount == 100_000


# -- reports ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("status", "outcome", "closable"), [
    ("1", Outcome.PENDING, True), ("2", Outcome.DECLINED, False),
    ("3", Outcome.APPROVED, False), ("0", Outcome.CANCELLED, False),
])
def test_order_status_mapping(status: str, outcome: Outcome, closable: bool) -> None:
    report = m.order_report({"appOrderId": "A1", "orderNum": "N1", "orderStatus": status,
                             "orderAmount": "12.5", "payCoinSymbol": "usdt"},
                            order_no="A1", decimals=6, coin="USDT", order_num="N1")
    assert (report.outcome, report.closable, report.amount, report.provider_ref) == (
        outcome, closable, 12_500_000, "N1")


@pytest.mark.parametrize("data", [
    {"appOrderId": "OTHER", "orderStatus": "3"},
    {"appOrderId": "A1", "orderNum": "N2", "orderStatus": "3"},
    {"appOrderId": "A1", "orderStatus": "3", "payCoinSymbol": "BTC"},
    {"appOrderId": "A1", "orderStatus": "9"},
    {"appOrderId": "A1"},
    {"appOrderId": "A1", "orderStatus": "3", "orderAmount": "12.0000001"},
])
def test_order_report_refuses_what_is_not_about_this_order(data: dict[str, object]) -> None:
    with pytest.raises(OutcomeUnknown):
        m.order_report(data, order_no="A1", decimals=6, coin="USDT", order_num="N1")


# -- callbacks ----------------------------------------------------------------------------------

CALLBACK = {"outOrderId": "A1", "orderNum": "N1", "orderStatus": "3", "payAmount": "200",
            "returnUrl": "https://s.example/"}


def test_callback_opens_and_reports_payAmount() -> None:
    data = m.open_callback(callback({**CALLBACK, "newField": "kept"}), app_id="app", **KEYS)
    assert data["newField"] == "kept" and m.callback_order_no(data) == "A1"
    assert m.callback_coin(data) is None
    report = m.order_report(data, order_no="A1", decimals=6)
    assert (report.outcome, report.amount, report.provider_ref) == (
        Outcome.APPROVED, 200_000_000, "N1")


@pytest.mark.parametrize("raw", [
    b"not json",
    callback(CALLBACK, app_id="another"),
    json.dumps({**json.loads(callback(CALLBACK)),
                "sign": json.loads(callback({**CALLBACK, "payAmount": "1"}))["sign"]}).encode(),
    callback({"orderNum": "N1", "orderStatus": "3"}),
    json.dumps({"app_id": "app", "data": "", "sign": ""}).encode(),
])
def test_callback_refusals(raw: bytes) -> None:
    with pytest.raises(NotificationRejected):
        m.open_callback(raw, app_id="app", **KEYS)


def test_callback_answers() -> None:
    ok = m.callback_answer(True)
    assert (ok.status, ok.body, ok.content_type.split(";")[0]) == (200, b"success", "text/plain")
    assert m.callback_answer(False, reason="disk full").body == b"fail: disk full"
    as_json = m.callback_answer(True, m.CallbackAnswer.JSON)
    assert json.loads(as_json.body) == {"data": "success"}
    assert json.loads(m.callback_answer(False, m.CallbackAnswer.JSON, "x").body) == {
        "data": "fail", "msg": "x"}
