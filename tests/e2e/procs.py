"""Real processes for crash, shutdown and logging tests: the simulators (``posbridge
simulate``) and the daemon (``posbridge serve``) each in their own process."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp

from posbridge.client import EcrClient

from .conftest import TOKEN, hashed


def wait_file(path: Path, proc: subprocess.Popen[bytes], timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            return dict(json.loads(path.read_text()))
        if proc.poll() is not None:
            raise AssertionError(f"process exited early with {proc.returncode}")
        time.sleep(0.05)
    raise AssertionError(f"{path} did not appear")


@contextlib.contextmanager
def run_simulator(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """``posbridge simulate`` in its own process; yields its URLs and key folder."""
    ready = tmp_path / "sim.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "posbridge", "simulate", "--data-dir", str(tmp_path / "sim"),
         "--ready-file", str(ready), "--approve-delay", "0.3", "--notify-interval", "0.2"])
    try:
        info = wait_file(ready, proc)
        info["data_dir"] = tmp_path / "sim"
        yield info
    finally:
        proc.terminate()
        proc.wait(10)


def write_config(tmp_path: Path, sim: dict[str, Any], *, pin: str | None = None) -> Path:
    keys = sim["data_dir"] / "keys"
    pin_line = f'pin_hash = "{hashed(pin)}"' if pin else ""
    cfg = tmp_path / "posbridge.toml"
    cfg.write_text(f"""
[bridge]
data_dir = "{tmp_path / 'data'}"
ecr_listen = "127.0.0.1:0"
http_listen = "127.0.0.1:0"
public_url = ""
max_amount = "10000.00"

[[ecr_clients]]
name = "lane-1"
role = "cashier"
token_hash = "{hashed(TOKEN)}"

[manager]
{pin_line}

[codepay]
base_url = "{sim['codepay']}"
app_id = "sandbox-app"
merchant_no = "SANDBOX000001"
private_key_file = "{keys / 'merchant_private.pem'}"
gateway_public_key_file = "{keys / 'codepay_gateway_public.pem'}"
expires_s = 60
poll_interval_s = 0.3
timeout_s = 2.0

[opay]
base_url = "{sim['opay']}"
pay_page_url = "{sim['opay']}/platform/pay.html"
app_id = "sandbox-opay-app"
private_key_file = "{keys / 'opay_merchant_private.pem'}"
platform_public_key_file = "{keys / 'opay_platform_public.pem'}"
coins = {{ USDT = 6, BTC = 8 }}
expires_s = 10
lost_order_settle_s = 0
poll_interval_s = 0.3
timeout_s = 2.0

[[terminals]]
sn = "SANDBOX0000000001"
name = "lane-1"
""")
    return cfg


class Daemon:
    def __init__(self, tmp_path: Path, cfg: Path) -> None:
        self.tmp_path = tmp_path
        self.cfg = cfg
        self.proc: subprocess.Popen[bytes] | None = None
        self.ports: dict[str, Any] = {}

    def start(self, failpoint: str | None = None) -> None:
        ready = self.tmp_path / "daemon.json"
        ready.unlink(missing_ok=True)
        env = {k: v for k, v in os.environ.items() if k != "POSBRIDGE_FAILPOINT"}
        if failpoint:
            env["POSBRIDGE_FAILPOINT"] = failpoint
        with open(self.tmp_path / "daemon.log", "ab") as log:  # the child keeps its own copy
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "posbridge", "serve", "--config", str(self.cfg),
                 "--ready-file", str(ready), "--log-format", "json"],
                env=env, stderr=log)
        self.ports = wait_file(ready, self.proc)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.ports['ecr_port']}/ecr"

    def wait_killed(self, timeout: float = 20) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(20)


async def sim_stats(sim: dict[str, Any], order_no: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http, http.get(
            f"{sim['admin']}/stats", params={"order_no": order_no}) as resp:
        return dict(await resp.json())


async def start_sale(daemon: Daemon, order_no: str, amount: str) -> None:
    """Send a sale and stay connected until the daemon dies (or the sale is final)."""
    try:
        async with await EcrClient.connect(daemon.url, TOKEN) as ecr:
            await ecr.call("sale", {"terminal": "lane-1", "order_no": order_no,
                                    "amount": amount, "currency": "USD"}, timeout=15)
    except (ConnectionError, OSError, TimeoutError):
        pass
    except Exception as exc:  # the daemon died mid-call: any closed-connection error
        if "close" not in type(exc).__name__.lower() and "closed" not in str(exc).lower():
            raise


async def final_after_restart(daemon: Daemon, order_no: str) -> tuple[dict[str, Any], list[Any]]:
    daemon.start()
    async with await EcrClient.connect(daemon.url, TOKEN) as ecr:
        deadline = time.monotonic() + 30
        while True:
            txn = await ecr.call("status", {"order_no": order_no})
            if txn["state"] in ("approved", "declined", "cancelled", "expired", "failed"):
                break
            assert time.monotonic() < deadline, txn
            await asyncio.sleep(0.2)
        events = await ecr.call("events.replay", {"since_seq": 0})
    return txn, events


async def run_cli(*args: object) -> tuple[int, str, str]:
    """``posbridge ARGS...`` in its own process: (exit code, standard output, standard error)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "posbridge", *map(str, args),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()
