"""CodePayProvider against the CodePay simulator over real sockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Callable

import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

from posbridge.errors import (
    BadSignature,
    ConfigError,
    OutcomeUnknown,
    ProviderRejected,
    ProviderUnreachable,
)
from posbridge.providers.base import Outcome, PaymentOrder, TxnKind
from posbridge.providers.codepay.client import CodePayProvider
from posbridge.sandbox.codepay_sim import CodePaySimulator

from .conftest import APP_ID, DELAY, MERCHANT_NO, TERMINAL, merchant_private, order, until_outcome

pytestmark = pytest.mark.timeout(20)

Make = Callable[..., CodePayProvider]


async def test_sale_is_created_then_approved_with_card_details(
        provider: CodePayProvider, sim: CodePaySimulator) -> None:
    first = await provider.create(order("S1", 1200))
    assert (first.outcome, first.closable, first.terminal_online) == (
        Outcome.PENDING, True, True)
    assert first.provider_ref == sim.orders["S1"].trans_no
    final = await until_outcome(provider, order("S1", 1200), Outcome.APPROVED)
    assert (final.amount, final.card_brand, final.provider_ref) == (1200, "Visa",
                                                                   first.provider_ref)
    assert final.auth_no and len(final.auth_no) == 6
    assert sim.create_count("S1") == 1
    [create] = sim.creates
    assert create["order_amount"] == "12.00" and create["api_version"] == "2.0"
    assert create["store_no"] == "4123000005" and len(str(create["timestamp"])) == 13


async def test_tip_is_sent_and_the_order_amount_excludes_it(
        provider: CodePayProvider, sim: CodePaySimulator) -> None:
    await provider.create(order("T1", 1000, tip=250))
    report = await until_outcome(provider, order("T1", 1000), Outcome.APPROVED)
    assert report.amount == 1000
    assert sim.creates[0]["tip_amount"] == "2.50"


async def test_decline_carries_the_terminal_error_code(provider: CodePayProvider) -> None:
    await provider.create(order("D1", 1205))
    report = await until_outcome(provider, order("D1", 1205), Outcome.DECLINED)
    assert report.provider_code == "51"


async def test_close_while_waiting_for_the_card_cancels(provider: CodePayProvider) -> None:
    po = order("C1", 1245)  # slow approval: 20 x DELAY
    await provider.create(po)
    report = await provider.query(po)
    assert report.outcome is Outcome.PENDING and report.closable
    await provider.close(po)
    assert (await provider.query(po)).outcome is Outcome.CANCELLED
    await asyncio.sleep(25 * DELAY)  # the terminal never approves a closed order
    assert (await provider.query(po)).outcome is Outcome.CANCELLED


async def test_close_of_an_approved_or_unknown_order_is_rejected(
        provider: CodePayProvider) -> None:
    await provider.create(order("C2", 100))
    await until_outcome(provider, order("C2", 100), Outcome.APPROVED)
    with pytest.raises(ProviderRejected) as err:
        await provider.close(order("C2", 100))
    assert err.value.provider_code == "ORDER_STATUS_ERROR"
    with pytest.raises(ProviderRejected):
        await provider.close(order("NOPE"))


async def test_query_of_an_unknown_order_is_not_found(provider: CodePayProvider) -> None:
    assert (await provider.query(order("NEVER"))).outcome is Outcome.NOT_FOUND


async def test_second_create_with_the_same_number_is_outcome_unknown(
        provider: CodePayProvider, sim: CodePaySimulator) -> None:
    await provider.create(order("DUP1", 100))
    with pytest.raises(OutcomeUnknown):
        await provider.create(order("DUP1", 100))
    assert sim.create_count("DUP1") == 2
    await until_outcome(provider, order("DUP1", 100), Outcome.APPROVED)


async def test_refund_and_void_of_an_approved_sale(provider: CodePayProvider,
                                                   sim: CodePaySimulator) -> None:
    await provider.create(order("S2", 2000))
    await until_outcome(provider, order("S2", 2000), Outcome.APPROVED)
    refund = order("S2R1", 1205, kind=TxnKind.REFUND, orig="S2")  # cents never matter here
    await provider.create(refund)
    await until_outcome(provider, refund, Outcome.APPROVED)
    assert sim.creates[-1]["trans_type"] == 3
    assert sim.creates[-1]["orig_merchant_order_no"] == "S2"
    with pytest.raises(ProviderRejected) as err:
        await provider.create(order("S2R2", 796, kind=TxnKind.REFUND, orig="S2"))
    assert err.value.provider_code == "REFUND_AMOUNT_EXCEEDED"
    await provider.create(order("S2R3", 795, kind=TxnKind.REFUND, orig="S2"))
    await until_outcome(provider, order("S2R3", 795, kind=TxnKind.REFUND), Outcome.APPROVED)

    await provider.create(order("S3", 700))
    await until_outcome(provider, order("S3", 700), Outcome.APPROVED)
    void = order("S3V", 700, kind=TxnKind.VOID, orig="S3")
    await provider.create(void)
    await until_outcome(provider, void, Outcome.APPROVED)
    assert sim.creates[-1]["trans_type"] == 2
    with pytest.raises(ProviderRejected):  # voided once is enough
        await provider.create(order("S3V2", 700, kind=TxnKind.VOID, orig="S3"))


async def test_void_or_refund_of_an_unknown_or_unapproved_sale_is_rejected(
        provider: CodePayProvider) -> None:
    with pytest.raises(ProviderRejected) as err:
        await provider.create(order("X1R", 100, kind=TxnKind.REFUND, orig="NOSUCH"))
    assert err.value.provider_code == "ORIG_ORDER_INVALID"
    await provider.create(order("X2", 1205))  # will be declined
    await until_outcome(provider, order("X2", 1205), Outcome.DECLINED)
    with pytest.raises(ProviderRejected):
        await provider.create(order("X2V", 1205, kind=TxnKind.VOID, orig="X2"))


async def test_open_batch_and_batch_close(provider: CodePayProvider,
                                          sim: CodePaySimulator) -> None:
    assert await provider.open_batch(TERMINAL) == {"count": 0, "total_amount": "0"}
    await provider.create(order("B1", 1000))
    await until_outcome(provider, order("B1", 1000), Outcome.APPROVED)
    await provider.create(order("B1R", 250, kind=TxnKind.REFUND, orig="B1"))
    await until_outcome(provider, order("B1R", 250, kind=TxnKind.REFUND), Outcome.APPROVED)
    figures = await provider.open_batch(TERMINAL)
    assert figures == {"count": 2, "total_amount": "7.50", "price_currency": "USD"}
    assert sim.requests[-1]["terminal_sn_list"] == [TERMINAL]
    sim.adjust_open_batch(TERMINAL, "USD", 100)
    assert (await provider.open_batch(TERMINAL))["total_amount"] == "8.50"

    closed = await provider.batch_close(TERMINAL)
    assert closed["count"] == 2
    assert sim.batch_closes == [TERMINAL]
    assert (await provider.open_batch(TERMINAL))["count"] == 0
    with pytest.raises(ProviderRejected):  # a sale of a closed batch can only be refunded
        await provider.create(order("B1V", 1000, kind=TxnKind.VOID, orig="B1"))
    await provider.create(order("B1R2", 100, kind=TxnKind.REFUND, orig="B1"))


async def test_no_notify_url_when_notifications_cannot_be_verified(
        make_provider: Make, sim: CodePaySimulator) -> None:
    """Basic-auth mode without a gateway key: a notification could not be verified and would
    be refused for hours, so none is asked for (results come by polling)."""
    url = "http://127.0.0.1:9/notify/codepay"
    blind = make_provider(sign_type="NONE", private_key=None, gateway_public_key=None,
                          basic_auth=("merchant", "s3cret"), notify_url=url)
    await blind.create(order("NN1", 100))
    assert "notify_url" not in sim.creates[-1]
    checked = make_provider(sign_type="NONE", private_key=None,
                            basic_auth=("merchant", "s3cret"), notify_url=url)
    await checked.create(order("NN2", 100))
    assert sim.creates[-1]["notify_url"] == url


async def test_basic_auth_mode(make_provider: Make, sim: CodePaySimulator) -> None:
    basic = make_provider(sign_type="NONE", private_key=None, basic_auth=("merchant", "s3cret"))
    await basic.create(order("N1", 100))
    assert "sign" not in sim.creates[0] and sim.creates[0]["sign_type"] == "NONE"
    await until_outcome(basic, order("N1", 100), Outcome.APPROVED)
    wrong = make_provider(sign_type="NONE", private_key=None, basic_auth=("merchant", "guess"))
    with pytest.raises(ProviderRejected) as err:
        await wrong.query(order("N1"))
    assert err.value.provider_code == "HTTP_401"


async def test_signature_by_another_merchant_key_is_refused(
        make_provider: Make, stranger_key: RSAPrivateKey, sim: CodePaySimulator) -> None:
    forger = make_provider(private_key=stranger_key)
    with pytest.raises(ProviderRejected) as err:
        await forger.create(order("F1", 100))
    assert err.value.provider_code == "AUTH_FAILED"
    assert sim.creates == []


async def test_answers_that_do_not_verify_are_never_success(
        make_provider: Make, stranger_key: RSAPrivateKey, sim: CodePaySimulator) -> None:
    trusting_wrong_key = make_provider(gateway_public_key=stranger_key.public_key())
    with pytest.raises(BadSignature):
        await trusting_wrong_key.create(order("W1", 100))
    assert sim.create_count("W1") == 1  # it arrived: the outcome is unknown, not failed


@pytest.mark.parametrize("skew_s", [-16 * 60, 16 * 60])
async def test_timestamp_skew_is_refused(make_provider: Make, skew_s: float) -> None:
    skewed = make_provider(clock=lambda: time.time() + skew_s)
    with pytest.raises(ProviderRejected) as err:
        await skewed.query(order("Z1"))
    assert err.value.provider_code == "TIMESTAMP_EXPIRED"


async def test_small_skew_is_accepted(make_provider: Make) -> None:
    skewed = make_provider(clock=lambda: time.time() - 14 * 60)
    assert (await skewed.query(order("Z2"))).outcome is Outcome.NOT_FOUND


async def test_lost_create_answer_is_outcome_unknown_within_the_timeout(
        make_provider: Make, sim: CodePaySimulator) -> None:
    provider = make_provider(timeout_s=0.5)
    started = time.monotonic()
    with pytest.raises(OutcomeUnknown):
        await provider.create(order("L1", 1220))
    assert time.monotonic() - started < 0.5 + 0.25
    assert sim.create_count("L1") == 1
    await until_outcome(provider, order("L1", 1220), Outcome.APPROVED)


async def test_connection_refused_is_provider_unreachable(make_provider: Make) -> None:
    with socket.socket() as s:  # a port that surely has no listener once closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    provider = make_provider(base_url=f"http://127.0.0.1:{port}")
    with pytest.raises(ProviderUnreachable):
        await provider.create(order("U1", 100))


@pytest.fixture
async def silent_server() -> AsyncIterator[str]:
    """Accepts connections and reads, but never answers."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    for writer in held:
        writer.close()
    server.close()
    await server.wait_closed()


async def test_create_timeout_is_outcome_unknown_never_a_failure(
        make_provider: Make, silent_server: str) -> None:
    provider = make_provider(base_url=silent_server, timeout_s=0.2)
    started = time.monotonic()
    with pytest.raises(OutcomeUnknown) as err:
        await provider.create(order("H1", 100))
    assert not isinstance(err.value, (ProviderRejected, ProviderUnreachable))
    assert time.monotonic() - started < 1.0


@pytest.fixture
async def broken_gateway() -> AsyncIterator[str]:
    async def fail(_request: web.Request) -> web.Response:
        return web.Response(status=502, text="<html>bad gateway</html>")

    app = web.Application()
    app.router.add_post("/api/entry", fail)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


async def test_http_5xx_is_outcome_unknown(make_provider: Make, broken_gateway: str) -> None:
    with pytest.raises(OutcomeUnknown):
        await make_provider(base_url=broken_gateway).create(order("G1", 100))


async def test_terminal_offline_orders_wait_closable(provider: CodePayProvider,
                                                     sim: CodePaySimulator) -> None:
    first = await provider.create(order("O1", 1215))
    assert first.terminal_online is False
    await asyncio.sleep(3 * DELAY)
    report = await provider.query(order("O1", 1215))
    assert (report.outcome, report.closable, report.terminal_online) == (
        Outcome.PENDING, True, False)
    sim.set_terminal_online("LANE9", False)
    offline = await provider.create(PaymentOrder(
        order_no="O2", kind=TxnKind.SALE, amount=100, currency="USD", terminal_sn="LANE9"))
    assert offline.terminal_online is False
    await provider.close(order("O1", 1215))
    assert (await provider.query(order("O1"))).outcome is Outcome.CANCELLED


async def test_silent_terminal_stays_in_progress_until_expiry(provider: CodePayProvider) -> None:
    po = order("Q1", 1210, expires_s=1)
    await provider.create(po)
    await asyncio.sleep(2 * DELAY)
    report = await provider.query(po)
    assert (report.outcome, report.closable) == (Outcome.PENDING, False)
    with pytest.raises(ProviderRejected):
        await provider.close(po)  # in progress: not closable
    await until_outcome(provider, po, Outcome.CANCELLED, timeout=2.0)


def test_constructor_refuses_incomplete_credentials(gateway_key: RSAPrivateKey) -> None:
    def make(private: RSAPrivateKey | None, gateway: RSAPublicKey | None,
             sign_type: str = "RSA2") -> CodePayProvider:
        return CodePayProvider(base_url="http://127.0.0.1:1", app_id=APP_ID,
                               merchant_no=MERCHANT_NO, store_no=None, private_key=private,
                               gateway_public_key=gateway, sign_type=sign_type, notify_url=None)

    with pytest.raises(ConfigError):
        make(None, gateway_key.public_key())
    with pytest.raises(ConfigError):
        make(merchant_private(), None)
    with pytest.raises(ConfigError):
        make(merchant_private(), None, "NONE")  # NONE needs basic-auth credentials
    with pytest.raises(ConfigError):
        make(merchant_private(), gateway_key.public_key(), "MD5")
    provider = make(merchant_private(), gateway_key.public_key())
    assert "PRIVATE" not in repr(provider) and APP_ID in repr(provider)


async def test_a_prepared_create_is_sent_exactly_as_signed(
        make_provider: Make, sim: CodePaySimulator) -> None:
    now = [time.time() - 20]
    provider = make_provider(clock=lambda: now[0])
    prepared = provider.prepare_create(order("P1", 700))
    assert sim.creates == []  # preparing sends nothing
    now[0] += 20  # sent 20 s after it was signed: still inside PREPARED_MAX_AGE_S
    report = await provider.create(order("P1", 700), prepared)
    assert report.outcome is Outcome.PENDING
    [create] = sim.creates
    assert create["sign"] == json.loads(prepared.body)["sign"]
    assert create["timestamp"] == json.loads(prepared.body)["timestamp"]


@pytest.mark.parametrize("case", ["stale", "other order"])
async def test_a_stale_or_foreign_prepared_create_is_signed_anew(
        make_provider: Make, sim: CodePaySimulator, case: str) -> None:
    now = [time.time() - 31]
    provider = make_provider(clock=lambda: now[0])
    prepared = provider.prepare_create(order("P2" if case == "stale" else "P3", 700))
    now[0] += 31 if case == "stale" else 0
    await provider.create(order("P2", 700), prepared)
    [create] = sim.creates
    assert create["merchant_order_no"] == "P2"
    assert create["sign"] != json.loads(prepared.body)["sign"]
    assert int(create["timestamp"]) == int(now[0] * 1000)
