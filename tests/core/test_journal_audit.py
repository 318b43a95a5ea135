"""The journal audit finds nothing wrong in a sound journal and names each kind of damage."""

from __future__ import annotations

import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from posbridge.journal_audit import audit_journal

RELEASE = Path(__file__).resolve().parent.parent / "vectors" / "journal" / "release-0.1.0.sqlite"


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    copy = tmp_path / "journal.sqlite"
    shutil.copy(RELEASE, copy)
    return copy


def damage(path: Path, sql: str) -> None:
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute(sql)


def test_a_sound_journal_has_no_problems(journal: Path) -> None:
    assert audit_journal(journal) == []


@pytest.mark.parametrize(("sql", "problem"), [
    ("UPDATE transactions SET state = 'halfway' WHERE order_no = 'V1BV'", "unknown state"),
    ("UPDATE transactions SET amount = 0 WHERE order_no = 'V1BV'", "not a positive integer"),
    ("UPDATE transactions SET fingerprint = '{\"a\":' WHERE order_no = 'V1BV'",
     "fingerprint is not a JSON object"),
    ("UPDATE transactions SET updated_at = created_at - 1 WHERE order_no = 'V1BV'",
     "times out of order"),
    ("UPDATE transactions SET orig_order_no = 'NOPE' WHERE order_no = 'V1BV'",
     "original 'NOPE' is not in the journal"),
    ("UPDATE transactions SET order_no = 'bad order' WHERE order_no = 'V1BV'",
     "order_no is not"),
    ("UPDATE events SET params = '[1' WHERE identity = 'lane-1' AND seq = 2",
     "params are not JSON"),
    ("UPDATE events SET method = 'transaction.oops' WHERE identity = 'lane-1' AND seq = 2",
     "unknown method"),
    ("DELETE FROM events WHERE identity = 'lane-1' AND seq = 3", "must be contiguous"),
    ("UPDATE batches SET closed_at = NULL WHERE state = 'closed'", "closed without"),
])
def test_each_kind_of_damage_is_named(journal: Path, sql: str, problem: str) -> None:
    damage(journal, sql)
    problems = audit_journal(journal)
    assert problems and any(problem in p for p in problems), problems
