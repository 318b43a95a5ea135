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
    OutcomeUnknown,
    ProviderRejected,
    ProviderUnreachable,
    RequestError,
)
from posbridge.providers.base import Outcome, PaymentOrder, TxnKind
from posbridge.providers.ucanpay.client import UCanPayProvider
from posbridge.providers.ucanpay.signing import SignScheme
from posbridge.sandbox.ucanpay_sim import UCanPaySimulator

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


async def test_reverse_of_an_order_made_elsewhere_uses_tran_time(
        sim: UCanPaySimulator, clock: Any, vectors: Any, provider: UCanPayProvider,
        receiver: Any) -> None:
    await provider.create(qr("Q8"))
    await sim.scan_and_pay("Q8")
    fresh = UCanPayProvider(base_url=sim.url, merchant_id=MERCHANT,
                            private_key=vectors.private("rsa1024"),
                            public_key=vectors.public("rsa2048"), notify_url=receiver.url,
                            refund_notify_url=None, timeout_s=1.0, clock=clock)
    try:
        with pytest.raises(ProviderRejected, match="15 s"):
            await fresh.reverse(qr("Q8"))
        clock.now += 20
        assert (await fresh.reverse(qr("Q8"))).outcome is Outcome.CANCELLED
        assert sim.orders["Q8"].status == "REVOKED"
    finally:
        await fresh.aclose()


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


async def test_systemerror_is_retried_with_the_same_numbers(
        provider: UCanPayProvider, sim: UCanPaySimulator, receiver: Any) -> None:
    sim.fail_next("unifiedorder")
    sim.fail_next("unifiedorder", "BIZERR_NEED_RETRY")
    report = await provider.create(qr("Q11"))
    assert report.provider_ref is not None
    bodies = [body for name, body in sim.requests if name == "unifiedorder"]
    assert sim.count("unifiedorder", "Q11") == 3
    assert bodies[0] == bodies[1] == bodies[2]  # same outTradeNo, nonce and signature


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
    with pytest.raises(ProviderRejected) as err:
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
