"""UCanPayProvider against the in-package simulator over real sockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from posbridge.errors import (
    BadSignature,
    ConfigError,
    OutcomeUnknown,
    ProviderRejected,
    ProviderUnreachable,
    RequestError,
)
from posbridge.providers.base import Outcome, PaymentOrder, TxnKind
from posbridge.providers.crypto_threads import THREAD_NAME_PREFIX
from posbridge.providers.ucanpay import client as ucanpay_client
from posbridge.providers.ucanpay.client import UCanPayProvider
from posbridge.providers.ucanpay.signing import SignScheme, sign_params
from posbridge.sandbox.ucanpay_sim import UCanPaySimulator
from tests.thread_spy import thread_spy

pytestmark = pytest.mark.timeout(20)

MERCHANT = "2000000010"


def qr(order_no: str, amount: int = 850, subject: str = "Coffee", **kw: Any) -> PaymentOrder:
    return PaymentOrder(order_no=order_no, kind=TxnKind.QR_SALE, amount=amount, currency="CAD",
                        subject=subject, **kw)


def refund(refund_no: str, orig: PaymentOrder, ref: str, amount: int) -> PaymentOrder:
    return PaymentOrder(order_no=refund_no, kind=TxnKind.QR_REFUND, amount=amount,
                        currency="CAD", orig_order_no=orig.order_no, orig_provider_ref=ref,
                        orig_amount=orig.amount)


async def until(check: Callable[[], bool], seconds: float = 3.0) -> None:
    for _ in range(int(seconds / 0.01)):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met in time")


async def test_qr_sale_pay_and_query(provider: UCanPayProvider, sim: UCanPaySimulator,
                                     receiver: Any) -> None:
    order = qr("Q1")
    first = await provider.create(order)
    assert first.outcome is Outcome.PENDING and first.closable and first.provider_ref
    assert first.amount == 850
    sent = sim.requests[-1][1]
    assert sent["totalAmt"] == 850 and sent["notifyUrl"] == receiver.url
    assert sent["sceneType"] == "NATIVE" and sent["signType"] == "RSA"
    await sim.scan_and_pay(first.provider_ref)
    paid = await provider.query(qr("Q1", provider_ref=first.provider_ref))
    assert (paid.outcome, paid.amount, paid.provider_ref) == (Outcome.APPROVED, 850,
                                                              first.provider_ref)
    await until(lambda: bool(receiver.reports))
    note = receiver.reports[0]
    assert (note.order_no, note.outcome, note.amount) == ("Q1", Outcome.APPROVED, 850)


async def test_notification_repeats_until_answered_success(
        provider: UCanPayProvider, sim: UCanPaySimulator, receiver: Any) -> None:
    receiver.refuse_first = 2
    first = await provider.create(qr("Q2"))
    assert first.provider_ref is not None
    await sim.scan_and_pay("Q2")
    await until(lambda: bool(receiver.reports))
    await asyncio.sleep(0.15)  # no further repeats once answered
    assert len(sim.notifications) == 3 and len(receiver.reports) == 1


async def test_query_without_ucp_order_no_and_unknown_order(provider: UCanPayProvider,
                                                            receiver: Any) -> None:
    await provider.create(qr("Q3"))
    pending = await provider.query(qr("Q3"))
    assert pending.outcome is Outcome.PENDING and pending.closable
    missing = await provider.query(qr("NOPE"))
    assert missing.outcome is Outcome.NOT_FOUND


async def test_close_unpaid_then_query_cancelled(provider: UCanPayProvider,
                                                 sim: UCanPaySimulator, receiver: Any) -> None:
    first = await provider.create(qr("Q4"))
    order = qr("Q4", provider_ref=first.provider_ref)
    await provider.close(order)
    await provider.close(order)  # already closed counts as closed
    assert (await provider.query(order)).outcome is Outcome.CANCELLED
    with pytest.raises(Exception, match="not payable"):
        await sim.scan_and_pay("Q4")


async def test_close_paid_is_refused(provider: UCanPayProvider, sim: UCanPaySimulator,
                                     receiver: Any) -> None:
    first = await provider.create(qr("Q5"))
    await sim.scan_and_pay("Q5")
    with pytest.raises(ProviderRejected) as err:
        await provider.close(qr("Q5", provider_ref=first.provider_ref))
    assert err.value.provider_code == "ORDERPAID"


async def test_reverse_rules(provider: UCanPayProvider, sim: UCanPaySimulator, clock: Any,
                             receiver: Any) -> None:
    first = await provider.create(qr("Q6"))
    order = qr("Q6", provider_ref=first.provider_ref)
    clock.now += 14
    with pytest.raises(ProviderRejected, match="15 s"):
        await provider.reverse(order)
    assert sim.count("reverse") == 0  # refused before calling UCanPay
    clock.now += 2
    reversed_ = await provider.reverse(order)
    assert reversed_.outcome is Outcome.CANCELLED and reversed_.provider_code == "REVOKED"
    second = await provider.create(qr("Q7"))
    clock.now += 7 * 86400 + 1
    with pytest.raises(ProviderRejected, match="7 days"):
        await provider.reverse(qr("Q7", provider_ref=second.provider_ref))
    assert sim.count("reverse") == 1


def fresh_provider(sim: UCanPaySimulator, vectors: Any, clock: Any,
                   notify_url: str) -> UCanPayProvider:
    """A provider that did not create the orders (as after a restart)."""
    return UCanPayProvider(base_url=sim.url, merchant_id=MERCHANT,
                           private_key=vectors.private("rsa1024"),
                           public_key=vectors.public("rsa2048"), notify_url=notify_url,
                           refund_notify_url=None, timeout_s=1.0, clock=clock)


async def test_reverse_of_an_order_made_elsewhere_uses_tran_time(
        sim: UCanPaySimulator, clock: Any, vectors: Any, provider: UCanPayProvider,
        receiver: Any) -> None:
    await provider.create(qr("Q8"))
    sim.start_paying("Q8")  # USERPAYING: no clear payment result yet
    fresh = fresh_provider(sim, vectors, clock, receiver.url)
    try:
        with pytest.raises(ProviderRejected, match="15 s"):
            await fresh.reverse(qr("Q8"))
        clock.now += 20
        assert (await fresh.reverse(qr("Q8"))).outcome is Outcome.CANCELLED
        assert sim.orders["Q8"].status == "REVOKED"
        assert sim.count("reverse", "Q8") == 1
    finally:
        await fresh.aclose()


@pytest.mark.parametrize(("action", "outcome", "status"), [
    ("pay", Outcome.APPROVED, "SUCCESS"),
    ("close", Outcome.CANCELLED, "CLOSED"),
    ("fail", Outcome.DECLINED, "PAYERROR"),
])
async def test_reverse_after_restart_returns_a_clear_query_instead_of_reversing(
        sim: UCanPaySimulator, clock: Any, vectors: Any, provider: UCanPayProvider,
        receiver: Any, action: str, outcome: Outcome, status: str) -> None:
    """Seed 001 (reverse): query first, reverse only when there is no clear result."""
    ref = (await provider.create(qr("Q8C"))).provider_ref
    assert ref is not None
    if action == "pay":
        await sim.scan_and_pay(ref)
    elif action == "close":
        await provider.close(qr("Q8C", provider_ref=ref))
    else:
        sim.fail_payment(ref)
    clock.now += 20
    fresh = fresh_provider(sim, vectors, clock, receiver.url)
    try:
        report = await fresh.reverse(qr("Q8C"))
    finally:
        await fresh.aclose()
    assert (report.outcome, report.provider_code, report.provider_ref) == (outcome, status, ref)
    assert sim.count("reverse") == 0 and sim.orders["Q8C"].status == status


async def test_partial_refunds_refundquery_and_over_refund(
        provider: UCanPayProvider, sim: UCanPaySimulator, receiver: Any) -> None:
    sale = qr("Q9", amount=1000)
    ref = (await provider.create(sale)).provider_ref
    assert ref is not None
    await sim.scan_and_pay(ref)
    r1 = await provider.create(refund("Q9R1", sale, ref, 300))
    assert r1.outcome is Outcome.PENDING and r1.provider_ref and r1.amount == 300
    sent = sim.requests[-1][1]
    assert (sent["outTradeNo"], sent["outRefundNo"], sent["ucpOrderNo"]) == ("Q9", "Q9R1", ref)
    assert sent["notifyUrl"] == receiver.url + "/refund"
    await until(lambda: any(r.order_no == "Q9R1" for r in receiver.reports))
    done = await provider.query(refund("Q9R1", sale, ref, 300))
    assert (done.outcome, done.amount, done.provider_ref) == (Outcome.APPROVED, 300,
                                                              r1.provider_ref)
    again = await provider.create(refund("Q9R1", sale, ref, 300))  # a retry keeps its number
    assert again.provider_ref == r1.provider_ref
    with pytest.raises(ProviderRejected):
        await provider.create(refund("Q9R2", sale, ref, 701))
    r3 = await provider.create(refund("Q9R3", sale, ref, 700))
    assert r3.outcome is Outcome.PENDING
    with pytest.raises(ProviderRejected):
        await provider.create(refund("Q9R4", sale, ref, 1))
    assert sim.orders["Q9"].refunded == 1000
    paid = await provider.query(qr("Q9", amount=1000, provider_ref=ref))
    assert paid.outcome is Outcome.APPROVED  # REFUND: it was paid
    unknown = await provider.query(refund("Q9R9", sale, ref, 1))
    assert unknown.outcome is Outcome.NOT_FOUND


async def test_at_most_ten_refunds(provider: UCanPayProvider, sim: UCanPaySimulator,
                                   receiver: Any) -> None:
    sale = qr("Q10", amount=100)
    ref = (await provider.create(sale)).provider_ref
    assert ref is not None
    await sim.scan_and_pay(ref)
    for i in range(10):
        await provider.create(refund(f"Q10R{i}", sale, ref, 1))
    with pytest.raises(ProviderRejected, match="10 refunds"):
        await provider.create(refund("Q10R10", sale, ref, 1))


async def test_systemerror_is_retried_with_the_same_numbers_and_a_fresh_nonce(
        provider: UCanPayProvider, sim: UCanPaySimulator, receiver: Any) -> None:
    sim.fail_next("unifiedorder")
    sim.fail_next("unifiedorder", "BIZERR_NEED_RETRY")
    report = await provider.create(qr("Q11"))
    assert report.provider_ref is not None
    bodies = [body for name, body in sim.requests if name == "unifiedorder"]
    assert sim.count("unifiedorder", "Q11") == 3
    business = [{k: v for k, v in b.items() if k not in ("nonceStr", "sign")} for b in bodies]
    assert business[0] == business[1] == business[2]  # same outTradeNo, amount, texts
    assert len({b["nonceStr"] for b in bodies}) == 3  # seed 000: unique for each request
    assert len({b["sign"] for b in bodies}) == 3


async def test_a_retried_refund_keeps_its_numbers_with_a_fresh_nonce(
        provider: UCanPayProvider, sim: UCanPaySimulator, receiver: Any) -> None:
    sale = qr("Q11R", amount=500)
    ref = (await provider.create(sale)).provider_ref
    assert ref is not None
    await sim.scan_and_pay(ref)
    sim.fail_next("refund", "BIZERR_NEED_RETRY")
    report = await provider.create(refund("Q11R1", sale, ref, 200))
    assert report.outcome is Outcome.PENDING
    bodies = [body for name, body in sim.requests if name == "refund"]
    assert [(b["outRefundNo"], b["refundAmt"], b["totalAmt"]) for b in bodies] == [
        ("Q11R1", 200, 500)] * 2
    assert bodies[0]["nonceStr"] != bodies[1]["nonceStr"]


async def test_systemerror_that_never_clears_is_outcome_unknown(
        provider: UCanPayProvider, sim: UCanPaySimulator, receiver: Any) -> None:
    for _ in range(4):
        sim.fail_next("unifiedorder")
    with pytest.raises(OutcomeUnknown) as err:
        await provider.create(qr("Q12"))
    assert err.value.provider_code == "SYSTEMERROR"
    assert sim.count("unifiedorder", "Q12") == 4  # 1 + retries=3, bounded


async def test_lost_answer_is_outcome_unknown_and_query_finds_the_order(
        provider: UCanPayProvider, sim: UCanPaySimulator, receiver: Any) -> None:
    sim.drop_next_response("unifiedorder")
    with pytest.raises(OutcomeUnknown) as err:
        await provider.create(qr("Q13"))
    assert not isinstance(err.value, BadSignature)
    found = await provider.query(qr("Q13"))
    assert found.outcome is Outcome.PENDING and found.provider_ref == sim.orders["Q13"].ucp_order_no


async def test_wrong_key_reply_is_bad_signature(provider: UCanPayProvider,
                                                sim: UCanPaySimulator, receiver: Any) -> None:
    sim.sign_with_wrong_key_next("unifiedorder")
    with pytest.raises(BadSignature):
        await provider.create(qr("Q14"))
    sim.sign_with_wrong_key_next("orderquery")
    with pytest.raises(BadSignature):
        await provider.query(qr("Q14"))
    assert (await provider.query(qr("Q14"))).outcome is Outcome.PENDING


async def test_invalid_order_is_refused_before_any_request(
        provider: UCanPayProvider, sim: UCanPaySimulator, receiver: Any) -> None:
    with pytest.raises(RequestError) as err:
        await provider.create(qr("Q15", subject="fish & chips"))
    assert err.value.field == "subject"
    with pytest.raises(RequestError) as err:
        await provider.create(qr("Q_15"))
    assert err.value.field == "order_no"
    assert sim.requests == []


async def test_reused_order_number(provider: UCanPayProvider, sim: UCanPaySimulator,
                                   receiver: Any) -> None:
    first = await provider.create(qr("Q16"))
    same = await provider.create(qr("Q16"))  # re-entry with identical parameters
    assert same.provider_ref == first.provider_ref
    # The number exists at UCanPay: not a final refusal, the engine must query it.
    with pytest.raises(OutcomeUnknown) as err:
        await provider.create(qr("Q16", amount=900))
    assert err.value.provider_code == "OUT_TRADE_NO_USED"


async def test_failed_payment_is_declined(provider: UCanPayProvider, sim: UCanPaySimulator,
                                          receiver: Any) -> None:
    await provider.create(qr("Q17"))
    sim.fail_payment("Q17")
    assert (await provider.query(qr("Q17"))).outcome is Outcome.DECLINED
    await until(lambda: bool(receiver.reports))
    assert receiver.reports[0].outcome is Outcome.DECLINED


async def test_sandbox_pay_route(provider: UCanPayProvider, sim: UCanPaySimulator,
                                 receiver: Any) -> None:
    ref = (await provider.create(qr("Q18"))).provider_ref
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{sim.url}/sandbox/pay/{ref}") as resp:
            assert resp.status == 200
        async with http.post(f"{sim.url}/sandbox/pay/{ref}") as resp:
            assert resp.status == 409  # already paid
    assert (await provider.query(qr("Q18"))).outcome is Outcome.APPROVED


async def test_simulator_refuses_a_bad_merchant_signature(
        sim: UCanPaySimulator, vectors: Any, receiver: Any) -> None:
    wrong = UCanPayProvider(base_url=sim.url, merchant_id=MERCHANT,
                            private_key=vectors.private("rsa2048"),
                            public_key=vectors.public("rsa2048"), notify_url=receiver.url,
                            refund_notify_url=None, timeout_s=1.0)
    try:
        with pytest.raises(ProviderRejected) as err:
            await wrong.create(qr("Q19"))
    finally:
        await wrong.aclose()
    assert err.value.provider_code == "SIGNERROR"
    assert "Q19" not in sim.orders


async def test_connection_refused_is_unreachable(vectors: Any) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = UCanPayProvider(base_url=f"http://127.0.0.1:{port}", merchant_id=MERCHANT,
                             private_key=vectors.private("rsa1024"),
                             public_key=vectors.public("rsa2048"),
                             notify_url="http://127.0.0.1:1/n", refund_notify_url=None,
                             timeout_s=1.0)
    try:
        with pytest.raises(ProviderUnreachable):
            await client.create(qr("Q20"))
    finally:
        await client.aclose()


async def test_md5_scheme_end_to_end(clock: Any, vectors: Any) -> None:
    secret = "md5-shared-secret"
    sim = UCanPaySimulator(merchant_id=MERCHANT, private_key=vectors.private("rsa2048"),
                           merchant_public_key=vectors.public("rsa1024"),
                           scheme=SignScheme.MD5, md5_key=secret, clock=clock,
                           notify_interval_s=0.05)
    await sim.start()
    client = UCanPayProvider(base_url=sim.url, merchant_id=MERCHANT, private_key=None,
                             public_key=None, scheme=SignScheme.MD5, md5_key=secret,
                             notify_url="http://127.0.0.1:1/n", refund_notify_url=None,
                             timeout_s=1.0, clock=clock)
    try:
        first = await client.create(qr("Q21"))
        assert sim.requests[-1][1]["signType"] == "MD5"
        await sim.scan_and_pay("Q21")
        assert (await client.query(qr("Q21", provider_ref=first.provider_ref))).outcome \
            is Outcome.APPROVED
    finally:
        await client.aclose()
        await sim.stop()


def test_provider_repr_hides_keys(vectors: Any) -> None:
    client = UCanPayProvider(base_url="http://127.0.0.1:1", merchant_id=MERCHANT,
                             private_key=vectors.private("rsa1024"),
                             public_key=vectors.public("rsa2048"), notify_url=None,
                             refund_notify_url=None, md5_key="s3cret")
    assert "s3cret" not in repr(client) and "Key" not in repr(client)


# -- what goes on the wire (review items 1, 3, B) -------------------------------------------


async def test_no_field_is_sent_empty_or_null(provider: UCanPayProvider, sim: UCanPaySimulator,
                                              receiver: Any) -> None:
    """Unknown numbers (no terminal, no ucpOrderNo yet) are left out, not sent as null."""
    sale = qr("QN1", amount=400)
    await provider.query(qr("QN0"))  # never created: orderquery by outTradeNo only
    ref = (await provider.create(sale)).provider_ref
    assert ref is not None
    assert (await provider.query(sale)).outcome is Outcome.PENDING
    await sim.scan_and_pay(ref)
    await provider.create(refund("QN1R1", sale, ref, 100))
    await provider.query(PaymentOrder(order_no="QN1R1", kind=TxnKind.QR_REFUND, amount=100,
                                      currency="CAD", orig_order_no="QN1"))
    other = qr("QN2")
    await provider.create(other)
    await provider.close(other)
    names = [name for name, _ in sim.requests]
    assert names == ["orderquery", "unifiedorder", "orderquery", "refund", "refundquery",
                     "unifiedorder", "closeorder"]
    for name, body in sim.requests:
        assert all(v not in (None, "") for v in body.values()), (name, body)
    assert "deviceNo" not in sim.requests[1][1]
    assert "ucpOrderNo" not in sim.requests[0][1] and "ucpOrderNo" not in sim.requests[2][1]
    assert "ucpRefundNo" not in sim.requests[4][1] and "ucpOrderNo" not in sim.requests[4][1]


async def test_simulator_refuses_null_fields_and_a_replayed_nonce(
        sim: UCanPaySimulator, vectors: Any) -> None:
    base = {"merchantId": MERCHANT, "outTradeNo": "QN3", "nonceStr": "n-null-1",
            "signType": "RSA"}
    with_null = sign_params({**base, "ucpOrderNo": None}, vectors.private("rsa1024"))
    with_null["ucpOrderNo"] = None  # on the wire as JSON null
    good = sign_params({**base, "nonceStr": "n-good-1"}, vectors.private("rsa1024"))
    async with aiohttp.ClientSession() as http:
        async def post(body: dict[str, Any]) -> dict[str, Any]:
            async with http.post(f"{sim.url}/payment/orderquery", json=body) as resp:
                answer: dict[str, Any] = await resp.json()
                return answer
        refused = await post(with_null)
        assert (refused["code"], refused["data"]["errCode"]) == (1, "INVALID_REQUEST")
        first = await post(good)
        assert first["data"]["errCode"] == "ORDERNOTEXIST"  # accepted, no such order
        replay = await post(good)
        assert replay["data"]["errCode"] == "INVALID_REQUEST"
        assert "nonceStr" in replay["data"]["errMsg"]


async def test_refund_description_is_cut_to_64_characters(
        provider: UCanPayProvider, sim: UCanPaySimulator, receiver: Any) -> None:
    sale = qr("QD1", amount=500)
    ref = (await provider.create(sale)).provider_ref
    assert ref is not None
    await sim.scan_and_pay(ref)
    reason = "退货 returned: " + "☕" * 40 + "x" * 80  # 134 characters
    order = PaymentOrder(order_no="QD1R1", kind=TxnKind.QR_REFUND, amount=100, currency="CAD",
                         orig_order_no="QD1", orig_provider_ref=ref, orig_amount=500,
                         description=reason)
    report = await provider.create(order)
    assert report.outcome is Outcome.PENDING
    sent = sim.requests[-1][1]["refundDesc"]
    assert sent == reason[:64] and len(sent) == 64


@pytest.mark.parametrize(("sn", "sent"), [("T" * 32, True), ("T" * 33, False), ("", False)])
async def test_device_no_is_the_terminal_sn_when_it_fits(
        provider: UCanPayProvider, sim: UCanPaySimulator, receiver: Any, sn: str,
        sent: bool) -> None:
    report = await provider.create(qr("QT1", terminal_sn=sn))
    assert report.provider_ref is not None
    body = sim.requests[-1][1]
    assert body.get("deviceNo") == (sn if sent else None)
    assert ("deviceNo" in body) is sent


def test_a_notify_url_over_64_characters_is_a_config_error(vectors: Any) -> None:
    def make(notify: str | None, refund_notify: str | None = None) -> UCanPayProvider:
        return UCanPayProvider(base_url="http://127.0.0.1:1", merchant_id=MERCHANT,
                               private_key=vectors.private("rsa1024"),
                               public_key=vectors.public("rsa2048"), notify_url=notify,
                               refund_notify_url=refund_notify)

    ok = "https://" + "h" * 34 + "/notify/ucanpay"
    assert len(ok) == 57 and len(ok + "/refund") == 64  # the longest that fits
    make(ok)
    make(None).set_notify_url(ok)
    with pytest.raises(ConfigError) as err:
        make("https://" + "h" * 57)  # 65 characters
    assert err.value.key == "bridge.public_url" and "64" in err.value.problem
    with pytest.raises(ConfigError):
        make(ok, "https://" + "r" * 57)
    provider = make("/notify/ucanpay")  # relative until the listener is bound
    with pytest.raises(ConfigError) as err:
        provider.set_notify_url(ok + "x")  # fine itself, but its /refund form is 65
    assert "/refund" in err.value.problem


# -- where error names travel (review items 4, 9) ---------------------------------------------


async def test_an_error_name_inside_the_msg_text_is_recognised(
        provider: UCanPayProvider, sim: UCanPaySimulator, receiver: Any) -> None:
    sim.error_style = "msg"  # {"code": 1, "msg": "SYSTEMERROR: ..."}, no data
    sim.fail_next("unifiedorder")
    report = await provider.create(qr("QE1"))
    assert report.provider_ref is not None and sim.count("unifiedorder", "QE1") == 2
    sim.fail_next("closeorder", "ORDERPAID")
    with pytest.raises(ProviderRejected) as err:
        await provider.close(qr("QE1", provider_ref=report.provider_ref))
    assert err.value.provider_code == "ORDERPAID"


async def test_an_unrecognised_error_on_create_is_outcome_unknown(
        provider: UCanPayProvider, sim: UCanPaySimulator, receiver: Any) -> None:
    """{"code": 1, "msg": "<a human reason>"}: nothing says the order was not made."""
    sim.error_style = "opaque"
    sim.fail_next("unifiedorder", "SIGNERROR")
    with pytest.raises(OutcomeUnknown) as err:
        await provider.create(qr("QE2"))
    assert not isinstance(err.value, BadSignature) and err.value.provider_code == "1"
    sim.error_style = "errcode"
    assert (await provider.query(qr("QE2"))).outcome is Outcome.NOT_FOUND
    sale = qr("QE3", amount=300)
    ref = (await provider.create(sale)).provider_ref
    assert ref is not None
    await sim.scan_and_pay(ref)
    sim.error_style = "opaque"
    sim.fail_next("orderquery", "SIGNERROR")  # elsewhere it stays a refusal
    with pytest.raises(ProviderRejected):
        await provider.query(sale)
    sim.fail_next("refund", "SYSTEMERROR")
    with pytest.raises(OutcomeUnknown):
        await provider.create(refund("QE3R1", sale, ref, 100))


@pytest.mark.parametrize("code", ["ORDERPAID", "OUT_TRADE_NO_USED", "ORDERCLOSED"])
async def test_an_order_that_exists_on_create_is_outcome_unknown(
        provider: UCanPayProvider, sim: UCanPaySimulator, receiver: Any, code: str) -> None:
    sim.fail_next("unifiedorder", code)
    with pytest.raises(OutcomeUnknown) as err:
        await provider.create(qr("QE4"))
    assert err.value.provider_code == code


async def test_a_paid_order_sent_again_is_outcome_unknown_and_the_query_finds_it_paid(
        provider: UCanPayProvider, sim: UCanPaySimulator, receiver: Any) -> None:
    ref = (await provider.create(qr("QE5"))).provider_ref
    assert ref is not None
    await sim.scan_and_pay(ref)
    with pytest.raises(OutcomeUnknown):
        await provider.create(qr("QE5"))  # a resend after a lost answer
    assert (await provider.query(qr("QE5"))).outcome is Outcome.APPROVED


@pytest.mark.parametrize("code", ["INVALID_REQUEST", "LACK_PARAMS", "NOAUTH", "SIGNERROR"])
async def test_a_documented_refusal_on_create_stays_final(
        provider: UCanPayProvider, sim: UCanPaySimulator, receiver: Any, code: str) -> None:
    sim.fail_next("unifiedorder", code)
    with pytest.raises(ProviderRejected) as err:
        await provider.create(qr("QE6"))
    assert err.value.provider_code == code


# -- data as a JSON string (review item 6) ----------------------------------------------------


async def test_data_sent_as_a_json_string_is_read_and_verified(
        provider: UCanPayProvider, sim: UCanPaySimulator, receiver: Any) -> None:
    sim.data_as_string = True
    sale = qr("QS1", amount=700)
    first = await provider.create(sale)
    assert first.outcome is Outcome.PENDING and first.provider_ref
    await sim.scan_and_pay(first.provider_ref)
    await until(lambda: bool(receiver.reports))
    assert (receiver.reports[0].order_no, receiver.reports[0].outcome) == ("QS1",
                                                                         Outcome.APPROVED)
    assert receiver.rejected == []
    assert (await provider.query(sale)).outcome is Outcome.APPROVED
    r1 = await provider.create(refund("QS1R1", sale, first.provider_ref, 200))
    assert r1.outcome is Outcome.PENDING
    await until(lambda: any(r.order_no == "QS1R1" for r in receiver.reports))
    sim.fail_next("orderquery")  # an error reply with data as a string: still retried
    assert (await provider.query(sale)).outcome is Outcome.APPROVED
    sim.sign_with_wrong_key_next("orderquery")
    with pytest.raises(BadSignature):
        await provider.query(sale)


async def test_signs_and_opens_its_replies_in_the_providers_signing_threads(
        provider: UCanPayProvider, receiver: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    threads = thread_spy(monkeypatch, (ucanpay_client, "sign_params"),
                         (ucanpay_client.m, "open_reply"))
    await provider.create(qr("T1"))
    assert len(threads) == 2 and all(t.startswith(THREAD_NAME_PREFIX) for t in threads)
