"""The durable journal: SQLite, the source of truth.

Theory of operation
-------------------
One SQLite file in WAL mode and ONE write connection. Units of work run one after another on
the event loop; the COMMIT of a group that must be durable (with its fsync, and SQLite's
checkpoints) and the fsyncs of the WAL on its own run in the writer thread, while the loop goes
on serving; a group that need not be durable commits on the loop. That gives three properties:

* **Atomic units.** A unit of work is a function ``fn(tx: JournalTx) -> T``. Everything it
  does — insert an intent, update a transaction, append the events it emits (the outbox),
  assign a batch — commits together or not at all (a SAVEPOINT per unit, so one failing unit
  never spoils its neighbours).
* **Group commit.** Units submitted while a commit is in progress are run together and
  committed at once, with at most one fsync, so throughput does not collapse under many
  registers.
* **Serialised decisions.** Check-then-act logic (idempotency by ``order_no``, refund
  totals, batch assignment) runs in one place, one unit at a time, so two concurrent
  requests can never both pass a check.

Durability: what is on disk before what
---------------------------------------
A *committed* unit is in the WAL file (the operating system's page cache): it survives a crash
of the process (SIGKILL, an exception, the OOM killer), and every reader sees it. A *durable*
unit is also on the disk (the WAL was fsynced after it): it survives a power cut too. Each unit
is submitted as one or the other (``durable=``, True by default):

* A group holding a durable unit commits with ``synchronous=FULL``: SQLite fsyncs the WAL
  before the commit becomes visible to any reader, and that one fsync covers the whole group
  and every commit before it. Its units' results come back only then.
* A group of units that need not be durable commits with ``synchronous=NORMAL``: no fsync;
  results come back once committed. SQLite's WAL recovery keeps the file consistent after a
  power cut: it comes back as of some earlier commit, whole.
* **Events are published only once durable**, in commit order: the events of a durable group
  right after its commit, those of a committed-only group with the next durable commit, or at
  the latest after ``EVENT_SYNC_DELAY_S`` by an fsync of the WAL on its own (a barrier,
  :meth:`Journal.sync`, asks for one at once). ``events.replay``
  (:meth:`Journal.events_since`) hands out only events already durable. A register therefore
  never sees an event that a power cut could take back; its ``seq`` can be given again after a
  power cut only if nobody was shown it.
* On open the journal fsyncs the WAL and the database once, so what an earlier process
  committed (and a crash kept) is durable before anything is published or replayed.

Which writes the engine makes durable, and why each choice is safe (:mod:`posbridge.engine`):

================================  =========  ===============================================
write                             durable    before / why
================================  =========  ===============================================
a request's intent (pending)      yes        before the provider is called: a power cut must
                                             never forget an order the provider may have
a final state (with its batch,    at once    committed, then the register is answered, then
the original's refunded amount)   after      made durable at once by a barrier (``sync``),
                                  commit     grouped with other units: the only wait on the
                                             disk of a sale is its intent's. A power cut
                                             before that fsync takes the state back to an
                                             earlier one, which recovery reconciles by a
                                             query: a payment the provider approved ends
                                             approved again, one it did not ends not
                                             approved; its event is published once durable
a state from a notification       yes        before ``success`` is answered (the provider
                                             stops sending it then); a final one is told on
                                             commit, like the runner's, and ``success`` waits
                                             for the barrier
pending → in_progress / unknown   no         recovery covers the loss: a lost state falls back
(the runner's create and queries)            to ``pending`` (the intent), which a restart
                                             reconciles by a query, never by a second blind
                                             create; its event is published once durable
bookkeeping (cancel requested,    yes        rare; a forgotten cancel request would let a
close sent, create attempts)                 sale go through that the cashier cancelled
batches, terminal status events   yes        rare; the manager and registers are answered
an audit record (with the action  yes        before the operator is answered: in the unit
it records, or alone for a                   that carries the action out (intent, cancel
refusal)                                     request, acknowledgement, batch close), else in
                                             a unit of its own (:mod:`posbridge.audit_log`)
================================  =========  ===============================================

Reads (``status``, ``transactions.list``) see committed rows, which a power cut could take
back until the next durable point (a few milliseconds at most for a final state); what they
show then comes back by recovery's query. Events and ``events.replay`` show only durable
rows: a register never sees an event ``seq`` given again.

Why units run on the loop: they are short (a few statements on a hot, local database), and
running them in the writer thread made that thread and the loop take turns at the GIL at
every statement. Under load the loop then spent a large part of its time waiting for the
GIL. A group stops taking units after ``GROUP_BUDGET_S`` of work, so a burst never holds the
loop for long.

Why a group that need not be durable commits on the loop: its COMMIT only appends its pages
to the WAL (no fsync; SQLite's automatic checkpoint is off for it, so a checkpoint's copying
and fsyncs always fall to a durable group's COMMIT in the writer thread). Handing it to the
writer thread and back costs more: each hand-over waits for the other thread to be scheduled
and to take the GIL, which the loop holds while it goes on serving (0.1-0.3 ms each way on a
machine of two cores).

Why a durable group may start while the WAL is fsynced on its own: that sync does not use the
connection, so the group need not wait for it. Only a durable group may start then, and it is
queued behind the sync in the writer thread; its COMMIT fsyncs the WAL after everything the
sync was asked for, so a sync the writer has not begun yet waits for that COMMIT instead of
an fsync of its own (one fsync for both, and a sale's intent does not wait for two). A group
that need not be durable waits until the sync is done: committed on the loop meanwhile, it
could reach the WAL after the fsync, which would then count it durable all the same.

Events carry a per-identity ``seq``; the counter is seeded from the table, so it survives
restarts and never repeats an event a register may have seen.

Schema versions
---------------
The schema's version is SQLite's ``user_version``. :data:`SCHEMA` is the first released
schema (version 1; a file of that release has ``user_version`` 0); each entry of
:data:`MIGRATIONS` takes the file one version further. :meth:`Journal.open` applies the missing
steps, each in one transaction with its version bump, so an interrupted upgrade leaves the file
at the last whole version and the next start goes on from there; a new file goes the same way
from version 1. A file of a newer posbridge is refused, never written to.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import json
import operator
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, TypeVar

import structlog

from posbridge import failpoints
from posbridge.errors import JournalError, PosbridgeError
from posbridge.lifecycle import ACTIVE_STATES, State
from posbridge.providers.base import TxnKind
from posbridge.records import Attention, BatchRecord, BatchState, EventRecord, TxnRecord

log = structlog.get_logger(__name__)

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS transactions (
    order_no TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    provider TEXT NOT NULL,
    identity TEXT NOT NULL,
    amount INTEGER NOT NULL,
    currency TEXT NOT NULL,
    state TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    tip INTEGER NOT NULL DEFAULT 0,
    terminal_sn TEXT,
    provider_ref TEXT,
    auth_no TEXT,
    card_brand TEXT,
    card_last4 TEXT,
    qr_deeplink TEXT,
    orig_order_no TEXT,
    refunded_amount INTEGER NOT NULL DEFAULT 0,
    batch_no INTEGER,
    error_code TEXT,
    error_message TEXT,
    provider_code TEXT,
    attention TEXT,
    description TEXT NOT NULL DEFAULT '',
    subject TEXT NOT NULL DEFAULT '',
    body TEXT NOT NULL DEFAULT '',
    display TEXT,
    print_slip INTEGER NOT NULL DEFAULT 0,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    close_sent INTEGER NOT NULL DEFAULT 0,
    create_attempts INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS tx_active ON transactions(state)
    WHERE state IN ('pending', 'in_progress', 'unknown');
CREATE INDEX IF NOT EXISTS tx_created ON transactions(created_at, order_no);
CREATE INDEX IF NOT EXISTS tx_terminal_created ON transactions(terminal_sn, created_at, order_no);
CREATE INDEX IF NOT EXISTS tx_state_created ON transactions(state, created_at, order_no);
CREATE INDEX IF NOT EXISTS tx_orig ON transactions(orig_order_no)
    WHERE orig_order_no IS NOT NULL;
CREATE INDEX IF NOT EXISTS tx_batch ON transactions(terminal_sn, batch_no)
    WHERE batch_no IS NOT NULL;
CREATE INDEX IF NOT EXISTS tx_attention ON transactions(attention)
    WHERE attention IS NOT NULL;

CREATE TABLE IF NOT EXISTS events (
    identity TEXT NOT NULL,
    seq INTEGER NOT NULL,
    method TEXT NOT NULL,
    params TEXT NOT NULL,
    at INTEGER NOT NULL,
    PRIMARY KEY (identity, seq)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS batches (
    terminal_sn TEXT NOT NULL,
    batch_no INTEGER NOT NULL,
    state TEXT NOT NULL,
    opened_at INTEGER NOT NULL,
    closed_at INTEGER,
    close_sent INTEGER NOT NULL DEFAULT 0,
    provider_result TEXT,
    discrepancy TEXT,
    PRIMARY KEY (terminal_sn, batch_no)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS batch_state ON batches(terminal_sn, state);
"""

#: Each step takes the schema from the version before it to its own; see the module docstring.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    # Amounts in a provider's coin keep their decimals; an operation's provider-specific
    # parameters (e.g. a crypto payer) as a JSON object.
    2: ("ALTER TABLE transactions ADD COLUMN exponent INTEGER",
        "ALTER TABLE transactions ADD COLUMN extra TEXT NOT NULL DEFAULT '{}'"),
    # Cash back handed out with a sale; what a pre-authorisation's completion captured.
    3: ("ALTER TABLE transactions ADD COLUMN cashback INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE transactions ADD COLUMN completed_amount INTEGER NOT NULL DEFAULT 0"),
    # The audit trail (posbridge.audit: one chained record per privileged action), and a
    # batch's totals as they were when it closed (pruned transactions leave them as they were).
    4: ("CREATE TABLE audit (seq INTEGER PRIMARY KEY, at INTEGER NOT NULL, actor TEXT NOT NULL,"
        " peer TEXT NOT NULL, action TEXT NOT NULL, order_no TEXT, terminal TEXT,"
        " outcome TEXT NOT NULL, detail TEXT NOT NULL DEFAULT '{}', prev_hash TEXT NOT NULL,"
        " hash TEXT NOT NULL)",
        "CREATE TABLE batch_totals (terminal_sn TEXT NOT NULL, batch_no INTEGER NOT NULL,"
        " totals TEXT NOT NULL, PRIMARY KEY (terminal_sn, batch_no)) WITHOUT ROWID"),
}
SCHEMA_VERSION = max(MIGRATIONS)

_TXN_COLUMNS = tuple(f.name for f in fields(TxnRecord))
_BATCH_COLUMNS = tuple(f.name for f in fields(BatchRecord))
_BOOL_COLUMNS = frozenset({"print_slip", "cancel_requested", "close_sent"})


def fsync_path(path: Path) -> None:
    """fsync a file or a folder (its entries) by path."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def _txn_from_row(row: sqlite3.Row) -> TxnRecord:
    values: dict[str, Any] = dict(zip(_TXN_COLUMNS, row, strict=True))
    values["kind"] = TxnKind(values["kind"])
    values["state"] = State(values["state"])
    if values["attention"] is not None:
        values["attention"] = Attention(values["attention"])
    for name in _BOOL_COLUMNS:
        values[name] = bool(values[name])
    values["extra"] = json.loads(values["extra"]) if values["extra"] != "{}" else {}
    return TxnRecord(**values)


_txn_values = operator.attrgetter(*_TXN_COLUMNS)
_EXTRA = _TXN_COLUMNS.index("extra")


def _txn_to_row(rec: TxnRecord) -> tuple[object, ...]:
    """The record's columns in ``_TXN_COLUMNS`` order; ``extra`` as its JSON text."""
    row = _txn_values(rec)
    extra = json.dumps(rec.extra, sort_keys=True, separators=(",", ":")) if rec.extra else "{}"
    return (*row[:_EXTRA], extra, *row[_EXTRA + 1:])


def _batch_from_row(row: sqlite3.Row) -> BatchRecord:
    values: dict[str, Any] = dict(zip(_BATCH_COLUMNS, row, strict=True))
    values["state"] = BatchState(values["state"])
    values["close_sent"] = bool(values["close_sent"])
    for name in ("provider_result", "discrepancy"):
        if values[name] is not None:
            values[name] = json.loads(values[name])
    return BatchRecord(**values)


_SELECT_TXN = f"SELECT {', '.join(_TXN_COLUMNS)} FROM transactions"  # noqa: S608 (fixed names)
_SELECT_BATCH = f"SELECT {', '.join(_BATCH_COLUMNS)} FROM batches"  # noqa: S608 (fixed names)


class Reads:
    """Read queries shared by the writer's transaction and the read pool."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def get(self, order_no: str) -> TxnRecord | None:
        row = self.conn.execute(_SELECT_TXN + " WHERE order_no = ?", (order_no,)).fetchone()
        return None if row is None else _txn_from_row(row)

    def children(self, orig_order_no: str) -> list[TxnRecord]:
        rows = self.conn.execute(
            _SELECT_TXN + " WHERE orig_order_no = ? ORDER BY created_at", (orig_order_no,)
        ).fetchall()
        return [_txn_from_row(r) for r in rows]

    def open_batch(self, terminal_sn: str) -> BatchRecord | None:
        row = self.conn.execute(
            _SELECT_BATCH + " WHERE terminal_sn = ? AND state = 'open'", (terminal_sn,)
        ).fetchone()
        return None if row is None else _batch_from_row(row)

    def batch(self, terminal_sn: str, batch_no: int) -> BatchRecord | None:
        row = self.conn.execute(
            _SELECT_BATCH + " WHERE terminal_sn = ? AND batch_no = ?", (terminal_sn, batch_no)
        ).fetchone()
        return None if row is None else _batch_from_row(row)

    def batches(self, terminal_sn: str, limit: int = 50) -> list[BatchRecord]:
        rows = self.conn.execute(
            _SELECT_BATCH + " WHERE terminal_sn = ? ORDER BY batch_no DESC LIMIT ?",
            (terminal_sn, limit),
        ).fetchall()
        return [_batch_from_row(r) for r in rows]

    def batches_in_state(self, state: BatchState) -> list[BatchRecord]:
        rows = self.conn.execute(_SELECT_BATCH + " WHERE state = ?", (state,)).fetchall()
        return [_batch_from_row(r) for r in rows]

    def batch_rows(
        self, terminal_sn: str, batch_no: int, provider: str | None = None
    ) -> list[tuple[str, int | None, str, int, int, int, int]]:
        """``(currency, exponent, kind, count, sum amount, sum tip, sum cashback)`` of the
        approved transactions of one batch (of one provider), by currency and kind; see
        :func:`posbridge.operations.fold_totals`."""
        sql = ("SELECT currency, MAX(exponent), kind, COUNT(*), SUM(amount), SUM(tip),"
               " SUM(cashback) FROM transactions"
               " WHERE terminal_sn = ? AND batch_no = ? AND state = 'approved'")
        args: tuple[object, ...] = (terminal_sn, batch_no)
        if provider is not None:
            sql += " AND provider = ?"
            args += (provider,)
        rows = self.conn.execute(sql + " GROUP BY currency, kind", args).fetchall()
        return [(r[0], r[1], r[2], r[3], r[4], r[5], r[6]) for r in rows]

    def approved_without(self, kind: str, child_kinds: Sequence[str],
                         limit: int = 200) -> list[TxnRecord]:
        """Approved transactions of ``kind`` with no operation of ``child_kinds`` approved or
        still possible (e.g. the pre-authorisations neither completed nor cancelled)."""
        live = (State.APPROVED, *ACTIVE_STATES)
        kinds, states = ",".join("?" * len(child_kinds)), ",".join("?" * len(live))
        # S608 silenced: only "?" placeholders are formatted in; every value is bound
        where = (" AS t WHERE t.kind = ? AND t.state = 'approved' AND NOT EXISTS (SELECT 1 FROM"  # noqa: S608
                 " transactions AS c WHERE c.orig_order_no = t.order_no"
                 f" AND c.kind IN ({kinds}) AND c.state IN ({states}))"
                 " ORDER BY t.updated_at LIMIT ?")
        rows = self.conn.execute(_SELECT_TXN + where,
                                 (kind, *child_kinds, *live, limit)).fetchall()
        return [_txn_from_row(r) for r in rows]

    def live_on(self, terminal_sn: str, provider: str) -> list[TxnRecord]:
        """The transactions of ``provider`` on a terminal that are not final yet."""
        states = ",".join("?" * len(ACTIVE_STATES))
        rows = self.conn.execute(
            _SELECT_TXN + f" WHERE state IN ({states}) AND terminal_sn = ? AND provider = ?"
            " ORDER BY created_at", (*ACTIVE_STATES, terminal_sn, provider),
        ).fetchall()
        return [_txn_from_row(r) for r in rows]

    def batch_members(self, terminal_sn: str, batch_no: int, provider: str) -> list[TxnRecord]:
        """The approved transactions of one provider in one batch."""
        rows = self.conn.execute(
            _SELECT_TXN + " WHERE terminal_sn = ? AND batch_no = ? AND provider = ?"
            " AND state = 'approved' ORDER BY created_at",
            (terminal_sn, batch_no, provider),
        ).fetchall()
        return [_txn_from_row(r) for r in rows]

    def active(self) -> list[TxnRecord]:
        states = ",".join("?" * len(ACTIVE_STATES))
        rows = self.conn.execute(
            _SELECT_TXN + f" WHERE state IN ({states}) ORDER BY created_at",
            tuple(ACTIVE_STATES),
        ).fetchall()
        return [_txn_from_row(r) for r in rows]

    def attention(self, limit: int = 200) -> list[TxnRecord]:
        rows = self.conn.execute(
            _SELECT_TXN + " WHERE attention IS NOT NULL OR state = 'unknown'"
            " ORDER BY updated_at DESC LIMIT ?",
            (limit,),
        ).fetchall()
        return [_txn_from_row(r) for r in rows]

    def events_since(self, identity: str, since_seq: int, limit: int) -> list[EventRecord]:
        rows = self.conn.execute(
            "SELECT identity, seq, method, params, at FROM events"
            " WHERE identity = ? AND seq > ? ORDER BY seq LIMIT ?",
            (identity, since_seq, limit),
        ).fetchall()
        return [EventRecord(r[0], r[1], r[2], json.loads(r[3]), r[4], r[3]) for r in rows]

    def list_transactions(self, query: TxnQuery) -> tuple[list[TxnRecord], str | None]:
        where: list[str] = []
        args: list[object] = []
        if query.terminal_sn is not None:
            where.append("terminal_sn = ?")
            args.append(query.terminal_sn)
        if query.state is not None:
            where.append("state = ?")
            args.append(query.state)
        if query.since_ms is not None:
            where.append("created_at >= ?")
            args.append(query.since_ms)
        if query.search:
            where.append("(order_no LIKE ? ESCAPE '\\' OR provider_ref LIKE ? ESCAPE '\\')")
            pattern = "%" + query.search.replace("\\", "\\\\").replace("%", "\\%").replace(
                "_", "\\_") + "%"
            args += [pattern, pattern]
        if query.cursor is not None:
            created, order_no = decode_cursor(query.cursor)
            where.append("(created_at < ? OR (created_at = ? AND order_no < ?))")
            args += [created, created, order_no]
        sql = _SELECT_TXN
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_at DESC, order_no DESC LIMIT ?"
        args.append(query.limit + 1)
        rows = [_txn_from_row(r) for r in self.conn.execute(sql, args).fetchall()]
        more = len(rows) > query.limit
        rows = rows[: query.limit]
        cursor = encode_cursor(rows[-1].created_at, rows[-1].order_no) if more else None
        return rows, cursor


@dataclass(frozen=True, slots=True)
class TxnQuery:
    terminal_sn: str | None = None
    state: str | None = None
    since_ms: int | None = None
    search: str | None = None
    limit: int = 50
    cursor: str | None = None


class CursorError(PosbridgeError):
    """A pagination cursor that this journal did not hand out."""


def encode_cursor(created_at: int, order_no: str) -> str:
    raw = json.dumps([created_at, order_no], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, order_no = json.loads(raw)
    except (ValueError, TypeError) as exc:
        raise CursorError("not a cursor returned by transactions.list") from exc
    if not isinstance(created, int) or not isinstance(order_no, str):
        raise CursorError("not a cursor returned by transactions.list")
    return created, order_no


class JournalTx(Reads):
    """What a unit of work may do inside the writer's SQL transaction."""

    def __init__(self, conn: sqlite3.Connection, seqs: dict[str, int],
                 durable_seqs: dict[str, int] | None = None) -> None:
        super().__init__(conn)
        self._seqs = seqs
        self._durable_seqs = durable_seqs if durable_seqs is not None else {}
        self.emitted: list[EventRecord] = []
        #: Each identity this unit emitted for, with its seq before (None: none known yet),
        #: so that undoing the unit puts back exactly what it changed.
        self.prior_seqs: dict[str, int | None] = {}

    def insert(self, rec: TxnRecord) -> None:
        marks = ", ".join("?" * len(_TXN_COLUMNS))
        self.conn.execute(
            f"INSERT INTO transactions ({', '.join(_TXN_COLUMNS)}) VALUES ({marks})",  # noqa: S608
            _txn_to_row(rec),
        )

    def update(self, rec: TxnRecord, *, old: TxnRecord | None = None) -> None:
        """Write ``rec`` over its row. With ``old`` (the row as read in this unit), only the
        columns that differ are written: SQLite then leaves alone every index on the others
        (writing all columns rewrites all seven indexes of the table)."""
        new_row = _txn_to_row(rec)
        changed: Sequence[int]
        if old is None:
            changed = range(1, len(_TXN_COLUMNS))
        else:
            old_row = _txn_to_row(old)
            changed = [i for i in range(1, len(_TXN_COLUMNS)) if new_row[i] != old_row[i]]
            if not changed:
                return
        sets = ", ".join(f"{_TXN_COLUMNS[i]} = ?" for i in changed)
        cur = self.conn.execute(
            # S608 silenced: only names from _TXN_COLUMNS are formatted in; values are all ?
            f"UPDATE transactions SET {sets} WHERE order_no = ?",  # noqa: S608
            (*(new_row[i] for i in changed), rec.order_no),
        )
        if cur.rowcount != 1:
            raise JournalError(f"no transaction {rec.order_no!r} to update")

    def emit(self, identity: str, method: str, params: dict[str, object],
             params_json: str | None = None) -> EventRecord:
        """Append an event to the identity's outbox; it is published once durable.
        ``params_json``: ``params`` already encoded (compact JSON), to encode them once."""
        seq = self._seqs.get(identity)
        self.prior_seqs.setdefault(identity, seq)
        if seq is None:
            row = self.conn.execute(
                "SELECT COALESCE(MAX(seq), 0) FROM events WHERE identity = ?", (identity,)
            ).fetchone()
            seq = int(row[0])
            # Every row found here was durable at open (or published since): the bound of
            # what events_since may hand out from now on, until later ones are published.
            self._durable_seqs.setdefault(identity, seq)
        seq += 1
        if params_json is None:
            params_json = json.dumps(params, separators=(",", ":"), ensure_ascii=False,
                                     allow_nan=False)
        event = EventRecord(identity, seq, method, params, now_ms(), params_json)
        self.conn.execute(
            "INSERT INTO events (identity, seq, method, params, at) VALUES (?, ?, ?, ?, ?)",
            (identity, seq, method, params_json, event.at),
        )
        self._seqs[identity] = seq
        self.emitted.append(event)
        return event

    def ensure_open_batch(self, terminal_sn: str, at: int) -> BatchRecord:
        batch = self.open_batch(terminal_sn)
        if batch is not None:
            return batch
        row = self.conn.execute(
            "SELECT COALESCE(MAX(batch_no), 0) FROM batches WHERE terminal_sn = ?", (terminal_sn,)
        ).fetchone()
        batch = BatchRecord(terminal_sn, int(row[0]) + 1, BatchState.OPEN, at)
        self.put_batch(batch)
        return batch

    def put_batch(self, batch: BatchRecord) -> None:
        values = [getattr(batch, name) for name in _BATCH_COLUMNS]
        for i, name in enumerate(_BATCH_COLUMNS):
            if name in ("provider_result", "discrepancy") and values[i] is not None:
                values[i] = json.dumps(values[i], separators=(",", ":"))
        marks = ", ".join("?" * len(_BATCH_COLUMNS))
        self.conn.execute(
            f"INSERT OR REPLACE INTO batches ({', '.join(_BATCH_COLUMNS)})"  # noqa: S608
            f" VALUES ({marks})",
            values,
        )


def schema_version(conn: sqlite3.Connection) -> int:
    """The schema version of an open journal (0: an empty file)."""
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version == 0 and conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'transactions'"
    ).fetchone() is not None:
        return 1  # the first release did not set user_version
    return version


def migrate(conn: sqlite3.Connection, path: Path) -> int:
    """Bring the journal to :data:`SCHEMA_VERSION`; returns the version it was at.

    Each step runs in one transaction with its ``user_version``; a newer file than this
    posbridge knows raises JournalError and is left untouched. Sets WAL mode and
    ``synchronous=FULL`` on the way."""
    found = schema_version(conn)
    if found > SCHEMA_VERSION:
        raise JournalError(
            f"the journal at {path} has schema version {found}, written by a newer posbridge; "
            f"this one knows up to {SCHEMA_VERSION}: upgrade posbridge, or restore a backup")
    conn.execute("PRAGMA journal_mode=WAL")  # only now: it rewrites the file's header
    conn.execute("PRAGMA synchronous=FULL")
    version = found
    if version == 0:
        try:  # one transaction: version 1 is whole or absent
            conn.executescript(f"BEGIN IMMEDIATE;\n{SCHEMA}\nPRAGMA user_version = 1;\nCOMMIT;")
        except sqlite3.Error:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        version = 1
    while version < SCHEMA_VERSION:
        version += 1
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in MIGRATIONS[version]:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {version:d}")
        except sqlite3.Error:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        if found:
            log.info("journal_upgraded", path=str(path), schema_version=version)
    return found


def _connect(path: Path, *, readonly: bool) -> sqlite3.Connection:
    try:
        if readonly:
            conn = sqlite3.connect(
                f"file:{path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False
            )
        else:
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout=5000")
    except sqlite3.Error as exc:
        raise JournalError(f"cannot open the journal at {path}: {exc}") from exc
    return conn


# A unit, the future its caller awaits (the event loop's own future), and whether the unit
# must be durable before that future resolves.
_Unit = tuple[Callable[["JournalTx"], Any], "asyncio.Future[Any]", bool]
_Outcome = tuple["asyncio.Future[Any]", bool, Any]


def _restore_seqs(seqs: dict[str, int], prior: dict[str, int | None]) -> None:
    """Undo the seqs handed out since ``prior`` was taken (see JournalTx.prior_seqs)."""
    for identity, seq in prior.items():
        if seq is None:
            seqs.pop(identity, None)
        else:
            seqs[identity] = seq


@dataclass
class _Group:
    """Units run and waiting for their COMMIT: in the writer thread when durable, else on the
    loop (or, with ``sync_only``, no units: an fsync of the WAL in the writer thread for the
    events of earlier committed-only groups)."""

    outcomes: list[_Outcome]
    emitted: list[EventRecord]
    prior_seqs: dict[str, int | None]  # as JournalTx.prior_seqs, for the whole group
    started: float  # perf_counter() at BEGIN
    durable: bool = True  # committed with synchronous=FULL (or an fsync of the WAL)
    sync_only: bool = False
    covered: bool = False  # sync-only: the durable COMMIT queued behind it made it needless
    took: float = 0.0  # seconds from BEGIN until COMMIT returned (set where it ran)


class Journal:
    """Async facade over the write connection, its commit thread and the read pool.
    Open it with ``async with``; use it from the loop it was opened on."""

    MAX_GROUP = 256
    #: A group stops taking units once running them took this long (loop latency bound).
    GROUP_BUDGET_S = 0.002
    #: How long units wait for a write lock held by another process before they fail.
    BUSY_TIMEOUT_S = 5.0
    BUSY_RETRY_S = 0.01
    #: How long the events of committed-only units may wait for a durable commit to carry
    #: them before the WAL is fsynced for them alone (they are published only once durable).
    EVENT_SYNC_DELAY_S = 0.005
    #: SQLite's automatic checkpoint (its default size): once the WAL holds this many pages,
    #: a durable group's COMMIT copies them into the database, in the writer thread.
    CHECKPOINT_PAGES = 1000

    def __init__(
        self, path: Path, *, on_events: Callable[[Sequence[EventRecord]], None] | None = None
    ) -> None:
        self.path = path
        self._wal = Path(f"{path}-wal")
        self._on_events = on_events
        self._pending: collections.deque[_Unit] = collections.deque()
        self._durable_pending = 0  # durable units in _pending
        self._commits: queue.SimpleQueue[_Group | None] = queue.SimpleQueue()  # None stops
        # A group is committing (in the writer thread, or on the loop until _committed runs):
        # no other group may start on the connection.
        self._committing = False
        # A sync-only group is in the writer thread. It does not use the connection: a group
        # that must be durable may start meanwhile, and is queued behind it (see _commit_loop).
        self._syncing = False
        self._flush_scheduled = False
        # The connection's settings for a durable group (synchronous=FULL, SQLite's automatic
        # checkpoint on) or else for one committed on the loop (NORMAL, no checkpoint).
        self._full_sync = True
        self._checkpoint_pages = self.CHECKPOINT_PAGES
        self._busy_since: float | None = None  # BEGIN has found the write lock taken since
        self._seqs: dict[str, int] = {}
        # Committed, not yet durable: published with the next durable commit or sync.
        self._undelivered: list[EventRecord] = []
        self._sync_timer: asyncio.TimerHandle | None = None
        self._sync_wanted = False  # the undelivered events have waited long enough
        self._undurable = False  # a committed-only group since the last durable point
        self._sync_waiters: list[asyncio.Future[None]] = []  # see sync()
        # Per identity that emitted since open: the highest seq known durable (see
        # events_since). An identity absent here has only durable events (synced at open).
        self._durable_seqs: dict[str, int] = {}
        # The WAL's length at the last durable point, kept only for the power-cut kill point.
        self._track_wal = False
        self._durable_wal_size: int | None = None
        self._writer: threading.Thread | None = None
        self._conn: sqlite3.Connection | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._readers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="journal-read")
        self._local = threading.local()
        self._read_conns: list[sqlite3.Connection] = []
        self._read_lock = threading.Lock()
        self.commits = 0
        self.fsyncs = 0  # durable commits and syncs of the WAL on its own
        self._commit_seconds: list[float] = []  # since the last drain, for metrics (bounded)
        self.healthy = True

    def drain_commit_times(self) -> list[float]:
        """Commit durations (seconds) since the last call, for the metrics histogram."""
        times, self._commit_seconds = self._commit_seconds, []
        return times

    def set_event_sink(self, sink: Callable[[Sequence[EventRecord]], None]) -> None:
        self._on_events = sink

    async def __aenter__(self) -> Journal:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def open(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = _connect(self.path, readonly=False)
        try:
            migrate(conn, self.path)
            if failpoints.armed("power_cut"):
                # The simulated power cut shortens the WAL: no checkpoint may have copied
                # frames past the cut into the database file (see simulate_power_cut).
                self._checkpoint_pages = 0
                self._track_wal = True
            conn.execute(f"PRAGMA wal_autocheckpoint={self._checkpoint_pages:d}")
        except sqlite3.Error as exc:
            conn.close()
            raise JournalError(f"cannot prepare the journal at {self.path}: {exc}") from exc
        except JournalError:
            conn.close()
            raise
        conn.execute("PRAGMA busy_timeout=0")  # the loop never sleeps on a lock: see _flush
        # What an earlier process committed and a crash kept may still be in the page cache
        # only: make it durable before any of it is published or replayed.
        await asyncio.to_thread(self._sync_files)
        self._conn = conn
        self._writer = threading.Thread(target=self._commit_loop, name="journal-writer",
                                        daemon=True)
        self._writer.start()

    async def close(self) -> None:
        """Commit what was submitted, make it durable, then stop; later units get
        JournalError."""
        if self._writer is None:
            return
        writer, self._writer = self._writer, None  # submit() refuses from here on
        while (self._pending or self._committing or self._syncing or self._undelivered
               or self._sync_waiters):  # no new units come in
            if not self._committing:
                self._sync_wanted = True
                self._next()
            await asyncio.sleep(0.001)
        if self._sync_timer is not None:
            self._sync_timer.cancel()
        self._commits.put(None)
        await asyncio.to_thread(writer.join)
        self._readers.shutdown(wait=True)
        with self._read_lock:
            for conn in self._read_conns:
                conn.close()
            self._read_conns.clear()
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # -- writes ------------------------------------------------------------------------

    async def run(self, fn: Callable[[JournalTx], T], *, durable: bool = True) -> T:
        """Run ``fn`` atomically; its result once committed and, if ``durable``, on disk
        (see the module docstring for which writes must be)."""
        return await self.submit(fn, durable=durable)

    def sync(self) -> asyncio.Future[None]:
        """A durability barrier: the future resolves once everything committed so far is on
        disk (at once when it is). The next group commits durably, or, with none waiting,
        the WAL is fsynced on its own. Await it before acknowledging what a committed-only
        unit recorded; or drop it to have that unit made durable soon, grouped with others."""
        assert self._loop is not None
        fut: asyncio.Future[None] = self._loop.create_future()
        if not self._undurable:
            fut.set_result(None)
            return fut
        self._sync_waiters.append(fut)
        self._want_sync()
        return fut

    def submit(self, fn: Callable[[JournalTx], T], *,
               durable: bool = True) -> asyncio.Future[T]:
        """Queue ``fn`` now; the future resolves as :meth:`run` returns, so the caller can
        do other work while the unit commits. Call it on the journal's loop."""
        if self._writer is None or self._loop is None:
            raise JournalError("the journal is closed")
        fut: asyncio.Future[T] = self._loop.create_future()
        self._pending.append((fn, fut, durable))
        self._durable_pending += durable
        if not self._committing and not self._flush_scheduled:
            # Not at once: units submitted in the same loop turn share the group.
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)
        return fut

    def _flush(self) -> None:
        """Run the waiting units (on the loop) and hand their COMMIT to the writer."""
        self._flush_scheduled = False
        if self._committing or not self._pending:
            return
        if self._syncing and not self._durable_pending:
            return  # committed-only units wait for the sync (see the module docstring)
        conn = self._conn
        assert conn is not None
        started = time.perf_counter()
        # FULL when any waiting unit must be durable (if the time budget ends the group
        # before it, this group is durable too: never less than asked), or events wait.
        durable = self._durable_pending > 0 or self._sync_wanted
        group = _Group(outcomes=[], emitted=[], prior_seqs={}, started=started,
                       durable=durable)
        units: list[_Unit] = []
        try:
            if durable != self._full_sync:  # only outside a transaction
                conn.execute("PRAGMA synchronous=FULL" if durable else "PRAGMA synchronous=NORMAL")
                conn.execute("PRAGMA wal_autocheckpoint="
                             f"{self._checkpoint_pages if durable else 0:d}")
                self._full_sync = durable
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            self._begin_failed(conn, group, exc)
            return
        self._busy_since = None
        try:
            while self._pending and len(units) < self.MAX_GROUP:
                if units and time.perf_counter() - started > self.GROUP_BUDGET_S:
                    break
                unit = self._pending.popleft()
                self._durable_pending -= unit[2]
                units.append(unit)
                group.outcomes.append(self._run_unit(conn, unit, group))
        except sqlite3.Error as exc:
            self._failed(conn, group, [fut for _, fut, _ in units], exc)
            self._flush_later(0.0)
            return
        self._committing = True
        if durable:
            self._commits.put(group)
        else:
            self._commit_here(conn, group)

    def _commit_here(self, conn: sqlite3.Connection, group: _Group) -> None:
        """COMMIT a group that need not be durable on the loop: no fsync, no checkpoint
        (both wait for a durable group, in the writer thread), only its pages appended to the
        WAL, which costs less than handing the group to the writer thread and back: each
        hand-over waits for the other thread to be scheduled and to get the GIL. It goes on
        as a writer thread's commit does, in a later loop turn."""
        assert self._loop is not None
        error: sqlite3.Error | None = None
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            error = exc
        group.took = time.perf_counter() - group.started
        self._loop.call_soon(self._committed, group, error)

    def _sync_events(self) -> None:
        """The events of committed-only units have waited ``EVENT_SYNC_DELAY_S``: the next
        group commits durably, or, with none waiting, the WAL is fsynced for them alone."""
        self._sync_timer = None
        if self._undelivered or self._sync_waiters:
            self._want_sync()

    def _want_sync(self) -> None:
        """The next group commits durably, or, with the writer free and none waiting, the WAL
        is fsynced on its own."""
        self._sync_wanted = True
        if not self._committing and not self._flush_scheduled:
            self._next()

    def _next(self) -> None:
        """With no group committing: start the waiting units (a group with a durable unit
        even while a sync is in the writer thread, see _flush), else a sync asked for, else
        make sure that undelivered events get one in time."""
        if self._committing:
            return  # its _committed goes on from here
        if self._pending:
            self._flush()
        elif self._syncing:
            return  # likewise
        elif self._sync_wanted and (self._undelivered or self._sync_waiters):
            self._syncing = True
            self._commits.put(_Group(outcomes=[], emitted=[], prior_seqs={},
                                     started=time.perf_counter(), sync_only=True))
        elif self._undelivered and self._sync_timer is None:
            self._sync_soon()

    def _begin_failed(self, conn: sqlite3.Connection, group: _Group, exc: sqlite3.Error) -> None:
        """No write transaction: another process holds the write lock, or the file is
        unusable. The loop never waits for a lock: it tries again shortly, and the waiting
        units fail once the lock has been held for ``BUSY_TIMEOUT_S``."""
        now = time.monotonic()
        if self._busy_since is None:
            self._busy_since = now
        busy = getattr(exc, "sqlite_errorcode", None) in (sqlite3.SQLITE_BUSY,
                                                          sqlite3.SQLITE_LOCKED)
        if busy and now - self._busy_since < self.BUSY_TIMEOUT_S:
            self._flush_later(self.BUSY_RETRY_S)
            return
        self._busy_since = None
        waiting = [fut for _, fut, _ in self._pending]
        self._pending.clear()
        self._durable_pending = 0
        self._failed(conn, group, waiting, exc)

    def _flush_later(self, delay_s: float) -> None:
        if self._pending and not self._flush_scheduled:
            self._flush_scheduled = True
            assert self._loop is not None
            self._loop.call_later(delay_s, self._flush)

    def _run_unit(self, conn: sqlite3.Connection, unit: _Unit, group: _Group) -> _Outcome:
        fn, fut, _durable = unit
        tx = JournalTx(conn, self._seqs, self._durable_seqs)
        conn.execute("SAVEPOINT unit")
        try:
            result = fn(tx)
        except Exception as exc:  # the unit's own failure: undo just this unit
            conn.execute("ROLLBACK TO unit")
            conn.execute("RELEASE unit")
            _restore_seqs(self._seqs, tx.prior_seqs)
            return fut, False, exc
        conn.execute("RELEASE unit")
        group.emitted.extend(tx.emitted)
        for identity, seq in tx.prior_seqs.items():
            group.prior_seqs.setdefault(identity, seq)
        return fut, True, result

    def _commit_loop(self) -> None:
        """The writer thread: COMMIT each group handed over (or fsync the WAL for a
        sync-only one), report back to the loop, in the order handed over.

        Only durable groups and syncs come here (a group that need not be durable commits
        on the loop). A group's COMMIT, with ``synchronous=FULL``, fsyncs the WAL after
        everything committed before it, so a sync queued before it waits for that COMMIT
        instead of fsyncing on its own: one fsync for both, and the group is not held back
        by the sync's."""
        assert self._conn is not None and self._loop is not None
        waiting_sync: _Group | None = None
        while (group := self._commits.get()) is not None:
            if group.sync_only and waiting_sync is None and not self._commits.empty():
                waiting_sync = group
                continue
            error = self._write(group)
            if waiting_sync is not None:
                if error is None:
                    waiting_sync.covered = True
                    self._report(waiting_sync, None)
                else:  # that COMMIT did not make it durable: fsync for the sync after all
                    self._report(waiting_sync, self._write(waiting_sync))
                waiting_sync = None
            self._report(group, error)
        if waiting_sync is not None:
            self._report(waiting_sync, self._write(waiting_sync))

    def _write(self, group: _Group) -> sqlite3.Error | OSError | None:
        """In the writer thread: one group's COMMIT, or a sync-only group's fsync."""
        assert self._conn is not None
        try:
            if group.sync_only:
                self._sync_wal()
            else:
                self._conn.execute("COMMIT")
            if self._track_wal:  # every write here is a durable point
                self._durable_wal_size = self._wal.stat().st_size
        except (sqlite3.Error, OSError) as exc:
            return exc
        return None

    def _report(self, group: _Group, error: sqlite3.Error | OSError | None) -> None:
        """From the writer thread: hand the group back to the loop (``_committed``)."""
        assert self._loop is not None
        group.took = time.perf_counter() - group.started  # BEGIN to committed, no loop wait
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits any more
            self._loop.call_soon_threadsafe(self._committed, group, error)

    def _sync_wal(self) -> None:
        """fsync the WAL file (in the writer thread): every commit so far becomes durable."""
        fsync_path(self._wal)

    def _sync_files(self) -> None:
        for path in (self._wal, self.path):
            with contextlib.suppress(FileNotFoundError):
                fsync_path(path)

    def _committed(self, group: _Group, error: sqlite3.Error | OSError | None) -> None:
        """On the loop, after COMMIT (or a sync): publish what is durable, resolve the
        futures, go on."""
        conn = self._conn
        assert conn is not None
        if group.sync_only:
            self._syncing = False
            self.fsyncs += error is None and not group.covered
            if error is None:
                self.healthy = True
                self._deliver([])
            else:  # the events wait for the next durable commit, or another try
                self.healthy = False
                log.error("journal_sync_failed", error=str(error))
                self._sync_soon()
        else:
            self._committing = False
            self.commits += 1
            self._commit_seconds.append(group.took)
            if len(self._commit_seconds) > 4096:
                del self._commit_seconds[:2048]
            if error is not None:
                assert isinstance(error, sqlite3.Error)
                self._failed(conn, group, [fut for fut, _, _ in group.outcomes], error)
            else:
                self.healthy = True
                self.fsyncs += group.durable
                self._undurable = self._undurable or not group.durable
                self._undelivered += group.emitted
                self._deliver(group.outcomes, durable=group.durable)
        self._next()

    def _sync_soon(self) -> None:
        assert self._loop is not None
        self._sync_timer = self._loop.call_later(self.EVENT_SYNC_DELAY_S, self._sync_events)

    def _failed(self, conn: sqlite3.Connection, group: _Group,
                futs: list[asyncio.Future[Any]], exc: sqlite3.Error) -> None:
        """The group could not be written: roll it back; every unit in it fails."""
        self.healthy = False
        log.error("journal_commit_failed", error=str(exc))
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        _restore_seqs(self._seqs, group.prior_seqs)
        err = JournalError(f"the journal could not commit: {exc}")
        self._deliver([(fut, False, err) for fut in futs], durable=False)

    def _deliver(self, outcomes: list[_Outcome], *, durable: bool = True) -> None:
        """Resolve ``outcomes``; first, when what is committed is now ``durable``, publish
        the events waiting for that, in commit order."""
        if durable:
            self._sync_wanted = False
            self._undurable = False
            waiters, self._sync_waiters = self._sync_waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)
        if durable and self._undelivered:
            events, self._undelivered = self._undelivered, []
            for event in events:
                self._durable_seqs[event.identity] = event.seq
            if self._on_events is not None:
                try:
                    self._on_events(events)
                except Exception:  # publishing must never lose a committed result
                    log.exception("event_publish_failed")
        for fut, ok, value in outcomes:
            if fut.done():  # its waiter was cancelled; the unit is committed all the same
                continue
            if ok:
                fut.set_result(value)
            else:
                fut.set_exception(value)

    def simulate_power_cut(self) -> None:
        """For the power-cut kill point only (``POSBRIDGE_FAILPOINT=power_cut:...``): cut
        the WAL back to its length at the last durable point, as a power cut would leave
        it, just before the process is killed. Exact because automatic checkpoints are off
        while that kill point is armed (no frame past the cut reached the database file)
        and a crash test's WAL never wraps around. Logs how many bytes it took back: none
        when everything committed had been made durable by then (an event sync can come
        between a commit and the kill point on a slow machine)."""
        lost = 0
        if self._durable_wal_size is not None:
            lost = self._wal.stat().st_size - self._durable_wal_size
            os.truncate(self._wal, self._durable_wal_size)
        log.warning("power_cut_simulated", wal_bytes_lost=lost)

    # -- reads -------------------------------------------------------------------------

    def _reader(self) -> Reads:
        reads: Reads | None = getattr(self._local, "reads", None)
        if reads is None:
            conn = _connect(self.path, readonly=True)
            with self._read_lock:
                self._read_conns.append(conn)
            reads = Reads(conn)
            self._local.reads = reads
        return reads

    async def read(self, fn: Callable[[Reads], T]) -> T:
        """Run a read-only query on the read pool."""
        loop = asyncio.get_running_loop()

        def call() -> T:
            try:
                return fn(self._reader())
            except sqlite3.Error as exc:
                raise JournalError(f"journal read failed: {exc}") from exc

        return await loop.run_in_executor(self._readers, call)

    async def get(self, order_no: str) -> TxnRecord | None:
        return await self.read(lambda r: r.get(order_no))

    async def active(self) -> list[TxnRecord]:
        return await self.read(lambda r: r.active())

    async def events_since(
        self, identity: str, since_seq: int, limit: int = 1000
    ) -> list[EventRecord]:
        """The identity's events after ``since_seq`` that are durable (a later one is
        published live once it is: see the module docstring)."""
        events = await self.read(lambda r: r.events_since(identity, since_seq, limit))
        # Read back on the loop: an event committed before the read's snapshot was emitted
        # before this line runs, so its identity's bound is already set here.
        bound = self._durable_seqs.get(identity)
        if bound is not None and events and events[-1].seq > bound:
            events = [e for e in events if e.seq <= bound]
        return events

    async def list_transactions(self, query: TxnQuery) -> tuple[list[TxnRecord], str | None]:
        return await self.read(lambda r: r.list_transactions(query))

    async def check_writable(self) -> bool:
        """A health probe: one empty write unit round trip."""
        try:
            await asyncio.wait_for(self.run(lambda tx: None), timeout=5)
        except (JournalError, TimeoutError):
            return False
        return True
