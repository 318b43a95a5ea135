"""The long fuzz run: millions of mutated inputs into the pure parsers, then a slice over real
sockets against a daemon process.

    python bench/fuzz.py [--frames 1000000] [--provider-messages 100000] [--other 10000]
                         [--socket-frames 5000] [--seed 1]

Pure surfaces (the same samples, mutators and rules as tests/fuzz, see
``tests/fuzz/surfaces.py``): ``--frames`` ECR frames (parse_frame, then parse_params as the
server does), ``--provider-messages`` provider messages split over CodePay notifications and
answers, UCanPay notifications and replies, and OPay callbacks and answers (mutated, most of
them signed again with the gateway key so they reach the code behind the signature check),
``--other`` inputs each for the configuration (mapping with environment, and file), ESC/POS
slips, display frames and printer status bytes.

Each input comes from its own generator seeded with (seed, surface, index), so a finding is
reproduced by its index alone. An input that raises anything but the surface's documented
refusal, or breaks an invariant, is a failure; one that takes longer than ``HANG_S`` is a hang
(an alarm interrupts it). Peak RSS is printed before and after.

The socket slice runs ``posbridge simulate`` and ``posbridge serve --config`` as processes and
drives the drivers of ``tests/fuzz/wire.py``: ECR frames on an authenticated connection, the
auth handshake, ``/notify/codepay``, ``/notify/ucanpay``, ``/notify/opay``, the manager
page's forms. Then: the
daemon process is alive, ``/metrics`` counts no internal error, the journal audit is clean, and
another register completes a sale.

The run ends with a CPU yardstick for comparing machines: one RSA-2048 signature (PKCS#1 v1.5,
SHA-256), the median of 200, timed in the same run.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import resource
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

# bench/procs.py (the script's folder is on sys.path)
from procs import (
    DaemonProc,
    rsa_yardstick,
    rss_kib,
    start_simulators,
    stop_all,
    write_bridge_config,
)

# The fuzzers' samples, mutators and rules live with the fuzz tests.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


from posbridge import aio, logs
from posbridge.client import EcrClient
from posbridge.journal_audit import audit_journal
from posbridge.keyfiles import load_private_key
from posbridge.sandbox.codepay_sim import MERCHANT_NO
from posbridge.sandbox.ucanpay_sim import MERCHANT_ID as UCANPAY_MERCHANT
from tests.fuzz import surfaces as s
from tests.fuzz import wire

HANG_S = 2  # one input of a pure parser taking this long is a hang
SHOWN = 3  # reproducers printed per surface
TOKEN = "fuzz-register-token-0123456789abcdef"
OTHER_TOKEN = "fuzz-second-register-0123456789abcd"
PIN = "424242"


class Hang(Exception):
    """Raised by the alarm inside an input that took longer than HANG_S."""


def _alarm(signum: int, frame: FrameType | None) -> None:
    del signum, frame
    raise Hang


@contextmanager
def watchdog() -> Iterator[None]:
    previous = signal.signal(signal.SIGALRM, _alarm)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@dataclass
class Tally:
    """One surface's run: outcomes, failures by kind, the first reproducers."""

    name: str
    tried: int = 0
    seconds: float = 0.0
    outcomes: Counter[str] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)
    hangs: int = 0
    reproducers: list[str] = field(default_factory=list)

    def fail(self, kind: str, index: int, value: Any) -> None:
        self.failures[kind] += 1
        if len(self.reproducers) < SHOWN:
            self.reproducers.append(f"#{index}: {kind}; input {value!r:.240}")


def run_surface(surface: s.Surface, count: int, seed: int) -> Tally:
    tally = Tally(surface.name)
    started = time.perf_counter()
    with watchdog():
        for index in range(count):
            rng = random.Random(f"{seed}:{surface.name}:{index}")
            value: Any = None
            try:
                signal.setitimer(signal.ITIMER_REAL, HANG_S)
                value = surface.mutate(surface.sample(rng), rng)
                tally.outcomes[surface.check(value)] += 1
            except Hang:
                tally.hangs += 1
                tally.fail(f"hang (over {HANG_S} s)", index, value)
            except s.Unexpected as exc:
                tally.fail(str(exc)[:120], index, value)
            except Exception as exc:  # what the run is looking for: an unexpected exception
                tally.fail(f"{type(exc).__name__}: {exc!s:.100}", index, value)
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            tally.tried += 1
    tally.seconds = time.perf_counter() - started
    return tally


def print_tally(tally: Tally) -> None:
    rate = tally.tried / tally.seconds if tally.seconds else 0.0
    outcomes = ", ".join(f"{k} {v}" for k, v in sorted(tally.outcomes.items()))
    print(f"{tally.name:<24} {tally.tried:>9} tried  {rate:>8.0f}/s  ({outcomes})  "
          f"failures {sum(tally.failures.values())}  hangs {tally.hangs}", flush=True)
    for kind, n in tally.failures.most_common(5):
        print(f"    {n} x {kind}")
    for line in tally.reproducers:
        print(f"    reproducer {line}")


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -- the socket slice ------------------------------------------------------------------------


async def socket_slice(daemon: DaemonProc, tmp: Path, args: argparse.Namespace) -> list[str]:
    """The wire drivers against the daemon process; the problems found (empty: none)."""
    rng = random.Random(f"{args.seed}:sockets")
    keys = s.GatewayKeys(*(load_private_key((tmp / f"sim/keys/{name}_private.pem").read_bytes())
                           for name in ("codepay_gateway", "ucanpay_gateway", "opay_platform",
                                        "opay_merchant")))
    async with await EcrClient.connect(daemon.url, TOKEN) as ecr:
        done = [await ecr.call("sale", {"terminal": "lane-1", "order_no": f"FZ{i}",
                                        "amount": amount, "currency": "USD"})
                for i, amount in enumerate(("1.00", "1.05", "2.00"))]
    order_nos = [t["order_no"] for t in done]
    codepay_notes, _, ucanpay_notes, _, opay_notes, _ = s.provider_surfaces(
        keys, merchant_no=MERCHANT_NO, ucanpay_merchant=UCANPAY_MERCHANT, order_nos=order_nos)
    n = args.socket_frames
    port = int(daemon.ports["ecr_port"])
    # The manager page first: wrong manager_pin values in fuzzed frames lock PIN checks out.
    drivers = [
        wire.fuzz_manager(daemon.http, PIN, order_nos, ["lane-1", "FUZZ000000000002"], rng,
                          max(10, n // 5), wrong_pins=3),
        wire.fuzz_ecr(daemon.url, TOKEN, s.ECR_FRAMES, rng, n),
        wire.fuzz_auth("127.0.0.1", port, TOKEN, rng, max(10, n // 20), wrong_tokens=5),
        wire.fuzz_notify(daemon.http, "codepay", codepay_notes, rng, max(10, n // 4)),
        wire.fuzz_notify(daemon.http, "ucanpay", ucanpay_notes, rng, max(10, n // 4)),
        wire.fuzz_notify(daemon.http, "opay", opay_notes, rng, max(10, n // 4)),
    ]
    problems = []
    for driver in drivers:
        t0 = time.perf_counter()
        found = await driver
        elapsed = time.perf_counter() - t0
        print(f"{found.surface:<24} {found.sent:>9} sent   {found.sent / elapsed:>8.0f}/s  "
              f"failures {len(found.problems)}", flush=True)
        for problem in found.problems[:SHOWN]:
            print(f"    {problem}")
        problems += found.problems
    async with await EcrClient.connect(daemon.url, OTHER_TOKEN) as other:
        txn = await other.call("sale", {"terminal": "lane-2", "order_no": "FZAFTER",
                                        "amount": "4.00", "currency": "USD"})
    if txn["state"] != "approved":
        problems.append(f"the second register's sale ended {txn['state']}")
    return problems


def internal_errors(http: str) -> float:
    import urllib.request

    with urllib.request.urlopen(f"{http}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("posbridge_ecr_requests_total")
               and 'outcome="internal_error"' in line)


def run_sockets(args: argparse.Namespace) -> list[str]:
    tmp = Path(tempfile.mkdtemp(prefix="posbridge-fuzz-"))
    sim_proc, sim = start_simulators(tmp, 0.05)
    daemon: DaemonProc | None = None
    try:
        config = write_bridge_config(
            tmp, sim, clients=[("lane-1", "cashier", TOKEN), ("lane-2", "cashier", OTHER_TOKEN)],
            terminals=[("FUZZ000000000001", "lane-1"), ("FUZZ000000000002", "lane-2")],
            pin=PIN, expires_s=20, qr_timeout_s=20)
        daemon = DaemonProc(tmp, config)
        daemon.start()
        before = rss_kib(daemon.pid)
        problems = aio.run(socket_slice(daemon, tmp, args))
        print(f"daemon RSS before / after the socket slice: {before / 1024:.0f} / "
              f"{rss_kib(daemon.pid) / 1024:.0f} MiB")
        if daemon.proc is None or daemon.proc.poll() is not None:
            problems.append("the daemon process died")
        errors = internal_errors(daemon.http)
        if errors:
            problems.append(f"/metrics counts {errors:g} internal errors")
        code = daemon.stop()
        if code != 0:
            problems.append(f"the daemon stopped with exit code {code}")
        audit = audit_journal(tmp / "data" / "journal.sqlite")
        print(f"journal audit after the socket slice: {'sound' if not audit else audit[:5]}")
        return problems + audit
    finally:
        stop_all([daemon.proc if daemon else None, sim_proc], tmp)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=1_000_000, help="ECR frames (pure parsers)")
    ap.add_argument("--provider-messages", type=int, default=100_000,
                    help="provider answers and notifications (pure parsers)")
    ap.add_argument("--other", type=int, default=10_000,
                    help="inputs for each other pure surface (config, slips, frames, status)")
    ap.add_argument("--socket-frames", type=int, default=5_000,
                    help="ECR frames over a socket (the other socket drivers scale with it)")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    logs.configure("json", logging.WARNING)
    print(f"fuzz: seed {args.seed}; {os.cpu_count()} CPUs; load average "
          f"{os.getloadavg()[0]:.2f}; python {sys.version.split()[0]}; "
          f"peak RSS {peak_rss_mib():.0f} MiB at the start", flush=True)
    keys = s.GatewayKeys.generate()
    plan: list[tuple[s.Surface, int]] = [(s.ECR_FRAMES, args.frames)]
    surfaces = s.provider_surfaces(keys)
    plan += [(surface, args.provider_messages // len(surfaces)) for surface in surfaces]
    with tempfile.TemporaryDirectory(prefix="posbridge-fuzz-config-") as folder:
        plan += [(surface, args.other) for surface in s.config_surfaces(Path(folder))]
        plan += [(surface, args.other) for surface in s.HARDWARE]
        tallies = []
        for surface, count in plan:
            tally = run_surface(surface, count, args.seed)
            print_tally(tally)
            tallies.append(tally)
    print(f"peak RSS after the pure surfaces: {peak_rss_mib():.0f} MiB", flush=True)
    socket_problems = run_sockets(args) if args.socket_frames else []
    for problem in socket_problems[:SHOWN]:
        print(f"    socket slice: {problem}")
    frames = tallies[0]
    provider = tallies[1:1 + len(surfaces)]
    failures = sum(sum(t.failures.values()) for t in tallies) + len(socket_problems)
    hangs = sum(t.hangs for t in tallies)
    print(f"\nECR frames tried {frames.tried} ({frames.tried / frames.seconds:.0f} frames/s); "
          f"provider messages tried {sum(t.tried for t in provider)} "
          f"({sum(t.tried for t in provider) / sum(t.seconds for t in provider):.0f}/s); "
          f"all inputs {sum(t.tried for t in tallies)}")
    print(f"failures {failures} (crashes and broken rules), hangs {hangs}")
    print(f"yardstick: one RSA-2048 signature {rsa_yardstick() * 1000:.3f} ms (median of 200)")
    sys.exit(1 if failures or hangs else 0)


if __name__ == "__main__":
    main()
