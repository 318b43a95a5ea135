"""Journal care: an online backup, a check of the bridge's invariants, and retention.

Each works on the journal of a running daemon. The backup and the check read through a
read-only connection: in WAL mode a reader never blocks the daemon and sees one committed state
from its first read to its last. Pruning writes in short units: in the daemon as journal units,
or beside it from the command line (:func:`prune_file`) in transactions that wait for the
daemon's write lock as its own units wait for a second writer. A unit removes at most
:data:`PRUNE_TRANSACTIONS` transactions (it reads at most that many) or :data:`PRUNE_EVENTS`
events, so the daemon's event loop is never held for long, and the daemon's daily run stops
after a budget of units (a large backlog goes over several days).

Retention
---------
With ``[bridge] retention_days`` = *d* (0, the default, keeps everything), pruning removes:

* the **events** older than *d* days (the notifications kept for registers' ``events.replay``),
  as a prefix of each register's sequence, never its newest event (the next ``seq`` follows it,
  so sequence numbers never repeat and the kept ones stay without gaps);
* the **final transactions** whose last change is older than *d* days and one more
  (:data:`TRANSACTION_MARGIN_MS`: their events are surely gone first) and whose batch is closed
  (or that count in no batch). An original stays as long as an operation on it (a void, refund,
  completion or tip adjustment) stays, so every kept operation still finds its original; and a
  transaction that a kept old event names (a register's newest) stays with it.

Batches are never removed, and a closed batch keeps its totals: they are stored when it closes
(:mod:`posbridge.batch_totals`), and a batch closed before that gets them stored by the unit
that removes its first transaction. Audit records are never removed: the chain stays whole from
its first record. Each unit that removes anything appends a ``journal.prune`` audit record with
what it removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import sqlite3
from collections.abc import Awaitable, Callable, Collection, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from posbridge import aio, batch_totals
from posbridge.audit import (
    CLI,
    GENESIS,
    JOURNAL_PRUNE,
    LOCAL,
    AuditEntry,
    ChainHead,
    verify_chain,
)
from posbridge.audit_log import all_records, append
from posbridge.errors import JournalError
from posbridge.journal import (
    SCHEMA_VERSION,
    Journal,
    Reads,
    fsync_path,
    now_ms,
    schema_version,
)
from posbridge.journal_audit import audit_journal
from posbridge.lifecycle import State
from posbridge.operations import fold_totals
from posbridge.views import rfc3339

PRUNE_TRANSACTIONS: Final = 200
PRUNE_EVENTS: Final = 1000
DAY_MS: Final = 86_400_000
#: Transactions go this long after the events: every event of a pruned one is gone by then.
TRANSACTION_MARGIN_MS: Final = DAY_MS
_FINAL: Final = tuple(s.value for s in State if s.is_final)

#: Runs one unit ``fn(conn)`` in a write transaction (or a read on a read connection).
UnitRunner = Callable[[Callable[[sqlite3.Connection], Any]], Awaitable[Any]]


def open_readonly(path: Path) -> sqlite3.Connection:
    """A read-only connection to the journal at ``path`` (in use by a daemon or not)."""
    if not path.is_file():
        raise JournalError(f"no journal at {path}")
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True,
                               isolation_level=None)
        conn.execute("PRAGMA busy_timeout=5000")
        conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()  # "not a database" here
    except sqlite3.Error as exc:
        raise JournalError(f"cannot read the journal at {path}: {exc}") from exc
    return conn


def _has_table(conn: sqlite3.Connection, name: str) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                        (name,)).fetchone() is not None


def audit_head(conn: sqlite3.Connection) -> ChainHead | None:
    """The last audit record's place and hash (seq 0 for an empty trail); None without one."""
    if not _has_table(conn, "audit"):
        return None
    row = conn.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    return ChainHead(0, GENESIS) if row is None else ChainHead(int(row[0]), str(row[1]))


# -- backup ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BackupReport:
    """What a backup holds: enough to tell that it is the right one."""

    dest: Path
    size: int
    schema_version: int
    transactions: int
    audit_head: ChainHead | None


def backup(path: Path, dest: Path, *, force: bool = False) -> BackupReport:
    """Copy the journal at ``path`` to ``dest`` with SQLite's online backup, consistent while
    the daemon writes (one read transaction). ``dest`` is replaced only with ``force``; the copy
    is written beside it, checked, synced and then renamed into place, readable by its owner
    only, as one file (rollback journal mode: no ``-wal`` beside it)."""
    if dest.exists() and not force:
        raise JournalError(f"{dest} exists: name another file, or give --force to replace it")
    if dest.exists() and dest.resolve() == path.resolve():
        raise JournalError("the backup cannot replace the journal itself")
    partial = dest.with_name(dest.name + ".partial")
    partial.unlink(missing_ok=True)
    try:
        os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        with closing(open_readonly(path)) as src, \
                closing(sqlite3.connect(partial, isolation_level=None)) as dst:
            src.backup(dst)
            dst.execute("PRAGMA journal_mode=DELETE")
            verdict = str(dst.execute("PRAGMA quick_check").fetchone()[0])
            if verdict != "ok":
                raise JournalError(f"the copy does not pass SQLite's quick_check: {verdict}")
            version = schema_version(dst)
            count = int(dst.execute("SELECT COUNT(*) FROM transactions").fetchone()[0])
            head = audit_head(dst)
        fsync_path(partial)
        for suffix in ("-wal", "-shm", "-journal"):  # a replaced file's leftovers are not ours
            Path(f"{dest}{suffix}").unlink(missing_ok=True)
        os.replace(partial, dest)
        fsync_path(dest.parent)
    except sqlite3.Error as exc:
        raise JournalError(f"the backup to {dest} failed: {exc}") from exc
    except OSError as exc:
        raise JournalError(f"the backup to {dest} failed: {exc.strerror or exc}") from exc
    finally:
        partial.unlink(missing_ok=True)
    return BackupReport(dest, dest.stat().st_size, version, count, head)


# -- check -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CheckReport:
    """The problems found (none: the journal is sound) and what was looked at."""

    problems: list[str]
    transactions: int
    batches: int
    audit_head: ChainHead | None


def check_journal(path: Path) -> CheckReport:
    """``PRAGMA integrity_check`` and the bridge's invariants, each failure named.

    Besides :func:`posbridge.journal_audit.audit_journal` (row shapes, originals, voids and
    refunds within what was captured, each register's events without gaps): every final
    transaction of a terminal belongs to a batch of that terminal that exists, and the audit
    chain is whole."""
    try:
        problems = audit_journal(path)
    except sqlite3.Error as exc:
        raise JournalError(f"cannot read the journal at {path}: {exc}") from exc
    with closing(open_readonly(path)) as conn:
        try:
            conn.execute("BEGIN")  # one committed state for every query below
            problems += _batch_problems(conn)
            head = audit_head(conn)
            if head is None:
                problems.append(f"no audit trail: the journal is at schema version "
                                f"{schema_version(conn)}; the daemon adds it when it starts")
            else:
                end = verify_chain(all_records(conn))
                if not isinstance(end, ChainHead):
                    problems.append(f"audit chain broken at {end}")
            count = int(conn.execute("SELECT COUNT(*) FROM transactions").fetchone()[0])
            batches = int(conn.execute("SELECT COUNT(*) FROM batches").fetchone()[0])
            conn.execute("ROLLBACK")
        except sqlite3.Error as exc:
            raise JournalError(f"cannot read the journal at {path}: {exc}") from exc
    return CheckReport(problems, count, batches, head)


def _batch_problems(conn: sqlite3.Connection) -> list[str]:
    """Final transactions of a terminal that are in no batch of it, or in one that is not there."""
    finals = ",".join("?" * len(_FINAL))
    rows = conn.execute(
        "SELECT order_no, terminal_sn, batch_no FROM transactions AS t"  # noqa: S608 (only ? placeholders are formatted in)
        f" WHERE state IN ({finals}) AND terminal_sn IS NOT NULL AND (batch_no IS NULL"
        " OR NOT EXISTS (SELECT 1 FROM batches AS b WHERE b.terminal_sn = t.terminal_sn"
        " AND b.batch_no = t.batch_no)) ORDER BY created_at LIMIT 50", _FINAL).fetchall()
    return [f"transaction {order_no!r}: final on terminal {sn} but in no batch"
            if no is None else
            f"transaction {order_no!r}: in batch {no} of terminal {sn}, which is not there"
            for order_no, sn, no in rows]


# -- retention -------------------------------------------------------------------------------


@dataclass(slots=True)
class PruneReport:
    """What one pruning run removed (and how many units it took)."""

    transactions: int = 0
    events: int = 0
    batch_totals_kept: int = 0
    units: int = 0
    cutoff: int | None = None
    identities: list[str] = field(default_factory=list)
    finished: bool = False  # False: the run stopped at its budget of units; the next goes on


async def prune(run: UnitRunner, read: UnitRunner, *, retention_days: int, actor: str,
                peer: str = LOCAL, clock: Callable[[], int] = now_ms,
                max_units: int | None = None) -> PruneReport:
    """Remove what ``retention_days`` no longer keeps (see the module docstring), one bounded
    unit after another through ``run``, at most ``max_units`` of them (None: until done);
    nothing with ``retention_days`` 0."""
    report = PruneReport()
    if retention_days <= 0:
        report.finished = True
        return report
    cutoff = clock() - retention_days * DAY_MS
    report.cutoff = cutoff
    entry = AuditEntry(actor=actor, peer=peer, action=JOURNAL_PRUNE,
                       detail={"retention_days": retention_days, "before": rfc3339(cutoff)})
    report.identities = await read(_identities)
    for identity in report.identities:  # events first: a transaction's go before it does
        removed = PRUNE_EVENTS
        while removed == PRUNE_EVENTS:
            if max_units is not None and report.units >= max_units:
                return report
            removed = await run(functools.partial(
                _prune_events, identity=identity, cutoff=cutoff, entry=entry, clock=clock))
            report.events += removed
            report.units += 1
            await asyncio.sleep(0)  # let the loop serve between units
    # An old event that stayed (a register's newest) still names its transaction: that stays.
    named = await read(functools.partial(_named_by_old_events, cutoff=cutoff))
    after: tuple[int, str] = (-1, "")
    while max_units is None or report.units < max_units:
        step = await run(functools.partial(
            _prune_transactions, before=cutoff - TRANSACTION_MARGIN_MS, after=after,
            named=named, entry=entry, clock=clock))
        report.transactions += step.removed
        report.batch_totals_kept += step.totals_kept
        report.units += 1
        if step.last is None:
            report.finished = True
            return report
        after = step.last
        await asyncio.sleep(0)
    return report


async def prune_journal(journal: Journal, *, retention_days: int, actor: str,
                        clock: Callable[[], int] = now_ms,
                        max_units: int | None = None) -> PruneReport:
    """:func:`prune` in the daemon: each unit a journal unit, the reads on its read pool."""

    async def run(fn: Callable[[sqlite3.Connection], Any]) -> Any:
        return await journal.run(lambda tx: fn(tx.conn))

    async def read(fn: Callable[[sqlite3.Connection], Any]) -> Any:
        return await journal.read(lambda r: fn(r.conn))

    return await prune(run, read, retention_days=retention_days, actor=actor, clock=clock,
                       max_units=max_units)


def _identities(conn: sqlite3.Connection) -> list[str]:
    return [str(r[0]) for r in conn.execute("SELECT DISTINCT identity FROM events")]


def _named_by_old_events(conn: sqlite3.Connection, *, cutoff: int) -> frozenset[str]:
    """The transactions that events older than ``cutoff`` still name."""
    named = set()
    for (params,) in conn.execute("SELECT params FROM events WHERE at < ?"
                                  " AND method = 'transaction.updated'", (cutoff,)):
        with contextlib.suppress(ValueError, TypeError, KeyError):  # not a transaction event
            named.add(str(json.loads(params)["transaction"]["order_no"]))
    return frozenset(named)


def _prune_events(conn: sqlite3.Connection, *, identity: str, cutoff: int, entry: AuditEntry,
                  clock: Callable[[], int]) -> int:
    """One unit: the oldest events of ``identity`` older than ``cutoff`` (at most
    PRUNE_EVENTS, never its newest); how many went."""
    rows = conn.execute("SELECT seq, at FROM events WHERE identity = ? ORDER BY seq LIMIT ?",
                        (identity, PRUNE_EVENTS + 1)).fetchall()
    # rows[-1] is the identity's newest event when they all fit: it stays
    candidates = rows[:-1] if len(rows) <= PRUNE_EVENTS else rows[:PRUNE_EVENTS]
    count = 0
    for _seq, at in candidates:
        if at >= cutoff:
            break
        count += 1
    if count:
        conn.execute("DELETE FROM events WHERE identity = ? AND seq <= ?",
                     (identity, candidates[count - 1][0]))
        append(conn, entry.about(identity=identity, events=count), clock())
    return count


@dataclass(frozen=True, slots=True)
class _Step:
    removed: int
    totals_kept: int
    last: tuple[int, str] | None  # where the next unit reads on; None: nothing more to read


def _prune_transactions(conn: sqlite3.Connection, *, before: int, after: tuple[int, str],
                        named: frozenset[str], entry: AuditEntry,
                        clock: Callable[[], int]) -> _Step:
    """One unit: of the next PRUNE_TRANSACTIONS transactions created before ``before`` (in
    creation order after ``after``), remove those that retention lets go (none that an event
    still ``named``, none that a kept operation names as its original)."""
    rows = conn.execute(
        "SELECT order_no, state, updated_at, terminal_sn, batch_no, created_at FROM transactions"
        " WHERE created_at < ? AND (created_at > ? OR (created_at = ? AND order_no > ?))"
        " ORDER BY created_at, order_no LIMIT ?",
        (before, after[0], after[0], after[1], PRUNE_TRANSACTIONS)).fetchall()
    if not rows:
        return _Step(0, 0, None)
    closed = _closed_batches(conn, {(r[3], r[4]) for r in rows if r[4] is not None})
    keep = {r[0] for r in rows if r[1] in _FINAL and r[2] < before and r[0] not in named
            and (r[4] is None or (r[3], r[4]) in closed)}
    keep -= _with_kept_operations(conn, keep)
    last = (int(rows[-1][5]), str(rows[-1][0])) if len(rows) == PRUNE_TRANSACTIONS else None
    if not keep:
        return _Step(0, 0, last)
    kept_totals = 0
    for sn, no in sorted({(r[3], r[4]) for r in rows if r[0] in keep and r[4] is not None}):
        if batch_totals.stored(conn, sn, no) is None:  # a batch closed before totals were kept
            batch_totals.store(conn, sn, no, fold_totals(Reads(conn).batch_rows(sn, no)))
            kept_totals += 1
    for chunk in _chunks(sorted(keep)):
        conn.execute(f"DELETE FROM transactions WHERE order_no IN ({_marks(chunk)})",  # noqa: S608 (only ? placeholders are formatted in)
                     chunk)
    append(conn, entry.about(transactions=len(keep), batch_totals_kept=kept_totals or None),
           clock())
    return _Step(len(keep), kept_totals, last)


def _closed_batches(conn: sqlite3.Connection,
                    wanted: set[tuple[str, int]]) -> set[tuple[str, int]]:
    return {(sn, no) for sn, no in wanted if conn.execute(
        "SELECT 1 FROM batches WHERE terminal_sn = ? AND batch_no = ? AND state = 'closed'",
        (sn, no)).fetchone() is not None}


def _with_kept_operations(conn: sqlite3.Connection, candidates: set[str]) -> set[str]:
    """The candidates that an operation outside the candidates names as its original, and so
    (as far as a chain of originals goes) the candidates that must stay."""
    blocked: set[str] = set()
    remaining = set(candidates)
    while remaining:
        marks = _marks(remaining)
        found = {str(r[0]) for r in conn.execute(
            f"SELECT DISTINCT orig_order_no FROM transactions WHERE orig_order_no IN ({marks})"  # noqa: S608 (only ? placeholders are formatted in)
            f" AND order_no NOT IN ({marks})", (*remaining, *remaining))}
        if not found:
            break
        blocked |= found
        remaining -= found
    return blocked


def _marks(values: Collection[object]) -> str:
    return ",".join("?" * len(values))


def _chunks(values: list[str], size: int = 500) -> Iterator[list[str]]:
    for i in range(0, len(values), size):
        yield values[i:i + size]


def prune_file(path: Path, *, retention_days: int, actor: str = CLI,
               clock: Callable[[], int] = now_ms, max_units: int | None = None) -> PruneReport:
    """:func:`prune` from outside the daemon, on its own write connection (the daemon may be
    running). Refuses a journal whose schema this posbridge does not write."""
    if not path.is_file():
        raise JournalError(f"no journal at {path}")
    try:
        conn = sqlite3.connect(path, isolation_level=None)
    except sqlite3.Error as exc:
        raise JournalError(f"cannot open the journal at {path}: {exc}") from exc
    with closing(conn):
        try:
            conn.execute("PRAGMA busy_timeout=5000")
            conn.execute("PRAGMA synchronous=FULL")
            version = schema_version(conn)
            if version > SCHEMA_VERSION:
                raise JournalError(f"the journal at {path} was written by a newer posbridge "
                                   f"(schema version {version})")
            if version < SCHEMA_VERSION:
                raise JournalError(f"the journal at {path} is at schema version {version}, "
                                   f"this posbridge writes {SCHEMA_VERSION}: start the daemon "
                                   "of this version once first, which upgrades it")

            async def run(fn: Callable[[sqlite3.Connection], Any]) -> Any:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    result = fn(conn)
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
                return result

            async def read(fn: Callable[[sqlite3.Connection], Any]) -> Any:
                return fn(conn)

            return aio.run(prune(run, read, retention_days=retention_days, actor=actor,
                                 clock=clock, max_units=max_units))
        except sqlite3.Error as exc:
            raise JournalError(f"pruning the journal at {path} failed: {exc}") from exc
