"""``posbridge audit list|export|verify``: the audit trail of a journal, from the command line.

Each reads the journal named by the configuration's ``data_dir`` through a read-only connection,
so it works while the daemon runs (and changes nothing). Exit codes: 0 success (``verify``: the
chain is whole), 1 a failure (``verify``: the chain is broken, the first broken record is named;
or the journal cannot be read), 2 bad usage or configuration.

A record as ``--json`` and ``export --format jsonl`` write it, one JSON object a line::

    {"seq": 7, "at": "2026-12-02T09:14:03.120Z", "at_ms": 1796202843120, "actor": "lane-1",
     "peer": "10.0.0.21", "action": "void", "order_no": "V7", "terminal": "SN01",
     "outcome": "refused: wrong manager PIN", "detail": {...}, "prev_hash": "...", "hash": "..."}

``at_ms`` and the two hashes let anyone check the chain again (see :mod:`posbridge.audit`).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sqlite3
import sys
from contextlib import closing
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from posbridge.audit import AuditRecord, ChainHead, parse_anchor, verify_chain
from posbridge.audit_log import AuditQuery, all_records, select
from posbridge.cli_journal import add_config_option, journal_command, journal_of
from posbridge.errors import JournalError
from posbridge.journal_care import open_readonly
from posbridge.views import rfc3339

#: The columns of ``export --format csv`` (detail as a JSON object).
CSV_COLUMNS = ("seq", "at", "at_ms", "actor", "peer", "action", "order_no", "terminal",
               "outcome", "detail", "prev_hash", "hash")


def register_commands(sub: Any) -> None:
    p = sub.add_parser("audit", help="the audit trail: list, export, verify")
    audit_sub = p.add_subparsers(dest="audit_command", metavar="{list,export,verify}",
                                 required=True)
    ls = audit_sub.add_parser("list", help="the audit records, oldest first")
    _filters(ls)
    ls.add_argument("--json", action="store_true", help="one JSON object a line")
    ls.set_defaults(func=_cmd_list)
    ex = audit_sub.add_parser("export", help="the audit records as CSV or JSON lines")
    _filters(ex)
    ex.add_argument("--format", choices=("csv", "jsonl"), required=True)
    ex.add_argument("--output", type=Path, help="write to this file (default: standard output)")
    ex.add_argument("--force", action="store_true", help="replace an existing --output file")
    ex.set_defaults(func=_cmd_export)
    ve = audit_sub.add_parser("verify", help="check the hash chain; exit 1 naming the first "
                                             "broken record")
    add_config_option(ve)
    ve.add_argument("--anchor", type=_anchor, metavar="SEQ:HASH",
                    help="a head printed by an earlier verify: that record must still be there "
                         "with that hash")
    ve.set_defaults(func=_cmd_verify)


def _filters(p: argparse.ArgumentParser) -> None:
    add_config_option(p)
    p.add_argument("--since", type=_since, metavar="WHEN",
                   help="from this time on: 2026-12-01, 2026-12-01T18:00 (local time) or "
                        "RFC 3339 with its offset")
    p.add_argument("--action", help="only this action (void, batch.close, manager.login, ...)")
    p.add_argument("--actor", help="only this actor (a register, manager:<label>, cli, system)")
    p.add_argument("--order-no", help="only records whose order number or terminal contains "
                                      "this")
    p.add_argument("--limit", type=_positive, help="only the newest this many")


def _since(text: str) -> int:
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a date or time: {text!r}") from exc
    return int(when.timestamp() * 1000)  # a time without an offset is local time


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) == 0:
        raise argparse.ArgumentTypeError(f"not a positive whole number: {text!r}")
    return int(text)


def _anchor(text: str) -> ChainHead:
    try:
        return parse_anchor(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def record_view(rec: AuditRecord) -> dict[str, object]:
    """A record as the JSON outputs write it (see the module docstring)."""
    return {"seq": rec.seq, "at": rfc3339(rec.at), "at_ms": rec.at, "actor": rec.actor,
            "peer": rec.peer, "action": rec.action, "order_no": rec.order_no,
            "terminal": rec.terminal, "outcome": rec.outcome, "detail": dict(rec.detail),
            "prev_hash": rec.prev_hash, "hash": rec.hash}


def _records(args: argparse.Namespace) -> list[AuditRecord]:
    query = AuditQuery(since_ms=args.since, action=args.action, actor=args.actor,
                       search=args.order_no, limit=args.limit)
    with closing(open_readonly(journal_of(args.config))) as conn:
        try:
            return select(conn, query)
        except sqlite3.Error as exc:  # e.g. no audit table: a journal not upgraded yet
            raise JournalError(f"cannot read the audit trail: {exc}") from exc


@journal_command
def _cmd_list(args: argparse.Namespace) -> int:
    records = _records(args)
    if args.json:
        for rec in records:
            print(json.dumps(record_view(rec), ensure_ascii=False))
        return 0
    print(f"{'SEQ':>6}  {'TIME':<19}  {'WHO':<20} {'FROM':<15} {'ACTION':<14} "
          f"{'ORDER/TERMINAL':<24} OUTCOME")
    for rec in records:
        where = rec.order_no or rec.terminal or ""
        when = datetime.fromtimestamp(rec.at / 1000).strftime("%Y-%m-%d %H:%M:%S")
        print(f"{rec.seq:>6}  {when:<19}  {rec.actor:<20} {rec.peer:<15} {rec.action:<14} "
              f"{where:<24} {rec.outcome}")
    return 0


@journal_command
def _cmd_export(args: argparse.Namespace) -> int:
    if args.output is not None and args.output.exists() and not args.force:
        raise JournalError(f"{args.output} exists: name another file, or give --force")
    records = _records(args)
    if args.output is None:
        _write(sys.stdout, records, args.format)
        return 0
    buffer = io.StringIO()
    _write(buffer, records, args.format)
    partial = args.output.with_name(args.output.name + ".partial")
    try:
        partial.write_text(buffer.getvalue(), encoding="utf-8")
        partial.replace(args.output)
    except OSError as exc:
        raise JournalError(f"cannot write {args.output}: {exc.strerror or exc}") from exc
    print(f"{len(records)} audit records written to {args.output}", file=sys.stderr)
    return 0


def _write(out: TextIO, records: list[AuditRecord], fmt: str) -> None:
    if fmt == "jsonl":
        for rec in records:
            out.write(json.dumps(record_view(rec), ensure_ascii=False) + "\n")
        return
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for rec in records:
        row = record_view(rec)
        row["detail"] = json.dumps(row["detail"], sort_keys=True, ensure_ascii=False)
        writer.writerow(row)


@journal_command
def _cmd_verify(args: argparse.Namespace) -> int:
    with closing(open_readonly(journal_of(args.config))) as conn:
        try:
            conn.execute("BEGIN")  # one committed state from the first record to the last
            verdict = verify_chain(all_records(conn), anchor=args.anchor)
            conn.execute("ROLLBACK")
        except sqlite3.Error as exc:  # e.g. no audit table: a journal not upgraded yet
            raise JournalError(f"cannot read the audit trail: {exc}") from exc
    if isinstance(verdict, ChainHead):
        print(f"audit chain whole: {verdict.seq} records; head {verdict} "
              "(note it: `audit verify --anchor` checks it later)")
        return 0
    print(f"audit chain broken at {verdict}", file=sys.stderr)
    return 1
