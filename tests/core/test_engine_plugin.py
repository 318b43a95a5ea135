"""The engine against a fake provider plug-in (real journal file, no sockets): it works from the
provider's declared capabilities alone. The fake is a crypto-like platform that addresses an
order only by its own reference, has coins of its own and no refunds."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import pytest

from posbridge.engine import Engine, PaymentRequest
from posbridge.errors import OutcomeUnknown, RequestError
from posbridge.journal import Journal, JournalTx
from posbridge.lifecycle import State
from posbridge.providers.base import (
    Capabilities,
    NotificationAnswer,
    Outcome,
    Pacing,
    PaymentOrder,
    PreparedCreate,
    Provider,
    ProviderReport,
    TxnKind,
)

pytestmark = pytest.mark.timeout(30)


class FakePlatform(Provider):
    """Creates answer as told (``lose_next`` drops the answer after the order is made);
    ``find_lost`` answers from ``statement`` (None: not settled yet)."""

    name = "fake"

    def __init__(self) -> None:
        self.caps = Capabilities(
            kinds=frozenset({TxnKind.CRYPTO_SALE}), currencies={"USDT": 6, "BTC": 8},
            coins=True, query_by_order_no=False, batch_figures=False,
            no_refund_reason="the platform has no refund",
            pacing=Pacing(expires_s=60, poll_interval_s=0.01, poll_max_s=0.02,
                          lost_poll_s=0.02))
        self.orders: dict[str, ProviderReport] = {}  # by our order_no
        self.creates: list[PaymentOrder] = []
        self.lose_next = False
        self.statement: dict[str, ProviderReport] | None = None
        self.find_calls = 0

    async def create(self, order: PaymentOrder,
                     prepared: PreparedCreate | None = None) -> ProviderReport:
        self.creates.append(order)
        report = ProviderReport(order_no=order.order_no, outcome=Outcome.PENDING,
                                provider_ref=f"P{len(self.creates)}", amount=order.amount,
                                qr_text=f"https://pay.example/?o=P{len(self.creates)}")
        self.orders[order.order_no] = report
        if self.lose_next:
            self.lose_next = False
            raise OutcomeUnknown("the answer was lost")
        return report

    async def query(self, order: PaymentOrder) -> ProviderReport:
        assert order.provider_ref is not None, "queried without the platform's reference"
        return self.orders[order.order_no]

    async def find_lost(self, order: PaymentOrder) -> ProviderReport:
        self.find_calls += 1
        if self.statement is None:
            raise OutcomeUnknown("the day's statement is not settled yet")
        found = self.statement.get(order.order_no)
        return found or ProviderReport(order_no=order.order_no, outcome=Outcome.NOT_FOUND)

    def parse_notification(self, body: bytes, headers: Mapping[str, str]) -> ProviderReport:
        raise AssertionError("not used")

    def notification_answer(self, ok: bool, reason: str = "") -> NotificationAnswer:
        return NotificationAnswer(200, b"success" if ok else b"fail", "text/plain")

    def set_notify_url(self, url: str) -> None:
        pass

    def pay(self, order_no: str) -> None:
        self.orders[order_no] = dataclasses.replace(self.orders[order_no],
                                                    outcome=Outcome.APPROVED)


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[tuple[Engine, FakePlatform]]:
    fake = FakePlatform()
    async with Journal(tmp_path / "j.sqlite") as journal:
        engine = Engine(journal=journal, providers={"fake": fake})
        yield engine, fake
        await engine.stop(grace_s=0.5)


def crypto(order_no: str, amount: str = "12.5", coin: str = "USDT") -> PaymentRequest:
    return PaymentRequest(method="crypto_sale", order_no=order_no, amount_text=amount,
                          currency=coin, currency_field="coin", subject="Coffee",
                          extra={"open_id": "u1"})


async def until(engine: Engine, order_no: str, done: set[State]) -> State:
    rec = await engine.wait_until(order_no, lambda r: r.state in done, 10)
    return rec.state


async def test_an_amount_is_kept_in_the_coins_own_decimals(
        world: tuple[Engine, FakePlatform]) -> None:
    engine, fake = world
    rec = await engine.start("lane-1", crypto("C1", "12.5"))
    assert (rec.amount, rec.currency, rec.exponent, rec.extra) == (
        12_500_000, "USDT", 6, {"open_id": "u1"})
    await until(engine, "C1", {State.IN_PROGRESS})
    assert fake.creates[0].exponent == 6 and fake.creates[0].extra == {"open_id": "u1"}
    with pytest.raises(RequestError) as more:
        await engine.start("lane-1", crypto("C2", "0.0000001"))
    assert (more.value.code, more.value.field) == (-32602, "amount")
    with pytest.raises(RequestError) as coin:
        await engine.start("lane-1", crypto("C3", coin="DOGE"))
    assert (coin.value.code, coin.value.field) == (-32602, "coin")
    assert "USDT" in coin.value.message and len(fake.creates) == 1


async def test_the_qr_text_comes_from_the_provider(world: tuple[Engine, FakePlatform]) -> None:
    engine, fake = world
    await engine.start("lane-1", crypto("Q1"))
    rec = await engine.wait_until("Q1", lambda r: r.qr_deeplink is not None, 5)
    assert rec.qr_deeplink == "https://pay.example/?o=P1" and rec.provider_ref == "P1"
    fake.pay("Q1")
    assert await until(engine, "Q1", {State.APPROVED}) is State.APPROVED


async def test_a_lost_answer_is_never_followed_by_a_second_create(
        world: tuple[Engine, FakePlatform]) -> None:
    """Only the platform's reference addresses an order: the bridge cannot ask about it, so it
    stays unknown (no query, no close, no second create) until the statement settles it."""
    engine, fake = world
    fake.lose_next = True
    await engine.start("lane-1", crypto("L1"))
    assert await until(engine, "L1", {State.UNKNOWN}) is State.UNKNOWN
    while fake.find_calls < 3:
        await asyncio.sleep(0.01)
    assert (await engine.get("L1")).state is State.UNKNOWN  # type: ignore[union-attr]
    assert len(fake.creates) == 1
    fake.pay("L1")
    fake.statement = {"L1": fake.orders["L1"]}
    assert await until(engine, "L1", {State.APPROVED}) is State.APPROVED
    rec = await engine.get("L1")
    assert rec is not None and rec.provider_ref == "P1" and len(fake.creates) == 1


async def test_a_lost_order_the_settled_statement_does_not_list_was_never_made(
        world: tuple[Engine, FakePlatform]) -> None:
    engine, fake = world
    fake.lose_next = True
    fake.orders.clear()
    await engine.start("lane-1", crypto("L2"))
    assert await until(engine, "L2", {State.UNKNOWN}) is State.UNKNOWN
    fake.statement = {}
    assert await until(engine, "L2", {State.FAILED}) is State.FAILED
    rec = await engine.get("L2")
    assert rec is not None and rec.error_code == "not_sent" and len(fake.creates) == 1


async def test_after_a_restart_a_recorded_order_of_unknown_fate_is_unknown(
        tmp_path: Path) -> None:
    """The intent was durable, but whether its create went out before the crash cannot be
    asked: it becomes unknown and is looked for, never created (again)."""
    fake = FakePlatform()
    path = tmp_path / "j.sqlite"
    async with Journal(path) as journal:
        engine = Engine(journal=journal, providers={"fake": fake})
        engine._spawn = lambda rec, fresh: None  # type: ignore[method-assign]  # "crash" first
        await engine.start("lane-1", crypto("R1"))
    async with Journal(path) as journal:
        engine = Engine(journal=journal, providers={"fake": fake})
        assert await engine.recover() == 1
        assert await until(engine, "R1", {State.UNKNOWN}) is State.UNKNOWN
        await engine.stop(grace_s=0.5)
    assert fake.creates == []


async def test_a_payment_of_a_provider_without_refunds_cannot_be_refunded(
        world: tuple[Engine, FakePlatform]) -> None:
    engine, fake = world
    await engine.start("lane-1", crypto("N1"))
    await engine.wait_until("N1", lambda r: r.provider_ref is not None, 5)
    fake.pay("N1")
    await until(engine, "N1", {State.APPROVED})
    for method, params in (("refund", {"amount_text": "1"}), ("void", {})):
        with pytest.raises(RequestError) as refused:
            await engine.start("lane-1", PaymentRequest(
                method=method, order_no=f"X{method}", orig_order_no="N1", **params))
        assert refused.value.code == 1010
        assert "the platform has no refund" in refused.value.message
    assert await engine.get("Xrefund") is None and await engine.get("Xvoid") is None


class SigningAhead(FakePlatform):
    """Signs its creates ahead, noting which statements the journal had run by then."""

    def __init__(self, statements: list[str]) -> None:
        super().__init__()
        self.caps = dataclasses.replace(self.caps, sign_ahead=True)
        self.statements = statements
        self.run_before_signing: list[str] = []

    def prepare_create(self, order: PaymentOrder) -> PreparedCreate:
        self.run_before_signing = list(self.statements)
        return PreparedCreate(order_no=order.order_no, body=b"{}", signed_at=0.0)


async def test_a_new_sale_is_signed_once_its_intent_is_handed_to_the_writer(
        tmp_path: Path) -> None:
    """The intent's unit runs (and its COMMIT goes to the writer thread) before the create is
    signed, so the disk's wait and the signature overlap instead of following each other."""
    statements: list[str] = []

    def trace(tx: JournalTx) -> None:
        tx.conn.set_trace_callback(statements.append)

    fake = SigningAhead(statements)
    async with Journal(tmp_path / "j.sqlite") as journal:
        await journal.run(trace)
        statements.clear()
        engine = Engine(journal=journal, providers={"fake": fake})
        await engine.start("lane-1", crypto("S1"))
        await until(engine, "S1", {State.IN_PROGRESS})
        await engine.stop(grace_s=0.5)
        await journal.run(lambda tx: tx.conn.set_trace_callback(None))
    assert any(s.startswith("INSERT INTO transactions ") for s in fake.run_before_signing)
    assert len(fake.creates) == 1
