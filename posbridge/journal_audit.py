"""A read-only audit of a journal file: is every row whole and every event well-formed?

:func:`audit_journal` opens the SQLite file read-only (it may be in use by a running daemon) and
returns the problems it finds as readable lines; an empty list means the journal is sound:

* SQLite's own ``integrity_check`` passes;
* every transaction row has an order number of the ECR's shape, a known kind and state,
  positive integer amounts (a tip and refunded amount of zero or more), a currency code, a
  fingerprint that is a JSON object, and times in order (created <= updated, created <=
  expires); a void or refund names an original that exists;
* the approved voids and refunds of an original never return more than it captured: its
  amount, its tip as adjusted by approved tip adjustments, and its cash back;
* every event has a known method and a JSON object as params (whose ``seq``, when it has
  one, is the row's); a ``transaction.updated`` carries a transaction whose order number is
  in the journal; the ``seq`` values of each identity are contiguous;
* every batch row has a known state, and a closed batch has its closing time.

It is what the fuzz tests, ``bench/fuzz.py`` and ``bench/soak.py`` check after hammering a
daemon: bad input must never leave a half-written record behind.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Final

from posbridge.lifecycle import State
from posbridge.operations import OPERATIONS
from posbridge.providers.base import TxnKind
from posbridge.records import Attention, BatchState

ORDER_NO: Final = re.compile(r"[A-Za-z0-9_\-|*@]{1,32}")
CURRENCY: Final = re.compile(r"[A-Z0-9]{2,12}")  # ISO 4217, or a provider's coin
EVENT_METHODS: Final = frozenset({"transaction.updated", "batch.closed", "terminal.status"})
_KINDS: Final = frozenset(k.value for k in TxnKind)
_STATES: Final = frozenset(s.value for s in State)
_ATTENTION: Final = frozenset(a.value for a in Attention)
_BATCH_STATES: Final = frozenset(s.value for s in BatchState)
_CHILD_KINDS: Final = frozenset({"void", "refund", "qr_refund"})
#: The kinds that return an original's money, and those that change its tip.
_RETURN_KINDS: Final = tuple(op.kind.value for op in OPERATIONS.values()
                             if op.on_original == "refunded")
_TIP_KINDS: Final = (TxnKind.TIP_ADJUST.value,)
# At most this many problems are listed (a broken journal would otherwise list every row).
MAX_PROBLEMS: Final = 50


def audit_journal(path: Path) -> list[str]:
    """The problems of the journal at ``path`` (at most :data:`MAX_PROBLEMS`); ``[]`` if sound.

    Raises ``sqlite3.Error`` only when the file cannot be opened as a database at all.
    """
    uri = f"{path.resolve().as_uri()}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True)) as conn:
        conn.row_factory = sqlite3.Row
        problems: list[str] = []
        for problem in _all_problems(conn):
            problems.append(problem)
            if len(problems) >= MAX_PROBLEMS:
                break
        return problems


def _all_problems(conn: sqlite3.Connection) -> Iterator[str]:
    verdict = conn.execute("PRAGMA integrity_check").fetchone()[0]
    if verdict != "ok":
        yield f"sqlite integrity_check: {verdict}"
    orders: set[str] = set()
    children: list[tuple[str, str]] = []
    for row in conn.execute("SELECT * FROM transactions"):
        orders.add(str(row["order_no"]))
        yield from _transaction_problems(row)
        if row["kind"] in _CHILD_KINDS:
            children.append((str(row["order_no"]), str(row["orig_order_no"])))
    for order_no, orig in children:
        if orig not in orders:
            yield f"transaction {order_no}: original {orig!r} is not in the journal"
    yield from _return_problems(conn)
    yield from _event_problems(conn, orders)
    for row in conn.execute("SELECT * FROM batches"):
        where = f"batch {row['terminal_sn']}/{row['batch_no']}"
        if row["state"] not in _BATCH_STATES:
            yield f"{where}: unknown state {row['state']!r}"
        elif row["state"] == BatchState.CLOSED.value and row["closed_at"] is None:
            yield f"{where}: closed without a closing time"


def _transaction_problems(row: sqlite3.Row) -> Iterator[str]:
    order_no = row["order_no"]
    where = f"transaction {order_no!r}"
    if not isinstance(order_no, str) or ORDER_NO.fullmatch(order_no) is None:
        yield f"{where}: order_no is not 1-32 characters of A-Z a-z 0-9 _ - | * @"
    if row["kind"] not in _KINDS:
        yield f"{where}: unknown kind {row['kind']!r}"
    if row["state"] not in _STATES:
        yield f"{where}: unknown state {row['state']!r}"
    for name in ("provider", "identity"):
        if not isinstance(row[name], str) or not row[name]:
            yield f"{where}: {name} is empty"
    amount, tip, refunded = row["amount"], row["tip"], row["refunded_amount"]
    if not _integer(amount) or amount <= 0:
        yield f"{where}: amount {amount!r} is not a positive integer"
    elif not _integer(tip) or tip < 0:
        yield f"{where}: tip {tip!r} is not an integer of zero or more"
    elif not _integer(refunded) or refunded < 0:
        yield f"{where}: refunded_amount {refunded!r} is not an integer of zero or more"
    if not isinstance(row["currency"], str) or CURRENCY.fullmatch(row["currency"]) is None:
        yield f"{where}: currency {row['currency']!r} is not a currency code"
    if not _json_object(row["fingerprint"]):
        yield f"{where}: fingerprint is not a JSON object"
    created, updated, expires = row["created_at"], row["updated_at"], row["expires_at"]
    if not all(_integer(t) for t in (created, updated, expires)):
        yield f"{where}: a time is not an integer"
    elif not created <= updated or not created <= expires:
        yield f"{where}: times out of order (created {created}, updated {updated}, " \
              f"expires {expires})"
    if row["attention"] is not None and row["attention"] not in _ATTENTION:
        yield f"{where}: unknown attention {row['attention']!r}"
    if row["kind"] in _CHILD_KINDS and not row["orig_order_no"]:
        yield f"{where}: a {row['kind']} without its original"


def _return_problems(conn: sqlite3.Connection) -> Iterator[str]:
    """Originals whose approved voids and refunds return more than they captured."""
    returns, tips = ",".join("?" * len(_RETURN_KINDS)), ",".join("?" * len(_TIP_KINDS))
    approved = ("SELECT COALESCE(SUM(c.amount), 0) FROM transactions AS c"
                " WHERE c.orig_order_no = o.order_no AND c.state = 'approved' AND c.kind IN")
    columns = {row[1] for row in conn.execute("PRAGMA table_info(transactions)")}
    cashback = "o.cashback" if "cashback" in columns else "0"  # a file older than schema 3
    sql = (f"SELECT o.order_no, o.amount, o.tip, {cashback}, ({approved} ({returns})),"  # noqa: S608 (a fixed column name and ? placeholders are formatted in)
           f" ({approved} ({tips})) FROM transactions AS o WHERE EXISTS (SELECT 1"
           " FROM transactions AS c WHERE c.orig_order_no = o.order_no AND c.state = 'approved'"
           f" AND c.kind IN ({returns}))")
    args = (*_RETURN_KINDS, *_TIP_KINDS, *_RETURN_KINDS)
    for order_no, amount, tip, cashback, returned, tip_changes in conn.execute(sql, args):
        captured = amount + tip + tip_changes + cashback
        if returned > captured:
            yield (f"transaction {order_no!r}: its approved voids and refunds return {returned},"
                   f" more than it captured ({captured})")


def _event_problems(conn: sqlite3.Connection, orders: set[str]) -> Iterator[str]:
    last: dict[str, int] = {}
    for row in conn.execute("SELECT * FROM events ORDER BY identity, seq"):
        identity, seq = row["identity"], row["seq"]
        where = f"event {identity}/{seq}"
        previous = last.get(identity)
        if previous is not None and seq != previous + 1:
            yield f"{where}: follows seq {previous} (seq must be contiguous)"
        last[identity] = seq
        if row["method"] not in EVENT_METHODS:
            yield f"{where}: unknown method {row['method']!r}"
        try:
            params = json.loads(row["params"])
        except (TypeError, ValueError):
            yield f"{where}: params are not JSON"
            continue
        if not isinstance(params, dict) or params.get("seq", seq) != seq:
            yield f"{where}: params are not an object (with the row's seq, if any)"
            continue
        if row["method"] == "transaction.updated":
            txn = params.get("transaction")
            order_no = txn.get("order_no") if isinstance(txn, dict) else None
            if not isinstance(order_no, str) or order_no not in orders:
                yield f"{where}: transaction.updated names no transaction of the journal"


def _integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _json_object(text: object) -> bool:
    if not isinstance(text, str):
        return False
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False
