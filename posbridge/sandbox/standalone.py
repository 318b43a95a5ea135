"""Run the simulators as their own process: ``posbridge simulate``.

Used where the simulated gateways must outlive the daemon (crash tests kill the daemon and
check what the gateway saw) and by the benchmarks (gateway and bridge on separate cores).
Writes a JSON "ready file" with the URLs once listening, and serves a small read-only admin
endpoint: ``GET /stats?order_no=...`` with what the CodePay simulator received for one order,
``GET /orders`` with each simulator's counters and the orders it remembers (a soak's check).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from posbridge import aio, logs

if TYPE_CHECKING:  # aiohttp and the simulators load when the command runs, not for --help
    from aiohttp import web

    from posbridge.sandbox.runtime import Simulators


def register_commands(sub: Any) -> None:
    p = sub.add_parser("simulate", help="run the providers' simulators on their own")
    p.add_argument("--data-dir", type=Path, required=True, help="keys are kept here")
    p.add_argument("--ready-file", type=Path, required=True,
                   help="written (JSON: each simulator's URL by provider, admin URL) once "
                        "listening")
    p.add_argument("--approve-delay", type=float, default=0.05)
    p.add_argument("--notify-interval", type=float, default=0.2,
                   help="UCanPay: seconds between notification attempts")
    p.add_argument("--notify-retry", type=_seconds_list, default=None,
                   help="CodePay: pauses between notification attempts, e.g. 0.5,1,2,5 "
                        "(default: the simulator's)")
    p.set_defaults(func=_run)


def _seconds_list(text: str) -> tuple[float, ...]:
    """``0.5,1,2`` as seconds; argparse reports a ValueError as a usage error."""
    values = tuple(float(part) for part in text.split(","))
    if not values or any(not 0 <= v <= 3600 for v in values):
        raise ValueError(text)
    return values


def _run(args: argparse.Namespace) -> int:
    # The daemon's log set-up (JSON lines unless on a terminal, loggers cached): structlog's
    # default renders coloured console text on stdout, at several times the cost per line.
    logs.configure("auto")
    return aio.run(_main(args))


def _admin_app(sims: Simulators) -> web.Application:
    from aiohttp import web

    async def stats(request: web.Request) -> web.Response:
        order_no = request.query.get("order_no", "")
        return web.json_response({"order_no": order_no, **{
            name: sim.stats(order_no) for name, sim in sims.by_name.items()}})

    async def orders(request: web.Request) -> web.Response:
        del request  # nothing to choose: everything the simulators remember
        return web.json_response({
            name: {"stats": sim.totals(), "orders": sim.recent_orders()}
            for name, sim in sims.by_name.items()
        })

    app = web.Application()
    app.add_routes([web.get("/stats", stats), web.get("/orders", orders)])
    return app


async def _main(args: argparse.Namespace) -> int:
    from aiohttp import web

    from posbridge.sandbox.runtime import ensure_keys, start_simulators

    keys = await asyncio.to_thread(ensure_keys, args.data_dir)
    sims = await start_simulators(keys, approve_delay_s=args.approve_delay,
                                  notify_interval_s=args.notify_interval)
    if args.notify_retry is not None:
        sims.codepay.notify_retry_s = args.notify_retry
    runner = web.AppRunner(_admin_app(sims), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    admin_port = runner.addresses[0][1]
    tmp = args.ready_file.with_suffix(".tmp")
    tmp.write_text(json.dumps({**{name: sim.url for name, sim in sims.by_name.items()},
                               "admin": f"http://127.0.0.1:{admin_port}",
                               "pid": os.getpid()}))
    tmp.replace(args.ready_file)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        await sims.stop()
    return 0
