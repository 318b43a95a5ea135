"""Card sale latency and throughput through the bridge, against the same simulator called
directly (signing and verification, no bridge), measured in one run.

    python bench/bench_sale.py [--sales 300] [--registers 200] [--seconds 8] [--windows 4]
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
  terminal each, as in a store) running sales back to back; a sale counts once its register
  has the final answer. The same number of direct clients, each doing create + query loops
  against the simulator, gives the simulator's own ceiling on this machine in the same run.
  Each side is measured for ``--seconds`` in all, in ``--windows`` windows that alternate
  with the other side's (the machine's drift falls on both alike); a window opens once every
  lane is busy and counts the sales that finish in it, beside the CPU seconds each process
  used in it (``/proc``, Linux), so the report says which process was the bottleneck, and
  which of the bridge's threads;
* the floor: the bridge's provider work is what the direct client does per sale, so a bridge
  costing no more CPU than that client, beside this simulator and these registers, could do
  at most the printed sales/s on the CPU that other processes left to these three;
* what the bridge adds (printed, not a target): the median latency it adds to a sale in fsync
  yardsticks, and the CPU it adds to a sale in Python yardsticks (the direct client signs one
  request more per sale, its query, so these move with the RSA speed as well).

Every target is printed with its figure and ``met`` / ``MISSED``; the first lines give the
date, the commit, the load average, three yardsticks of the machine timed in the same run
(one RSA-2048 signature, the direct client's main cost; the interpreter's speed and one
fsync, which the bridge's own work and durable writes follow) and the versions of the
libraries measured.

Register tokens are hashed with a cheap scrypt cost (``ln=4``) so 200 registers configure in
a second; authentication happens before any timed phase.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from procs import (  # bench/procs.py (the script's folder is on sys.path)
    Yardsticks,
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
RAMP_S = 1.0  # throughput: seconds from the lanes' start until a window is measured
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
    return cpu_seconds_of(Path(f"/proc/{pid}/stat"))


def cpu_seconds_of(stat: Path) -> float:
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot (Linux /proc/stat; idle+iowait are idle)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    total = sum(values[:8])  # user nice system idle iowait irq softirq steal (guest is in user)
    return total - values[3] - values[4], total


@dataclass
class Usage:
    """What the processes used over one measured window, or the sum of several."""

    wall: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)  # seconds, per named process
    loop: float = 0.0  # seconds of the bridge's event-loop thread (its main thread)
    busy: int = 0  # jiffies of the whole machine
    total: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.wall + other.wall,
                     {n: self.cpu.get(n, 0.0) + other.cpu.get(n, 0.0)
                      for n in self.cpu.keys() | other.cpu.keys()},
                     self.loop + other.loop, self.busy + other.busy, self.total + other.total)


@dataclass
class Snapshot:
    at: float
    cpu: dict[str, float]
    loop: float
    jiffies: tuple[int, int]

    def __sub__(self, before: Snapshot) -> Usage:
        return Usage(self.at - before.at, {n: s - before.cpu[n] for n, s in self.cpu.items()},
                     self.loop - before.loop, self.jiffies[0] - before.jiffies[0],
                     self.jiffies[1] - before.jiffies[1])


class CpuMeter:
    """CPU seconds used by each named process (``bridge`` among them) between snapshots."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self._start: Snapshot | None = None

    def snapshot(self) -> Snapshot:
        bridge = self.pids["bridge"]
        return Snapshot(time.perf_counter(), {n: cpu_seconds(p) for n, p in self.pids.items()},
                        cpu_seconds_of(Path(f"/proc/{bridge}/task/{bridge}/stat")),
                        machine_jiffies())

    def start(self) -> None:
        self._start = self.snapshot()

    def stop(self) -> Usage:
        assert self._start is not None
        return self.snapshot() - self._start


def per_sale(usage: Usage, sales: int) -> dict[str, float]:
    """Seconds of CPU per sale of each process."""
    return {n: s / max(sales, 1) for n, s in usage.cpu.items()}


def left_cores(usage: Usage) -> float:
    """The cores that processes other than these left to them, over ``usage``."""
    cores = os.cpu_count() or 1
    others = max(0.0, usage.busy / max(usage.total, 1) * cores
                 - sum(usage.cpu.values()) / max(usage.wall, 1e-9))
    return cores - others


def cpu_report(usage: Usage, sales: int = 0) -> str:
    """Each process's CPU share of the wall time; with ``sales``, also its CPU per sale, and
    what that sum allows on this machine's cores (the CPU budget of a sale)."""
    wall, used = max(usage.wall, 1e-9), usage.cpu
    if not sales:
        return "   cpu: " + ", ".join(f"{n} {100 * s / wall:.0f}%" for n, s in used.items())
    cores = os.cpu_count() or 1
    total = sum(used.values()) / sales
    bridge = used.get("bridge", 0.0)
    split = (f" (its event-loop thread {1000 * usage.loop / sales:.2f} ms/sale, its other"
             f" threads {1000 * (bridge - usage.loop) / sales:.2f} ms/sale)"
             if bridge > 0.05 * wall else "")
    return ("   cpu: " + ", ".join(f"{n} {100 * s / wall:.0f}% ({1000 * s / sales:.2f} ms/sale)"
                                   for n, s in used.items() if s > 0) + split
            + f"\n   budget: {1000 * total:.2f} ms of CPU per sale in all; {cores} cores"
            f" allow at most {cores / total:.0f} sales/s; the machine was"
            f" {100 * usage.busy / max(usage.total, 1):.0f}% busy, other processes took"
            f" {cores - left_cores(usage):.2f} cores")


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


@dataclass
class Window:
    """One measured window of a throughput phase."""

    usage: Usage
    latencies: list[float]  # of the sales that finished in the window


async def rate(lanes: int, seconds: float, sale: Callable[[int], Awaitable[float]],
               meter: CpuMeter, on_window: Callable[[bool], None] | None = None) -> Window:
    """``lanes`` loops of back-to-back sales; measured over ``seconds`` once ``RAMP_S`` have
    passed (every lane busy by then): the CPU used in that window and the sales that finished
    in it. As many sales are in flight at its end as at its start, so their partial work
    cancels out; sales still running at the end finish unmeasured. ``on_window(True)`` /
    ``(False)`` run as the window opens and closes."""
    t0 = time.perf_counter()
    stop_at = t0 + RAMP_S + seconds
    finished: list[tuple[float, float]] = []  # (finished at, latency)

    async def lane(k: int) -> None:
        while time.perf_counter() < stop_at:
            latency = await sale(k)
            finished.append((time.perf_counter(), latency))

    async def window() -> tuple[Snapshot, Snapshot]:
        await asyncio.sleep(RAMP_S)
        if on_window is not None:
            on_window(True)
        opened = meter.snapshot()
        await asyncio.sleep(max(0.0, stop_at - time.perf_counter()))
        closed = meter.snapshot()
        if on_window is not None:
            on_window(False)
        return opened, closed

    *_, (opened, closed) = await asyncio.gather(*(lane(k) for k in range(lanes)), window())
    return Window(closed - opened, [lat for at, lat in finished if opened.at <= at <= closed.at])


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
    ap.add_argument("--seconds", type=float, default=8.0,
                    help="throughput: measured seconds on each side (direct, bridged)")
    ap.add_argument("--windows", type=int, default=4,
                    help="throughput: the measured seconds of each side come in this many "
                         "windows, alternating with the other side's")
    ap.add_argument("--approve-delay", type=float, default=0.0,
                    help="the simulated terminal's time per card (same for both sides)")
    ap.add_argument("--profile-bridge", type=Path, default=None,
                    help="run the daemon under cProfile and write the stats here")
    ap.add_argument("--py-spy", type=Path, default=None,
                    help="sample the daemon with py-spy during the first bridged throughput "
                         "window and write its raw (collapsed) stacks here; see bench/spy_top.py")
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
        yardsticks = Yardsticks.measure()
        print(run_header("bench_sale", f"approve delay {args.approve_delay} s", yardsticks))
        aio.run(run(args, registers, sim, keys, url, http, meter, yardsticks))
    finally:
        stop_all([bridge_proc, sim_proc], tmp)


async def run(args: argparse.Namespace, registers: int, sim: dict[str, Any], keys: Path,
              url: str, http: str, meter: CpuMeter, yardsticks: Yardsticks) -> None:
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
        cpu = cpu_report(meter.stop())
        m1 = scrape(http)
        print("\nlatency, one register (sequential sales)" + cpu)
        print(breakdown(m0, m1))
        print(describe("direct (sign+verify)", d))
        print(describe("through the bridge", b))
        median = statistics.median(b) / statistics.median(d)
        p99 = percentile(b, 0.99) / percentile(d, 0.99)
        added = statistics.median(b) - statistics.median(d)
        print(f"the bridge adds {1000 * added:.2f} ms a sale at the median, "
              f"{added / yardsticks.fsync_s:.1f} fsync yardsticks (printed, not a target)")
        results = [
            target("latency, one register, bridge/direct median", f"{median:.2f}",
                   f"<= {TARGET_MEDIAN}", median <= TARGET_MEDIAN),
            target("latency, one register, bridge/direct p99", f"{p99:.2f}",
                   f"<= {TARGET_P99}", p99 <= TARGET_P99)]
        print("\n".join(results[-2:]))

        # -- throughput ----------------------------------------------------------------------
        clients += await asyncio.gather(*(EcrClient.connect(url, token(k))
                                          for k in range(1, registers)))
        serial = itertools.count()  # order numbers unique over all windows

        async def direct_sale(k: int) -> float:
            return await direct.sale(f"E{pid}x{k}x{next(serial)}", terminal_sn(k))

        async def bridge_sale(k: int) -> float:
            return await bridged_sale(clients[k], f"T{pid}x{k}x{next(serial)}", f"lane-{k}")

        # Warm-up: one untimed sale per lane on each side. A terminal's first answer
        # announces it on-line (a terminal.status event to every register: 200 x 200 events
        # once after a start), and connections to the simulator open.
        await asyncio.gather(*(direct.sale(f"U{pid}x{k}", terminal_sn(k))
                               for k in range(registers)))
        await asyncio.gather(*(bridged_sale(c, f"X{pid}x{k}", f"lane-{k}")
                               for k, c in enumerate(clients)))
        # Direct and bridged windows alternate, so that the machine's drift (other guests on
        # the host, CPU frequency) falls on both sides alike.
        spy = None
        direct_w: list[Window] = []
        bridge_w: list[Window] = []
        deltas: dict[str, float] = {}
        scraped: list[dict[str, float]] = []

        def on_bridge_window(opening: bool) -> None:
            nonlocal spy
            if opening and args.py_spy and spy is None:  # the first bridged window only
                spy = subprocess.Popen(
                    [str(Path(sys.executable).with_name("py-spy")), "record", "-p",
                     str(meter.pids["bridge"]), "-r", "200", "-d", str(max(1, int(window_s))),
                     "-f", "raw", "-o", str(args.py_spy)],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            scraped.append(scrape(http))
            if not opening:
                before, after = scraped[-2:]
                for key, value in after.items():
                    deltas[key] = deltas.get(key, 0.0) + value - before.get(key, 0.0)

        window_s = args.seconds / args.windows
        for _ in range(args.windows):
            direct_w.append(await rate(registers, window_s, direct_sale, meter))
            bridge_w.append(await rate(registers, window_s, bridge_sale, meter,
                                       on_window=on_bridge_window))
        if spy is not None:
            spy.wait()
        use_d, use_b = (sum((w.usage for w in ws), Usage()) for ws in (direct_w, bridge_w))
        lat_d = [lat for w in direct_w for lat in w.latencies]
        lat_b = [lat for w in bridge_w for lat in w.latencies]
        n_d, n_b = len(lat_d), len(lat_b)
        cpu_d, cpu_b = cpu_report(use_d, n_d), cpu_report(use_b, n_b)
        direct_client = per_sale(use_d, n_d)["driver"]
        bridged = per_sale(use_b, n_b)
        # The bridge's provider work (sign, verify two answers, one HTTP request out, one in)
        # is what the direct client does; with no other cost, this is the machine's ceiling.
        floor = direct_client + bridged["simulator"] + bridged["driver"]
        floor_rate = left_cores(use_b) / floor
        cpu_b += (f"\n   floor: a bridge costing no more CPU than the direct client "
                  f"({1000 * direct_client:.2f} ms/sale) would still need {1000 * floor:.2f} ms"
                  f" per sale in all: at most {(os.cpu_count() or 1) / floor:.0f} sales/s on"
                  f" all cores, {floor_rate:.0f} sales/s on the {left_cores(use_b):.2f} cores"
                  f" other processes left")
        bridge_cpu = bridged["bridge"]
        t_d, t_b = use_d.wall, use_b.wall
        print(f"\nthroughput, {registers} concurrent lanes: {args.windows} windows of"
              f" {window_s:g} s on each side, alternating, each once every lane is busy")
        print(f"direct (sign+verify)  {n_d:6} sales in {t_d:5.1f} s = {n_d / t_d:6.0f} sales/s"
              f"   median {statistics.median(lat_d) * 1000:6.1f} ms\n" + cpu_d)
        print(f"through the bridge    {n_b:6} sales in {t_b:5.1f} s = {n_b / t_b:6.0f} sales/s"
              f"   median {statistics.median(lat_b) * 1000:6.1f} ms\n" + cpu_b)
        print(breakdown({}, deltas))
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
        added_cpu = bridge_cpu - direct_client
        print(f"the bridge adds {1000 * added_cpu:.2f} ms of CPU a sale, "
              f"{added_cpu / yardsticks.python_s:.1f} Python yardsticks (printed, not a target)")
        print("\ntargets\n" + "\n".join(results))
    finally:
        await asyncio.gather(*(c.close() for c in clients))
        await direct.provider.aclose()


if __name__ == "__main__":
    main()
