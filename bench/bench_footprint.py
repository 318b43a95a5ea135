"""Memory and start-up: the daemon's resident memory idle and with 1,000 registers, the time
from start to ready on an empty and on a 1,000,000-transaction journal, and ``status`` /
``transactions.list`` at 1,000 and 1,000,000 rows.

    python bench/bench_footprint.py [--rows 1000000] [--registers 1000] [--starts 3]
                                    [--calls 200]

Processes: the simulators (``posbridge simulate``), the daemon (``posbridge serve --config``,
JSON logs to /dev/null) and this driver.

* **ready**: from ``Popen`` of the daemon to its ready file (written once the journal is open,
  recovery has given every live transaction its runner, and both listeners are bound):
  interpreter start and imports included, as an installer sees it (the modules compiled to
  bytecode first, as pip and the .deb do at install time). Median of ``--starts``.
* **recovery scans live rows only**: the same on a journal of ``--rows`` final transactions
  (built here with direct SQLite inserts in the schema the daemon itself creates, newest
  last, in closed batches of 1,000 as a store closes one a day, and an empty open batch),
  which must start as fast as the empty one.
* **RSS** (``VmRSS`` from ``/proc``, in MB of 10^6 bytes as the targets): idle two seconds
  after ready; then with ``--registers``
  WebSocket connections, each a configured register authenticated by its bearer token,
  connected and idle for two seconds.
* **status / transactions.list**: median and p99 of ``--calls`` sequential calls from one
  register at 1,000 rows and at ``--rows`` rows (``status`` of a final transaction, so the
  journal is read; the newest page of 50); they must stay flat.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from procs import (  # bench/procs.py (the script's folder is on sys.path)
    compile_bytecode,
    rss_kib,
    run_header,
    start_simulators,
    stop_all,
    target,
    wait_file,
    write_bridge_config,
)

from posbridge import aio, logs
from posbridge.client import EcrClient
from posbridge.daemon import journal_path
from posbridge.journal import fsync_path, migrate
from posbridge.metrics import percentile

TARGET_IDLE_MB = 60  # 10^6 bytes
TARGET_REGISTERS_MB = 120
TARGET_READY_S = 1.0
TARGET_RECOVERY = 1.2  # ready on the big journal / ready on the empty one
TARGET_FLAT = 2.0  # a call at --rows rows / the same call at 1,000 rows
TERMINAL = "FOOTPRINT0001"
BASE_MS = 1_700_000_000_000
BATCH_ROWS = 1000  # transactions per closed batch in the built journals


def token(k: int) -> str:
    return f"footprint-register-{k:05d}-0123456789abcdef"


def fill_journal(path: Path, rows: int) -> float:
    """``rows`` approved sales in a new journal at ``path`` (the daemon's own schema, applied
    by :func:`posbridge.journal.migrate`), in closed batches of ``BATCH_ROWS``, then an
    empty open batch; seconds it took."""
    t0 = time.perf_counter()
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        migrate(conn, path)
        conn.execute("PRAGMA synchronous=OFF")  # a scratch file: built, then synced once
        columns = [r[1] for r in conn.execute("PRAGMA table_info(transactions)")]
        defaults = {
            "kind": "sale", "provider": "codepay", "identity": "register-0", "amount": 1234,
            "currency": "USD", "state": "approved", "fingerprint": "{}", "tip": 0,
            "terminal_sn": TERMINAL, "batch_no": 1, "auth_no": "123456", "card_brand": "VISA",
            "card_last4": "4242", "refunded_amount": 0, "description": "", "subject": "",
            "body": "", "print_slip": 0, "cancel_requested": 0, "close_sent": 0,
            "create_attempts": 1, "extra": "{}", "cashback": 0, "completed_amount": 0}

        def row(i: int) -> tuple[object, ...]:
            at = BASE_MS + i * 10
            values = {**defaults, "order_no": f"F{i:09d}", "created_at": at, "updated_at": at,
                      "expires_at": at + 180_000, "provider_ref": f"CP{i:012d}",
                      "batch_no": i // BATCH_ROWS + 1}
            return tuple(values.get(c) for c in columns)

        marks = ", ".join("?" * len(columns))
        sql = f"INSERT INTO transactions ({', '.join(columns)}) VALUES ({marks})"
        conn.execute("BEGIN")
        conn.executemany(sql, (row(i) for i in range(rows)))
        closed = (rows + BATCH_ROWS - 1) // BATCH_ROWS
        conn.executemany(
            "INSERT INTO batches (terminal_sn, batch_no, state, opened_at, closed_at,"
            " close_sent) VALUES (?, ?, 'closed', ?, ?, 1)",
            ((TERMINAL, b, BASE_MS + (b - 1) * BATCH_ROWS * 10, BASE_MS + b * BATCH_ROWS * 10)
             for b in range(1, closed + 1)))
        conn.execute("INSERT INTO batches (terminal_sn, batch_no, state, opened_at)"
                     " VALUES (?, ?, 'open', ?)",
                     (TERMINAL, closed + 1, BASE_MS + rows * 10))
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    # On the disk before any timed start, as a journal at rest is: the daemon fsyncs its files
    # when it opens them, and would otherwise pay the write-back of the whole freshly built file.
    fsync_path(path)
    return time.perf_counter() - t0


@dataclasses.dataclass
class Started:
    proc: subprocess.Popen[bytes]
    ports: dict[str, Any]
    ready_s: float


def start_daemon(tmp: Path, config: Path) -> Started:
    ready = tmp / "bridge.json"
    ready.unlink(missing_ok=True)
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "posbridge", "serve", "--config", str(config),
         "--ready-file", str(ready)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not ready.exists():
        if proc.poll() is not None:
            raise SystemExit(f"the daemon exited with {proc.returncode}")
        time.sleep(0.002)
    elapsed = time.perf_counter() - t0
    return Started(proc, wait_file(ready, proc), elapsed)


def stop_daemon(started: Started) -> None:
    started.proc.terminate()
    started.proc.wait(60)


def time_starts(tmp: Path, config: Path, starts: int) -> list[float]:
    times = []
    for _ in range(starts):
        started = start_daemon(tmp, config)
        times.append(started.ready_s)
        stop_daemon(started)
    return times


async def time_calls(url: str, calls: int, order_no: str) -> dict[str, list[float]]:
    """Seconds of each ``status`` and ``transactions.list`` call, alternating."""
    out: dict[str, list[float]] = {"status": [], "transactions.list": []}
    async with await EcrClient.connect(url, token(0)) as ecr:
        for _ in range(10):  # warm-up: connection, read pool, page cache
            await ecr.call("status", {"order_no": order_no})
            await ecr.call("transactions.list", {"limit": 50})
        for _ in range(calls):
            t0 = time.perf_counter()
            await ecr.call("status", {"order_no": order_no})
            t1 = time.perf_counter()
            page = await ecr.call("transactions.list", {"limit": 50})
            t2 = time.perf_counter()
            out["status"].append(t1 - t0)
            out["transactions.list"].append(t2 - t1)
            assert len(page["items"]) == 50
    return out


async def connect_many(url: str, n: int) -> list[EcrClient]:
    clients: list[EcrClient] = []
    for first in range(0, n, 100):  # in waves: the daemon authenticates each at the upgrade
        clients += await asyncio.gather(*(EcrClient.connect(url, token(k))
                                          for k in range(first, min(n, first + 100))))
    return clients


def ms(seconds: list[float]) -> str:
    values = [s * 1000 for s in seconds]
    return f"median {statistics.median(values):.2f} ms, p99 {percentile(values, 0.99):.2f} ms"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--registers", type=int, default=1000)
    ap.add_argument("--starts", type=int, default=3)
    ap.add_argument("--calls", type=int, default=200)
    args = ap.parse_args()
    logs.configure("json", logging.WARNING)
    # One descriptor per register on each side (the daemon inherits the raised limit).
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, 4 * args.registers + 256))
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    compile_bytecode()
    tmp = Path(tempfile.mkdtemp(prefix="posbridge-bench-footprint-"))
    sim_proc, sim = start_simulators(tmp, 0.0)
    running: list[Started] = []
    try:
        print(run_header("bench_footprint"))
        clients = [(f"register-{k}", "cashier", token(k)) for k in range(args.registers)]
        configs = {}
        for name in ("empty", "small", "big"):
            folder = tmp / name
            folder.mkdir()
            (folder / "sim").symlink_to(tmp / "sim")
            configs[name] = write_bridge_config(folder, sim, clients=clients,
                                                terminals=[(TERMINAL, "lane-0")])
        build_small = fill_journal(journal_path(tmp / "small" / "data"), 1000)
        build_big = fill_journal(journal_path(tmp / "big" / "data"), args.rows)
        size = journal_path(tmp / "big" / "data").stat().st_size / 2**20
        print(f"journals built by direct inserts: 1,000 rows in {build_small:.1f} s, "
              f"{args.rows:,} rows in {build_big:.1f} s ({size:,.0f} MiB)")

        empty = time_starts(tmp / "empty", configs["empty"], args.starts)
        big = time_starts(tmp / "big", configs["big"], args.starts)
        print(f"\nstart to ready, median of {args.starts}: empty journal "
              f"{statistics.median(empty):.3f} s ({', '.join(f'{t:.3f}' for t in empty)}); "
              f"{args.rows:,} final rows {statistics.median(big):.3f} s "
              f"({', '.join(f'{t:.3f}' for t in big)})")

        started = start_daemon(tmp / "empty", configs["empty"])
        running.append(started)
        time.sleep(2.0)
        idle_kib = rss_kib(started.proc.pid)
        url = f"ws://127.0.0.1:{started.ports['ecr_port']}/ecr"
        t0 = time.perf_counter()
        registers_kib = aio.run(connect_and_hold(url, args.registers, started.proc.pid))
        connected_s = time.perf_counter() - t0 - 2.0
        stop_daemon(running.pop())
        idle_mb, registers_mb = idle_kib * 1024 / 1e6, registers_kib * 1024 / 1e6
        print(f"RSS: idle {idle_mb:.1f} MB; with {args.registers:,} registers "
              f"{registers_mb:.1f} MB (connected and authenticated in {connected_s:.1f} s)")

        calls = {}
        for name in ("small", "big"):
            started = start_daemon(tmp / name, configs[name])
            running.append(started)
            url = f"ws://127.0.0.1:{started.ports['ecr_port']}/ecr"
            calls[name] = aio.run(time_calls(url, args.calls, "F000000500"))
            stop_daemon(running.pop())
        for what in ("status", "transactions.list"):
            print(f"{what:<18} 1,000 rows: {ms(calls['small'][what])};   {args.rows:,} rows: "
                  f"{ms(calls['big'][what])}")

        flat = {what: statistics.median(calls["big"][what])
                / statistics.median(calls["small"][what]) for what in calls["big"]}
        recovery = statistics.median(big) / statistics.median(empty)
        print("\ntargets")
        print(target("idle RSS", f"{idle_mb:.1f} MB", f"<= {TARGET_IDLE_MB} MB",
                     idle_mb <= TARGET_IDLE_MB))
        print(target(f"RSS with {args.registers:,} idle registers", f"{registers_mb:.1f} MB",
                     f"<= {TARGET_REGISTERS_MB} MB", registers_mb <= TARGET_REGISTERS_MB))
        print(target("start to ready, empty journal", f"{statistics.median(empty):.3f} s",
                     f"<= {TARGET_READY_S:g} s", statistics.median(empty) <= TARGET_READY_S))
        print(target(f"start to ready, {args.rows:,} final rows / empty",
                     f"{recovery:.2f}", f"<= {TARGET_RECOVERY} (no scan of final rows)",
                     recovery <= TARGET_RECOVERY))
        for what, ratio in flat.items():
            print(target(f"{what}, {args.rows:,} rows / 1,000 rows", f"{ratio:.2f}",
                         f"<= {TARGET_FLAT} (flat)", ratio <= TARGET_FLAT))
    finally:
        stop_all([*(s.proc for s in running), sim_proc], tmp)


async def connect_and_hold(url: str, n: int, pid: int) -> int:
    """Connect ``n`` registers, let them idle two seconds; the daemon's RSS then (KiB)."""
    clients = await connect_many(url, n)
    try:
        await asyncio.sleep(2.0)
        return rss_kib(pid)
    finally:
        await asyncio.gather(*(c.close() for c in clients))


if __name__ == "__main__":
    main()
