"""The audit trail over real sockets: every privileged action of a register or of the manager
page leaves exactly one record, also when it is refused or fails, committed with the action it
records; the page shows the trail with a filter; no PIN ever reaches it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from posbridge.audit import AuditRecord
from posbridge.audit_log import all_records
from posbridge.client import EcrClient, EcrError

from .conftest import PIN, Bridge
from .test_manager_page import SN1, WRONG_PIN, Manager, late_approval, sale, wait_state

pytestmark = pytest.mark.timeout(60)


async def trail(bridge: Bridge) -> list[AuditRecord]:
    return await bridge.daemon.journal.read(lambda r: list(all_records(r.conn)))


class Recorder:
    """Runs one action and returns the one audit record it left (there must be exactly one)."""

    def __init__(self, bridge: Bridge) -> None:
        self.bridge = bridge
        self.seen = 0

    async def start(self) -> None:
        self.seen = len(await trail(self.bridge))

    async def one(self, action: Callable[[], Awaitable[Any]]) -> AuditRecord:
        with contextlib.suppress(EcrError):  # a refusal: it is recorded all the same
            await action()
        records = await trail(self.bridge)
        new = records[self.seen:]
        assert len(new) == 1, [(r.action, r.outcome) for r in new]
        self.seen = len(records)
        return new[0]


def holds_a_pin(record: AuditRecord) -> bool:
    """Whether a PIN of these tests appears, as a word of its own, in a field of the record
    (the hashes aside: hex may hold any digits, as a terminal's serial number may)."""
    text = json.dumps([record.actor, record.peer, record.action, record.order_no,
                       record.terminal, record.outcome, record.detail])
    return re.search(rf"\b({PIN}|{WRONG_PIN})\b", text) is not None


async def call(client: EcrClient, method: str, **params: Any) -> Any:
    return await client.call(method, params)


async def test_each_privileged_register_action_leaves_exactly_one_record(bridge: Bridge) -> None:
    rec = Recorder(bridge)
    async with await bridge.register() as ecr, await bridge.manager() as mgr:
        for order_no, amount in (("S1", "10.00"), ("S2", "20.00")):
            await ecr.call("sale", sale(order_no, amount))
        await ecr.call("cancel", {"order_no": "S1"})  # a cashier's own business: no record
        assert await trail(bridge) == []
        await rec.start()

        no_pin = await rec.one(lambda: call(ecr, "void", order_no="V1", orig_order_no="S1"))
        assert (no_pin.action, no_pin.actor, no_pin.peer, no_pin.order_no) == (
            "void", "lane-1", "127.0.0.1", "V1")
        assert no_pin.outcome == "refused: void needs the manager role or a manager_pin"
        assert no_pin.detail == {"authorised_by": "none", "orig_order_no": "S1"}

        wrong = await rec.one(lambda: call(ecr, "void", order_no="V1", orig_order_no="S1",
                                           manager_pin=WRONG_PIN))
        assert (wrong.outcome, wrong.detail["authorised_by"]) == (
            "refused: wrong manager PIN", "manager_pin")

        refund = await rec.one(lambda: call(ecr, "refund", order_no="R1", orig_order_no="S1",
                                            amount="2.50", manager_pin=PIN))
        assert (refund.action, refund.outcome, refund.order_no, refund.terminal) == (
            "refund", "ok", "R1", SN1)
        assert refund.detail == {"authorised_by": "manager_pin", "orig_order_no": "S1",
                                 "kind": "refund", "amount": 250, "currency": "USD"}
        again = await rec.one(lambda: call(ecr, "refund", order_no="R1", orig_order_no="S1",
                                           amount="2.50", manager_pin=PIN))
        assert (again.outcome, again.detail["repeat"]) == ("ok", True)

        over = await rec.one(lambda: call(mgr, "refund", order_no="R2", orig_order_no="S1",
                                          amount="9.00"))
        assert over.actor == "backoffice" and over.detail["authorised_by"] == "role"
        assert over.outcome.startswith("refused: at most 7.50 USD can still be refunded")

        tip = await rec.one(lambda: call(mgr, "tip.adjust", order_no="T1", orig_order_no="S2",
                                         tip="3.00"))
        assert (tip.action, tip.outcome, tip.detail["tip"], tip.detail["amount"]) == (
            "tip.adjust", "ok", 300, 300)
        cancel = await rec.one(lambda: call(mgr, "preauth.cancel", order_no="P1",
                                            orig_order_no="S2"))
        assert cancel.outcome == "refused: a sale cannot be cancelled"
        unknown = await rec.one(lambda: call(mgr, "void", order_no="V2", orig_order_no="NOPE"))
        assert unknown.outcome == "refused: no transaction 'NOPE'"
        unreadable = await rec.one(lambda: call(mgr, "void", order_no="V3"))
        assert unreadable.outcome.startswith("refused: orig_order_no")
        assert unreadable.order_no == "V3"

        # a close refused while a payment is in flight, then the close itself
        codepay = bridge.sims.codepay
        codepay.approve_delay_s = 1.0  # the card takes a moment: S3 stays in flight
        try:
            await ecr.call("sale", sale("S3", "5.00", wait=False))
            busy = await rec.one(lambda: call(mgr, "batch.close", terminal="lane-1"))
        finally:
            codepay.approve_delay_s = 0.05
        assert (busy.action, busy.terminal) == ("batch.close", "lane-1")
        assert busy.outcome == ("refused: 1 payment(s) still in flight on this terminal (S3): "
                                "close the batch once they have ended")
        await wait_state(bridge, "S3", "approved")
        closed = await rec.one(lambda: call(mgr, "batch.close", terminal="lane-1"))
        assert (closed.outcome, closed.terminal, closed.detail["batch_no"]) == ("ok", SN1, 1)
        batch = await bridge.daemon.journal.read(lambda r: r.batch(SN1, 1))
        assert batch is not None and batch.closed_at == closed.at  # written in the same unit
    records = await trail(bridge)
    assert [r.seq for r in records] == list(range(1, 12))
    assert not any(holds_a_pin(r) for r in records)


async def test_an_action_and_its_record_commit_together_or_not_at_all(
        bridge: Bridge, monkeypatch: pytest.MonkeyPatch) -> None:
    async with await bridge.register() as ecr, await bridge.manager() as mgr:
        await ecr.call("sale", sale("S1", "10.00"))
        from posbridge import engine

        def broken(*_args: Any) -> None:
            raise RuntimeError("the disk is full")

        monkeypatch.setattr(engine, "append_audit", broken)  # fails after the intent's insert
        with pytest.raises(EcrError) as err:
            await mgr.call("void", {"order_no": "V1", "orig_order_no": "S1"})
        assert err.value.code == -32603
    assert await bridge.daemon.engine.get("V1") is None  # the void went with its record
    [record] = await trail(bridge)  # and the failure has a record of its own
    assert (record.action, record.order_no, record.outcome) == (
        "void", "V1", "failed: internal error (RuntimeError)")


@pytest.fixture
async def manager(bridge: Bridge) -> AsyncIterator[Manager]:
    m = Manager(bridge)
    yield m
    await m.close()


async def test_each_manager_page_action_leaves_exactly_one_record(
        bridge: Bridge, manager: Manager) -> None:
    rec = Recorder(bridge)
    await late_approval(bridge, "L1", "4.30")
    async with await bridge.register() as ecr:
        await ecr.call("sale", sale("S1", "10.00"))
    await wait_state(bridge, "L1", "approved")

    wrong = await rec.one(lambda: manager.login(WRONG_PIN))
    assert (wrong.action, wrong.actor, wrong.peer, wrong.outcome) == (
        "manager.login", "manager", "127.0.0.1", "refused: wrong PIN")
    login = await rec.one(manager.login)
    assert login.outcome == "ok" and re.fullmatch(r"manager:[0-9a-f]{8}", login.actor)
    actor = login.actor
    cookie = next(iter(manager.http.cookie_jar)).value
    assert actor.split(":")[1] not in cookie  # the label is not (a part of) the session id
    token = await manager.csrf()

    async def post(path: str, **form: str) -> None:
        status, _, location = await manager.post(path, {"csrf": token, **form})
        assert (status, location) == (303, "/manager")

    reviewed = await rec.one(lambda: post("/manager/close", order_no="L1"))
    assert (reviewed.action, reviewed.actor, reviewed.order_no, reviewed.outcome) == (
        "txn.review", actor, "L1", "ok")
    nothing = await rec.one(lambda: post("/manager/close", order_no="S1"))
    assert (nothing.action, nothing.outcome) == (
        "txn.close", "refused: S1 is already approved: nothing to close.")
    tip = await rec.one(lambda: post("/manager/tip", order_no="S1", tip="1.50"))
    assert (tip.action, tip.actor, tip.outcome, tip.detail["orig_order_no"]) == (
        "tip.adjust", actor, "ok", "S1")
    assert tip.order_no is not None and tip.order_no.startswith("TA")

    codepay = bridge.sims.codepay
    codepay.approve_delay_s = 1.0  # S2 waits for its card: the manager closes it at the provider
    try:
        async with await bridge.register() as ecr:
            await ecr.call("sale", sale("S2", "3.00", wait=False))
        closed_txn = await rec.one(lambda: post("/manager/close", order_no="S2"))
    finally:
        codepay.approve_delay_s = 0.05
    assert (closed_txn.action, closed_txn.order_no, closed_txn.outcome) == ("txn.close", "S2", "ok")
    assert closed_txn.detail["state"] in ("pending", "in_progress")
    s2 = await bridge.daemon.engine.get("S2")
    assert s2 is not None and s2.cancel_requested and s2.is_final

    stale = await rec.one(lambda: post("/manager/batch-close", terminal=SN1, batch_no="7"))
    assert (stale.action, stale.terminal) == ("batch.close", SN1)
    assert stale.outcome.startswith("refused: Nothing closed: batch 7 of lane-1")
    closed = await rec.one(lambda: post("/manager/batch-close", terminal=SN1, batch_no="1"))
    assert (closed.action, closed.actor, closed.outcome, closed.detail["batch_no"]) == (
        "batch.close", actor, "ok", 1)

    # the trail on the page, newest first, with its filter and the chain's check
    async with manager.http.get(f"{bridge.http}/manager/audit") as resp:
        body = await resp.text()
    seqs = [int(s) for s in re.findall(r'<tr data-seq="(\d+)"', body)]
    assert seqs == list(range(rec.seen, 0, -1))
    async with manager.http.get(f"{bridge.http}/manager/audit",
                                params={"action": "manager.login", "verify": "1"}) as resp:
        body = await resp.text()
    assert re.findall(r'data-action="([^"]+)"', body) == ["manager.login", "manager.login"]
    assert f"The chain is whole: {rec.seen} records" in body
    assert "refused: wrong PIN" in body
    async with manager.http.get(f"{bridge.http}/manager/audit",
                                params={"actor": actor, "q": "S1"}) as resp:
        body = await resp.text()
    assert re.findall(r'data-action="([^"]+)"', body) == ["txn.close"]
    assert not any(holds_a_pin(r) for r in await trail(bridge))


async def test_logins_refused_during_a_lockout_are_recorded_once_per_address(
        bridge: Bridge, manager: Manager) -> None:
    from posbridge.secrets import FailureThrottle, PinChecker

    from .conftest import hashed

    async def no_sleep(_s: float) -> None:
        await asyncio.sleep(0)

    bridge.daemon.pins = PinChecker(hashed(PIN), lockout_after=2, sleep=no_sleep,
                                    throttle=FailureThrottle(base_s=0.0, cap_s=0.0))
    for _ in range(5):
        await manager.login(WRONG_PIN)
    assert (await manager.login(PIN)).status == 429  # locked out: even the right PIN
    outcomes = [(r.action, r.outcome, r.detail.get("locked_out")) for r in await trail(bridge)]
    # the lock-out began with the second wrong PIN, which said so; what followed from this
    # address (not slowed down) left no more records
    assert outcomes == [("manager.login", "refused: wrong PIN", None),
                        ("manager.login", "refused: wrong PIN", True)]
