"""Card sale latency and throughput through the bridge, against the same simulator called
directly (signing and verification, no bridge), measured in one run.

    python bench/bench_sale.py [--sales 300] [--registers 200] [--seconds 10]

Three processes on this machine: the CodePay simulator (``posbridge simulate``), the daemon
(``posbridge serve``), and this driver. Prints medians, p99, sales/s and the ratios.

* latency, one register: sequential sales through the bridge (``sale`` with ``wait``: the
  register's view, request to final state) vs. the driver itself doing ``create`` + ``query``
  until approved with the bridge's own CodePay client (signing and verifying every message);
* throughput: ``--registers`` WebSocket connections each running sales back to back for
  ``--seconds``; completed (final) sales per second.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from posbridge.client import EcrClient
from posbridge.errors import OutcomeUnknown
from posbridge.providers.base import Outcome, PaymentOrder, TxnKind
from posbridge.providers.codepay.client import CodePayProvider
from posbridge.sandbox.keys import load_private_key, load_public_key
from posbridge.sandbox.runtime import APP_ID, MERCHANT_NO
from posbridge.secrets import hash_secret

TOKEN = "bench-register-token-0123456789abcdef"
TERMINAL = "SANDBOX0000000001"


def wait_file(path: Path, proc: subprocess.Popen[bytes], timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            return json.loads(path.read_text())
        if proc.poll() is not None:
            raise SystemExit(f"a helper process exited with {proc.returncode}")
        time.sleep(0.05)
    raise SystemExit(f"{path} did not appear")


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def describe(name: str, seconds: list[float]) -> str:
    ms = [s * 1000 for s in seconds]
    return (f"{name:<28} n={len(ms):<5} median {statistics.median(ms):7.2f} ms"
            f"   p99 {pct(ms, 0.99):7.2f} ms")


async def direct(sim: dict[str, Any], keys: Path, n: int) -> list[float]:
    provider = CodePayProvider(
        base_url=sim["codepay"], app_id=APP_ID, merchant_no=MERCHANT_NO, store_no=None,
        private_key=load_private_key((keys / "merchant_private.pem").read_bytes()),
        gateway_public_key=load_public_key((keys / "codepay_gateway_public.pem").read_bytes()),
        notify_url=None, expires_s=60, timeout_s=10)
    out = []
    try:
        for i in range(n):
            order = PaymentOrder(order_no=f"D{os.getpid()}x{i}", kind=TxnKind.SALE, amount=100,
                                 currency="USD", terminal_sn=TERMINAL, description="bench")
            t0 = time.perf_counter()
            await provider.create(order)
            while True:
                try:
                    report = await provider.query(order)
                except OutcomeUnknown:
                    continue
                if report.outcome is Outcome.APPROVED:
                    break
            out.append(time.perf_counter() - t0)
    finally:
        await provider.aclose()
    return out


async def bridged(url: str, n: int, prefix: str) -> list[float]:
    out = []
    async with await EcrClient.connect(url, TOKEN) as ecr:
        for i in range(n):
            t0 = time.perf_counter()
            txn = await ecr.call("sale", {"terminal": "lane-1", "order_no": f"{prefix}{i}",
                                          "amount": "1.00", "currency": "USD"})
            assert txn["state"] == "approved", txn
            out.append(time.perf_counter() - t0)
    return out


async def throughput(url: str, registers: int, seconds: float) -> tuple[int, float]:
    clients = await asyncio.gather(*(EcrClient.connect(url, TOKEN) for _ in range(registers)))
    done = 0
    stop_at = time.perf_counter() + seconds

    async def lane(k: int, ecr: EcrClient) -> None:
        nonlocal done
        i = 0
        while time.perf_counter() < stop_at:
            txn = await ecr.call("sale", {"terminal": "lane-1", "order_no": f"T{k}x{i}",
                                          "amount": "1.00", "currency": "USD"}, timeout=60)
            assert txn["state"] == "approved", txn
            done += 1
            i += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(lane(k, c) for k, c in enumerate(clients)))
    elapsed = time.perf_counter() - t0
    await asyncio.gather(*(c.close() for c in clients))
    return done, elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sales", type=int, default=300)
    ap.add_argument("--registers", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--sign-type", choices=("RSA2", "NONE"), default="RSA2")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="posbridge-bench-"))
    sim_proc = subprocess.Popen(
        [sys.executable, "-m", "posbridge", "simulate", "--data-dir", str(tmp / "sim"),
         "--ready-file", str(tmp / "sim.json"), "--approve-delay", "0"],
        stderr=subprocess.DEVNULL)
    sim = wait_file(tmp / "sim.json", sim_proc)
    keys = tmp / "sim" / "keys"
    clients = "\n".join(
        f'[[ecr_clients]]\nname = "lane-{i}"\nrole = "cashier"\ntoken_hash = "{h}"\n'
        for i, h in enumerate([hash_secret(TOKEN)]))
    (tmp / "bridge.toml").write_text(f"""
[bridge]
data_dir = "{tmp / 'data'}"
ecr_listen = "127.0.0.1:0"
http_listen = "127.0.0.1:0"
public_url = ""
max_amount = "10000.00"
log_format = "json"

{clients}
[manager]

[codepay]
base_url = "{sim['codepay']}"
app_id = "{APP_ID}"
merchant_no = "{MERCHANT_NO}"
private_key_file = "{keys / 'merchant_private.pem'}"
gateway_public_key_file = "{keys / 'codepay_gateway_public.pem'}"
expires_s = 120

[[terminals]]
sn = "{TERMINAL}"
name = "lane-1"
""")
    env = dict(os.environ)
    bridge_proc = subprocess.Popen(
        [sys.executable, "-m", "posbridge", "serve", "--config", str(tmp / "bridge.toml"),
         "--ready-file", str(tmp / "bridge.json")],
        stderr=subprocess.DEVNULL, env=env)
    try:
        ports = wait_file(tmp / "bridge.json", bridge_proc)
        url = f"ws://127.0.0.1:{ports['ecr_port']}/ecr"

        async def run() -> None:
            await bridged(url, 20, "W")  # warm-up
            await direct(sim, keys, 20)
            d = await direct(sim, keys, args.sales)
            b = await bridged(url, args.sales, "B")
            print(describe("direct (sign+verify)", d))
            print(describe("through the bridge", b))
            print(f"ratio bridge/direct: median {statistics.median(b) / statistics.median(d):.2f}"
                  f"   p99 {pct(b, 0.99) / pct(d, 0.99):.2f}   (target median <= 2.0)")
            done, elapsed = await throughput(url, args.registers, args.seconds)
            print(f"throughput: {args.registers} registers, {done} sales in {elapsed:.1f} s"
                  f" = {done / elapsed:.0f} sales/s   (target >= 1000)")

        asyncio.run(run())
    finally:
        bridge_proc.terminate()
        sim_proc.terminate()
        bridge_proc.wait(30)
        sim_proc.wait(30)


if __name__ == "__main__":
    main()
