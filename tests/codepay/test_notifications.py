"""Result notifications: the simulator POSTs signed results, a receiver verifies them with
``CodePayProvider.parse_notification``; forgeries are rejected."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from posbridge.errors import NotificationRejected
from posbridge.providers.base import Outcome
from posbridge.providers.codepay import messages as m
from posbridge.providers.codepay.client import CodePayProvider
from posbridge.providers.codepay.signing import sign
from posbridge.sandbox.codepay_sim import CodePaySimulator

from .conftest import DELAY, MERCHANT_NO, Receiver, order, until_outcome

pytestmark = pytest.mark.timeout(20)


def outcomes(receiver: Receiver, order_no: str) -> list[Outcome]:
    return [r.outcome for r in receiver.reports if r.order_no == order_no]


async def test_approval_is_notified_signed_and_verified(
        provider: CodePayProvider, receiver: Receiver, sim: CodePaySimulator) -> None:
    await provider.create(order("A1", 1200))
    await receiver.wait_for(lambda reports: len(reports) >= 1)
    [report] = receiver.reports
    assert (report.order_no, report.outcome, report.amount) == ("A1", Outcome.APPROVED, 1200)
    assert report.provider_ref == sim.orders["A1"].trans_no
    async with asyncio.timeout(20 * DELAY):  # the simulator records the answer once read
        while not sim.notifications_sent:
            await asyncio.sleep(DELAY / 5)
    assert [n.answer for n in sim.notifications_sent] == ["success"]
    assert sim.creates[0]["notify_url"] == receiver.url
    assert receiver.rejected == []


async def test_decline_is_notified_with_its_code(provider: CodePayProvider,
                                                 receiver: Receiver) -> None:
    await provider.create(order("D1", 305))
    await receiver.wait_for(lambda reports: len(reports) >= 1)
    assert receiver.reports[0].outcome is Outcome.DECLINED
    assert receiver.reports[0].provider_code == "51"


async def test_duplicates_and_a_stale_in_progress_notification_follow(
        provider: CodePayProvider, receiver: Receiver) -> None:
    await provider.create(order("U1", 1225))
    await receiver.wait_for(lambda reports: len(reports) >= 3)
    assert outcomes(receiver, "U1") == [Outcome.APPROVED, Outcome.APPROVED, Outcome.PENDING]


async def test_polling_only_sends_no_notification(
        provider: CodePayProvider, receiver: Receiver, sim: CodePaySimulator) -> None:
    await provider.create(order("P1", 1240))
    await until_outcome(provider, order("P1", 1240), Outcome.APPROVED)
    await asyncio.sleep(4 * DELAY)
    assert receiver.reports == [] and sim.notifications_sent == []


async def test_notification_only_queries_say_in_progress_until_acknowledged(
        make_provider: Any, sim: CodePaySimulator) -> None:
    deaf = make_provider()  # no notify_url: nobody ever acknowledges
    po = order("NO1", 1235)
    await deaf.create(po)
    await asyncio.sleep(4 * DELAY)
    assert sim.orders["NO1"].status == m.TransStatus.SUCCESS
    report = await deaf.query(po)
    assert report.outcome is Outcome.PENDING and not report.closable


async def test_notification_only_result_arrives_then_queries_agree(
        provider: CodePayProvider, receiver: Receiver) -> None:
    po = order("NO2", 1235)
    await provider.create(po)
    await receiver.wait_for(lambda reports: len(reports) >= 1)
    assert receiver.reports[0].outcome is Outcome.APPROVED
    assert (await provider.query(po)).outcome is Outcome.APPROVED


async def test_late_approval_after_a_successful_close(
        provider: CodePayProvider, receiver: Receiver) -> None:
    po = order("LA1", 1230)
    await provider.create(po)
    await provider.close(po)  # answered success ...
    assert (await provider.query(po)).outcome is Outcome.CANCELLED
    await receiver.wait_for(lambda reports: len(reports) >= 1)  # ... yet the card went through
    assert outcomes(receiver, "LA1") == [Outcome.APPROVED]
    assert (await provider.query(po)).outcome is Outcome.APPROVED


async def test_unanswered_notifications_are_retried_until_success(
        provider: CodePayProvider, sim: CodePaySimulator) -> None:
    answers = iter([b"fail", b"fail"])
    seen: list[Outcome] = []

    async def flaky(request: aiohttp.web.Request) -> aiohttp.web.Response:
        report = provider.parse_notification(await request.read(), request.headers)
        seen.append(report.outcome)
        return aiohttp.web.Response(body=next(answers, b"success"), content_type="text/plain")

    app = aiohttp.web.Application()
    app.router.add_post("/n", flaky)
    runner = aiohttp.web.AppRunner(app, access_log=None)
    await runner.setup()
    await aiohttp.web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        provider.set_notify_url(f"http://127.0.0.1:{runner.addresses[0][1]}/n")
        await provider.create(order("RT1", 100))
        async with asyncio.timeout(40 * DELAY):
            while not sim.notifications_sent or sim.notifications_sent[-1].answer != "success":
                await asyncio.sleep(DELAY / 5)
    finally:
        await runner.cleanup()
    assert [n.answer for n in sim.notifications_sent] == ["fail", "fail", "success"]
    assert seen == [Outcome.APPROVED] * 3


async def test_answers_are_plain_success_or_fail(provider: CodePayProvider) -> None:
    ok, bad = provider.notification_answer(True), provider.notification_answer(False, "x")
    assert (ok.status, ok.body, ok.content_type) == (200, b"success", "text/plain")
    assert bad.body == b"fail"


def _forge(key: RSAPrivateKey, **fields: Any) -> bytes:
    note: dict[str, Any] = {"merchant_no": MERCHANT_NO, "merchant_order_no": "A1",
                            "trans_no": "5021", "trans_status": 2, "order_amount": "12.00",
                            "price_currency": "USD", "sign_type": "RSA2", **fields}
    note["sign"] = sign(note, key)
    return m.dumps(note).encode()


async def test_forged_notifications_over_http_are_answered_fail(
        receiver: Receiver, stranger_key: RSAPrivateKey, gateway_key: RSAPrivateKey) -> None:
    genuine = m.parse_json(_forge(gateway_key))
    assert genuine is not None
    altered_amount = m.dumps({**genuine, "order_amount": "0.01"}).encode()
    async with aiohttp.ClientSession() as session:
        for body in (_forge(stranger_key), altered_amount, b"trans_status=2"):
            async with session.post(receiver.url, data=body) as resp:
                assert await resp.text() == "fail"
        async with session.post(receiver.url, data=_forge(gateway_key)) as resp:
            assert await resp.text() == "success"
    assert len(receiver.rejected) == 3
    assert [r.outcome for r in receiver.reports] == [Outcome.APPROVED]


def test_parse_notification_rejects_another_key_directly(
        provider: CodePayProvider, stranger_key: RSAPrivateKey) -> None:
    with pytest.raises(NotificationRejected):
        provider.parse_notification(_forge(stranger_key), {})


def test_a_form_encoded_notification_is_verified_like_a_json_one(
        provider: CodePayProvider, gateway_key: RSAPrivateKey,
        stranger_key: RSAPrivateKey) -> None:
    from urllib.parse import urlencode

    def form(key: RSAPrivateKey) -> bytes:
        note = {"merchant_no": MERCHANT_NO, "merchant_order_no": "F1", "trans_no": "5021",
                "trans_status": "2", "order_amount": "12.00", "price_currency": "USD",
                "sign_type": "RSA2"}
        note["sign"] = sign(note, key)
        return urlencode(note).encode()

    report = provider.parse_notification(form(gateway_key), {})
    assert (report.order_no, report.outcome, report.amount) == ("F1", Outcome.APPROVED, 1200)
    with pytest.raises(NotificationRejected):
        provider.parse_notification(form(stranger_key), {})


def test_a_signature_folded_over_lines_still_verifies(
        provider: CodePayProvider, gateway_key: RSAPrivateKey) -> None:
    note = m.parse_json(_forge(gateway_key))
    assert note is not None
    flat = str(note["sign"])
    note["sign"] = "\n".join(flat[i:i + 76] for i in range(0, len(flat), 76))
    report = provider.parse_notification(m.dumps(note).encode(), {})
    assert report.outcome is Outcome.APPROVED
    note["sign"] = flat[:-4] + "AAAA"  # and a wrong one still fails
    with pytest.raises(NotificationRejected):
        provider.parse_notification(m.dumps(note).encode(), {})
