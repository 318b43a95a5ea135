"""The pure wire core: validation, request bodies, replies, status mapping, notifications."""

from __future__ import annotations

import json
from typing import Any

import pytest

from posbridge.errors import (
    BadSignature,
    NotificationRejected,
    OutcomeUnknown,
    ProviderRejected,
    RequestError,
)
from posbridge.providers.base import Outcome
from posbridge.providers.ucanpay import messages as m
from posbridge.providers.ucanpay.signing import SignScheme, sign_params, string_a, verify_params

MERCHANT = "2000000010"


@pytest.mark.parametrize(("args", "field"), [
    (("Q_1", "Coffee", "", 850, "CAD"), "order_no"),
    (("Q-1", "Coffee", "", 850, "CAD"), "order_no"),
    (("Q" * 33, "Coffee", "", 850, "CAD"), "order_no"),
    (("", "Coffee", "", 850, "CAD"), "order_no"),
    (("Q1", "x" * 31, "", 850, "CAD"), "subject"),
    (("Q1", "", "", 850, "CAD"), "subject"),
    (("Q1", "a/b", "", 850, "CAD"), "subject"),
    (("Q1", "a=b", "", 850, "CAD"), "subject"),
    (("Q1", "a&b", "", 850, "CAD"), "subject"),
    (("Q1", "Coffee", "y" * 65, 850, "CAD"), "body"),
    (("Q1", "Coffee", "a&b", 850, "CAD"), "body"),
    (("Q1", "Coffee", "", 0, "CAD"), "amount"),
    (("Q1", "Coffee", "", -5, "CAD"), "amount"),
    (("Q1", "Coffee", "", 2**31, "CAD"), "amount"),
    (("Q1", "Coffee", "", 850, "XXX"), "currency"),
])
def test_validation_refusals_name_the_ecr_field(args: tuple[Any, ...], field: str) -> None:
    with pytest.raises(RequestError) as err:
        m.validate_qr_order(*args)
    assert (err.value.code, err.value.reason, err.value.field) == (-32602, "invalid_params", field)


def test_validation_accepts_the_limits() -> None:
    m.validate_qr_order("A" * 32, "s" * 30, "b" * 64, 1, "CAD")
    m.validate_qr_order("abc123XYZ", "咖啡 Latte", "", 2**31 - 1, "JPY")


def test_unifiedorder_body_has_the_seed_fields_with_integer_cents() -> None:
    body = m.unifiedorder(merchant_id=MERCHANT, order_no="Q1", subject="Coffee", body="",
                          amount=850, currency="CAD", notify_url="http://127.0.0.1:1/n",
                          nonce="n1", scheme=SignScheme.DOUBLE_HASH)
    assert body == {"merchantId": MERCHANT, "outTradeNo": "Q1", "subject": "Coffee",
                    "body": "Coffee", "totalAmt": 850, "currency": "CAD", "sceneType": "NATIVE",
                    "notifyUrl": "http://127.0.0.1:1/n", "deviceNo": None, "nonceStr": "n1",
                    "signType": "RSA"}
    assert "deviceNo" not in string_a(body)  # empty values are neither sent nor signed


def test_refund_body_keeps_the_original_numbers() -> None:
    body = m.refund(merchant_id=MERCHANT, order_no="Q4", ucp_order_no="77", refund_no="Q4R1",
                    total_amount=1000, refund_amount=300, reason="return", notify_url="http://x/r",
                    nonce="n", scheme=SignScheme.MD5)
    assert (body["outTradeNo"], body["ucpOrderNo"], body["outRefundNo"]) == ("Q4", "77", "Q4R1")
    assert (body["totalAmt"], body["refundAmt"], body["signType"]) == (1000, 300, "MD5")


def reply(vectors: Any, data: dict[str, Any] | None, code: int = 0, msg: str = "SUCCESS",
          key: str = "rsa2048") -> bytes:
    signed = None if data is None else sign_params(data, vectors.private(key))
    return json.dumps({"code": code, "msg": msg, "data": signed}).encode()


def open_(vectors: Any, raw: bytes) -> dict[str, Any]:
    return m.open_reply(raw, key=vectors.public("rsa2048"), scheme=SignScheme.DOUBLE_HASH)


def test_open_reply_returns_verified_data(vectors: Any) -> None:
    data = open_(vectors, reply(vectors, {"outTradeNo": "Q1", "tradeStatus": "NOTPAY"}))
    assert data["tradeStatus"] == "NOTPAY"


@pytest.mark.parametrize("raw", [b"", b"<html>", b"[1]", b'{"msg":"x"}', b"\xff\xfe",
                                 b'{"code":0,"data":[1]}'])
def test_garbage_replies_are_outcome_unknown(vectors: Any, raw: bytes) -> None:
    with pytest.raises(OutcomeUnknown):
        open_(vectors, raw)


def test_bad_or_missing_signature_is_bad_signature(vectors: Any) -> None:
    with pytest.raises(BadSignature):
        open_(vectors, reply(vectors, {"outTradeNo": "Q1"}, key="rsa1024"))
    with pytest.raises(BadSignature):
        open_(vectors, json.dumps({"code": 0, "data": {"outTradeNo": "Q1"}}).encode())
    good = json.loads(reply(vectors, {"outTradeNo": "Q1", "totalAmt": 850}))
    good["data"]["totalAmt"] = 851
    with pytest.raises(BadSignature):
        open_(vectors, json.dumps(good).encode())


@pytest.mark.parametrize("code", ["SYSTEMERROR", "BIZERR_NEED_RETRY"])
def test_retryable_codes_raise_retryable_outcome_unknown(vectors: Any, code: str) -> None:
    with pytest.raises(m.RetryableError) as err:
        open_(vectors, reply(vectors, {"errCode": code}, code=1, msg=code))
    assert isinstance(err.value, OutcomeUnknown) and err.value.provider_code == code


def test_other_codes_are_provider_rejected_with_the_code(vectors: Any) -> None:
    with pytest.raises(ProviderRejected) as err:
        open_(vectors, reply(vectors, None, code=1, msg="OUT_TRADE_NO_USED"))
    assert err.value.provider_code == "OUT_TRADE_NO_USED"
    with pytest.raises(ProviderRejected) as err:
        open_(vectors, reply(vectors, {"errCode": "ORDERPAID", "errMsg": "paid"}, code=7,
                             msg="订单已支付"))
    assert err.value.provider_code == "ORDERPAID"


def test_forged_error_reply_is_bad_signature(vectors: Any) -> None:
    with pytest.raises(BadSignature):
        open_(vectors, reply(vectors, {"errCode": "ORDERPAID"}, code=1, key="rsa1024"))


@pytest.mark.parametrize(("status", "outcome", "closable"), [
    ("SUCCESS", Outcome.APPROVED, False),
    ("REFUND", Outcome.APPROVED, False),
    ("NOTPAY", Outcome.PENDING, True),
    ("USERPAYING", Outcome.PENDING, False),
    ("CLOSED", Outcome.CANCELLED, False),
    ("REVOKED", Outcome.CANCELLED, False),
    ("PAYERROR", Outcome.DECLINED, False),
])
def test_trade_status_mapping(status: str, outcome: Outcome, closable: bool) -> None:
    report = m.order_report({"outTradeNo": "Q1", "ucpOrderNo": "77", "totalAmt": "188",
                             "tradeStatus": status}, "Q1")
    assert (report.outcome, report.closable, report.provider_ref, report.amount) == (
        outcome, closable, "77", 188)


@pytest.mark.parametrize(("status", "outcome"), [
    ("SUCCESS", Outcome.APPROVED), ("success", Outcome.APPROVED),
    ("PROCESSING", Outcome.PENDING), ("REFUNDCLOSE", Outcome.DECLINED), ("FAIL", Outcome.DECLINED),
])
def test_refund_status_mapping(status: str, outcome: Outcome) -> None:
    report = m.refund_report({"outRefundNo": "R1", "ucpRefundNo": "88", "refundAmt": 300,
                              "refundStatus": status}, "R1")
    assert (report.outcome, report.provider_ref, report.amount) == (outcome, "88", 300)


def test_unknown_status_or_other_order_is_outcome_unknown() -> None:
    with pytest.raises(OutcomeUnknown):
        m.order_report({"outTradeNo": "Q1", "tradeStatus": "WEIRD"}, "Q1")
    with pytest.raises(OutcomeUnknown):
        m.order_report({"outTradeNo": "Q2", "tradeStatus": "SUCCESS"}, "Q1")
    with pytest.raises(OutcomeUnknown):
        m.refund_report({"outRefundNo": "R1", "refundStatus": "MAYBE"}, "R1")


def test_fresh_unifiedorder_reply_is_pending_and_closable() -> None:
    report = m.order_report({"outTradeNo": "Q1", "ucpOrderNo": "77", "totalAmt": 850}, "Q1")
    assert (report.outcome, report.closable, report.provider_ref) == (Outcome.PENDING, True, "77")


def test_reverse_window() -> None:
    assert m.reverse_window_problem(1000.0, 1014.9) is not None
    assert m.reverse_window_problem(1000.0, 1015.0) is None
    assert m.reverse_window_problem(1000.0, 1000.0 + 7 * 86400) is None
    problem = m.reverse_window_problem(1000.0, 1000.0 + 7 * 86400 + 1)
    assert problem is not None and "7 days" in problem


def test_tran_time_reads_both_seed_forms() -> None:
    assert m.tran_time({"tranTime": "2021-01-29T03:55:56Z"}) == 1611892556.0
    assert m.tran_time({"tranTime": "2021-01-29T03:55:56"}) == 1611892556.0
    assert m.tran_time({"tranTime": "yesterday"}) is None
    assert m.format_time(1611892556.0) == "2021-01-29T03:55:56Z"


def parse(vectors: Any, raw: bytes) -> Any:
    return m.parse_notification(raw, key=vectors.public("rsa2048"),
                                scheme=SignScheme.DOUBLE_HASH, merchant_id=MERCHANT)


PAYMENT = {"merchantId": MERCHANT, "outTradeNo": "Q1", "ucpOrderNo": "77", "totalAmt": 850,
           "tradeStatus": "SUCCESS", "currency": "CAD", "signType": "RSA", "nonceStr": "n",
           "newField": "servers add fields"}
REFUND = {"merchantId": MERCHANT, "outTradeNo": "Q1", "outRefundNo": "Q1R1", "ucpRefundNo": "88",
          "refundAmt": 300, "totalAmt": 850, "refundStatus": "success", "signType": "RSA"}


def test_payment_notification_is_verified_and_read(vectors: Any) -> None:
    report = parse(vectors, vectors.note(sign_params(PAYMENT, vectors.private("rsa2048"))))
    assert (report.order_no, report.outcome, report.amount, report.provider_ref) == (
        "Q1", Outcome.APPROVED, 850, "77")


def test_refund_notification_reports_on_the_refund_number(vectors: Any) -> None:
    report = parse(vectors, vectors.note(sign_params(REFUND, vectors.private("rsa2048"))))
    assert (report.order_no, report.outcome, report.amount, report.provider_ref) == (
        "Q1R1", Outcome.APPROVED, 300, "88")


def test_forged_notifications_are_rejected(vectors: Any) -> None:
    other_key = vectors.note(sign_params(PAYMENT, vectors.private("rsa1024")))
    with pytest.raises(NotificationRejected):
        parse(vectors, other_key)
    altered = sign_params(PAYMENT, vectors.private("rsa2048"))
    altered["totalAmt"] = 1
    assert not verify_params(altered, vectors.public("rsa2048"))
    with pytest.raises(NotificationRejected):
        parse(vectors, vectors.note(altered))
    other_merchant = sign_params({**PAYMENT, "merchantId": "9"}, vectors.private("rsa2048"))
    with pytest.raises(NotificationRejected):
        parse(vectors, vectors.note(other_merchant))


@pytest.mark.parametrize("raw", [b"", b"null", b'{"code":0}', b'{"data":"x"}', b"\x80"])
def test_malformed_notifications_are_rejected(vectors: Any, raw: bytes) -> None:
    with pytest.raises(NotificationRejected):
        parse(vectors, raw)


def test_notification_without_status_is_rejected(vectors: Any) -> None:
    data = sign_params({"merchantId": MERCHANT, "outTradeNo": "Q1"}, vectors.private("rsa2048"))
    with pytest.raises(NotificationRejected):
        parse(vectors, vectors.note(data))


def test_notification_answers() -> None:
    ok = m.notification_answer(True)
    assert json.loads(ok.body) == {"return_code": "SUCCESS", "return_msg": "OK"}
    assert ok.status == 200 and ok.content_type.startswith("application/json")
    fail = m.notification_answer(False, "signature failure")
    assert json.loads(fail.body) == {"return_code": "FAIL", "return_msg": "signature failure"}
