"""Card sale latency and throughput through the bridge, against the same simulator called
directly (signing and verification, no bridge), measured in one run.

    python bench/bench_sale.py [--sales 300] [--registers 200] [--seconds 8]
                               [--approve-delay 0] [--profile-bridge FILE] [--py-spy FILE]

Three processes on this machine: the CodePay simulator (``posbridge simulate``), the daemon
(``posbridge serve``, JSON logs to /dev/null, journal on the local disk) and this driver.
The simulator's ``--approve-delay`` is one setting of the one simulator process, so the
bridge and the direct baseline see the same terminal.

* latency, one register: sequential sales through the bridge (``sale`` with ``wait``: the
  register's view, request sent to the final ``approved`` answer received) vs. the driver
  itself doing ``create`` + ``query`` until approved with the bridge's own CodePay client
  (signing every request, verifying every answer) — best case for the baseline: it queries
  again at once, where the bridge waits for the signed notification. The two alternate in
  blocks so that drift (CPU frequency, page cache) hits both alike;
* throughput: ``--registers`` WebSocket connections (one configured register identity and one
  terminal each, as in a store) running sales back to back for ``--seconds``; a sale counts
  once its register has the final answer. The same number of direct clients, each doing
  create + query loops against the simulator, gives the simulator's own ceiling on this
  machine in the same run. CPU seconds of each process over each phase are read from
  ``/proc`` (Linux), so the report says which process was the bottleneck;
* the floor: the bridge's provider work is what the direct client does per sale, so a bridge
  costing no more CPU than that client, beside this simulator and these registers, could do
  at most the printed sales/s on the CPU that other processes left to these three.

Every target is printed with its figure and ``met`` / ``MISSED``; the first line gives the
date, the commit, the load average and a yardstick of the machine's speed (one RSA-2048
signature timed in the same run).

Register tokens are hashed with a cheap scrypt cost (``ln=4``) so 200 registers configure in
a second; authentication happens before any timed phase.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from procs import (  # bench/procs.py (the script's folder is on sys.path)
    run_header,
    stop_all,
    target,
    wait_file,
    write_bridge_config,
)

from posbridge import aio, logs
from posbridge.client import EcrClient
from posbridge.errors import OutcomeUnknown
from posbridge.keyfiles import load_private_key, load_public_key
from posbridge.metrics import percentile
from posbridge.providers.base import Outcome, PaymentOrder, TxnKind
from posbridge.providers.codepay.client import CodePayProvider
from posbridge.sandbox.codepay_sim import APP_ID, MERCHANT_NO

BLOCK = 25  # latency: direct and bridged alternate in blocks of this many sales
TARGET_MEDIAN = 1.3  # latency, one register: bridge / direct, median
TARGET_P99 = 1.6  # and p99
TARGET_CPU = 1.3  # CPU per sale with 200 registers: bridge / direct client
TARGET_FLOOR = 0.85  # sales/s through the bridge / the floor


def token(k: int) -> str:
    return f"bench-register-token-{k:04d}-0123456789abcdef"


def terminal_sn(k: int) -> str:
    return f"BENCH{k:012d}"


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (Linux /proc), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot (Linux /proc/stat; idle+iowait are idle)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    total = sum(values[:8])  # user nice system idle iowait irq softirq steal (guest is in user)
    return total - values[3] - values[4], total


class CpuMeter:
    """CPU seconds used by each named process between start() and stop()."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self._t0 = 0.0
        self._c0: dict[str, float] = {}
        self._m0 = (0, 0)
        self.per_sale: dict[str, float] = {}  # seconds of CPU per sale, of the last stop(sales)
        self.left_cores = 0.0  # cores not taken by other processes, over the last stop()

    def start(self) -> None:
        self._t0 = time.perf_counter()
        self._c0 = {n: cpu_seconds(p) for n, p in self.pids.items()}
        self._m0 = machine_jiffies()

    def stop(self, sales: int = 0) -> str:
        """Each process's CPU share of the wall time; with ``sales``, also its CPU per sale,
        and what that sum allows on this machine's cores (the CPU budget of a sale)."""
        wall = time.perf_counter() - self._t0
        used = {n: cpu_seconds(p) - self._c0[n] for n, p in self.pids.items()}
        busy, total = (b - a for a, b in zip(self._m0, machine_jiffies(), strict=True))
        cores = os.cpu_count() or 1
        others = max(0.0, busy / max(total, 1) * cores - sum(used.values()) / wall)
        self.left_cores = cores - others
        if not sales:
            return "   cpu: " + ", ".join(f"{n} {100 * s / wall:.0f}%" for n, s in used.items())
        self.per_sale = {n: s / sales for n, s in used.items()}
        per_sale = sum(used.values()) / sales
        return ("   cpu: " + ", ".join(f"{n} {100 * s / wall:.0f}% ({1000 * s / sales:.2f} ms/sale)"
                                       for n, s in used.items() if s > 0)
                + f"\n   budget: {1000 * per_sale:.2f} ms of CPU per sale in all; {cores} cores"
                f" allow at most {cores / per_sale:.0f} sales/s; the machine was"
                f" {100 * busy / max(total, 1):.0f}% busy, other processes took"
                f" {others:.2f} cores")


def describe(name: str, seconds: list[float]) -> str:
    ms = [s * 1000 for s in seconds]
    return (f"{name:<26} n={len(ms):<5} median {statistics.median(ms):7.2f} ms"
            f"   p99 {percentile(ms, 0.99):7.2f} ms")


class Direct:
    """The baseline: the bridge's CodePay client straight to the simulator."""

    def __init__(self, sim: dict[str, Any], keys: Path) -> None:
        self.provider = CodePayProvider(
            base_url=sim["codepay"], app_id=APP_ID, merchant_no=MERCHANT_NO, store_no=None,
            private_key=load_private_key((keys / "merchant_private.pem").read_bytes()),
            gateway_public_key=load_public_key(
                (keys / "codepay_gateway_public.pem").read_bytes()),
            notify_url=None, expires_s=60, timeout_s=30)

    async def sale(self, order_no: str, sn: str) -> float:
        order = PaymentOrder(order_no=order_no, kind=TxnKind.SALE, amount=100,
                             currency="USD", terminal_sn=sn, description="bench")
        t0 = time.perf_counter()
        await self.provider.create(order)
        while True:
            try:
                report = await self.provider.query(order)
            except OutcomeUnknown:
                continue
            if report.outcome is Outcome.APPROVED:
                return time.perf_counter() - t0
            if report.outcome is not Outcome.PENDING:
                raise SystemExit(f"direct sale {order_no}: {report.outcome}")


async def bridged_sale(ecr: EcrClient, order_no: str, terminal: str) -> float:
    t0 = time.perf_counter()
    txn = await ecr.call("sale", {"terminal": terminal, "order_no": order_no,
                                  "amount": "1.00", "currency": "USD"}, timeout=120)
    elapsed = time.perf_counter() - t0
    if txn["state"] != "approved":
        raise SystemExit(f"bridged sale {order_no}: {txn['state']}")
    return elapsed


async def rate(lanes: int, seconds: float,
               sale: Callable[[int, int], Awaitable[float]]) -> tuple[int, float, list[float]]:
    """``lanes`` loops of back-to-back sales until ``seconds`` pass; every sale started is
    waited for, and the elapsed time runs until the last one finished."""
    stop_at = time.perf_counter() + seconds
    latencies: list[float] = []

    async def lane(k: int) -> None:
        i = 0
        while time.perf_counter() < stop_at:
            latencies.append(await sale(k, i))
            i += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(lane(k) for k in range(lanes)))
    return len(latencies), time.perf_counter() - t0, latencies


def scrape(http: str) -> dict[str, float]:
    """The bridge's /metrics as {"name{labels}": value}."""
    with urllib.request.urlopen(f"{http}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
    return out


def breakdown(before: dict[str, float], after: dict[str, float]) -> str:
    """What the bridge's own metrics say about one phase (differences of counters)."""
    def delta(key: str) -> float:
        return after.get(key, 0.0) - before.get(key, 0.0)

    parts = []
    for what in ("create", "query"):
        key = f'posbridge_provider_request_seconds_{{}}{{{{method="{what}",provider="codepay"}}}}'
        n = delta(key.format("count"))
        if n:
            parts.append(f"{what} {n:.0f} x {1000 * delta(key.format('sum')) / n:.1f} ms")
    n = delta("posbridge_journal_commit_seconds_count")
    if n:
        parts.append(f"journal commits {n:.0f} x "
                     f"{1000 * delta('posbridge_journal_commit_seconds_sum') / n:.2f} ms"
                     f" ({delta('posbridge_journal_fsyncs_total'):.0f} fsyncs)")
    lag = "posbridge_event_loop_lag_seconds_bucket"
    buckets = sorted((float(k.split('le="')[1].split('"')[0]), delta(k))
                     for k in after if k.startswith(lag))
    total = buckets[-1][1] if buckets else 0.0
    if total:
        bound = next(le for le, cum in buckets if cum >= 0.99 * total)
        parts.append(f"loop lag p99 <= {bound * 1000:g} ms ({total:.0f} samples)")
    return "   bridge: " + ", ".join(parts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sales", type=int, default=300, help="latency: sales of each kind")
    ap.add_argument("--registers", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=8.0, help="each throughput phase")
    ap.add_argument("--approve-delay", type=float, default=0.0,
                    help="the simulated terminal's time per card (same for both sides)")
    ap.add_argument("--profile-bridge", type=Path, default=None,
                    help="run the daemon under cProfile and write the stats here")
    ap.add_argument("--py-spy", type=Path, default=None,
                    help="sample the daemon with py-spy during the bridged throughput phase "
                         "and write its raw (collapsed) stacks here; see bench/spy_top.py")
    args = ap.parse_args()
    registers = max(1, args.registers)
    logs.configure("json", logging.WARNING)  # the driver's CodePay client: no debug lines
    tmp = Path(tempfile.mkdtemp(prefix="posbridge-bench-"))
    sim_proc = subprocess.Popen(
        [sys.executable, "-m", "posbridge", "simulate", "--data-dir", str(tmp / "sim"),
         "--ready-file", str(tmp / "sim.json"), "--approve-delay", str(args.approve_delay)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    bridge_proc: subprocess.Popen[bytes] | None = None
    try:
        sim = wait_file(tmp / "sim.json", sim_proc)
        keys = tmp / "sim" / "keys"
        config = write_bridge_config(
            tmp, sim, clients=[(f"register-{k}", "cashier", token(k)) for k in range(registers)],
            terminals=[(terminal_sn(k), f"lane-{k}") for k in range(registers)], expires_s=120)
        profile = (["-m", "cProfile", "-o", str(args.profile_bridge)]
                   if args.profile_bridge else [])
        bridge_proc = subprocess.Popen(
            [sys.executable, *profile, "-m", "posbridge", "serve", "--config", str(config),
             "--ready-file", str(tmp / "bridge.json")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        ports = wait_file(tmp / "bridge.json", bridge_proc)
        url = f"ws://127.0.0.1:{ports['ecr_port']}/ecr"
        http = f"http://127.0.0.1:{ports['http_port']}"
        meter = CpuMeter({"bridge": bridge_proc.pid, "simulator": sim_proc.pid,
                          "driver": os.getpid()})
        print(run_header("bench_sale") + f"; approve delay {args.approve_delay} s")
        aio.run(run(args, registers, sim, keys, url, http, meter))
    finally:
        stop_all([bridge_proc, sim_proc], tmp)


async def run(args: argparse.Namespace, registers: int, sim: dict[str, Any], keys: Path,
              url: str, http: str, meter: CpuMeter) -> None:
    direct = Direct(sim, keys)
    pid = os.getpid()
    # The latency target is for one register: the others connect after that phase.
    clients = [await EcrClient.connect(url, token(0))]
    try:
        # -- latency, one register ---------------------------------------------------------
        ecr = clients[0]
        for i in range(20):  # warm-up: connections, caches, the journal file
            await bridged_sale(ecr, f"W{pid}x{i}", "lane-0")
            await direct.sale(f"V{pid}x{i}", terminal_sn(0))
        d: list[float] = []
        b: list[float] = []
        m0 = scrape(http)
        meter.start()
        while len(d) < args.sales:
            n = min(BLOCK, args.sales - len(d))
            for _ in range(n):
                d.append(await direct.sale(f"D{pid}x{len(d)}", terminal_sn(0)))
            for _ in range(n):
                b.append(await bridged_sale(ecr, f"B{pid}x{len(b)}", "lane-0"))
        cpu = meter.stop()
        m1 = scrape(http)
        print("\nlatency, one register (sequential sales)" + cpu)
        print(breakdown(m0, m1))
        print(describe("direct (sign+verify)", d))
        print(describe("through the bridge", b))
        median = statistics.median(b) / statistics.median(d)
        p99 = percentile(b, 0.99) / percentile(d, 0.99)
        results = [
            target("latency, one register, bridge/direct median", f"{median:.2f}",
                   f"<= {TARGET_MEDIAN}", median <= TARGET_MEDIAN),
            target("latency, one register, bridge/direct p99", f"{p99:.2f}",
                   f"<= {TARGET_P99}", p99 <= TARGET_P99)]
        print("\n".join(results[-2:]))

        # -- throughput ----------------------------------------------------------------------
        clients += await asyncio.gather(*(EcrClient.connect(url, token(k))
                                          for k in range(1, registers)))
        async def direct_sale(k: int, i: int) -> float:
            return await direct.sale(f"E{pid}x{k}x{i}", terminal_sn(k))

        async def bridge_sale(k: int, i: int) -> float:
            return await bridged_sale(clients[k], f"T{pid}x{k}x{i}", f"lane-{k}")

        # Warm-up: one untimed sale per lane on each side. A terminal's first answer
        # announces it on-line (a terminal.status event to every register: 200 x 200 events
        # once after a start), and connections to the simulator open.
        await asyncio.gather(*(direct.sale(f"U{pid}x{k}", terminal_sn(k))
                               for k in range(registers)))
        await asyncio.gather(*(bridged_sale(c, f"X{pid}x{k}", f"lane-{k}")
                               for k, c in enumerate(clients)))
        meter.start()
        n_d, t_d, lat_d = await rate(registers, args.seconds, direct_sale)
        cpu_d = meter.stop(n_d)
        direct_client = meter.per_sale["driver"]
        m0 = scrape(http)
        spy = None
        if args.py_spy:
            spy = subprocess.Popen(
                [str(Path(sys.executable).with_name("py-spy")), "record", "-p",
                 str(meter.pids["bridge"]), "-r", "200", "-d", str(int(args.seconds)), "-f",
                 "raw", "-o", str(args.py_spy)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        meter.start()
        n_b, t_b, lat_b = await rate(registers, args.seconds, bridge_sale)
        cpu_b = meter.stop(n_b)
        if spy is not None:
            spy.wait()
        # The bridge's provider work (sign, verify two answers, one HTTP request out, one in)
        # is what the direct client does; with no other cost, this is the machine's ceiling.
        floor = direct_client + meter.per_sale["simulator"] + meter.per_sale["driver"]
        floor_rate = meter.left_cores / floor
        cpu_b += (f"\n   floor: a bridge costing no more CPU than the direct client "
                  f"({1000 * direct_client:.2f} ms/sale) would still need {1000 * floor:.2f} ms"
                  f" per sale in all: at most {(os.cpu_count() or 1) / floor:.0f} sales/s on"
                  f" all cores, {floor_rate:.0f} sales/s on the {meter.left_cores:.2f} cores"
                  f" other processes left")
        bridge_cpu = meter.per_sale["bridge"]
        m1 = scrape(http)
        print(f"\nthroughput, {registers} concurrent lanes, {args.seconds:g} s each")
        print(f"direct (sign+verify)  {n_d:6} sales in {t_d:5.1f} s = {n_d / t_d:6.0f} sales/s"
              f"   median {statistics.median(lat_d) * 1000:6.1f} ms\n" + cpu_d)
        print(f"through the bridge    {n_b:6} sales in {t_b:5.1f} s = {n_b / t_b:6.0f} sales/s"
              f"   median {statistics.median(lat_b) * 1000:6.1f} ms\n" + cpu_b)
        print(breakdown(m0, m1))
        rb = n_b / t_b
        cpu_ratio = bridge_cpu / direct_client
        results += [
            target(f"CPU per sale, {registers} registers, bridge/direct client",
                   f"{1000 * bridge_cpu:.2f} / {1000 * direct_client:.2f} ms = {cpu_ratio:.2f}",
                   f"<= {TARGET_CPU}", cpu_ratio <= TARGET_CPU),
            target("throughput through the bridge / the floor",
                   f"{rb:.0f} / {floor_rate:.0f} sales/s = {rb / floor_rate:.2f}",
                   f">= {TARGET_FLOOR}", rb >= TARGET_FLOOR * floor_rate)]
        print(f"ratio bridge/direct sales/s {rb / (n_d / t_d):.2f}")
        print("\ntargets\n" + "\n".join(results))
    finally:
        await asyncio.gather(*(c.close() for c in clients))
        await direct.provider.aclose()


if __name__ == "__main__":
    main()
