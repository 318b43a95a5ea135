"""Wallet QR sales: request to QR frame ready, event-loop lag with 20 QR sales at once, and the
QR slip's size and line time with native and raster QR.

    python bench/bench_qr.py [--sales 100] [--lanes 20] [--rounds 10]
                             [--stub-render] [--loop-turns FILE]   (diagnostics)

Three processes: the simulators (``posbridge simulate``), the daemon (this file with
``--serve``: the same :class:`posbridge.daemon.Daemon` that ``posbridge serve`` runs, on the
same loop (:mod:`posbridge.aio`: uvloop), plus an event-loop lag probe sampling every 2 ms in
the daemon's loop and a small 127.0.0.1 endpoint to read it; its QR render pool process is
the daemon's own child), and this driver (the registers, and one "kiosk" per lane watching the web
display's WebSocket).

* **QR frame ready**: from the ``qr_sale`` request sent (``wait: false``) to the moment the
  kiosk has the QR image: the display pushes the QR frame, the kiosk fetches
  ``/display/<lane>/qr.png?seq=N``, which answers once the PNG is rendered (in the daemon's
  render pool process, off the event loop). So the figure includes that fetch (one local HTTP
  round trip). Every QR sale is then cancelled at the register (not timed), so the next one
  starts clean.
* **the direct baseline** (a bare client doing the same work, same run): the driver places
  the same ``unifiedorder`` straight at the UCanPay simulator with the bridge's own UCanPay
  client (signing and verifying), builds the deeplink from the answer, and renders its QR
  PNG in-process with the web display's own settings (:func:`hardware.qr.render_qr_png`,
  scale and quiet zone of :mod:`hardware.displays.web`); timed from the request to the PNG
  bytes. It alternates in blocks with the bridged sales. Target: median(frame ready) <= 0.6 x
  median(baseline).
* **excluding the provider**: median(frame ready) - median(direct unifiedorder alone), and
  as a cross-check mean(frame ready) - mean(unifiedorder time the bridge itself measured,
  from its ``/metrics``).
* **event-loop lag** (:class:`posbridge.metrics.EventLoopLagProbe`, every 2 ms, in the daemon's
  loop): ``--lanes`` registers each start a QR sale at the same moment and wait for their QR
  images, then cancel them; ``--rounds`` times. p99 and max while the sales start (until every
  image is ready: the target), and over the whole phase with the cancels, beside the same
  probe over an idle second just before (the baseline).
* **slip**: ``bench_slip_sizes.py``'s table (bytes, seconds on a 19,200-baud line, build time).

Two diagnostics change the daemon and are not measurements of the product: ``--stub-render``
serves one fixed PNG instead of rendering; ``--loop-turns FILE`` runs it on asyncio's own loop
with every callback timed (``bench/loop_turns.py``) and prints its long turns while the QR
sales start.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from procs import (  # bench/procs.py (the script's folder is on sys.path)
    run_header,
    stop_all,
    target,
    wait_file,
)

from hardware.displays.web import QR_BORDER, QR_SCALE
from hardware.qr import render_qr_png
from posbridge import aio, gc_tuning, logs
from posbridge.client import EcrClient
from posbridge.keyfiles import load_private_key, load_public_key
from posbridge.metrics import EventLoopLagProbe, percentile
from posbridge.providers.base import PaymentOrder, TxnKind
from posbridge.providers.ucanpay.client import UCanPayProvider
from posbridge.providers.ucanpay.config import DEFAULT_DEEPLINK_TEMPLATE
from posbridge.sandbox.codepay_sim import APP_ID, MERCHANT_NO
from posbridge.sandbox.ucanpay_sim import MERCHANT_ID as UCANPAY_MERCHANT
from posbridge.secrets import hash_secret

BLOCK = 20  # direct and bridged alternate in blocks of this many
TARGET_READY_MS = 5.0  # excluding the provider
TARGET_READY_RATIO = 0.6  # frame ready / the direct create + render baseline
TARGET_LAG_MS = 5.0
LAG_INTERVAL_S = 0.002


def token(k: int) -> str:
    return f"bench-qr-register-{k:04d}-0123456789abcdef"


def ms(values: list[float]) -> list[float]:
    return [v * 1000 for v in values]


def describe(name: str, seconds: list[float]) -> str:
    v = ms(seconds)
    return (f"{name:<34} n={len(v):<4} median {statistics.median(v):6.2f} ms"
            f"   p99 {percentile(v, 0.99):6.2f} ms   mean {statistics.fmean(v):6.2f} ms")


# -- the daemon side (--serve) --------------------------------------------------------------


def config_data(tmp: Path, sim: dict[str, Any], keys: Path, lanes: int) -> dict[str, Any]:
    return {
        "bridge": {"data_dir": str(tmp / "data"), "ecr_listen": "127.0.0.1:0",
                   "http_listen": "127.0.0.1:0", "public_url": "", "max_amount": "10000.00",
                   "log_format": "json"},
        "ecr_clients": [{"name": f"register-{k}", "role": "cashier",
                         "token_hash": hash_secret(token(k), log2_n=4)} for k in range(lanes)],
        "manager": {},
        "codepay": {"base_url": sim["codepay"], "app_id": APP_ID, "merchant_no": MERCHANT_NO,
                    "private_key_file": str(keys / "merchant_private.pem"),
                    "gateway_public_key_file": str(keys / "codepay_gateway_public.pem")},
        "ucanpay": {"base_url": sim["ucanpay"], "merchant_id": UCANPAY_MERCHANT,
                    "private_key_file": str(keys / "ucanpay_merchant_private.pem"),
                    "public_key_file": str(keys / "ucanpay_gateway_public.pem"),
                    "currency": "CAD", "qr_timeout_s": 120},
        "terminals": [{"sn": f"QRLANE{k:06d}", "name": f"lane-{k}", "display": f"lane-{k}"}
                      for k in range(lanes)],
        "displays": [{"name": f"lane-{k}", "kind": "web"} for k in range(lanes)],
    }


async def serve(config_file: Path, ready_file: Path, stub_render: bool,
                turns: bool = False) -> None:
    from posbridge.config import parse_config
    from posbridge.daemon import Daemon

    if stub_render:  # diagnostic only: every QR "renders" at once to the same PNG
        import hardware.displays.web as web_display
        from hardware.qr import render_qr_png

        png = render_qr_png("stub")

        async def stub(data: str, *, scale: int = 8, border: int = 4, ec: str = "M") -> bytes:
            return png

        setattr(web_display, "render_qr_png_async", stub)  # noqa: B010 (a patch, on purpose)

    record_turns = None
    if turns:
        import loop_turns  # bench/ is on sys.path: this script's folder

        record_turns = loop_turns.record
    daemon = Daemon(parse_config(json.loads(config_file.read_text()), env={}))
    await daemon.start()
    # Two probes (posbridge.metrics.EventLoopLagProbe) in the daemon's loop: "phase" samples
    # a whole phase; "starts" samples only while the driver has it running (the moments the
    # QR sales start until their frames are ready). POST /lag/{probe}/{reset|run|stop}.
    probes = {name: EventLoopLagProbe(interval_s=LAG_INTERVAL_S, window=1_000_000)
              for name in ("phase", "starts")}
    tasks: dict[str, asyncio.Task[None]] = {}

    def halt(name: str) -> None:
        task = tasks.pop(name, None)
        if task is not None:
            task.cancel()

    async def lag(request: web.Request) -> web.Response:
        name = request.match_info["probe"]
        probe = probes[name]
        action = request.match_info.get("action", "")
        stats = {"p99_ms": probe.p99() * 1000, "max_ms": probe.max() * 1000,
                 "samples": probe.samples}  # as they were before the action
        if record_turns is not None and name == "starts" and action in ("run", "stop"):
            record_turns(action == "run")  # --loop-turns: the turns this probe samples
        if action == "reset":
            probe.reset()
        elif action == "run" and name not in tasks:
            tasks[name] = asyncio.get_running_loop().create_task(probe.run())
        elif action == "stop":
            halt(name)
        return web.json_response(stats)

    app = web.Application()
    app.add_routes([web.get("/lag/{probe}", lag), web.post("/lag/{probe}/{action}", lag)])
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    gc_tuning.tune_for_serving()  # as posbridge serve does once serving
    tmp = ready_file.with_suffix(".tmp")
    tmp.write_text(json.dumps({"ecr_port": daemon.ecr_port, "http_port": daemon.http_port,
                               "admin_port": runner.addresses[0][1]}))
    tmp.replace(ready_file)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for name in list(tasks):
            halt(name)
        await runner.cleanup()
        await daemon.stop(grace_s=2)


# -- the driver -----------------------------------------------------------------------------


class Kiosk:
    """One lane's customer-display browser: the frame WebSocket and the qr.png fetch."""

    def __init__(self, http: aiohttp.ClientSession, base: str, lane: str) -> None:
        self.http = http
        self.base = base
        self.lane = lane
        self.waiting: dict[str, asyncio.Future[int]] = {}
        self._task: asyncio.Task[None] | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None

    async def start(self) -> None:
        self._ws = await self.http.ws_connect(f"{self.base}/display/{self.lane}/ws")
        self._task = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        assert self._ws is not None
        async for msg in self._ws:
            if msg.type is not aiohttp.WSMsgType.TEXT:
                break
            frame = json.loads(msg.data)["frame"]
            fut = self.waiting.get(frame.get("order_no", ""))
            if frame["state"] == "qr" and fut is not None and not fut.done():
                fut.set_result(int(frame["seq"]))

    def expect(self, order_no: str) -> asyncio.Future[int]:
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.waiting[order_no] = fut
        return fut

    async def qr_image(self, order_no: str, seq_fut: asyncio.Future[int]) -> bytes:
        try:
            seq = await asyncio.wait_for(seq_fut, 30)
        finally:
            self.waiting.pop(order_no, None)
        async with self.http.get(f"{self.base}/display/{self.lane}/qr.png",
                                 params={"seq": str(seq)}) as resp:
            if resp.status != 200:
                raise SystemExit(f"qr.png for {order_no}: HTTP {resp.status}")
            return await resp.read()

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


async def bridged_qr(ecr: EcrClient, kiosk: Kiosk, order_no: str) -> tuple[float, float]:
    """(request -> QR image in the kiosk's hands, request -> register's answer) in seconds."""
    seq = kiosk.expect(order_no)
    t0 = time.perf_counter()

    async def call() -> tuple[Any, float]:
        txn = await ecr.call(
            "qr_sale", {"order_no": order_no, "amount": "8.50", "currency": "CAD",
                        "subject": "Coffee", "display": kiosk.lane, "wait": False}, timeout=60)
        return txn, time.perf_counter() - t0

    answer = asyncio.ensure_future(call())
    try:
        png = await kiosk.qr_image(order_no, seq)
    except BaseException:
        answer.cancel()
        raise
    ready = time.perf_counter() - t0
    txn, answered = await answer
    if txn["state"] != "in_progress" or not png.startswith(b"\x89PNG"):
        raise SystemExit(f"QR sale {order_no}: {txn['state']}")
    return ready, answered


async def cancel(ecr: EcrClient, order_no: str) -> None:
    txn = await ecr.call("cancel", {"order_no": order_no}, timeout=60)
    if txn["state"] != "cancelled":
        raise SystemExit(f"cancel {order_no}: {txn['state']}")


def direct_provider(sim: dict[str, Any], keys: Path) -> UCanPayProvider:
    return UCanPayProvider(
        base_url=sim["ucanpay"], merchant_id=UCANPAY_MERCHANT,
        private_key=load_private_key((keys / "ucanpay_merchant_private.pem").read_bytes()),
        public_key=load_public_key((keys / "ucanpay_gateway_public.pem").read_bytes()),
        currency="CAD", notify_url="http://127.0.0.1:9/notify", refund_notify_url=None,
        qr_timeout_s=120, deeplink_template=DEFAULT_DEEPLINK_TEMPLATE)


async def direct_qr(provider: UCanPayProvider, order_no: str) -> tuple[float, float]:
    """(request -> unifiedorder answered, request -> its QR PNG rendered) in seconds: the
    bare client's baseline, rendering in-process as the display would."""
    order = PaymentOrder(order_no=order_no, kind=TxnKind.QR_SALE, amount=850, currency="CAD",
                         subject="Coffee")
    t0 = time.perf_counter()
    report = await provider.create(order)
    created = time.perf_counter() - t0
    if report.provider_ref is None or report.qr_text is None:
        raise SystemExit(f"direct unifiedorder {order_no}: no reference")
    png = render_qr_png(report.qr_text, scale=QR_SCALE, border=QR_BORDER)
    rendered = time.perf_counter() - t0
    assert png.startswith(b"\x89PNG")
    return created, rendered


def get_json(url: str, method: str = "GET") -> Any:
    req = urllib.request.Request(url, method=method)
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def ucanpay_create(http: str) -> tuple[float, float]:
    """(count, sum in seconds) of the bridge's own UCanPay unifiedorder timings."""
    with urllib.request.urlopen(f"{http}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    found = {"count": 0.0, "sum": 0.0}
    for line in text.splitlines():
        for what in found:
            if line.startswith(f"posbridge_provider_request_seconds_{what}{{") and \
                    'method="create"' in line and 'provider="ucanpay"' in line:
                found[what] = float(line.rsplit(" ", 1)[1])
    return found["count"], found["sum"]


def lag_line(name: str, stats: dict[str, Any]) -> str:
    return (f"{name:<34} {stats['samples']:5} samples   p99 {stats['p99_ms']:6.2f} ms"
            f"   max {stats['max_ms']:6.2f} ms")


async def drive(args: argparse.Namespace, sim: dict[str, Any], keys: Path,
                ports: dict[str, int]) -> None:
    pid = os.getpid()
    url = f"ws://127.0.0.1:{ports['ecr_port']}/ecr"
    base = f"http://127.0.0.1:{ports['http_port']}"
    admin = f"http://127.0.0.1:{ports['admin_port']}/lag"
    provider = direct_provider(sim, keys)
    clients = await asyncio.gather(*(EcrClient.connect(url, token(k))
                                     for k in range(args.lanes)))
    async with aiohttp.ClientSession() as http:
        kiosks = [Kiosk(http, base, f"lane-{k}") for k in range(args.lanes)]
        await asyncio.gather(*(k.start() for k in kiosks))
        try:
            # warm-up: connections, the journal, every lane's first QR
            for i in range(10):
                await direct_qr(provider, f"V{pid}N{i}")
            for k in range(args.lanes):
                await bridged_qr(clients[k], kiosks[k], f"W{pid}N{k}")
                await cancel(clients[k], f"W{pid}N{k}")

            # -- one QR sale at a time ------------------------------------------------
            ready: list[float] = []
            answered: list[float] = []
            direct: list[float] = []
            baseline: list[float] = []
            c0 = ucanpay_create(base)
            while len(ready) < args.sales:
                n = min(BLOCK, args.sales - len(ready))
                for _ in range(n):
                    created, rendered = await direct_qr(provider, f"D{pid}N{len(direct)}")
                    direct.append(created)
                    baseline.append(rendered)
                for _ in range(n):
                    order_no = f"S{pid}N{len(ready)}"
                    r, a = await bridged_qr(clients[0], kiosks[0], order_no)
                    ready.append(r)
                    answered.append(a)
                    await cancel(clients[0], order_no)
            c1 = ucanpay_create(base)
            bridge_create = (c1[1] - c0[1]) / (c1[0] - c0[0])
            print("\nQR frame ready, one QR sale at a time")
            print(describe("qr_sale request -> QR image ready", ready))
            print(describe("qr_sale request -> register answer", answered))
            print(describe("provider: direct unifiedorder", direct))
            print(describe("direct unifiedorder + QR render", baseline))
            excl = statistics.median(ms(ready)) - statistics.median(ms(direct))
            excl_mean = statistics.fmean(ms(ready)) - bridge_create * 1000
            print(f"excluding the provider: median {excl:.2f} ms (median ready - median direct)"
                  f"   mean {excl_mean:.2f} ms (mean ready - the bridge's own mean unifiedorder"
                  f" {bridge_create * 1000:.2f} ms)")
            ready_ms = statistics.median(ms(ready))
            base_ms = statistics.median(ms(baseline))
            targets = [
                target("QR frame ready / direct create + render, median",
                       f"{ready_ms:.2f} / {base_ms:.2f} ms = {ready_ms / base_ms:.2f}",
                       f"<= {TARGET_READY_RATIO:g}", ready_ms <= TARGET_READY_RATIO * base_ms),
                target("QR frame ready excluding the provider, median", f"{excl:.2f} ms",
                       f"<= {TARGET_READY_MS:g} ms", excl <= TARGET_READY_MS)]

            # -- event-loop lag: idle baseline, then lanes x rounds ----------------------
            get_json(f"{admin}/phase/run", "POST")
            await asyncio.sleep(1.0)
            idle = get_json(f"{admin}/phase/reset", "POST")
            together: list[float] = []
            t_phase = time.perf_counter()
            for r in range(args.rounds):
                orders = [f"C{pid}R{r}L{k}" for k in range(args.lanes)]
                get_json(f"{admin}/starts/run", "POST")
                results = await asyncio.gather(*(
                    bridged_qr(clients[k], kiosks[k], orders[k]) for k in range(args.lanes)))
                get_json(f"{admin}/starts/stop", "POST")
                together.extend(res[0] for res in results)
                await asyncio.gather(*(cancel(clients[k], orders[k])
                                       for k in range(args.lanes)))
            phase_s = time.perf_counter() - t_phase
            whole = get_json(f"{admin}/phase/stop", "POST")
            starts = get_json(f"{admin}/starts/stop", "POST")
            print(f"\nevent-loop lag in the daemon (probe every {LAG_INTERVAL_S * 1000:g} ms)")
            print(lag_line("idle, 1 s (baseline)", idle))
            print(lag_line(f"{args.lanes} QR sales starting at once", starts)
                  + f"   x {args.rounds} rounds")
            targets.append(target(f"event-loop lag p99, {args.lanes} QR sales at once",
                                  f"{starts['p99_ms']:.2f} ms", f"<= {TARGET_LAG_MS:g} ms",
                                  starts["p99_ms"] <= TARGET_LAG_MS))
            print(lag_line("the whole phase, cancels included", whole)
                  + f"   ({phase_s:.1f} s)")
            print(describe(f"QR image ready, {args.lanes} at once", together))
            print("\ntargets")
            print("\n".join(targets))
        finally:
            await asyncio.gather(*(k.close() for k in kiosks))
            await asyncio.gather(*(c.close() for c in clients))
            await provider.aclose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sales", type=int, default=100, help="sequential QR sales (and direct)")
    ap.add_argument("--lanes", type=int, default=20, help="QR sales at once")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--stub-render", action="store_true",
                    help="diagnostic: the daemon skips QR rendering (a fixed PNG), to show "
                         "the bridge's own part; not a measurement of the product")
    ap.add_argument("--loop-turns", type=Path, default=None, metavar="FILE",
                    help="diagnostic: the daemon runs on asyncio's own loop with every callback "
                         "timed (bench/loop_turns.py) and reports its long turns while QR sales "
                         "start at once to FILE; much slower, not a measurement of the product")
    ap.add_argument("--serve", type=Path, help=argparse.SUPPRESS)  # the daemon process
    ap.add_argument("--ready-file", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve is not None:
        logs.configure("json")
        if args.loop_turns is None:
            aio.run(serve(args.serve, args.ready_file, args.stub_render))
            return
        import loop_turns  # bench/ is on sys.path: this script's folder

        loop_turns.record(False)
        loop_turns.run(serve(args.serve, args.ready_file, args.stub_render, turns=True))
        args.loop_turns.write_text(loop_turns.report() + "\n")
        return
    logs.configure("json", logging.WARNING)
    if args.loop_turns is not None:  # the daemon writes it as it stops: never an old one
        args.loop_turns = args.loop_turns.resolve()
        args.loop_turns.unlink(missing_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="posbridge-bench-qr-"))
    sim_proc = subprocess.Popen(
        [sys.executable, "-m", "posbridge", "simulate", "--data-dir", str(tmp / "sim"),
         "--ready-file", str(tmp / "sim.json")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    bridge_proc: subprocess.Popen[bytes] | None = None
    try:
        sim = wait_file(tmp / "sim.json", sim_proc)
        keys = tmp / "sim" / "keys"
        (tmp / "config.json").write_text(json.dumps(config_data(tmp, sim, keys, args.lanes)))
        bridge_proc = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(tmp / "config.json"),
             "--ready-file", str(tmp / "bridge.json"),
             *(["--stub-render"] if args.stub_render else []),
             *(["--loop-turns", str(args.loop_turns)] if args.loop_turns else [])],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        ports = wait_file(tmp / "bridge.json", bridge_proc)
        print(run_header("bench_qr"))
        if args.stub_render:
            print("DIAGNOSTIC RUN: QR rendering stubbed out in the daemon (--stub-render)")
        if args.loop_turns:
            print("DIAGNOSTIC RUN: the daemon on asyncio's own loop, every callback timed"
                  " (--loop-turns)")
        aio.run(drive(args, sim, keys, ports))
    finally:
        stop_all([bridge_proc, sim_proc], tmp)
    if args.loop_turns is not None and args.loop_turns.exists():
        print(f"\nthe daemon's long loop turns ({args.loop_turns})")
        print(args.loop_turns.read_text(), end="")
    print("\nQR slip, native QR vs raster (bench_slip_sizes.py)")
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import bench_slip_sizes

    bench_slip_sizes.main(["--runs", "20"])


if __name__ == "__main__":
    main()
