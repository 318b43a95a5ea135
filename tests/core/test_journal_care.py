"""Journal care on the journal of release 0.1.0 (checked in): the upgrade adds an empty audit
trail and the file checks clean; ``journal check`` names each broken invariant; pruning an aged
copy through ``posbridge journal prune`` keeps every batch's totals, the audit chain and the
invariants; ``audit verify`` names the first record that a second connection changed."""

from __future__ import annotations

import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from posbridge import aio, batch_totals
from posbridge.audit import AuditEntry
from posbridge.audit_log import AuditTrail, all_records
from posbridge.cli import main
from posbridge.journal import SCHEMA_VERSION, Journal, Reads
from posbridge.journal_care import DAY_MS, check_journal, prune_file
from posbridge.operations import fold_totals
from posbridge.records import Totals
from tests.configs import journal_config

RELEASE = Path(__file__).resolve().parent.parent / "vectors" / "journal" / "release-0.1.0.sqlite"
SN = "SANDBOX0000000001"


def sql(path: Path, *statements: str) -> list[tuple[object, ...]]:
    """Run ``statements`` on a connection of its own (a second writer); the last one's rows."""
    with closing(sqlite3.connect(path)) as conn, conn:
        rows: list[tuple[object, ...]] = []
        for statement in statements:
            rows = conn.execute(statement).fetchall()
        return rows


def write_config(tmp_path: Path, data_dir: Path, retention_days: int = 0) -> Path:
    return journal_config(tmp_path / "posbridge.toml", data_dir, retention_days=retention_days)


def upgraded(tmp_path: Path, *, audit_records: int = 0) -> Path:
    """The release journal in ``tmp_path/data``, upgraded, with that many audit records."""
    data = tmp_path / "data"
    data.mkdir()
    path = data / "journal.sqlite"
    shutil.copyfile(RELEASE, path)
    record(path, [AuditEntry(actor="lane-1", peer="10.0.0.9", action="void", order_no=f"X{n}",
                             outcome="refused: wrong PIN") for n in range(audit_records)])
    return path


def record(path: Path, entries: list[AuditEntry]) -> None:
    """Open the journal (upgrading it) and record ``entries``, each in a unit of its own."""

    async def run() -> None:
        async with Journal(path) as journal:
            for entry in entries:
                await AuditTrail(journal).record(entry)

    aio.run(run())


def totals(path: Path, batch_no: int) -> dict[str, Totals]:
    """A batch's totals as the bridge shows them: kept with it, else from its rows."""
    with closing(sqlite3.connect(path)) as conn:
        kept = batch_totals.stored(conn, SN, batch_no)
        return kept if kept is not None else fold_totals(Reads(conn).batch_rows(SN, batch_no))


def test_the_upgrade_adds_an_empty_trail_and_the_old_journal_checks_clean(
        tmp_path: Path) -> None:
    path = upgraded(tmp_path)
    assert sql(path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    assert sql(path, "SELECT COUNT(*) FROM audit") == [(0,)]
    report = check_journal(path)
    assert report.problems == []
    assert (report.transactions, report.batches, report.audit_head.seq if report.audit_head
            else None) == (9, 2, 0)


def test_a_journal_not_yet_upgraded_has_no_trail_to_check(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    shutil.copyfile(RELEASE, path)
    assert check_journal(path).problems == [
        "no audit trail: the journal is at schema version 1; the daemon adds it when it starts"]


@pytest.mark.parametrize(("damage", "problem"), [
    ("UPDATE transactions SET batch_no = NULL WHERE order_no = 'V1A'",
     "transaction 'V1A': final on terminal SANDBOX0000000001 but in no batch"),
    ("UPDATE transactions SET batch_no = 9 WHERE order_no = 'V1D'",
     "transaction 'V1D': in batch 9 of terminal SANDBOX0000000001, which is not there"),
    ("UPDATE transactions SET amount = 1351 WHERE order_no = 'V1AR'",  # V1A took 12.00 + 1.50
     "transaction 'V1A': its approved voids and refunds return 1351, more than it captured"),
    ("DELETE FROM events WHERE identity = 'lane-1' AND seq = 5",
     "event lane-1/6: follows seq 4 (seq must be contiguous)"),
    ("UPDATE audit SET outcome = 'ok' WHERE seq = 2",
     "audit chain broken at record 2: its hash does not match its fields (it was changed)"),
    ("DELETE FROM audit WHERE seq = 2",
     "audit chain broken at record 3: follows record 1 (record 2 is missing"),
])
def test_journal_check_names_each_broken_invariant(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], damage: str, problem: str) -> None:
    path = upgraded(tmp_path, audit_records=3)
    assert main(["journal", "check", "--journal", str(path)]) == 0
    sql(path, damage)
    assert main(["journal", "check", "--journal", str(path)]) == 1
    printed = capsys.readouterr().out
    assert f"problem: {problem}" in printed, printed


def test_audit_verify_names_the_first_record_a_second_connection_broke(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = upgraded(tmp_path, audit_records=5)
    config = write_config(tmp_path, path.parent)
    assert main(["audit", "verify", "--config", str(config)]) == 0
    head = capsys.readouterr().out.split("head ")[1].split()[0]
    assert main(["audit", "verify", "--config", str(config), "--anchor", head]) == 0
    sql(path, "DELETE FROM audit WHERE seq = 4")
    assert main(["audit", "verify", "--config", str(config)]) == 1
    assert "audit chain broken at record 5: follows record 3 (record 4 is missing" in \
        capsys.readouterr().err
    sql(path, "UPDATE audit SET actor = 'backoffice' WHERE seq = 2")
    assert main(["audit", "verify", "--config", str(config)]) == 1
    assert "broken at record 2: its hash does not match" in capsys.readouterr().err
    # the tail cut off and the rest rewritten with good hashes: only the anchor tells
    records = list(all_records(sqlite3.connect(path)))
    sql(path, "DELETE FROM audit WHERE seq >= 2")
    record(path, [AuditEntry(actor=r.actor, peer=r.peer, action=r.action) for r in records[1:3]])
    assert main(["audit", "verify", "--config", str(config)]) == 0
    assert main(["audit", "verify", "--config", str(config), "--anchor", head]) == 1
    assert "record 5: the anchor's record is missing" in capsys.readouterr().err


def test_pruning_an_old_journal_keeps_batch_totals_and_the_chain(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = upgraded(tmp_path, audit_records=2)
    age = 400 * DAY_MS  # the release's day, 400 days ago
    sql(path, f"UPDATE transactions SET created_at = created_at - {age},"
              f" updated_at = updated_at - {age}, expires_at = expires_at - {age}",
        f"UPDATE events SET at = at - {age}",
        f"UPDATE batches SET opened_at = opened_at - {age}, closed_at = closed_at - {age}")
    before = {no: totals(path, no) for no in (1, 2)}
    assert before[1]["USD"].net > 0 and before[1]["CAD"].net > 0
    config = write_config(tmp_path, path.parent, retention_days=30)

    assert main(["journal", "prune", "--config", str(config)]) == 0
    assert "pruned 7 transactions" in capsys.readouterr().out
    assert {no: totals(path, no) for no in (1, 2)} == before
    assert sql(path, "SELECT order_no FROM transactions ORDER BY order_no") == [
        ("V1C",), ("V1S",)]  # batch 2 is open; V1S is still in progress
    # each register keeps its newest event (the next seq follows it), and what it names
    assert sql(path, "SELECT identity, seq FROM events ORDER BY identity") == [
        ("backoffice", 11), ("lane-1", 19)]
    assert sql(path, "SELECT COUNT(*) FROM batches") == [(2,)]
    assert check_journal(path).problems == []
    pruned = sql(path, "SELECT actor, peer, outcome FROM audit WHERE action = 'journal.prune'")
    assert pruned and set(pruned) == {("cli", "local", "ok")}
    assert main(["audit", "verify", "--config", str(config)]) == 0

    assert main(["journal", "prune", "--config", str(config)]) == 0  # nothing more to do
    assert "pruned 0 transactions and 0 events" in capsys.readouterr().out
    assert {no: totals(path, no) for no in (1, 2)} == before


def test_a_pruning_run_stops_at_its_budget_and_the_next_goes_on(tmp_path: Path) -> None:
    path = upgraded(tmp_path)
    age = 400 * DAY_MS
    sql(path, f"UPDATE transactions SET created_at = created_at - {age},"
              f" updated_at = updated_at - {age}", f"UPDATE events SET at = at - {age}")
    first = prune_file(path, retention_days=30, max_units=1)  # one register's old events
    assert (first.finished, first.units, first.transactions) == (False, 1, 0)
    assert first.events in (10, 18)  # backoffice's or lane-1's, all but the newest
    rest = prune_file(path, retention_days=30)
    assert rest.finished and rest.events == 28 - first.events and rest.transactions == 7
    assert check_journal(path).problems == []


def test_a_backup_never_replaces_a_file_unless_told(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = upgraded(tmp_path, audit_records=2)
    config, dest = write_config(tmp_path, path.parent), tmp_path / "copy.sqlite"
    dest.write_text("yesterday's backup")
    assert main(["backup", "--config", str(config), str(dest)]) == 1
    assert f"{dest} exists: name another file, or give --force" in capsys.readouterr().err
    assert dest.read_text() == "yesterday's backup"
    assert main(["backup", "--config", str(config), str(dest), "--force"]) == 0
    assert "9 transactions, audit head 2:" in capsys.readouterr().out
    assert dest.stat().st_mode & 0o077 == 0  # like the journal: its owner's alone
    assert check_journal(dest).problems == []
    assert not list(tmp_path.glob("copy.sqlite?*"))  # no -wal, no partial file beside it


def test_prune_refuses_a_journal_it_does_not_write(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    data.mkdir()
    shutil.copyfile(RELEASE, data / "journal.sqlite")
    config = write_config(tmp_path, data, retention_days=30)
    before = (data / "journal.sqlite").read_bytes()
    assert main(["journal", "prune", "--config", str(config)]) == 1
    assert "schema version 1" in capsys.readouterr().err
    assert (data / "journal.sqlite").read_bytes() == before
    assert main(["config", "check", "--config", str(config)]) == 0
    config.write_text(config.read_text().replace("retention_days = 30", "retention_days = -1"))
    assert main(["journal", "prune", "--config", str(config)]) == 2
    assert "bridge.retention_days: must be a whole number from 0 to 36500" in \
        capsys.readouterr().err
