"""Journal care and reload from the command line: ``posbridge backup``, ``posbridge journal
check|prune`` and ``posbridge reload``.

Each works beside a running daemon (see :mod:`posbridge.journal_care`): ``backup`` and
``journal check`` only read; ``journal prune`` writes in short transactions as the daemon's own
pruning does (and is audited as ``cli``); ``reload`` signals the daemon (SIGHUP) and prints the
outcome of its reload from the audit trail. Run them as the daemon's user (``posbridge``), which
owns the journal. Exit codes: 0 success, 1 a failure (``journal check``: a problem found;
``reload``: the reload was refused or failed, or no daemon runs), 2 bad usage or configuration.
"""

from __future__ import annotations

import argparse
import functools
import os
import signal
import sqlite3
import sys
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any, Final

from posbridge.audit import CONFIG_RELOAD
from posbridge.audit_log import AuditQuery, select
from posbridge.config import DEFAULT_CONFIG_PATH, Config, load_config
from posbridge.errors import ConfigError, JournalError
from posbridge.journal_care import audit_head, backup, check_journal, open_readonly, prune_file
from posbridge.pidfile import running_pid
from posbridge.views import rfc3339

# How long ``reload`` waits for the daemon's record of the reload (polls, then gives up).
RELOAD_POLL_S: Final = 0.05
RELOAD_POLLS: Final = 600


def add_config_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, default=DEFAULT_CONFIG_PATH,
                   help=f"the daemon's configuration file (default {DEFAULT_CONFIG_PATH})")


def journal_of(config_path: Path) -> Path:
    """The journal file of the configuration at ``config_path`` (ConfigError if it is bad)."""
    return _journal(load_config(config_path))


def _journal(config: Config) -> Path:
    from posbridge.daemon import journal_path

    return journal_path(config.bridge.data_dir)


def register_commands(sub: Any) -> None:
    p = sub.add_parser("backup", help="copy the journal (online, consistent while serving)")
    add_config_option(p)
    p.add_argument("dest", type=Path, help="the backup file to write")
    p.add_argument("--force", action="store_true", help="replace DEST if it exists")
    p.set_defaults(func=_cmd_backup)
    j = sub.add_parser("journal", help="journal care: check, prune")
    journal_sub = j.add_subparsers(dest="journal_command", metavar="{check,prune}",
                                   required=True)
    c = journal_sub.add_parser("check", help="SQLite's integrity check and the bridge's "
                                             "invariants; exit 1 naming each problem")
    add_config_option(c)
    c.add_argument("--journal", type=Path,
                   help="check this file instead (e.g. a backup before restoring it)")
    c.set_defaults(func=_cmd_check)
    r = journal_sub.add_parser("prune", help="remove what [bridge] retention_days no longer "
                                             "keeps")
    add_config_option(r)
    r.set_defaults(func=_cmd_prune)
    h = sub.add_parser("reload", help="make the running daemon read its configuration again "
                                      "(tokens and manager PIN)")
    add_config_option(h)
    h.set_defaults(func=_cmd_reload)


Command = Callable[[argparse.Namespace], int]


def journal_command(body: Command) -> Command:
    """``body`` as a command: a configuration error exits 2, a journal error 1, each said in
    one line on standard error."""

    @functools.wraps(body)
    def command(args: argparse.Namespace) -> int:
        try:
            return body(args)
        except ConfigError as exc:
            print(f"posbridge: configuration error: {exc}", file=sys.stderr)
            return 2
        except JournalError as exc:
            print(f"posbridge: {exc}", file=sys.stderr)
            return 1

    return command


@journal_command
def _cmd_backup(args: argparse.Namespace) -> int:
    report = backup(journal_of(args.config), args.dest, force=args.force)
    head = f", audit head {report.audit_head}" if report.audit_head else ""
    print(f"backup written to {report.dest}: {report.size} bytes, schema version "
          f"{report.schema_version}, {report.transactions} transactions{head}")
    return 0


@journal_command
def _cmd_check(args: argparse.Namespace) -> int:
    path = args.journal if args.journal is not None else journal_of(args.config)
    report = check_journal(path)
    for problem in report.problems:
        print(f"problem: {problem}")
    if report.problems:
        print(f"journal {path}: {len(report.problems)} problem(s)", file=sys.stderr)
        return 1
    print(f"journal OK: {path}: {report.transactions} transactions, {report.batches} "
          f"batches, audit chain whole ({report.audit_head})")
    return 0


@journal_command
def _cmd_prune(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    days = config.bridge.retention_days
    if days == 0:
        print("[bridge] retention_days is 0: everything is kept, nothing was pruned")
        return 0
    report = prune_file(_journal(config), retention_days=days)
    print(f"pruned {report.transactions} transactions and {report.events} events older "
          f"than {rfc3339(report.cutoff)} (retention {days} days; transactions one day "
          f"later); {report.batch_totals_kept} batches had their totals stored")
    return 0


@journal_command
def _cmd_reload(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    pid = running_pid(config.bridge.data_dir)
    if pid is None:
        print(f"posbridge: no daemon is running with the data folder "
              f"{config.bridge.data_dir}", file=sys.stderr)
        return 1
    path = _journal(config)
    with closing(open_readonly(path)) as conn:
        head = audit_head(conn)
        if head is None:
            raise JournalError(f"the journal at {path} has no audit trail yet")
        try:
            os.kill(pid, signal.SIGHUP)
        except OSError as exc:
            raise JournalError(f"cannot signal the daemon (pid {pid}): "
                               f"{exc.strerror or exc}") from exc
        newest = AuditQuery(action=CONFIG_RELOAD, limit=1)
        for _ in range(RELOAD_POLLS):  # bounded: about half a minute
            try:
                done = [r for r in select(conn, newest) if r.seq > head.seq]
            except sqlite3.Error as exc:
                raise JournalError(f"cannot read the audit trail: {exc}") from exc
            if done:
                print(f"reload: {done[0].outcome}")
                return 0 if done[0].ok else 1
            time.sleep(RELOAD_POLL_S)
    print(f"posbridge: the daemon (pid {pid}) recorded no reload; see its log",
          file=sys.stderr)
    return 1
