"""``posbridge serve``: run the daemon from a configuration file, or on the embedded sandbox."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from posbridge import aio, gc_tuning, logs
from posbridge.config import load_config, parse_config
from posbridge.errors import ConfigError, PosbridgeError

DEFAULT_CONFIG = Path("/etc/posbridge/posbridge.toml")


def register_commands(sub: Any) -> None:
    from posbridge.sandbox.paths import default_sandbox_dir

    p = sub.add_parser("serve", help="run the daemon")
    p.add_argument("--config", type=Path, default=DEFAULT_CONFIG,
                   help=f"configuration file (default {DEFAULT_CONFIG})")
    p.add_argument("--sandbox", action="store_true",
                   help="no configuration needed: embedded CodePay/UCanPay simulators, "
                        "simulated terminals, a file printer and a web display")
    p.add_argument("--data-dir", type=Path, default=None,
                   help=f"sandbox state folder (default {default_sandbox_dir()})")
    p.add_argument("--ecr-listen", default="127.0.0.1:8765", help="sandbox ECR address")
    p.add_argument("--http-listen", default="127.0.0.1:8766", help="sandbox HTTP address")
    p.add_argument("--approve-delay", type=float, default=2.0,
                   help="sandbox: seconds a simulated card holder takes")
    p.add_argument("--log-format", choices=("auto", "json", "console"), default=None)
    p.add_argument("--ready-file", type=Path, default=None,
                   help="write the bound ports here (JSON) once serving; for scripts and tests")
    p.set_defaults(func=_serve)


def _serve(args: argparse.Namespace) -> int:
    try:
        if args.sandbox:
            return aio.run(_run_sandbox(args))
        config = load_config(args.config)
        logs.configure(args.log_format or config.bridge.log_format)
        return aio.run(_run(config, args.ready_file, args.config))
    except ConfigError as exc:
        print(f"posbridge: configuration error: {exc}", file=sys.stderr)
        return 2
    except PosbridgeError as exc:
        print(f"posbridge: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"posbridge: cannot start: {exc}", file=sys.stderr)
        return 1


async def _until_signalled(on_hangup: Callable[[], None] | None = None) -> None:
    """Wait for SIGTERM or SIGINT; SIGHUP calls ``on_hangup`` (a reload) meanwhile."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if on_hangup is not None:
        loop.add_signal_handler(signal.SIGHUP, on_hangup)
    await stop.wait()


def _write_ready(path: Path | None, daemon: Any) -> None:
    if path is None:
        return
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"ecr_port": daemon.ecr_port, "http_port": daemon.http_port,
                               "pid": os.getpid()}))
    tmp.replace(path)


async def _run(config: Any, ready_file: Path | None, config_path: Path) -> int:
    from posbridge.daemon import Daemon

    daemon = Daemon(config, config_path=config_path)
    await daemon.start()
    gc_tuning.tune_for_serving()
    _write_ready(ready_file, daemon)
    try:
        await _until_signalled(daemon.reload_soon)
    finally:
        await daemon.stop()
    return 0


async def _run_sandbox(args: argparse.Namespace) -> int:
    from posbridge.daemon import Daemon
    from posbridge.sandbox.paths import TOKEN_FILE, default_sandbox_dir
    from posbridge.sandbox.runtime import (
        ensure_keys,
        ensure_secret,
        new_pin,
        new_token,
        sandbox_config_data,
        start_simulators,
    )

    logs.configure(args.log_format or "auto")
    data_dir: Path = args.data_dir or default_sandbox_dir()
    keys = await asyncio.to_thread(ensure_keys, data_dir)
    token = ensure_secret(data_dir / TOKEN_FILE, new_token)
    pin = ensure_secret(data_dir / "manager-pin", new_pin)
    sims = await start_simulators(keys, approve_delay_s=args.approve_delay)
    try:
        data = sandbox_config_data(data_dir, keys, sims, token=token, pin=pin,
                                   ecr_listen=args.ecr_listen, http_listen=args.http_listen)
        config = parse_config(data, env=os.environ)
        daemon = Daemon(config, sandbox=sims)
        await daemon.start()
        gc_tuning.tune_for_serving()
        _write_ready(args.ready_file, daemon)
        try:
            print(_banner(daemon, data_dir, token, pin, sims), flush=True)
            await _until_signalled()
        finally:
            await daemon.stop()
    finally:
        await sims.stop()
    return 0


def _banner(daemon: Any, data_dir: Path, token: str, pin: str, sims: Any) -> str:
    host = daemon.config.bridge.http_listen.host
    http = f"http://{host}:{daemon.http_port}"
    lanes = [lane for _p, _sn, lane in sims.terminals]
    displays = f"{http}/display/{lanes[0]}" if lanes else "(no lanes)"
    if len(lanes) > 1:
        displays += "   (and " + ", ".join(f"/display/{lane}" for lane in lanes[1:]) + ")"
    behaviours = "\n".join(
        f"  {spec.title}:" + "".join(f"\n    {rule:>6}  {what}" for rule, what in spec.behaviours)
        for spec in sims.specs.values() if spec.title)
    return f"""
posbridge sandbox is running (state in {data_dir})

  ECR WebSocket   ws://{daemon.config.bridge.ecr_listen.host}:{daemon.ecr_port}/ecr
  register token  {token}
  manager PIN     {pin}
  display         {displays}
  manager page    {http}/manager
  health          {http}/healthz    metrics {http}/metrics

  try:  posbridge sale --terminal lane-1 --order-no A1 --amount 12.00 --currency USD
        posbridge qr-sale --order-no Q1 --amount 8.50 --currency CAD --subject Coffee --print

{behaviours}
"""
