"""Soak: the daemon as a real process under mixed traffic for a chosen time, then a final-state
check of every transaction against the simulators.

    python bench/soak.py [--minutes 30] [--rate 50] [--registers 100] [--approve-delay 0.2]

Processes: the simulators (``posbridge simulate``: CodePay with simulated terminals, UCanPay),
the daemon (``posbridge serve --config``, JSON logs to /dev/null, journal on the local disk)
and this driver. Traffic: ``--registers`` WebSocket registers (one terminal each), each running
one payment at a time like a real lane and together starting ``--rate`` payments per second (a
slow bridge shows as a lower rate achieved), and one manager register:

* card sales with the simulated terminals' behaviours (approve, decline, silent until expiry,
  offline, lost create answer, duplicate notifications, late approval after a cancel, result by
  notification only or by polling only, slow approval), some cancelled at once;
* wallet QR sales, paid through the UCanPay simulator's pay endpoint (a few left to be
  cancelled);
* refunds and voids of approved card sales, refunds of paid QR sales (manager register);
* a register closing its connection and reconnecting (then ``events.replay``) every few
  seconds, and one daemon restart (SIGTERM, start again) in the middle.

A request that meets a closed connection is sent again, same ``order_no``, once the register
has reconnected (the protocol's rule: re-sending is always safe). At the end the driver waits
for every payment to finish, stops the daemon, and compares, order by order, the journal's final
state with the simulator's (polled every 15 s, since the simulators keep only their recent
orders): none lost (every payment the bridge took is in the journal, final), none double (one
create per order at the gateway), and the two agree. It prints sales, errors, that check, the
daemon's and simulators' RSS at start / middle / end (and the growth from minute 5 to the end of
each daemon process), open file descriptors, journal size, and the loop-lag p99 from the
daemon's ``/metrics`` histogram.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import logging
import os
import random
import sqlite3
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

# bench/procs.py (the script's folder is on sys.path)
from procs import (
    DaemonProc,
    rss_kib,
    run_header,
    start_simulators,
    stop_all,
    write_bridge_config,
)
from websockets.exceptions import ConnectionClosed, InvalidStatus

from posbridge import aio, logs
from posbridge.client import EcrClient, EcrError
from posbridge.journal_audit import audit_journal

FINAL = frozenset({"approved", "declined", "cancelled", "expired", "failed"})
# cents -> (weight, what the driver does) ; the simulated terminal's behaviour is the cents'.
CARD_MIX = {0: 40, 5: 10, 10: 2, 15: 2, 20: 5, 25: 8, 30: 3, 35: 8, 40: 8, 45: 6}
CANCELLED_AT_ONCE = frozenset({15, 30, 45})  # offline, late approval, slow: cancel them
QR_SHARE = 0.12
QR_UNPAID_SHARE = 0.1  # of QR sales: never paid, cancelled by the register
REFUND_SHARE, VOID_SHARE, QR_REFUND_SHARE = 0.12, 0.06, 0.2
EXPIRES_S = 20  # card orders; the silent terminal's sales end this way
QR_TIMEOUT_S = 60
SAMPLE_S = 10.0
SIM_POLL_S = 15.0
RECONNECT_EVERY_S = 5.0
# codepay trans_status -> the journal states that agree with it
CODEPAY_AGREES = {2: {"approved"}, 1: {"declined"}, 3: {"cancelled", "expired"}}
UCANPAY_AGREES = {"SUCCESS": {"approved"}, "REFUND": {"approved"}, "PAYERROR": {"declined"},
                  "CLOSED": {"cancelled", "expired"}, "REVOKED": {"cancelled", "expired"}}
RETRYABLE = (ConnectionError, OSError, TimeoutError, ConnectionClosed, InvalidStatus)


def token(k: int) -> str:
    return f"soak-register-token-{k:04d}-0123456789abcdef"


MANAGER_TOKEN = "soak-manager-token-0123456789abcdef"


# -- processes -------------------------------------------------------------------------------


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def journal_bytes(data_dir: Path) -> int:
    return sum(p.stat().st_size for p in data_dir.glob("journal.sqlite*"))


# -- registers -------------------------------------------------------------------------------


class Register:
    """One register connection that reconnects on demand and drains its notifications."""

    def __init__(self, daemon: DaemonProc, tok: str) -> None:
        self.daemon, self.token = daemon, tok
        self.client: EcrClient | None = None
        self.last_seq = 0
        self.replayed = 0
        self._drain: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    async def connect(self) -> EcrClient:
        """The live connection, reconnecting first (bounded) if it is gone."""
        async with self._lock:
            if self.client is not None and self.client.connected:
                return self.client
            await self._close()
            for _attempt in range(600):
                try:
                    self.client = await EcrClient.connect(self.daemon.url, self.token)
                    break
                except RETRYABLE:
                    await asyncio.sleep(0.1)
            else:
                raise SystemExit("a register could not reconnect for a minute")
            self._drain = asyncio.create_task(self._read_notes(self.client))
            await self._replay(self.client)
            return self.client

    async def reconnect(self) -> None:
        """Close the connection as a crashing register would, then connect and replay."""
        async with self._lock:
            await self._close()
        await self.connect()

    async def call(self, method: str, params: dict[str, Any], timeout: float = 90.0) -> Any:
        """Call, re-sending the same request after a lost connection (bounded)."""
        for _attempt in range(50):
            client = await self.connect()
            try:
                return await client.call(method, params, timeout=timeout)
            except RETRYABLE:
                await asyncio.sleep(0.1)
        raise SystemExit(f"{method} {params.get('order_no')} failed 50 times")

    async def _replay(self, client: EcrClient) -> None:
        for _page in range(10_000):
            events = await client.call("events.replay", {"since_seq": self.last_seq})
            if not events:
                return
            self.replayed += len(events)
            self.last_seq = max(self.last_seq, *(int(e["seq"]) for e in events))

    async def _read_notes(self, client: EcrClient) -> None:
        async for note in client.notifications():
            seq = note.get("params", {}).get("seq")
            if isinstance(seq, int):
                self.last_seq = max(self.last_seq, seq)

    async def _close(self) -> None:
        if self._drain is not None:
            self._drain.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._drain
            self._drain = None
        if self.client is not None:
            with contextlib.suppress(*RETRYABLE):
                await self.client.close()
            self.client = None


# -- the run ---------------------------------------------------------------------------------


@dataclass
class Expected:
    """A payment the driver asked for, and what the bridge last said of it."""

    kind: str
    provider: str
    state: str | None = None
    error: int | None = None


@dataclass
class Run:
    args: argparse.Namespace
    daemon: DaemonProc
    sim: dict[str, Any]
    data_dir: Path
    sim_pid: int
    registers: list[Register] = field(default_factory=list)
    manager: Register | None = None
    expected: dict[str, Expected] = field(default_factory=dict)
    started: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    sim_orders: dict[str, dict[str, dict[str, Any]]] = field(
        default_factory=lambda: {"codepay": {}, "ucanpay": {}})
    sim_stats: dict[str, dict[str, int]] = field(default_factory=dict)
    samples: list[tuple[float, int, int, int, int, int]] = field(default_factory=list)
    lag_buckets: Counter[float] = field(default_factory=Counter)
    restart_at: float | None = None
    jobs: set[asyncio.Task[None]] = field(default_factory=set)
    http: aiohttp.ClientSession | None = None
    rng: random.Random = field(default_factory=random.Random)
    t0: float = 0.0
    traffic_s: float = 0.0  # from the start until the last lane's last payment ended
    # Per payment, how late it started against its lane's schedule (seconds); and when the
    # last one started (seconds from the start).
    lateness: list[float] = field(default_factory=list)
    last_start_s: float = 0.0

    # -- traffic ---------------------------------------------------------------------------

    def spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self.jobs.add(task)
        task.add_done_callback(self.jobs.discard)

    async def settle(self, reg: Register, order_no: str, txn: Any) -> dict[str, Any]:
        """Poll ``status`` until the transaction is final, for at most about five minutes
        (the final-state check reports one still open then). The pause doubles up to 10 s:
        a register that polls fast adds load exactly when the bridge is slow."""
        pause = 0.5
        for _poll in range(40):
            if isinstance(txn, dict) and txn.get("state") in FINAL:
                break
            await asyncio.sleep(pause)
            pause = min(10.0, 2 * pause)
            txn = await reg.call("status", {"order_no": order_no})
        self.expected[order_no].state = txn.get("state") if isinstance(txn, dict) else None
        return dict(txn) if isinstance(txn, dict) else {}

    async def guarded(self, order_no: str, kind: str, provider: str,
                      body: Callable[[], Awaitable[None]]) -> None:
        self.expected[order_no] = Expected(kind, provider)
        self.started[kind] += 1
        try:
            await body()
        except EcrError as exc:
            self.expected[order_no].error = exc.code
            self.errors[f"{kind}: {exc.code} {exc.reason}"] += 1

    async def card_sale(self, n: int, lane: int) -> None:
        reg = self.registers[lane]
        cents = self.rng.choices(list(CARD_MIX), weights=list(CARD_MIX.values()))[0]
        amount = f"{self.rng.randint(2, 60)}.{cents:02d}"
        order_no = f"C{self.args.tag}x{n}"
        params = {"terminal": f"lane-{lane}", "order_no": order_no, "amount": amount,
                  "currency": "USD", "timeout_s": 60}

        async def body() -> None:
            if cents in CANCELLED_AT_ONCE:
                await reg.call("sale", {**params, "wait": False})
                await asyncio.sleep(self.rng.uniform(0.0, 0.05))
                txn = await reg.call("cancel", {"order_no": order_no}, timeout=120)
            else:
                txn = await reg.call("sale", params)
            txn = await self.settle(reg, order_no, txn)
            if txn.get("state") == "approved" and cents not in CANCELLED_AT_ONCE:
                self.spawn(self.card_follow_up(order_no, amount))  # the manager's, not the lane's

        await self.guarded(order_no, "sale", "codepay", body)

    async def card_follow_up(self, orig: str, amount: str) -> None:
        draw = self.rng.random()
        assert self.manager is not None
        if draw < REFUND_SHARE:
            order_no = f"{orig}R"
            params = {"order_no": order_no, "orig_order_no": orig, "amount": "1.00"}
            method, kind = "refund", "refund"
        elif draw < REFUND_SHARE + VOID_SHARE:
            order_no = f"{orig}V"
            params = {"order_no": order_no, "orig_order_no": orig}
            method, kind = "void", "void"
        else:
            return
        manager = self.manager

        async def body() -> None:
            txn = await manager.call(method, params)
            await self.settle(manager, order_no, txn)

        await self.guarded(order_no, kind, "codepay", body)

    async def qr_sale(self, n: int, lane: int) -> None:
        reg = self.registers[lane]
        order_no = f"Q{self.args.tag}x{n}"
        amount = f"{self.rng.randint(1, 40)}.{self.rng.choice((0, 25, 50, 75)):02d}"
        unpaid = self.rng.random() < QR_UNPAID_SHARE
        assert self.http is not None
        http = self.http

        async def body() -> None:
            txn = await reg.call("qr_sale", {"order_no": order_no, "amount": amount,
                                             "currency": "CAD", "subject": "Soak",
                                             "wait": False})
            if unpaid:
                await asyncio.sleep(self.rng.uniform(0.05, 0.3))
                txn = await reg.call("cancel", {"order_no": order_no}, timeout=120)
            else:
                ref = txn.get("provider_ref") if isinstance(txn, dict) else None
                for _poll in range(100):
                    if ref:
                        break
                    await asyncio.sleep(0.2)
                    txn = await reg.call("status", {"order_no": order_no})
                    ref = txn.get("provider_ref")
                async with http.post(f"{self.sim['ucanpay']}/sandbox/pay/{ref}") as resp:
                    await resp.read()
            txn = await self.settle(reg, order_no, txn)
            if txn.get("state") == "approved" and self.rng.random() < QR_REFUND_SHARE:
                self.spawn(self.qr_refund(order_no))

        await self.guarded(order_no, "qr_sale", "ucanpay", body)

    async def qr_refund(self, orig: str) -> None:
        order_no = f"{orig}R"
        assert self.manager is not None
        manager = self.manager

        async def body() -> None:
            txn = await manager.call("refund", {"order_no": order_no, "orig_order_no": orig,
                                                "amount": "0.50"})
            await self.settle(manager, order_no, txn)

        await self.guarded(order_no, "qr_refund", "ucanpay", body)

    async def traffic(self, until: float) -> None:
        """Every register runs its lane until ``until`` (monotonic): together they start
        ``--rate`` payments a second."""
        numbers = itertools.count()
        await asyncio.gather(*(self.lane(k, until, numbers)
                               for k in range(len(self.registers))))
        self.traffic_s = time.monotonic() - self.t0

    async def lane(self, k: int, until: float, numbers: Iterator[int]) -> None:
        """One payment at a time, as a real lane does, started every ``registers / rate``
        seconds; a lane whose payment took longer runs the next ones back to back until it is
        on schedule again (never two at once), so a slow bridge shows as a lower rate
        achieved, not as a pile of waiting requests."""
        interval = len(self.registers) / self.args.rate
        next_at = time.monotonic() + k / self.args.rate
        while next_at < until:
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            now = time.monotonic()
            self.lateness.append(now - next_at)
            self.last_start_s = max(self.last_start_s, now - self.t0)
            n = next(numbers)
            await (self.qr_sale(n, k) if self.rng.random() < QR_SHARE else self.card_sale(n, k))
            next_at += interval

    async def churn(self, until: float) -> None:
        """A register drops its connection and comes back every few seconds."""
        reconnects = 0
        while time.monotonic() < until:
            await asyncio.sleep(RECONNECT_EVERY_S)
            await self.rng.choice(self.registers).reconnect()
            reconnects += 1
        self.started["register reconnects"] = reconnects

    # -- watching ----------------------------------------------------------------------------

    async def sample(self) -> None:
        self.samples.append((time.monotonic() - self.t0, self.daemon.pid, rss_kib(self.daemon.pid),
                             rss_kib(self.sim_pid), open_fds(self.daemon.pid),
                             journal_bytes(self.data_dir)))

    async def lag_histogram(self) -> Counter[float]:
        """The daemon's cumulative loop-lag bucket counts (this process's life)."""
        assert self.http is not None
        async with self.http.get(f"{self.daemon.http}/metrics") as resp:
            text = await resp.text()
        buckets: Counter[float] = Counter()
        for line in text.splitlines():
            if line.startswith("posbridge_event_loop_lag_seconds_bucket"):
                le = line.split('le="')[1].split('"')[0]
                buckets[float(le)] = int(float(line.rsplit(" ", 1)[1]))
        return buckets

    async def poll_sim(self) -> None:
        assert self.http is not None
        async with self.http.get(f"{self.sim['admin']}/orders") as resp:
            data = await resp.json()
        for name in ("codepay", "ucanpay"):
            self.sim_stats[name] = data[name]["stats"]
            seen = self.sim_orders[name]
            for order in data[name]["orders"]:
                old = seen.get(order["order_no"])
                creates = max(order["creates"], old["creates"] if old else 0)
                seen[order["order_no"]] = {**order, "creates": creates}

    async def watch(self, until: float) -> None:
        next_poll = 0.0
        while time.monotonic() < until:
            await self.sample()
            if time.monotonic() >= next_poll:
                await self.poll_sim()
                next_poll = time.monotonic() + SIM_POLL_S
            await asyncio.sleep(SAMPLE_S)

    async def restart(self, at: float) -> None:
        await asyncio.sleep(max(0.0, at - time.monotonic()))
        self.lag_buckets += await self.lag_histogram()
        await self.sample()
        code = await asyncio.to_thread(self.daemon.stop)
        self.restart_at = time.monotonic() - self.t0
        print(f"  daemon stopped at {self.restart_at / 60:.1f} min (exit {code}); "
              "starting it again", flush=True)
        await asyncio.to_thread(self.daemon.start)
        await self.sample()


async def drive(run: Run) -> None:
    args = run.args
    run.http = aiohttp.ClientSession()
    run.registers = [Register(run.daemon, token(k)) for k in range(args.registers)]
    run.manager = Register(run.daemon, MANAGER_TOKEN)
    await asyncio.gather(*(r.connect() for r in [*run.registers, run.manager]))
    run.t0 = time.monotonic()
    until = run.t0 + args.minutes * 60
    await run.sample()
    try:
        await asyncio.gather(run.traffic(until), run.churn(until), run.watch(until),
                             run.restart(run.t0 + args.minutes * 30))
        print(f"  traffic stopped at {(time.monotonic() - run.t0) / 60:.1f} min; "
              f"{len(run.jobs)} payments still running", flush=True)
        drain_until = time.monotonic() + 600
        while run.jobs and time.monotonic() < drain_until:
            await asyncio.wait(set(run.jobs), timeout=SAMPLE_S)
            await run.poll_sim()
        for job in run.jobs:
            job.cancel()
        await asyncio.sleep(2.0)  # the last notifications' retries
        await run.poll_sim()
        await run.sample()
        run.lag_buckets += await run.lag_histogram()
    finally:
        await asyncio.gather(*(r._close() for r in [*run.registers, run.manager]))
        await run.http.close()


# -- the report ------------------------------------------------------------------------------


def journal_rows(path: Path) -> dict[str, tuple[str, str, str]]:
    uri = f"{path.resolve().as_uri()}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True)) as conn:
        return {row[0]: (row[1], row[2], row[3]) for row in conn.execute(
            "SELECT order_no, kind, provider, state FROM transactions")}


def check(run: Run) -> dict[str, list[str]]:
    """Order by order: lost, double, disagreeing, and not seen at the simulator."""
    rows = journal_rows(run.data_dir / "journal.sqlite")
    found: dict[str, list[str]] = {"lost": [], "double": [], "disagree": [], "unseen": []}
    for order_no, exp in run.expected.items():
        row = rows.get(order_no)
        if row is None:
            if exp.error is None:  # the bridge took it (no refusal): it must be recorded
                found["lost"].append(f"{order_no}: not in the journal")
            continue
        if row[2] not in FINAL:
            found["lost"].append(f"{order_no}: still {row[2]} in the journal")
    for order_no, (kind, provider, state) in rows.items():
        if provider == "codepay":
            sim = run.sim_orders["codepay"].get(order_no)
            agrees = CODEPAY_AGREES.get(sim["status"], set()) if sim else {"failed"}
        elif kind == "qr_refund":
            sim = next((o for o in run.sim_orders["ucanpay"].values()
                        if order_no in o["refunds"]), None)
            refund = sim["refunds"][order_no] if sim else None
            agrees = ({"approved"} if refund == "SUCCESS" else {"declined"}) if sim else {"failed"}
        else:
            sim = run.sim_orders["ucanpay"].get(order_no)
            agrees = UCANPAY_AGREES.get(sim["status"], set()) if sim else {"failed"}
        if sim is None and state != "failed":
            found["unseen"].append(f"{order_no}: {state} in the journal, unknown to the simulator")
            continue
        if sim is not None and kind != "qr_refund" and sim["creates"] > 1:
            found["double"].append(f"{order_no}: {sim['creates']} creates at the gateway")
        if state not in agrees:
            gateway = sim["refunds"][order_no] if kind == "qr_refund" and sim else (
                sim["status"] if sim else "none")
            found["disagree"].append(f"{order_no}: journal {state}, gateway {gateway}")
    return found


def lag_p99(buckets: Counter[float]) -> str:
    total = max(buckets.values(), default=0)
    if not total:
        return "no samples"
    bound = next(le for le, cum in sorted(buckets.items()) if cum >= 0.99 * total)
    return f"<= {bound * 1000:g} ms ({total} samples of 0.25 s)"


def rss_at(samples: list[tuple[float, int, int, int, int, int]], t: float,
           pid: int | None = None) -> tuple[float, int, int, int, int, int]:
    """The first sample at or after ``t`` seconds (of process ``pid`` if given)."""
    fitting = [s for s in samples if s[0] >= t and (pid is None or s[1] == pid)]
    return fitting[0] if fitting else samples[-1]


def report(run: Run, elapsed: float, problems: list[str]) -> None:
    s = run.samples
    total = sum(v for k, v in run.started.items() if k in ("sale", "qr_sale"))
    print(f"\n== soak: {run.args.minutes:g} min at {run.args.rate:g} payments/s, "
          f"{run.args.registers} registers; {elapsed / 60:.1f} min in all")
    print(f"payments started {total} ({total / run.traffic_s:.1f}/s over "
          f"{run.traffic_s / 60:.1f} min, until the last one ended): "
          + ", ".join(f"{k} {v}" for k, v in sorted(run.started.items())))
    late = sorted(run.lateness)
    if late:
        behind = sum(1 for x in late if x > 1.0)
        print(f"start rate: {total / run.last_start_s:.1f}/s (the last payment started at "
              f"{run.last_start_s / 60:.2f} min); started late against the schedule: median "
              f"{1000 * late[len(late) // 2]:.0f} ms, p99 {late[int(len(late) * 0.99)]:.2f} s, "
              f"max {late[-1]:.1f} s; {behind} payments more than 1 s late")
    finals = Counter(e.state or f"error {e.error}" for e in run.expected.values())
    print("final answers to the driver: " + ", ".join(f"{k} {v}" for k, v in finals.items()))
    replayed = sum(r.replayed for r in run.registers)
    print(f"events replayed after reconnects: {replayed}")
    print(f"errors ({sum(run.errors.values())}): "
          + ("; ".join(f"{k} x{v}" for k, v in run.errors.most_common()) or "none"))
    found = check(run)
    print(f"final-state check of {len(run.expected)} transactions against the simulators: "
          + ", ".join(f"{k} {len(v)}" for k, v in found.items()))
    for name, items in found.items():
        for item in items[:5]:
            print(f"   {name}: {item}")
    for name, stats in run.sim_stats.items():
        print(f"simulator {name}: " + ", ".join(f"{k} {v}" for k, v in stats.items()))
    print(f"journal audit: {'sound' if not problems else problems[:5]}")
    middle = run.restart_at or elapsed / 2
    first_pid, last_pid = s[0][1], s[-1][1]
    print("\n   time   daemon RSS   simulators RSS   daemon fds   journal")
    for label, row in (("start", s[0]), ("5 min", rss_at(s, 300, first_pid)),
                       ("middle", [x for x in s if x[1] == first_pid][-1]), ("end", s[-1])):
        print(f"   {label:<6} {row[2] / 1024:8.1f} MiB   {row[3] / 1024:10.1f} MiB"
              f"   {row[4]:10d}   {row[5] / 2**20:7.1f} MiB")
    at5, before = rss_at(s, 300, first_pid), [x for x in s if x[1] == first_pid][-1]
    print(f"daemon RSS growth, minute 5 to the restart (first process): "
          f"{100 * (before[2] - at5[2]) / at5[2]:+.1f} %")
    if last_pid != first_pid:
        again = rss_at(s, middle + 300, last_pid)
        print(f"daemon RSS growth, 5 min after the restart to the end (second process): "
              f"{100 * (s[-1][2] - again[2]) / again[2]:+.1f} %")
    print(f"daemon RSS, minute 5 to the end: {100 * (s[-1][2] - at5[2]) / at5[2]:+.1f} %")
    sim5 = rss_at(s, 300)
    print(f"simulators RSS, minute 5 to the end: {100 * (s[-1][3] - sim5[3]) / sim5[3]:+.1f} %")
    print(f"loop lag p99 over the run (both daemon processes): {lag_p99(run.lag_buckets)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--rate", type=float, default=50.0, help="payments started per second")
    ap.add_argument("--registers", type=int, default=100,
                    help="lanes; each runs one payment at a time")
    ap.add_argument("--approve-delay", type=float, default=0.2,
                    help="the simulated card holder's time per card")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    args.tag = f"{os.getpid()}"
    logs.configure("json", logging.WARNING)
    tmp = Path(tempfile.mkdtemp(prefix="posbridge-soak-"))
    # A real gateway retries a notification for hours; the simulator's test pace gives up
    # after ten seconds, which a loaded machine and a restart can exceed. Here: ten minutes.
    sim_proc, sim = start_simulators(tmp, args.approve_delay, notify_interval=2.0,
                                     notify_retry=",".join(["0.5,1,2,5,10,20,30"] + ["60"] * 9))
    daemon: DaemonProc | None = None
    try:
        clients = [("backoffice", "manager", MANAGER_TOKEN)] + [
            (f"lane-{k}", "cashier", token(k)) for k in range(args.registers)]
        terminals = [(f"SOAK{k:012d}", f"lane-{k}") for k in range(args.registers)]
        daemon = DaemonProc(tmp, write_bridge_config(
            tmp, sim, clients=clients, terminals=terminals, expires_s=EXPIRES_S,
            qr_timeout_s=QR_TIMEOUT_S))
        daemon.start()
        print(f"{run_header('soak')}; {args.minutes:g} min at {args.rate:g}/s; scratch {tmp}",
              flush=True)
        run = Run(args, daemon, sim, tmp / "data", sim_proc.pid)
        run.rng.seed(args.seed)
        t0 = time.monotonic()
        aio.run(drive(run))
        daemon.stop()
        problems = audit_journal(tmp / "data" / "journal.sqlite")
        report(run, time.monotonic() - t0, problems)
    finally:
        stop_all([daemon.proc if daemon else None, sim_proc], tmp)


if __name__ == "__main__":
    main()
