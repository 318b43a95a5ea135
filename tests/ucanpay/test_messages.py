"""The pure wire core: validation, request bodies, replies, status mapping, notifications."""

from __future__ import annotations

import json
from typing import Any

import pytest

from posbridge.errors import (
    BadSignature,
    ConfigError,
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
                    "notifyUrl": "http://127.0.0.1:1/n", "nonceStr": "n1", "signType": "RSA"}
    assert "deviceNo" not in string_a(body)  # unknown values are neither sent nor signed


@pytest.mark.parametrize(("device", "sent"), [("D" * 32, "D" * 32), ("D" * 33, None),
                                              ("", None), (None, None), ("lane-1", "lane-1")])
def test_device_no_is_sent_only_when_it_fits_32(device: str | None, sent: str | None) -> None:
    body = m.unifiedorder(merchant_id=MERCHANT, order_no="Q1", subject="Coffee", body="",
                          amount=850, currency="CAD", notify_url="http://127.0.0.1:1/n",
                          nonce="n1", scheme=SignScheme.DOUBLE_HASH, device_no=device)
    assert body.get("deviceNo") == sent and ("deviceNo" in body) == (sent is not None)


@pytest.mark.parametrize("builder", [m.orderquery, m.closeorder, m.reverse])
def test_order_bodies_leave_out_an_unknown_ucp_order_no(builder: Any) -> None:
    body = builder(merchant_id=MERCHANT, order_no="Q1", ucp_order_no=None, nonce="n",
                   scheme=SignScheme.DOUBLE_HASH)
    assert body == {"merchantId": MERCHANT, "outTradeNo": "Q1", "nonceStr": "n",
                    "signType": "RSA"}


def test_refundquery_body_leaves_out_unknown_numbers() -> None:
    body = m.refundquery(merchant_id=MERCHANT, order_no=None, ucp_order_no=None,
                         refund_no="R1", ucp_refund_no=None, nonce="n", scheme=SignScheme.MD5)
    assert body == {"merchantId": MERCHANT, "outRefundNo": "R1", "nonceStr": "n",
                    "signType": "MD5"}


def test_refund_description_is_cut_at_64_characters() -> None:
    reason = "商品已售完 ☕ " * 10  # 80 characters, many of them multi-byte
    body = m.refund(merchant_id=MERCHANT, order_no="Q4", ucp_order_no=None, refund_no="Q4R1",
                    total_amount=1000, refund_amount=300, reason=reason,
                    notify_url="http://x/r", nonce="n", scheme=SignScheme.DOUBLE_HASH)
    assert body["refundDesc"] == reason[:64] and "ucpOrderNo" not in body
    short = m.refund(merchant_id=MERCHANT, order_no="Q4", ucp_order_no="7", refund_no="Q4R1",
                     total_amount=1000, refund_amount=300, reason="return", notify_url="http://x/r",
                     nonce="n", scheme=SignScheme.DOUBLE_HASH)
    assert short["refundDesc"] == "return"


def test_notify_url_limit() -> None:
    m.check_notify_url("http://h/" + "x" * 55)  # 64
    with pytest.raises(ConfigError) as err:
        m.check_notify_url("http://h/" + "x" * 56)
    assert err.value.key == "bridge.public_url"


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


def raw(reply_: dict[str, Any]) -> bytes:
    return json.dumps(reply_, ensure_ascii=False).encode()


@pytest.mark.parametrize(("reply_", "code"), [
    ({"code": 1, "msg": "SYSTEMERROR: 系统超时"}, "SYSTEMERROR"),
    ({"code": 1, "msg": "系统异常 BIZERR_NEED_RETRY，请重试"}, "BIZERR_NEED_RETRY"),
    ({"code": 500, "msg": "error", "errorCode": "SYSTEMERROR"}, "SYSTEMERROR"),
    ({"code": "SYSTEMERROR", "msg": "系统错误"}, "SYSTEMERROR"),
    ({"code": 1, "msg": "x", "data": {"err_code": "SYSTEMERROR"}}, "SYSTEMERROR"),
])
def test_a_retryable_name_is_found_wherever_it_travels(vectors: Any, reply_: dict[str, Any],
                                                       code: str) -> None:
    with pytest.raises(m.RetryableError) as err:
        open_(vectors, raw(reply_))
    assert err.value.provider_code == code


@pytest.mark.parametrize(("reply_", "code"), [
    ({"code": 1, "msg": "ORDERPAID (商户订单已支付)"}, "ORDERPAID"),
    ({"code": 1, "msg": "参数错误", "data": {"resultCode": "INVALID_REQUEST"}}, "INVALID_REQUEST"),
    ({"code": 1, "msg": "ERROR"}, "ERROR"),
    ({"code": 1, "msg": "失败", "data": {"detail": "SIGNERROR"}}, "SIGNERROR"),
])
def test_a_documented_name_is_a_recognised_refusal(vectors: Any, reply_: dict[str, Any],
                                                   code: str) -> None:
    with pytest.raises(ProviderRejected) as err:
        open_(vectors, raw(reply_))
    assert not isinstance(err.value, m.UnrecognizedRefusal)
    assert err.value.provider_code == code


@pytest.mark.parametrize(("reply_", "code"), [
    ({"code": 1, "msg": "签名失败"}, "1"),
    ({"code": 1, "msg": "An ERROR occurred"}, "1"),  # ERROR alone is too common a word
    ({"code": 7, "msg": "x", "data": {"errCode": "SOMETHING_NEW"}}, "SOMETHING_NEW"),
    ({"code": 2}, "2"),
])
def test_an_undocumented_error_is_an_unrecognised_refusal(
        vectors: Any, reply_: dict[str, Any], code: str) -> None:
    with pytest.raises(m.UnrecognizedRefusal) as err:
        open_(vectors, raw(reply_))
    assert isinstance(err.value, ProviderRejected) and err.value.provider_code == code


@pytest.mark.parametrize(("method", "code", "final"), [
    (m.Method.UNIFIEDORDER, "ORDERPAID", False),
    (m.Method.UNIFIEDORDER, "OUT_TRADE_NO_USED", False),
    (m.Method.UNIFIEDORDER, "ORDERCLOSED", False),
    (m.Method.UNIFIEDORDER, "INVALID_REQUEST", True),
    (m.Method.UNIFIEDORDER, "SIGNERROR", True),
    (m.Method.REFUND, "PARAM_ERROR", True),
    (m.Method.REFUND, "NOTENOUGH", True),
])
def test_which_refusals_of_a_create_are_final(method: m.Method, code: str,
                                              final: bool) -> None:
    assert m.refusal_is_final(method, code) is final


def test_a_string_zero_code_is_success(vectors: Any) -> None:
    signed = sign_params({"outTradeNo": "Q1", "tradeStatus": "NOTPAY"}, vectors.private("rsa2048"))
    data = open_(vectors, raw({"code": "0", "msg": "SUCCESS", "data": signed}))
    assert data["tradeStatus"] == "NOTPAY"
    report = parse(vectors, raw({"code": "0", "msg": "SUCCESS",
                                 "data": sign_params(PAYMENT, vectors.private("rsa2048"))}))
    assert report.outcome is Outcome.APPROVED


def test_data_as_a_json_string_is_parsed_then_verified(vectors: Any) -> None:
    signed = sign_params({"outTradeNo": "Q1", "tradeStatus": "NOTPAY", "totalAmt": 850},
                         vectors.private("rsa2048"))
    text = json.dumps(signed, ensure_ascii=False)
    assert open_(vectors, raw({"code": 0, "msg": "SUCCESS", "data": text}))["totalAmt"] == 850
    forged = json.dumps({**signed, "totalAmt": 1})
    with pytest.raises(BadSignature):
        open_(vectors, raw({"code": 0, "data": forged}))
    with pytest.raises(OutcomeUnknown):
        open_(vectors, raw({"code": 0, "data": "[1, 2]"}))
    with pytest.raises(OutcomeUnknown):
        open_(vectors, raw({"code": 0, "data": "{not json"}))
    error = json.dumps(sign_params({"errCode": "SYSTEMERROR"}, vectors.private("rsa2048")))
    with pytest.raises(m.RetryableError):
        open_(vectors, raw({"code": 1, "msg": "系统错误", "data": error}))


def test_a_notification_with_data_as_a_json_string_is_verified(vectors: Any) -> None:
    signed = sign_params(PAYMENT, vectors.private("rsa2048"))
    report = parse(vectors, raw({"code": 0, "msg": "SUCCESS", "data": json.dumps(signed)}))
    assert (report.order_no, report.outcome, report.amount) == ("Q1", Outcome.APPROVED, 850)
    with pytest.raises(NotificationRejected):
        parse(vectors, raw({"code": 0, "data": json.dumps({**signed, "totalAmt": 1})}))
    with pytest.raises(NotificationRejected):
        parse(vectors, raw({"code": 0, "data": "[]"}))


def test_a_notification_signature_with_line_breaks_verifies(vectors: Any) -> None:
    signed = sign_params(PAYMENT, vectors.private("rsa2048"))
    sig = str(signed["sign"])
    signed["sign"] = "\r\n".join(sig[i:i + 76] for i in range(0, len(sig), 76))
    assert "\r\n" in str(signed["sign"])
    assert parse(vectors, vectors.note(signed)).outcome is Outcome.APPROVED


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


@pytest.mark.parametrize(("status", "clear"), [
    ("SUCCESS", True), ("REFUND", True), ("CLOSED", True), ("REVOKED", True),
    ("PAYERROR", True), ("NOTPAY", False), ("USERPAYING", False), ("WEIRD", False), (None, False),
])
def test_clear_trade_status(status: str | None, clear: bool) -> None:
    assert m.clear_trade_status({"outTradeNo": "Q1", "tradeStatus": status}) is clear


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


@pytest.mark.parametrize("depth", [40, 5000])
def test_deeply_nested_notifications_and_replies_are_refused(vectors: Any, depth: int) -> None:
    # 5000 levels raised RecursionError in the decoder; the bound refuses them all before
    # the signature check walks them.
    nested = "[" * depth + "]" * depth
    for body in (f'{{"code":0,"data":{{"x":{nested},"sign":"AAAA"}}}}',
                 json.dumps({"code": 0, "data": f'{{"x":{nested},"sign":"AAAA"}}'}),
                 nested):
        with pytest.raises(NotificationRejected):
            m.parse_notification(body.encode(), key=vectors.public("rsa2048"),
                                 scheme=SignScheme.DOUBLE_HASH, merchant_id="M")
        with pytest.raises(OutcomeUnknown):
            open_(vectors, body.encode())


@pytest.mark.parametrize(("total", "read"), [("188", 188), ("9" * 18, 10**18 - 1),
                                             ("9" * 19, None), ("1" * 5000, None)])
def test_an_amount_text_longer_than_18_digits_reads_as_not_stated(
        vectors: Any, total: str, read: int | None) -> None:
    # 5000 digits: int() raised ValueError (its 4,300-digit limit) behind a good signature.
    data = sign_params({"outTradeNo": "Q1", "tradeStatus": "SUCCESS", "totalAmt": total},
                       vectors.private("rsa2048"))
    report = m.parse_notification(vectors.note(data), key=vectors.public("rsa2048"),
                                  scheme=SignScheme.DOUBLE_HASH, merchant_id="M")
    assert report.amount == read
