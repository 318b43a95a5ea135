"""A closed batch's totals, kept with it: its history stays as it was when old transactions are
pruned (:mod:`posbridge.journal_care`).

A batch closed by this version stores its totals in the unit that closes it; a batch closed
before (or by release 0.1.0) gets them stored by the pruning unit, from its rows, before the
first of them is removed. Until then its totals are worked out from the rows as always.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3

from posbridge.records import Totals


def store(conn: sqlite3.Connection, terminal_sn: str, batch_no: int,
          totals: dict[str, Totals]) -> None:
    """Keep ``totals`` (by currency) with the batch; inside a write transaction."""
    text = json.dumps({cur: dataclasses.asdict(t) for cur, t in totals.items()},
                      sort_keys=True, separators=(",", ":"))
    conn.execute("INSERT OR REPLACE INTO batch_totals (terminal_sn, batch_no, totals)"
                 " VALUES (?, ?, ?)", (terminal_sn, batch_no, text))


def stored(conn: sqlite3.Connection, terminal_sn: str, batch_no: int) -> dict[str, Totals] | None:
    """The totals kept with the batch, or None when it has none (then they come from its rows)."""
    row = conn.execute("SELECT totals FROM batch_totals WHERE terminal_sn = ? AND batch_no = ?",
                       (terminal_sn, batch_no)).fetchone()
    if row is None:
        return None
    return {cur: Totals(**values) for cur, values in json.loads(row[0]).items()}
