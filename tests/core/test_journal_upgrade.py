"""Schema versions: a journal written by release 0.1.0 (checked in, made by that release's code)
opens, is upgraded in place once, and keeps every record; a newer file is refused untouched."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from posbridge.errors import JournalError
from posbridge.journal import SCHEMA_VERSION, Journal, schema_version
from posbridge.lifecycle import State
from posbridge.operations import fold_totals
from posbridge.providers.base import TxnKind
from posbridge.records import BatchState

RELEASE_0_1_0 = Path(__file__).parents[1] / "vectors" / "journal" / "release-0.1.0.sqlite"


@pytest.fixture
def old_journal(tmp_path: Path) -> Path:
    path = tmp_path / "journal.sqlite"
    shutil.copyfile(RELEASE_0_1_0, path)
    return path


def _rows(path: Path, sql: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


async def test_a_release_0_1_0_journal_is_upgraded_and_keeps_everything(
        old_journal: Path) -> None:
    before = _rows(old_journal, "SELECT * FROM transactions ORDER BY order_no")
    events = _rows(old_journal, "SELECT * FROM events ORDER BY identity, seq")
    batches = _rows(old_journal, "SELECT * FROM batches ORDER BY terminal_sn, batch_no")
    assert _rows(old_journal, "PRAGMA user_version") == [(0,)]
    async with Journal(old_journal) as j:
        a = await j.get("V1A")
        assert a is not None
        assert (a.kind, a.state, a.amount, a.tip, a.refunded_amount) == (
            TxnKind.SALE, State.APPROVED, 1200, 150, 200)
        assert (a.exponent, a.extra) == (None, {})
        qr = await j.get("V1Q")
        assert qr is not None and qr.kind is TxnKind.QR_SALE and qr.qr_deeplink
        assert [r.order_no for r in await j.active()] == ["V1S"]
        totals = fold_totals(await j.read(lambda r: r.batch_rows("SANDBOX0000000001", 1)))
        assert (totals["USD"].sales, totals["USD"].tips, totals["USD"].refunds,
                totals["USD"].voids) == (3200, 150, 200, 2000)
        assert totals["CAD"].sales == 850 and totals["CAD"].refunds == 150
        closed = await j.read(lambda r: r.batch("SANDBOX0000000001", 1))
        assert closed is not None and closed.state is BatchState.CLOSED
        # it keeps working: a new record with the new fields
        await j.run(lambda tx: tx.emit("lane-1", "terminal.status", {"terminal": "T"}))
        assert (await j.events_since("lane-1", 0))[-1].seq == len(
            [e for e in events if e[0] == "lane-1"]) + 1
    assert _rows(old_journal, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    after = _rows(old_journal, "SELECT * FROM transactions ORDER BY order_no")
    assert [row[: len(before[0])] for row in after] == before  # the old columns, unchanged
    assert _rows(old_journal, "SELECT * FROM batches ORDER BY terminal_sn, batch_no") == batches


async def test_the_upgrade_runs_once(old_journal: Path) -> None:
    async with Journal(old_journal):
        pass
    conn = sqlite3.connect(old_journal)
    assert schema_version(conn) == SCHEMA_VERSION
    conn.close()
    async with Journal(old_journal) as j:  # the second open changes nothing
        assert await j.get("V1C") is not None
    assert _rows(old_journal, "PRAGMA user_version") == [(SCHEMA_VERSION,)]


async def test_a_new_journal_is_made_at_the_current_version(tmp_path: Path) -> None:
    path = tmp_path / "new.sqlite"
    async with Journal(path):
        pass
    assert _rows(path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    columns = {row[1] for row in _rows(path, "PRAGMA table_info(transactions)")}
    assert {"exponent", "extra"} <= columns


async def test_a_journal_of_a_newer_posbridge_is_refused_untouched(old_journal: Path) -> None:
    conn = sqlite3.connect(old_journal)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()
    before = old_journal.read_bytes()
    with pytest.raises(JournalError, match="newer posbridge"):
        async with Journal(old_journal):
            pass
    assert old_journal.read_bytes() == before


async def test_an_upgrade_that_fails_leaves_the_file_at_its_version(
        old_journal: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from posbridge import journal

    broken = {**journal.MIGRATIONS,
              SCHEMA_VERSION + 1: ("ALTER TABLE transactions ADD COLUMN zz INTEGER",
                                   "ALTER TABLE no_such_table ADD COLUMN y INTEGER")}
    monkeypatch.setattr(journal, "MIGRATIONS", broken)
    monkeypatch.setattr(journal, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    with pytest.raises(JournalError):
        async with Journal(old_journal):
            pass
    # every whole step is kept; the failing one left nothing behind
    assert _rows(old_journal, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    columns = {row[1] for row in _rows(old_journal, "PRAGMA table_info(transactions)")}
    assert "zz" not in columns


async def test_a_schema_3_journal_gains_an_empty_audit_trail_and_keeps_its_batches(
        old_journal: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from posbridge import journal
    from posbridge.audit_log import all_records
    from posbridge.batch_totals import stored

    with monkeypatch.context() as m:  # the journal as the release before the audit trail left it
        m.setattr(journal, "SCHEMA_VERSION", 3)
        conn = sqlite3.connect(old_journal, isolation_level=None)
        journal.migrate(conn, old_journal)
        conn.close()
    assert _rows(old_journal, "PRAGMA user_version") == [(3,)]
    before = _rows(old_journal, "SELECT * FROM transactions ORDER BY order_no")
    async with Journal(old_journal) as j:
        assert await j.read(lambda r: list(all_records(r.conn))) == []
        # a batch closed before totals were kept with it: they still come from its rows
        assert await j.read(lambda r: stored(r.conn, "SANDBOX0000000001", 1)) is None
        totals = fold_totals(await j.read(lambda r: r.batch_rows("SANDBOX0000000001", 1)))
        assert totals["USD"].sales == 3200
    assert _rows(old_journal, "PRAGMA user_version") == [(SCHEMA_VERSION,)] == [(4,)]
    assert _rows(old_journal, "SELECT * FROM transactions ORDER BY order_no") == before
