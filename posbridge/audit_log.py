"""The audit trail in the journal: appending records, recording refusals, reading them back.

Where each action is recorded
-----------------------------
An action that writes the journal appends its record in **the same journal unit** (so the two
commit together or not at all):

* ``void``, ``refund``, ``preauth.cancel``, ``tip.adjust`` (the operations whose row in
  :data:`posbridge.operations.OPERATIONS` has the ``manager`` role; from a register, or a tip
  adjustment from the manager page): in the unit that records the intent
  (:meth:`posbridge.engine.Engine.start`); a retry of the same ``order_no`` is a request too,
  recorded with ``repeat: true``. ``ok`` means that the request was recorded and goes to the
  provider; what the provider then says is the transaction's state;
* ``batch.close`` (register or manager page): in the unit that records the batch as closed,
  with the batch's totals (a close that a crash interrupted, finished at the next start, is
  recorded there as the ``system``'s, ``resumed: true``);
* ``txn.close`` and ``txn.review`` (the manager page's "close at provider" and "mark
  reviewed"): in the unit that records the cancel request or clears the attention flag;
* ``journal.prune``: in each unit that removes rows.

An action refused or failed before it wrote anything (a wrong PIN, a refused void, a batch close
refused while a payment is in flight, a provider that failed to close the batch), and the
actions that write nothing else (``manager.login`` and each wrong PIN there,
``config.reload``), are recorded in a unit of their own (:meth:`AuditTrail.record`,
:meth:`AuditTrail.around`).

Appending reads the last record's hash inside the unit's write transaction, so the chain stays
one line even with a second writer (``posbridge journal prune`` beside the daemon).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import structlog

from posbridge.audit import GENESIS, AuditEntry, AuditRecord, chained, failed, refused
from posbridge.errors import JournalError, RequestError
from posbridge.journal import Journal, JournalTx, now_ms

log = structlog.get_logger(__name__)

T = TypeVar("T")

_COLUMNS: Final = ("seq", "at", "actor", "peer", "action", "order_no", "terminal", "outcome",
                   "detail", "prev_hash", "hash")
_SELECT: Final = f"SELECT {', '.join(_COLUMNS)} FROM audit"  # noqa: S608 (fixed names)
_INSERT: Final = (f"INSERT INTO audit ({', '.join(_COLUMNS)})"  # noqa: S608 (fixed names)
                  f" VALUES ({', '.join('?' * len(_COLUMNS))})")
#: RequestError codes that mean "tried, and something outside the bridge's rules failed".
_FAILURE_CODES: Final = frozenset({1007, 1008, -32603})


def append(conn: sqlite3.Connection, entry: AuditEntry, at: int) -> AuditRecord:
    """Chain ``entry`` after the last record; call it inside a write transaction (a unit)."""
    row = conn.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    seq, prev = (int(row[0]) + 1, str(row[1])) if row is not None else (1, GENESIS)
    rec = chained(entry, seq=seq, at=at, prev_hash=prev)
    conn.execute(_INSERT, (rec.seq, rec.at, rec.actor, rec.peer, rec.action, rec.order_no,
                           rec.terminal, rec.outcome, _json(rec.detail), rec.prev_hash,
                           rec.hash))
    return rec


def _json(detail: object) -> str:
    return json.dumps(detail, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def outcome_of(exc: BaseException) -> str:
    """The outcome of an action that raised ``exc``: refused by the bridge's rules, or failed."""
    if isinstance(exc, RequestError):
        return (failed if exc.code in _FAILURE_CODES else refused)(exc.message)
    if isinstance(exc, JournalError):
        return failed("the journal could not record it")
    return failed(f"internal error ({type(exc).__name__})")


class AuditTrail:
    """The daemon's side of the trail: records in units of their own, and refusals."""

    def __init__(self, journal: Journal, *, clock: Callable[[], int] = now_ms) -> None:
        self.journal = journal
        self._clock = clock

    def unit(self, entry: AuditEntry) -> Callable[[JournalTx], AuditRecord]:
        """A journal unit that appends ``entry`` alone."""
        return lambda tx: append(tx.conn, entry, self._clock())

    async def record(self, entry: AuditEntry) -> AuditRecord | None:
        """Append ``entry`` in a unit of its own; None (logged) when the journal cannot."""
        try:
            return await self.journal.run(self.unit(entry))
        except JournalError as exc:
            log.error("audit_record_failed", action=entry.action, error=str(exc))
            return None

    async def around(self, entry: AuditEntry,
                     action: Callable[[AuditEntry], Awaitable[T]]) -> T:
        """Run ``action(entry)``, which appends ``entry`` in the unit that carries it out.

        If it raises instead (nothing was recorded), the refusal or failure is recorded in a
        unit of its own and the exception goes on."""
        try:
            return await action(entry)
        except Exception as exc:
            await self.record(entry.ended(outcome_of(exc)))
            raise


# -- reading -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditQuery:
    """Which records to read: all filters optional; ``limit`` keeps the newest that many."""

    since_ms: int | None = None
    action: str | None = None
    actor: str | None = None
    search: str | None = None  # in order_no or terminal
    limit: int | None = None


def _from_row(row: tuple[Any, ...]) -> AuditRecord:
    seq, at, actor, peer, action, order_no, terminal, outcome, detail, prev, digest = row
    try:
        parsed = json.loads(str(detail))
    except ValueError:
        parsed = {"unreadable": str(detail)}
    return AuditRecord(
        seq=int(seq), at=int(at), actor=str(actor), peer=str(peer),
        action=str(action), outcome=str(outcome),
        order_no=None if order_no is None else str(order_no),
        terminal=None if terminal is None else str(terminal),
        detail=parsed if isinstance(parsed, dict) else {"unreadable": str(detail)},
        prev_hash=str(prev), hash=str(digest))


def all_records(conn: sqlite3.Connection) -> Iterator[AuditRecord]:
    """Every record in ``seq`` order (read as it is walked)."""
    for row in conn.execute(_SELECT + " ORDER BY seq"):
        yield _from_row(tuple(row))


def select(conn: sqlite3.Connection, query: AuditQuery) -> list[AuditRecord]:
    """The records ``query`` asks for, oldest first."""
    where: list[str] = []
    args: list[object] = []
    if query.since_ms is not None:
        where.append("at >= ?")
        args.append(query.since_ms)
    if query.action:
        where.append("action = ?")
        args.append(query.action)
    if query.actor:
        where.append("actor = ?")
        args.append(query.actor)
    if query.search:
        pattern = "%" + query.search.replace("\\", "\\\\").replace("%", "\\%").replace(
            "_", "\\_") + "%"
        where.append("(order_no LIKE ? ESCAPE '\\' OR terminal LIKE ? ESCAPE '\\')")
        args += [pattern, pattern]
    sql = _SELECT + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY seq DESC"
    if query.limit is not None:
        sql += " LIMIT ?"
        args.append(query.limit)
    rows = [_from_row(tuple(r)) for r in conn.execute(sql, args).fetchall()]
    rows.reverse()
    return rows


def actions(conn: sqlite3.Connection) -> list[str]:
    """The actions the trail holds, for a filter's choices."""
    return [str(r[0]) for r in conn.execute("SELECT DISTINCT action FROM audit ORDER BY action")]
