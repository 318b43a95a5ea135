"""Request bodies, answer verification and status mapping (pure, no network)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from posbridge.errors import (
    BadSignature,
    NotificationRejected,
    OutcomeUnknown,
    ProviderRejected,
)
from posbridge.providers.base import Outcome, TxnKind
from posbridge.providers.codepay import messages as m
from posbridge.providers.codepay.signing import sign, verify

from .conftest import MERCHANT_NO, TERMINAL, merchant_private, merchant_public, order

NOW = 1_709_106_082.819


def answer(key: RSAPrivateKey, data: dict[str, Any] | None, code: str = "0",
           msg: str = "success") -> bytes:
    body: dict[str, Any] = {"code": code, "msg": msg, "psn": "08290344008038160280"}
    if data is not None:
        body["data"] = data
    body["sign"] = sign(body, key)
    return m.dumps(body).encode()


def test_sale_body_has_every_required_field_in_its_wire_form() -> None:
    body = m.create_body(order("S1", 1234, tip=150), merchant_no=MERCHANT_NO, store_no="ST1",
                         notify_url="http://127.0.0.1/notify", expires_s=180)
    assert body == {
        "merchant_no": MERCHANT_NO, "store_no": "ST1", "terminal_sn": TERMINAL,
        "message_receiving_application": "CodePay Register", "price_currency": "USD",
        "order_amount": "12.34", "tip_amount": "1.50", "trans_type": 1,
        "merchant_order_no": "S1", "orig_merchant_order_no": None, "description": "test S1",
        "notify_url": "http://127.0.0.1/notify", "expires": 180, "api_version": "2.0",
    }


@pytest.mark.parametrize(("kind", "trans_type"), [(TxnKind.VOID, 2), (TxnKind.REFUND, 3)])
def test_void_and_refund_name_the_original(kind: TxnKind, trans_type: int) -> None:
    body = m.create_body(order("V1", 500, kind=kind, orig="S1"), merchant_no=MERCHANT_NO,
                         store_no=None, notify_url=None, expires_s=60)
    assert body["trans_type"] == trans_type
    assert body["orig_merchant_order_no"] == "S1"
    assert body["store_no"] is None and body["notify_url"] is None
    assert body["tip_amount"] is None


def test_amounts_use_the_currency_exponent() -> None:
    jpy = m.create_body(order("J1", 1500, currency="JPY"), merchant_no="M", store_no=None,
                        notify_url=None, expires_s=60)
    kwd = m.create_body(order("K1", 1500, currency="KWD"), merchant_no="M", store_no=None,
                        notify_url=None, expires_s=60)
    assert (jpy["order_amount"], kwd["order_amount"]) == ("1500", "1.500")


@pytest.mark.parametrize("order_no", ["has space", "x" * 33, "a.b", "ü", ""])
def test_bad_merchant_order_no_is_refused_before_sending(order_no: str) -> None:
    with pytest.raises(ProviderRejected):
        m.create_body(order(order_no), merchant_no="M", store_no=None, notify_url=None,
                      expires_s=60)


def test_void_without_original_and_qr_kinds_are_refused() -> None:
    with pytest.raises(ProviderRejected):
        m.create_body(order("V2", kind=TxnKind.VOID), merchant_no="M", store_no=None,
                      notify_url=None, expires_s=60)
    with pytest.raises(ProviderRejected):
        m.create_body(order("Q1", kind=TxnKind.QR_SALE), merchant_no="M", store_no=None,
                      notify_url=None, expires_s=60)


def test_rsa2_envelope_is_signed_over_everything_but_sign() -> None:
    body = m.envelope(m.QUERY, m.query_body(merchant_no="M", merchant_order_no="S1"),
                      app_id="app", sign_type="RSA2", now_s=NOW, private_key=merchant_private())
    assert {k: body[k] for k in ("app_id", "method", "format", "charset", "sign_type",
                                 "version", "timestamp")} == {
        "app_id": "app", "method": "order.query", "format": "JSON", "charset": "UTF-8",
        "sign_type": "RSA2", "version": "1.0", "timestamp": 1709106082819}
    assert "trans_no" not in body  # None business fields are left out of the body
    assert verify(body, merchant_public())
    assert not verify({**body, "sign_type": "NONE"}, merchant_public())


def test_none_envelope_has_no_sign() -> None:
    body = m.envelope(m.BATCH_CLOSE, m.batch_close_body(merchant_no="M", terminal_sn="T"),
                      app_id="app", sign_type="NONE", now_s=NOW, private_key=None)
    assert "sign" not in body and body["sign_type"] == "NONE"
    assert body["terminal_sn"] == "T"


def test_open_batch_sends_a_terminal_sn_list() -> None:
    assert m.open_batch_body(merchant_no="M", store_no="S", terminal_sn="T") == {
        "merchant_no": "M", "store_no": "S", "terminal_sn_list": ["T"]}


def test_close_body() -> None:
    body = m.close_body(order("S1"), merchant_no="M", store_no=None, reason="cancel")
    assert body["message_receiving_application"] == "CodePay Register"
    assert (body["terminal_sn"], body["merchant_order_no"]) == (TERMINAL, "S1")


def test_verified_answer_gives_its_data(gateway_key: RSAPrivateKey) -> None:
    # A JSON number in an answer is verified and returned as the exact text that was sent.
    fields = {"code": "0", "msg": "success", "psn": "1",
              "data": {"trans_no": "5021", "amount": Decimal("12.30")}}
    raw = ('{"code":"0","msg":"success","psn":"1","data":{"trans_no":"5021","amount":12.30},'
           f'"sign":"{sign(fields, gateway_key)}"}}').encode()
    data = m.parse_response(raw, gateway_key=gateway_key.public_key())
    assert data["trans_no"] == "5021"
    assert m.plain_data(data)["amount"] == "12.30"  # exact text, never a float


def test_answer_signed_by_another_key_is_bad_signature(
        gateway_key: RSAPrivateKey, stranger_key: RSAPrivateKey) -> None:
    forged = answer(stranger_key, {"trans_no": "5021", "trans_status": 2})
    with pytest.raises(BadSignature):
        m.parse_response(forged, gateway_key=gateway_key.public_key())
    with pytest.raises(BadSignature):
        m.parse_query_response(forged, order("S1"), gateway_key=gateway_key.public_key())


def test_an_unsigned_refusal_is_not_believed_but_its_words_are_kept(
        gateway_key: RSAPrivateKey) -> None:
    raw = b'{"code":"40001","msg":"terminal not bound","psn":"1"}'
    with pytest.raises(BadSignature) as err:
        m.parse_response(raw, gateway_key=gateway_key.public_key())
    assert "40001" in err.value.message and "terminal not bound" in err.value.message


def test_answer_with_altered_data_or_no_sign_is_bad_signature(
        gateway_key: RSAPrivateKey) -> None:
    good = json.loads(answer(gateway_key, {"trans_status": 1}))
    altered = {**good, "data": {"trans_status": 2}}
    unsigned = {k: v for k, v in good.items() if k != "sign"}
    for body in (altered, unsigned):
        with pytest.raises(BadSignature):
            m.parse_response(json.dumps(body).encode(), gateway_key=gateway_key.public_key())


def test_refused_failure_answers_with_bad_signature_are_not_rejections(
        gateway_key: RSAPrivateKey, stranger_key: RSAPrivateKey) -> None:
    forged_refusal = answer(stranger_key, None, code="ORDER_STATUS_ERROR", msg="nope")
    with pytest.raises(BadSignature):
        m.parse_response(forged_refusal, gateway_key=gateway_key.public_key())


@pytest.mark.parametrize("body", [b"", b"<html>502</html>", b"[1,2]", b"\xff\xfe"])
def test_unparseable_answers_are_outcome_unknown(gateway_key: RSAPrivateKey,
                                                 body: bytes) -> None:
    with pytest.raises(OutcomeUnknown):
        m.parse_response(body, gateway_key=gateway_key.public_key())


def test_refusal_is_provider_rejected_with_code(gateway_key: RSAPrivateKey) -> None:
    with pytest.raises(ProviderRejected) as err:
        m.parse_response(answer(gateway_key, None, code="INVALID_PARAMETER", msg="bad field"),
                         gateway_key=gateway_key.public_key())
    assert err.value.provider_code == "INVALID_PARAMETER"
    assert "bad field" in err.value.message


@pytest.mark.parametrize(("code", "msg"), [("ORDER_DUPLICATE", "x"),
                                           ("E1", "Duplicate merchant_order_no")])
def test_duplicate_create_is_outcome_unknown_not_a_rejection(
        gateway_key: RSAPrivateKey, code: str, msg: str) -> None:
    with pytest.raises(OutcomeUnknown) as err:
        m.parse_create_response(answer(gateway_key, None, code=code, msg=msg), order("S1"),
                                gateway_key=gateway_key.public_key())
    assert not isinstance(err.value, BadSignature)


def test_create_answer_is_pending_closable(gateway_key: RSAPrivateKey) -> None:
    report = m.parse_create_response(
        answer(gateway_key, {"message_id": "M1", "trans_no": "5021",
                             "terminal_online_status": "offline"}),
        order("S1"), gateway_key=gateway_key.public_key())
    assert (report.outcome, report.closable, report.provider_ref, report.terminal_online) == (
        Outcome.PENDING, True, "5021", False)


@pytest.mark.parametrize(("code", "msg"), [("ORDER_NOT_EXIST", "x"), ("1", "order not exist")])
def test_query_of_unknown_order_is_not_found(gateway_key: RSAPrivateKey, code: str,
                                             msg: str) -> None:
    report = m.parse_query_response(answer(gateway_key, None, code=code, msg=msg),
                                    order("S1"), gateway_key=gateway_key.public_key())
    assert report.outcome is Outcome.NOT_FOUND


@pytest.mark.parametrize(("status", "outcome", "closable"), [
    (9, Outcome.PENDING, True), (0, Outcome.PENDING, False), (1, Outcome.DECLINED, False),
    (2, Outcome.APPROVED, False), (3, Outcome.CANCELLED, False), ("2", Outcome.APPROVED, False),
])
def test_trans_status_mapping(status: object, outcome: Outcome, closable: bool) -> None:
    report = m.report_from_data({"trans_status": status, "trans_no": "5021"}, "S1", "USD")
    assert (report.outcome, report.closable, report.provider_ref) == (outcome, closable, "5021")


def test_decline_carries_the_error_code_and_approval_the_card_details() -> None:
    declined = m.report_from_data({"trans_status": 1, "trans_error_code": "51",
                                   "trans_error_msg": "Insufficient funds"}, "S1", "USD")
    assert (declined.provider_code, declined.message) == ("51", "Insufficient funds")
    approved = m.report_from_data({"trans_status": 2, "auth_no": "919070",
                                   "pay_method_id": "Visa", "order_amount": "200",
                                   "price_currency": "JPY"}, "S1", "USD")
    assert (approved.auth_no, approved.card_brand, approved.amount) == ("919070", "Visa", 200)
    assert approved.provider_code is None


@pytest.mark.parametrize(("text", "currency", "minor"), [
    ("12.30", "USD", 1230), ("12.3", "USD", 1230), ("12", "USD", 1200), ("200", "JPY", 200),
    ("1.5", "KWD", 1500), ("12.345", "USD", None), ("abc", "USD", None), ("-1", "USD", None),
])
def test_amounts_come_back_in_minor_units(text: str, currency: str, minor: int | None) -> None:
    report = m.report_from_data({"trans_status": 2, "order_amount": text,
                                 "price_currency": currency}, "S1", None)
    assert report.amount == minor


@pytest.mark.parametrize("status", [None, 7, "x", True])
def test_unknown_status_is_outcome_unknown(status: object) -> None:
    with pytest.raises(OutcomeUnknown):
        m.report_from_data({"trans_status": status}, "S1", "USD")


def _note(key: RSAPrivateKey, **fields: Any) -> dict[str, Any]:
    note: dict[str, Any] = {"merchant_no": MERCHANT_NO, "merchant_order_no": "S1",
                            "trans_no": "5021", "trans_status": 2, "order_amount": "12.00",
                            "price_currency": "USD", "sign_type": "RSA2", **fields}
    note["sign"] = sign(note, key)
    return note


def test_notification_verifies_over_whatever_fields_arrive(gateway_key: RSAPrivateKey) -> None:
    note = _note(gateway_key, brand_new_field="v", nested={"a": [1, 2]})
    report = m.parse_notification(m.dumps(note).encode(), gateway_key=gateway_key.public_key(),
                                  merchant_no=MERCHANT_NO)
    assert (report.order_no, report.outcome, report.amount) == ("S1", Outcome.APPROVED, 1200)


def test_forged_notifications_are_rejected(gateway_key: RSAPrivateKey,
                                           stranger_key: RSAPrivateKey) -> None:
    good = _note(gateway_key)
    forged = [
        _note(stranger_key),
        {**good, "order_amount": "1.00"},
        {k: v for k, v in good.items() if k != "sign"},
        {**good, "sign": "garbage"},
    ]
    for note in forged:
        with pytest.raises(NotificationRejected):
            m.parse_notification(m.dumps(note).encode(), gateway_key=gateway_key.public_key(),
                                 merchant_no=MERCHANT_NO)


@pytest.mark.parametrize("body", [b"", b"success", b"[]", b"{"])
def test_malformed_notifications_are_rejected(gateway_key: RSAPrivateKey, body: bytes) -> None:
    with pytest.raises(NotificationRejected):
        m.parse_notification(body, gateway_key=gateway_key.public_key(), merchant_no=MERCHANT_NO)


def test_notifications_for_another_merchant_or_without_key_are_rejected(
        gateway_key: RSAPrivateKey) -> None:
    other = m.dumps(_note(gateway_key, merchant_no="999")).encode()
    with pytest.raises(NotificationRejected):
        m.parse_notification(other, gateway_key=gateway_key.public_key(), merchant_no=MERCHANT_NO)
    fine = m.dumps(_note(gateway_key)).encode()
    with pytest.raises(NotificationRejected):
        m.parse_notification(fine, gateway_key=None, merchant_no=MERCHANT_NO)
    no_status = m.dumps(_note(gateway_key, trans_status=None)).encode()
    with pytest.raises(NotificationRejected):
        m.parse_notification(no_status, gateway_key=gateway_key.public_key(),
                             merchant_no=MERCHANT_NO)


@pytest.mark.parametrize("number", ["1e-99999999999999999999", "1E+99999999999999999999"])
def test_a_number_past_decimals_range_is_no_json_object(gateway_key: RSAPrivateKey,
                                                        number: str) -> None:
    body = f'{{"merchant_order_no":"A1","order_amount":{number},"sign":"x"}}'.encode()
    assert m.parse_json(body) is None
    with pytest.raises(NotificationRejected):
        m.parse_notification(body, gateway_key=gateway_key.public_key(), merchant_no="M")


def test_deep_nesting_is_refused_before_the_signature_is_checked(
        gateway_key: RSAPrivateKey) -> None:
    # The signature check renders nested values recursively; 500 levels exhausted the stack.
    nested = "[" * 500 + "]" * 500
    body = f'{{"merchant_order_no":"A1","x":{nested},"sign":"{"A" * 344}"}}'.encode()
    assert m.parse_json(body) is None
    with pytest.raises(NotificationRejected):
        m.parse_notification(body, gateway_key=gateway_key.public_key(), merchant_no="M")
    shallow = f'{{"x":{"[" * 31 + "]" * 31}}}'.encode()
    assert m.parse_json(shallow) is not None


@pytest.mark.parametrize("amount", ["Infinity", "-Infinity", "NaN", "1e999990", "9" * 19])
def test_an_amount_that_is_no_sum_of_money_reads_as_not_stated(
        gateway_key: RSAPrivateKey, amount: str) -> None:
    # A signed notification: "Infinity" raised OverflowError, "1e999990" took half a minute.
    note = {"merchant_order_no": "A1", "trans_status": 2, "order_amount": amount,
            "price_currency": "USD"}
    note["sign"] = sign(note, gateway_key)
    report = m.parse_notification(json.dumps(note).encode(),
                                  gateway_key=gateway_key.public_key(), merchant_no="M")
    assert report.amount is None
    assert m.report_from_data({"trans_status": 2, "order_amount": "12.3"}, "A1",
                              "USD").amount == 1230


@pytest.mark.parametrize("status", ["²", "٢", "9" * 5000, " 2", "-2"])
def test_a_status_that_is_not_ascii_digits_is_unknown(gateway_key: RSAPrivateKey,
                                                      status: str) -> None:
    note = {"merchant_order_no": "A1", "trans_status": status}
    note["sign"] = sign(note, gateway_key)
    with pytest.raises(NotificationRejected, match="unknown trans_status"):
        m.parse_notification(json.dumps(note).encode(), gateway_key=gateway_key.public_key(),
                             merchant_no="M")
    assert m.report_from_data({"trans_status": "2"}, "A1", "USD").outcome is Outcome.APPROVED
