"""The journal on real SQLite files: atomic units, group commit, outbox seq, queries."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from posbridge.audit import AuditEntry
from posbridge.audit_log import AuditTrail
from posbridge.errors import JournalError
from posbridge.journal import CursorError, Journal, JournalTx, TxnQuery, decode_cursor
from posbridge.lifecycle import State
from posbridge.operations import fold_totals
from posbridge.providers.base import TxnKind
from posbridge.records import BatchState, EventRecord, TxnRecord


def make(order_no: str, *, created: int = 1_000, **kw: object) -> TxnRecord:
    base: dict[str, object] = dict(
        order_no=order_no, kind=TxnKind.SALE, provider="codepay", identity="lane-1",
        amount=1234, currency="USD", state=State.PENDING, fingerprint="f", created_at=created,
        updated_at=created, expires_at=created + 180_000, terminal_sn="T1",
    )
    base.update(kw)
    return TxnRecord(**base)  # type: ignore[arg-type]


def insert_unit(rec: TxnRecord):  # type: ignore[no-untyped-def]
    def unit(tx: JournalTx) -> TxnRecord:
        tx.insert(rec)
        tx.emit(rec.identity, "transaction.updated", {"order_no": rec.order_no})
        return rec

    return unit


async def test_records_round_trip_and_survive_reopen(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    rec = make("A1", card_brand="VISA", print_slip=True)
    async with Journal(path) as j:
        await j.run(insert_unit(rec))
    async with Journal(path) as j:
        assert await j.get("A1") == rec
        assert await j.get("nope") is None


def settings(tx: JournalTx) -> tuple[str, int]:
    return (tx.conn.execute("PRAGMA journal_mode").fetchone()[0],
            tx.conn.execute("PRAGMA synchronous").fetchone()[0])


def checkpoint_setting(tx: JournalTx) -> int:
    return int(tx.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0])


async def test_wal_and_only_durable_units_commit_with_full_sync(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    async with Journal(path) as j:
        await j.run(insert_unit(make("A1")))
        durable = await j.run(settings)
        committed_only = await j.run(settings, durable=False)
        again = await j.run(settings)
    assert durable == ("wal", 2)  # FULL: the WAL is fsynced before the commit shows
    assert committed_only == ("wal", 1)  # NORMAL: no fsync
    assert again == ("wal", 2)


async def test_only_durable_groups_checkpoint(tmp_path: Path) -> None:
    """SQLite's automatic checkpoint (copying the WAL into the database, with fsyncs) is on
    for a durable group, whose COMMIT runs in the writer thread, and off for a group
    committed on the loop."""
    async with Journal(tmp_path / "j.sqlite") as j:
        assert await j.run(checkpoint_setting) == Journal.CHECKPOINT_PAGES
        assert await j.run(checkpoint_setting, durable=False) == 0
        assert await j.run(checkpoint_setting) == Journal.CHECKPOINT_PAGES


async def test_committed_only_groups_commit_on_the_loop_durable_ones_in_the_writer(
        tmp_path: Path) -> None:
    """Where each COMMIT runs, seen by SQLite's statement trace (called in the thread that
    runs the statement)."""
    seen: list[tuple[str, str]] = []

    def trace(tx: JournalTx) -> None:
        tx.conn.set_trace_callback(
            lambda sql: seen.append((sql, threading.current_thread().name)))

    def untrace(tx: JournalTx) -> None:
        tx.conn.set_trace_callback(None)

    async with Journal(tmp_path / "j.sqlite") as j:
        await j.run(trace)
        await j.run(insert_unit(make("A1")), durable=False)
        await j.run(insert_unit(make("A2")))
        await j.run(untrace, durable=False)
    commits = [thread for sql, thread in seen if sql == "COMMIT"]
    loop_thread = threading.current_thread().name
    # trace's own group (durable), A1's, A2's; untrace's is no longer traced
    assert commits == ["journal-writer", loop_thread, "journal-writer"]
    assert loop_thread != "journal-writer"


class SmallCheckpoints(Journal):
    CHECKPOINT_PAGES = 8


async def test_a_durable_group_checkpoints_what_the_loop_committed(tmp_path: Path) -> None:
    """Groups committed on the loop leave their pages in the WAL, however many; the next
    durable group's COMMIT checkpoints them into the database file."""
    path = tmp_path / "j.sqlite"
    async with SmallCheckpoints(path) as j:
        await j.run(insert_unit(make("A0")))
        size = path.stat().st_size
        for k in range(40):  # far more than 8 pages
            await j.run(insert_unit(make(f"A{k + 1}", description="x" * 2000)), durable=False)
        assert path.stat().st_size == size
        await j.run(insert_unit(make("B1")))
        assert path.stat().st_size > size
        assert len(await j.events_since("lane-1", 0)) == 42


async def test_events_of_a_committed_only_unit_wait_until_durable(tmp_path: Path) -> None:
    """A committed-only unit is readable at once, but its events are neither published nor
    replayed until a durable commit has fsynced the WAL after it (a power cut could still
    take them back, and their seq with them)."""
    published: list[EventRecord] = []
    async with Journal(tmp_path / "j.sqlite", on_events=published.extend) as j:
        j.EVENT_SYNC_DELAY_S = 3600.0  # here, only a durable unit makes them durable
        await j.run(insert_unit(make("A1")))
        await j.run(insert_unit(make("A2")), durable=False)
        assert await j.get("A2") is not None
        assert [e.seq for e in published] == [1]
        assert [e.seq for e in await j.events_since("lane-1", 0)] == [1]
        await j.run(insert_unit(make("B1", identity="lane-2")))
        assert [(e.identity, e.seq) for e in published] == [
            ("lane-1", 1), ("lane-1", 2), ("lane-2", 1)]  # in commit order
        assert [e.seq for e in await j.events_since("lane-1", 0)] == [1, 2]


async def test_events_of_committed_only_units_get_a_sync_of_their_own(tmp_path: Path) -> None:
    """With no durable unit coming, the WAL is fsynced for the waiting events alone."""
    published = asyncio.Event()
    async with Journal(tmp_path / "j.sqlite", on_events=lambda _e: published.set()) as j:
        await j.run(insert_unit(make("A1")), durable=False)
        fsyncs = j.fsyncs
        await asyncio.wait_for(published.wait(), timeout=30)
        assert j.fsyncs == fsyncs + 1
        assert [e.seq for e in await j.events_since("lane-1", 0)] == [1]


async def test_sync_is_a_durability_barrier(tmp_path: Path) -> None:
    """``sync()`` resolves once everything committed so far is fsynced (one fsync of the
    WAL on its own when no durable unit comes), at once when it already is; the events
    waiting for that are published before it resolves."""
    published: list[EventRecord] = []
    async with Journal(tmp_path / "j.sqlite", on_events=published.extend) as j:
        j.EVENT_SYNC_DELAY_S = 3600.0  # only the barrier makes them durable here
        await j.run(insert_unit(make("A1")))
        fsyncs = j.fsyncs
        done = j.sync()
        assert done.done()  # nothing committed-only: already durable, no fsync
        await done
        assert j.fsyncs == fsyncs
        await j.run(insert_unit(make("A2")), durable=False)
        waits = [j.sync(), j.sync()]  # two callers, one fsync
        assert not any(w.done() for w in waits) and [e.seq for e in published] == [1]
        await asyncio.wait_for(asyncio.gather(*waits), timeout=30)
        assert j.fsyncs == fsyncs + 1
        assert [e.seq for e in published] == [1, 2]
        await j.sync()
        assert j.fsyncs == fsyncs + 1


async def test_a_sync_asked_while_units_wait_makes_their_group_durable(tmp_path: Path) -> None:
    async with Journal(tmp_path / "j.sqlite") as j:
        j.EVENT_SYNC_DELAY_S = 3600.0
        await j.run(insert_unit(make("A1")), durable=False)
        fsyncs = j.fsyncs
        later = j.submit(settings, durable=False)  # queued behind the barrier's request
        barrier = j.sync()
        assert await asyncio.wait_for(later, timeout=30) == ("wal", 2)  # FULL: carries it
        await asyncio.wait_for(barrier, timeout=30)
        assert j.fsyncs == fsyncs + 1


class HeldWriter(Journal):
    """The writer thread takes nothing from its queue until ``release`` is set, and counts
    the fsyncs of the WAL on its own."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.release = threading.Event()
        self.wal_syncs = 0

    def _commit_loop(self) -> None:
        self.release.wait(30)
        super()._commit_loop()

    def _sync_wal(self) -> None:
        self.wal_syncs += 1
        super()._sync_wal()


async def test_a_durable_unit_queued_behind_a_sync_makes_it_with_one_fsync(
        tmp_path: Path) -> None:
    """A sync of the WAL on its own does not use the connection, so a durable unit may start
    while it waits for the writer; queued behind it, its FULL commit fsyncs the WAL after
    what the sync was asked for, and the sync waits for that instead of an fsync of its own."""
    published: list[EventRecord] = []
    j = HeldWriter(tmp_path / "j.sqlite")
    j.set_event_sink(published.extend)
    async with j:
        j.EVENT_SYNC_DELAY_S = 3600.0
        await j.run(insert_unit(make("A1")), durable=False)  # on the loop: no writer needed
        fsyncs = j.fsyncs
        barrier = j.sync()  # the writer is free: a sync-only group is handed to it
        durable = j.submit(insert_unit(make("A2")))
        await asyncio.sleep(0.01)  # A2's group runs on the loop and is queued behind the sync
        assert not barrier.done() and not durable.done()
        j.release.set()
        await asyncio.wait_for(asyncio.gather(barrier, durable), timeout=30)
        assert j.wal_syncs == 0  # A2's COMMIT did the sync's work
        assert j.fsyncs == fsyncs + 1
        assert [e.seq for e in published] == [1, 2]
        assert await j.get("A2") is not None


async def test_committed_only_units_wait_for_a_sync_in_flight(tmp_path: Path) -> None:
    """A committed-only unit does not start while a sync-only group waits in the writer: it
    runs once the sync is done, committed on the loop, and the sync fsyncs on its own."""
    j = HeldWriter(tmp_path / "j.sqlite")
    async with j:
        j.EVENT_SYNC_DELAY_S = 3600.0
        await j.run(insert_unit(make("A1")), durable=False)
        barrier = j.sync()
        later = j.submit(insert_unit(make("A2")), durable=False)
        await asyncio.sleep(0.01)
        assert not later.done()
        assert await j.get("A2") is None  # not even begun
        j.release.set()
        await asyncio.wait_for(asyncio.gather(barrier, later), timeout=30)
        assert j.wal_syncs == 1
        assert await j.get("A2") is not None
        fsyncs = j.fsyncs
        await j.sync()  # A2 came after the sync: it is not durable yet
        assert j.fsyncs == fsyncs + 1 and j.wal_syncs == 2


POWER_CUT_BEHIND_A_SYNC = """
import asyncio, sys
from pathlib import Path
from posbridge.failpoints import failpoint
from tests.core.test_journal import HeldWriter, insert_unit, make

async def main() -> None:
    j = HeldWriter(Path(sys.argv[1]))
    await j.open()
    j.EVENT_SYNC_DELAY_S = 3600.0
    await j.run(insert_unit(make("A1")), durable=False)
    barrier = j.sync()
    durable = j.submit(insert_unit(make("A2")))
    await asyncio.sleep(0.01)
    j.release.set()
    await asyncio.wait_for(asyncio.gather(barrier, durable), timeout=30)
    assert j.wal_syncs == 0, "A2's commit was to stand for the sync"
    await j.run(insert_unit(make("A3")), durable=False)
    failpoint("power_cut", "test", j.simulate_power_cut)

asyncio.run(main())
"""


async def test_a_power_cut_keeps_what_a_sync_stood_for_by_a_durable_commit(
        tmp_path: Path) -> None:
    """The power-cut kill point after a durable COMMIT that stood for a sync queued before
    it: the committed-only unit the sync was asked for survives with the durable one, and
    only what was committed after them is taken back."""
    path = tmp_path / "j.sqlite"
    env = {**os.environ, "POSBRIDGE_FAILPOINT": "power_cut:test"}
    done = subprocess.run([sys.executable, "-c", POWER_CUT_BEHIND_A_SYNC, str(path)],
                          env=env, cwd=Path(__file__).parents[2], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == -signal.SIGKILL, done.stderr
    async with Journal(path) as j:
        assert await j.get("A1") is not None and await j.get("A2") is not None
        assert await j.get("A3") is None
        assert [e.seq for e in await j.events_since("lane-1", 0)] == [1, 2]


async def test_close_makes_committed_only_units_durable_and_publishes(tmp_path: Path) -> None:
    published: list[EventRecord] = []
    async with Journal(tmp_path / "j.sqlite", on_events=published.extend) as j:
        j.EVENT_SYNC_DELAY_S = 3600.0
        await j.run(insert_unit(make("A1")), durable=False)
        assert published == []
    assert [e.seq for e in published] == [1]


async def test_event_seq_is_per_identity_and_continues_after_restart(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    published: list[EventRecord] = []
    async with Journal(path, on_events=published.extend) as j:
        await j.run(insert_unit(make("A1")))
        await j.run(insert_unit(make("A2")))
        await j.run(insert_unit(make("B1", identity="lane-2")))
    assert [(e.identity, e.seq) for e in published] == [("lane-1", 1), ("lane-1", 2), ("lane-2", 1)]
    async with Journal(path) as j:
        await j.run(insert_unit(make("A3")))
        events = await j.events_since("lane-1", 1)
    assert [e.seq for e in events] == [2, 3]
    assert events[-1].params == {"order_no": "A3"}


async def test_a_failing_unit_rolls_back_alone(tmp_path: Path) -> None:
    async with Journal(tmp_path / "j.sqlite") as j:
        def bad(tx: JournalTx) -> None:
            tx.insert(make("X1"))
            tx.emit("lane-1", "transaction.updated", {})
            raise ValueError("refused")

        results = await asyncio.gather(
            j.run(insert_unit(make("OK1"))), j.run(bad), j.run(insert_unit(make("OK2"))),
            return_exceptions=True)
        assert isinstance(results[1], ValueError)
        assert await j.get("X1") is None
        assert await j.get("OK1") is not None and await j.get("OK2") is not None
        events = await j.events_since("lane-1", 0)
        assert [e.seq for e in events] == [1, 2]  # the failed unit's seq was not used


async def test_a_failing_unit_gives_back_the_seqs_of_identities_it_was_first_to_use(
        tmp_path: Path) -> None:
    async with Journal(tmp_path / "j.sqlite") as j:
        await j.run(insert_unit(make("A1")))

        def bad(tx: JournalTx) -> None:
            tx.emit("lane-1", "transaction.updated", {})
            tx.emit("lane-9", "transaction.updated", {})  # no event for lane-9 yet
            tx.emit("lane-9", "transaction.updated", {})
            raise ValueError("refused")

        with pytest.raises(ValueError, match="refused"):
            await j.run(bad)

        def good(tx: JournalTx) -> None:
            tx.emit("lane-9", "transaction.updated", {"n": 1})
            tx.emit("lane-1", "transaction.updated", {"n": 2})

        await j.run(good)
        assert [e.seq for e in await j.events_since("lane-9", 0)] == [1]
        assert [e.seq for e in await j.events_since("lane-1", 0)] == [1, 2]


async def test_duplicate_primary_key_is_a_unit_error_not_a_corruption(tmp_path: Path) -> None:
    async with Journal(tmp_path / "j.sqlite") as j:
        await j.run(insert_unit(make("A1")))
        with pytest.raises(sqlite3.IntegrityError):
            await j.run(insert_unit(make("A1")))
        assert (await j.get("A1")) is not None


async def test_concurrent_units_are_group_committed(tmp_path: Path) -> None:
    async with Journal(tmp_path / "j.sqlite") as j:
        await asyncio.gather(*(j.run(insert_unit(make(f"G{i}"))) for i in range(300)))
        assert j.commits < 300
        items, _ = await j.list_transactions(TxnQuery(limit=500))
        assert len(items) == 300


async def test_list_pages_with_a_cursor_newest_first(tmp_path: Path) -> None:
    async with Journal(tmp_path / "j.sqlite") as j:
        for i in range(7):
            await j.run(insert_unit(make(f"P{i}", created=1000 + i // 2,
                                         state=State.APPROVED if i % 2 else State.DECLINED)))
        seen: list[str] = []
        cursor = None
        while True:
            items, cursor = await j.list_transactions(TxnQuery(limit=3, cursor=cursor))
            seen += [r.order_no for r in items]
            if cursor is None:
                break
        assert seen == ["P6", "P5", "P4", "P3", "P2", "P1", "P0"]
        approved, _ = await j.list_transactions(TxnQuery(state="approved"))
        assert {r.order_no for r in approved} == {"P1", "P3", "P5"}
        found, _ = await j.list_transactions(TxnQuery(search="P5"))
        assert [r.order_no for r in found] == ["P5"]


def test_a_forged_cursor_is_refused() -> None:
    with pytest.raises(CursorError):
        decode_cursor("not-a-cursor")


async def test_batch_totals_per_currency(tmp_path: Path) -> None:
    async with Journal(tmp_path / "j.sqlite") as j:
        def fill(tx: JournalTx) -> None:
            batch = tx.ensure_open_batch("T1", 1)
            assert batch.batch_no == 1 and batch.state is BatchState.OPEN
            rows = [
                make("S1", amount=1000, tip=100, state=State.APPROVED),
                make("S2", amount=500, state=State.APPROVED),
                make("S3", amount=999, state=State.DECLINED),
                make("R1", kind=TxnKind.REFUND, amount=200, state=State.APPROVED),
                make("V1", kind=TxnKind.VOID, amount=500, state=State.APPROVED),
                make("E1", amount=700, currency="EUR", state=State.APPROVED),
            ]
            for r in rows:
                tx.insert(dataclasses.replace(r, batch_no=1))

        await j.run(fill)
        totals = fold_totals(await j.read(lambda r: r.batch_rows("T1", 1)))
    usd = totals["USD"]
    assert (usd.count, usd.sales, usd.tips, usd.refunds, usd.voids) == (4, 1500, 100, 200, 500)
    assert usd.net == 900
    assert totals["EUR"].net == 700


async def test_hot_queries_use_indexes(tmp_path: Path) -> None:
    """status and transactions.list stay fast at a million rows: they never scan the table."""
    async with Journal(tmp_path / "j.sqlite") as j:
        await j.run(insert_unit(make("A1")))

        def plans(tx: JournalTx) -> list[str]:
            q = [
                "SELECT * FROM transactions WHERE order_no = 'A1'",
                "SELECT * FROM transactions ORDER BY created_at DESC, order_no DESC LIMIT 50",
                "SELECT * FROM transactions WHERE terminal_sn = 'T1'"
                " ORDER BY created_at DESC, order_no DESC LIMIT 50",
                "SELECT * FROM transactions WHERE state = 'approved'"
                " ORDER BY created_at DESC, order_no DESC LIMIT 50",
                "SELECT * FROM transactions WHERE state IN ('pending','in_progress','unknown')",
                "SELECT * FROM events WHERE identity = 'x' AND seq > 5 ORDER BY seq",
            ]
            return [" ".join(str(r[3]) for r in tx.conn.execute("EXPLAIN QUERY PLAN " + s))
                    for s in q]

        for plan in await j.run(plans):
            # An index-ordered scan with LIMIT is fine; a full table scan or a sort is not.
            assert "USE TEMP B-TREE" not in plan, plan
            assert "SCAN transactions" not in plan or "USING" in plan, plan


async def test_update_with_the_old_row_writes_only_the_changed_columns(tmp_path: Path) -> None:
    async with Journal(tmp_path / "j.sqlite") as j:
        old = make("U1")
        await j.run(insert_unit(old))
        new = dataclasses.replace(old, state=State.IN_PROGRESS, provider_ref="P9", updated_at=2_000)
        statements: list[str] = []

        def unit(tx: JournalTx) -> None:
            tx.conn.set_trace_callback(statements.append)
            try:
                tx.update(new, old=old)
                tx.update(new, old=new)  # nothing differs: no statement at all
            finally:
                tx.conn.set_trace_callback(None)

        await j.run(unit)
        assert await j.get("U1") == new
    updates = [s for s in statements if s.startswith("UPDATE")]
    assert len(updates) == 1
    written = updates[0].split(" SET ")[1].split(" WHERE ")[0]
    assert sorted(c.split(" = ")[0] for c in written.split(", ")) == [
        "provider_ref", "state", "updated_at"]


async def test_update_of_a_missing_row_is_an_error(tmp_path: Path) -> None:
    async with Journal(tmp_path / "j.sqlite") as j:
        ghost = make("NOPE")
        with pytest.raises(JournalError):
            await j.run(lambda tx: tx.update(dataclasses.replace(ghost, amount=1), old=ghost))


async def test_a_cancelled_waiter_does_not_undo_its_committed_unit(tmp_path: Path) -> None:
    async with Journal(tmp_path / "j.sqlite") as j:
        waiter = asyncio.ensure_future(j.run(insert_unit(make("C1"))))
        await asyncio.sleep(0)
        waiter.cancel()
        await j.run(lambda tx: None)  # the writer has committed everything before this
        assert waiter.cancelled()
        assert await j.get("C1") is not None


async def test_a_write_lock_held_elsewhere_never_blocks_the_loop(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    async with Journal(path) as j:
        other = sqlite3.connect(path, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")  # e.g. an operator's sqlite3 shell
            waiting = asyncio.ensure_future(j.run(insert_unit(make("L1"))))
            loop = asyncio.get_running_loop()
            started = loop.time()
            for _ in range(10):  # the loop keeps turning while the unit waits for the lock
                await asyncio.sleep(0.01)
            assert loop.time() - started < 1.0  # a lock wait on the loop would take 5 s
            assert not waiting.done()
            other.execute("COMMIT")
        finally:
            other.close()
        assert await asyncio.wait_for(waiting, timeout=5) == make("L1")
        assert await j.get("L1") is not None


async def test_units_fail_once_the_write_lock_stays_taken(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    async with Journal(path) as j:
        j.BUSY_TIMEOUT_S = 0.2
        other = sqlite3.connect(path, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            results = await asyncio.wait_for(asyncio.gather(
                j.run(insert_unit(make("B1"))), j.run(insert_unit(make("B2"))),
                return_exceptions=True), timeout=5)
            assert all(isinstance(r, JournalError) for r in results)
            assert not j.healthy
            other.execute("ROLLBACK")
        finally:
            other.close()
        await j.run(insert_unit(make("B3")))  # the lock is free again: writes go on
        assert j.healthy
        assert await j.get("B1") is None and await j.get("B3") is not None
        events = await j.events_since("lane-1", 0)
        assert [e.seq for e in events] == [1]  # the failed units used no seq


async def test_closed_journal_refuses_work(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.sqlite")
    await j.open()
    await j.close()
    with pytest.raises(JournalError):
        await j.run(lambda tx: None)


async def test_audit_records_are_durable_before_the_operator_is_answered(tmp_path: Path) -> None:
    """An audit record in a unit of its own waits for an fsync, like the intent it may ride in."""
    async with Journal(tmp_path / "j.sqlite") as j:
        trail = AuditTrail(j)
        fsyncs = j.fsyncs
        record = await trail.record(AuditEntry(actor="manager:0a1b", peer="127.0.0.1",
                                               action="batch.close", outcome="refused: busy"))
        assert record is not None
        assert j.fsyncs == fsyncs + 1
