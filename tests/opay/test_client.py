"""OPayProvider against the in-package simulator over real sockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Callable
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from aiohttp import web

from posbridge.errors import (
    BadSignature,
    NotificationRejected,
    OutcomeUnknown,
    ProviderRejected,
    ProviderUnreachable,
    RequestError,
)
from posbridge.providers.base import Outcome, PaymentOrder, TxnKind
from posbridge.providers.crypto_threads import THREAD_NAME_PREFIX
from posbridge.providers.opay import client as opay_client
from posbridge.providers.opay.client import OPayProvider
from posbridge.providers.opay.envelope import seal
from posbridge.providers.opay.messages import CallbackAnswer
from posbridge.sandbox.opay_sim import Code, OPaySimulator
from tests.thread_spy import thread_spy

from .conftest import APP_ID, COINS, START_S, Clock, Receiver, private_key, public_key, sale

pytestmark = pytest.mark.timeout(30)


async def until(check: Callable[[], bool], steps: int = 500) -> None:
    """Wait for ``check`` in a bounded number of short sleeps."""
    for _ in range(steps):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met")


def adapter(url: str, clock: Clock, **kw: object) -> OPayProvider:
    args: dict[str, object] = {
        "base_url": url, "app_id": APP_ID, "merchant_key": private_key("merchant"),
        "platform_key": public_key("platform"), "coins": COINS,
        "notify_url": "https://store.example/notify/opay", "timeout_s": 2.0, "clock": clock, **kw}
    return OPayProvider(**args)  # type: ignore[arg-type]  # keyword arguments of mixed types


# -- the happy path ------------------------------------------------------------------------------

async def test_sale_create_pay_callback_and_query(provider: OPayProvider, sim: OPaySimulator,
                                                  receiver: Receiver) -> None:
    first = await provider.create(sale("A1", 12_500_000))
    assert (first.outcome, first.closable) == (Outcome.PENDING, True)
    assert first.provider_ref is not None and first.qr_text is not None
    site = receiver.url.removesuffix("/notify/opay")
    assert sim.requests[-1] == ("createThirdOrder", {
        "appOrderId": "A1", "openId": "U1", "orderAmount": "12.5", "payCoinSymbol": "USDT",
        "returnPage": site + "/", "notifyPage": receiver.url,
        "goods": '[{"name":"Coffee","desc":"Coffee"}]'})
    qr = urlsplit(first.qr_text)
    assert f"{qr.scheme}://{qr.netloc}{qr.path}" == sim.url + "/platform/pay.html"
    assert parse_qs(qr.query) == {"appKey": [APP_ID], "openId": ["U1"],
                                  "orderNum": [first.provider_ref]}
    sim.pay(first.provider_ref)
    await until(lambda: bool(receiver.reports))
    note = receiver.reports[0]
    assert (note.order_no, note.outcome, note.amount, note.provider_ref) == (
        "A1", Outcome.APPROVED, 12_500_000, first.provider_ref)
    paid = await provider.query(sale("A1", ref=first.provider_ref))
    assert (paid.outcome, paid.amount, paid.qr_text) == (Outcome.APPROVED, 12_500_000,
                                                        first.qr_text)
    assert sim.requests[-1] == ("orderDetail", {"orderNum": first.provider_ref,
                                                "appKey": APP_ID})


async def test_the_pay_page_of_the_qr_pays_the_order(provider: OPayProvider,
                                                     sim: OPaySimulator,
                                                     receiver: Receiver) -> None:
    first = await provider.create(sale("A2", 1, "BTC", user_id="22033390", token="tok"))
    assert first.qr_text is not None and first.provider_ref is not None
    assert parse_qs(urlsplit(first.qr_text).query) == {
        "appKey": [APP_ID], "userId": ["22033390"], "token": ["tok"],
        "orderNum": [first.provider_ref]}
    assert sim.requests[-1][1]["orderAmount"] == "0.00000001"
    async with aiohttp.ClientSession() as http:
        async with http.get(first.qr_text) as page:
            assert page.status == 200 and "0.00000001 BTC" in await page.text()
        async with http.post(f"{sim.url}/sandbox/pay/{first.provider_ref}") as paid:
            assert paid.status == 200
    await until(lambda: bool(receiver.reports))
    assert (receiver.reports[0].outcome, receiver.reports[0].amount) == (Outcome.APPROVED, 1)


async def test_callback_repeats_until_answered_success(provider: OPayProvider,
                                                       sim: OPaySimulator,
                                                       receiver: Receiver) -> None:
    receiver.refuse_first = 2
    first = await provider.create(sale("A3"))
    assert first.provider_ref is not None
    sim.fail(first.provider_ref)
    await until(lambda: bool(receiver.reports))
    for _ in range(5):  # a few more callback intervals: no repeat once answered
        await asyncio.sleep(sim.notify_interval_s)
    assert [answer for _url, _p, answer in sim.callbacks] == [
        "fail: not recorded", "fail: not recorded", "success"]
    assert receiver.reports[0].outcome is Outcome.DECLINED


async def test_json_callback_answer_is_a_switch(sim: OPaySimulator, clock: Clock,
                                                receiver: Receiver) -> None:
    json_adapter = adapter(sim.url, clock, callback_answer=CallbackAnswer.JSON)
    receiver.provider = json_adapter
    json_adapter.set_notify_url(receiver.url)
    try:
        first = await json_adapter.create(sale("A4"))
        assert first.provider_ref is not None
        sim.pay(first.provider_ref)
        await until(lambda: bool(receiver.reports))
        assert json.loads(sim.callbacks[-1][2]) == {"data": "success"}
    finally:
        await json_adapter.aclose()


# -- close ----------------------------------------------------------------------------------------

async def test_close_cancels_a_pending_order_and_is_refused_once_paid(
        provider: OPayProvider, sim: OPaySimulator, receiver: Receiver) -> None:
    first = await provider.create(sale("C1"))
    assert first.provider_ref is not None
    await provider.close(sale("C1", ref=first.provider_ref))
    closed = await provider.query(sale("C1", ref=first.provider_ref))
    assert closed.outcome is Outcome.CANCELLED
    await provider.close(sale("C1", ref=first.provider_ref))  # again: still closed
    second = await provider.create(sale("C2"))
    assert second.provider_ref is not None
    sim.pay(second.provider_ref)
    with pytest.raises(ProviderRejected) as info:
        await provider.close(sale("C2", ref=second.provider_ref))
    assert info.value.provider_code == Code.NOT_PENDING
    with pytest.raises(ProviderRejected, match="orderNum"):
        await provider.close(sale("C3"))


# -- refusals and transport -----------------------------------------------------------------------

async def test_a_refused_create_is_final_and_names_the_code(provider: OPayProvider,
                                                            sim: OPaySimulator,
                                                            receiver: Receiver) -> None:
    sim.fail_next("createThirdOrder", "40001")
    with pytest.raises(ProviderRejected) as info:
        await provider.create(sale("R1"))
    assert info.value.provider_code == "40001" and not isinstance(info.value, OutcomeUnknown)
    await provider.create(sale("R2"))
    with pytest.raises(ProviderRejected) as dup:  # the simulator takes an appOrderId once
        await provider.create(sale("R2"))
    assert dup.value.provider_code == Code.ORDER_EXISTS


async def test_an_answer_signed_with_another_key_is_no_answer(
        provider: OPayProvider, sim: OPaySimulator, receiver: Receiver) -> None:
    sim.sign_with_wrong_key_next("createThirdOrder")
    with pytest.raises(BadSignature):
        await provider.create(sale("S1"))
    assert "S1" in {o.app_order_id for o in sim.orders.values()}  # it exists all the same


async def test_a_lost_answer_is_an_unknown_outcome(sim: OPaySimulator, clock: Clock) -> None:
    quick = adapter(sim.url, clock, timeout_s=0.3)
    sim.drop_next_response("createThirdOrder")
    try:
        with pytest.raises(OutcomeUnknown):
            await quick.create(sale("L1"))
    finally:
        await quick.aclose()


async def test_nothing_listening_is_unreachable(clock: Clock) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    closed = adapter(f"http://127.0.0.1:{port}", clock)
    try:
        with pytest.raises(ProviderUnreachable):
            await closed.create(sale("U1"))
    finally:
        await closed.aclose()


@pytest.fixture
async def stub() -> AsyncIterator[tuple[str, list[tuple[int, bytes]]]]:
    """A server that answers every request with the next (status, body) of its list."""
    replies: list[tuple[int, bytes]] = []

    async def handle(request: web.Request) -> web.Response:
        status, body = replies.pop(0)
        return web.Response(status=status, body=body)

    app = web.Application()
    app.router.add_route("POST", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    yield f"http://{host}:{port}", replies
    await runner.cleanup()


@pytest.mark.parametrize(("status", "body", "error"), [
    (502, b"bad gateway", OutcomeUnknown),
    (200, b"<html>maintenance</html>", OutcomeUnknown),
    (404, b"not found", ProviderRejected),
    (200, b'{"code":"0","msg":"success"}', BadSignature),
])
async def test_transport_answers_map_to_errors(stub: tuple[str, list[tuple[int, bytes]]],
                                               clock: Clock, status: int, body: bytes,
                                               error: type[Exception]) -> None:
    url, replies = stub
    replies.append((status, body))
    client = adapter(url, clock)
    try:
        with pytest.raises(error) as info:
            await client.create(sale("T1"))
        if error is OutcomeUnknown:
            assert not isinstance(info.value, BadSignature)
    finally:
        await client.aclose()


# -- input checks -------------------------------------------------------------------------------

def test_check_refuses_what_the_platform_or_the_configuration_cannot_take(
        provider: OPayProvider) -> None:
    provider.check(sale("K1"))
    for order, field in (
            (PaymentOrder(order_no="K2", kind=TxnKind.CRYPTO_SALE, amount=1, currency="ETH",
                          extra={"open_id": "U1"}), "coin"),
            (sale("K3", extra_marker="x"), "payer"),
            (PaymentOrder(order_no="K4", kind=TxnKind.CRYPTO_SALE, amount=1, currency="USDT",
                          exponent=2, extra={"open_id": "U1"}), "amount")):
        with pytest.raises(RequestError) as info:
            provider.check(order)
        assert info.value.field == field


def test_capabilities(provider: OPayProvider) -> None:
    caps = provider.caps
    assert caps.kinds == {TxnKind.CRYPTO_SALE} and caps.coins and caps.currencies == COINS
    assert not caps.query_by_order_no and not caps.reversible and caps.closable
    assert caps.sign_ahead and caps.batch_figures and caps.no_refund_reason
    assert caps.pacing.expires_s == 600
    assert "key" not in repr(provider).lower()


async def test_signed_ahead_create_sends_the_prepared_body(
        provider: OPayProvider, sim: OPaySimulator, receiver: Receiver) -> None:
    prepared = provider.prepare_create(sale("P1"))
    clock_at_sign = prepared.signed_at
    report = await provider.create(sale("P1"), prepared)
    assert report.provider_ref == sim.order("P1").order_num
    assert json.loads(prepared.body)["time"] == str(int(clock_at_sign * 1000))
    assert sim.count("createThirdOrder", "P1") == 1


# -- lost creates: the statement ---------------------------------------------------------------

async def lose_create(receiver: Receiver, sim: OPaySimulator, clock: Clock,
                      order_no: str) -> None:
    """createThirdOrder goes through but its answer never arrives."""
    quick = adapter(sim.url, clock, timeout_s=0.3, notify_url=receiver.url)
    sim.drop_next_response("createThirdOrder")
    try:
        with pytest.raises(OutcomeUnknown):
            await quick.create(sale(order_no))
    finally:
        await quick.aclose()


async def test_lost_create_found_unpaid_then_paid(provider: OPayProvider, sim: OPaySimulator,
                                                  clock: Clock, receiver: Receiver) -> None:
    await lose_create(receiver, sim, clock, "F1")
    creates = sim.count("createThirdOrder")
    found = await provider.query(sale("F1"))  # no orderNum: the statement is read
    assert (found.outcome, found.provider_ref, found.closable) == (Outcome.PENDING, None, False)
    days = [p["day"] for name, p in sim.requests if name == "merchantBillingDay"]
    assert days == ["2023-11-14", "2023-11-15"]  # 22:13 UTC: UTC-12 .. UTC+14
    sim.pay("F1")
    paid = await provider.find_lost(sale("F1"))
    assert (paid.outcome, paid.amount) == (Outcome.APPROVED, 12_500_000)
    assert sim.count("createThirdOrder") == creates  # never created again


async def test_lost_create_with_order_num_in_the_statement_is_closable(
        provider: OPayProvider, sim: OPaySimulator, clock: Clock, receiver: Receiver) -> None:
    sim.statement_order_num = True
    await lose_create(receiver, sim, clock, "F2")
    found = await provider.find_lost(sale("F2"))
    assert (found.outcome, found.closable) == (Outcome.PENDING, True)
    assert found.provider_ref == sim.order("F2").order_num and found.qr_text
    await provider.close(sale("F2", ref=found.provider_ref))
    assert sim.order("F2").status == "0"


@pytest.mark.parametrize("zone_h", [-12, 0, 8, 14])
async def test_lost_create_is_found_whatever_the_platform_time_zone(
        provider: OPayProvider, sim: OPaySimulator, clock: Clock, receiver: Receiver,
        zone_h: int) -> None:
    sim.zone_offset_h = zone_h
    await lose_create(receiver, sim, clock, "Z1")
    sim.pay("Z1")
    assert (await provider.find_lost(sale("Z1"))).outcome is Outcome.APPROVED


async def test_a_missing_order_is_unknown_until_expiry_and_settling_pass(
        provider: OPayProvider, sim: OPaySimulator, clock: Clock) -> None:
    with pytest.raises(OutcomeUnknown, match="statement"):
        await provider.find_lost(sale("M1"))
    clock.now = START_S + 600 + 600 - 1
    with pytest.raises(OutcomeUnknown):
        await provider.find_lost(sale("M1"))
    clock.now = START_S + 600 + 600
    gone = await provider.find_lost(sale("M1"))
    assert gone.outcome is Outcome.NOT_FOUND


async def test_statement_pages_are_all_read(sim: OPaySimulator, clock: Clock,
                                            receiver: Receiver) -> None:
    small = adapter(sim.url, clock, statement_page_size=2)
    small.set_notify_url(receiver.url)
    receiver.provider = small
    try:
        for i in range(5):
            await small.create(sale(f"G{i}"))
        sim.pay("G4")
        assert (await small.find_lost(sale("G4"))).outcome is Outcome.APPROVED
        pages = [(p["day"], p["pageNum"]) for name, p in sim.requests
                 if name == "merchantBillingDay"]
        # The platform's day (UTC+8) is the second UTC day read; five lines, two a page.
        assert pages == [("2023-11-14", "1"), ("2023-11-15", "1"), ("2023-11-15", "2"),
                         ("2023-11-15", "3")]
    finally:
        await small.aclose()


async def test_the_health_probe_reads_today_and_finds_nothing(
        provider: OPayProvider, sim: OPaySimulator) -> None:
    probe = provider.probe_order()
    assert probe.provider_ref is None and probe.created_at_ms is None
    report = await provider.query(probe)
    assert report.outcome is Outcome.NOT_FOUND
    assert [n for n, _p in sim.requests] == ["merchantBillingDay"]


async def test_batch_figures_come_from_the_statement(provider: OPayProvider,
                                                     sim: OPaySimulator,
                                                     receiver: Receiver) -> None:
    orders = []
    for order_no, amount, coin in (("B1", 1_000_000, "USDT"), ("B2", 2_500_000, "USDT"),
                                   ("B3", 5, "BTC"), ("B4", 7_000_000, "USDT")):
        report = await provider.create(sale(order_no, amount, coin))
        assert report.provider_ref is not None
        if order_no != "B4":
            sim.pay(report.provider_ref)
        orders.append(sale(order_no, amount, coin))
    figures = {f.currency: f for f in await provider.batch_figures("lane-1", orders)}
    assert (figures["USDT"].count, figures["USDT"].total, figures["USDT"].exponent) == (
        2, 3_500_000, 6)
    assert figures["USDT"].detail["not_paid_in_statement"] == ["B4"]
    assert (figures["BTC"].count, figures["BTC"].total) == (1, 5)


# -- callbacks ------------------------------------------------------------------------------------

def platform_callback(params: dict[str, str], app_id: str = APP_ID) -> bytes:
    return json.dumps(seal(params, app_id=app_id, now_ms=1, receiver_key=public_key("merchant"),
                           sender_key=private_key("platform"))).encode()


CALLBACK = {"outOrderId": "N1", "orderNum": "1", "orderStatus": "3", "payAmount": "0.5",
            "returnUrl": "https://store.example/"}


async def test_callback_coin_comes_from_the_order_the_adapter_made(
        provider: OPayProvider, receiver: Receiver) -> None:
    # USDT 6 and BTC 8, and the order unknown here (e.g. after a restart): the amount goes on
    # as written, for the engine to read with the journal's decimals
    unknown = provider.parse_notification(platform_callback(CALLBACK), {})
    assert (unknown.amount, unknown.amount_text) == (None, CALLBACK["payAmount"])
    await provider.create(sale("N1", 50_000_000, "BTC"))
    assert provider.parse_notification(platform_callback(CALLBACK), {}).amount == 50_000_000
    stated = provider.parse_notification(
        platform_callback({**CALLBACK, "outOrderId": "N2", "payCoinSymbol": "USDT"}), {})
    assert stated.amount == 500_000


def test_one_decimals_for_all_coins_reads_any_callback(sim: OPaySimulator,
                                                       clock: Clock) -> None:
    same = adapter(sim.url, clock, coins={"USDT": 6, "USDC": 6})
    assert same.parse_notification(platform_callback(CALLBACK), {}).amount == 500_000


async def test_forged_or_foreign_callbacks_are_rejected(provider: OPayProvider,
                                                        receiver: Receiver) -> None:
    await provider.create(sale("N1"))
    forged = json.loads(platform_callback(CALLBACK))
    forged["sign"] = json.loads(platform_callback({**CALLBACK, "payAmount": "9"}))["sign"]
    for raw in (json.dumps(forged).encode(), platform_callback(CALLBACK, app_id="other"),
                platform_callback({**CALLBACK, "payAmount": "0.0000001"})):
        with pytest.raises(NotificationRejected):
            provider.parse_notification(raw, {})


async def test_seals_and_opens_in_the_providers_signing_threads(
        provider: OPayProvider, receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    threads = thread_spy(monkeypatch, (opay_client, "seal"), (opay_client.m, "open_answer"))
    await provider.create(sale("T1"))
    assert len(threads) == 2 and all(t.startswith(THREAD_NAME_PREFIX) for t in threads)
