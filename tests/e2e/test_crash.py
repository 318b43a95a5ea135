"""Crash tests with real processes: the daemon is SIGKILLed at awkward instants of a sale and
restarted; the sale ends in its true final state, the gateway saw exactly one create, and the
register learns the result through events.replay."""

from __future__ import annotations

import asyncio
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
import pytest

from posbridge.client import EcrClient

from .conftest import TOKEN, hashed
from .events import txn_events, txn_states

pytestmark = pytest.mark.timeout(120)


def wait_file(path: Path, proc: subprocess.Popen[bytes], timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            return dict(json.loads(path.read_text()))
        if proc.poll() is not None:
            raise AssertionError(f"process exited early with {proc.returncode}")
        time.sleep(0.05)
    raise AssertionError(f"{path} did not appear")


@pytest.fixture
def simulator(tmp_path: Path) -> Iterator[dict[str, Any]]:
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


def write_config(tmp_path: Path, sim: dict[str, Any]) -> Path:
    keys = sim["data_dir"] / "keys"
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

[codepay]
base_url = "{sim['codepay']}"
app_id = "sandbox-app"
merchant_no = "SANDBOX000001"
private_key_file = "{keys / 'merchant_private.pem'}"
gateway_public_key_file = "{keys / 'codepay_gateway_public.pem'}"
expires_s = 60
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


@pytest.mark.parametrize("failpoint", [
    "before_create:sale",        # intent recorded, nothing sent yet
    "create_answered:sale",      # the gateway took the order, the answer is not recorded
    "publish:approved",          # the result is recorded, the register not yet told
])
async def test_kill_at_a_failpoint_then_restart(
        tmp_path: Path, simulator: dict[str, Any], failpoint: str) -> None:
    daemon = Daemon(tmp_path, write_config(tmp_path, simulator))
    daemon.start(failpoint=failpoint)
    try:
        await start_sale(daemon, "K1", "10.00")
        assert daemon.wait_killed() == -signal.SIGKILL
        txn, events = await final_after_restart(daemon, "K1")
    finally:
        daemon.stop()
    assert txn["state"] == "approved"
    stats = await sim_stats(simulator, "K1")
    assert stats["creates"] == 1, stats
    finals = [e for e in txn_events(events, "K1")
              if e["params"]["transaction"]["state"] == "approved"]
    assert len(finals) == 1


async def test_kill_while_the_gateway_has_not_answered(
        tmp_path: Path, simulator: dict[str, Any]) -> None:
    """Cents .20: the gateway processes the create but its answer never comes back; the
    daemon is killed while it waits, then restarted."""
    daemon = Daemon(tmp_path, write_config(tmp_path, simulator))
    daemon.start()
    try:
        sale = asyncio.create_task(start_sale(daemon, "K2", "10.20"))
        deadline = time.monotonic() + 10
        while (await sim_stats(simulator, "K2"))["creates"] == 0:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        daemon.kill()
        await sale
        txn, events = await final_after_restart(daemon, "K2")
    finally:
        daemon.stop()
    assert txn["state"] == "approved"
    assert (await sim_stats(simulator, "K2"))["creates"] == 1
    assert "approved" in txn_states(events, "K2")


@pytest.mark.parametrize(("order_no", "amount"), [
    ("T1", "10.00"),  # SIGTERM right after the create: the approval is moments away
    ("T2", "10.45"),  # slow approval: still on the terminal when the daemon stops
])
async def test_sigterm_during_a_sale_loses_nothing(
        tmp_path: Path, simulator: dict[str, Any], order_no: str, amount: str) -> None:
    daemon = Daemon(tmp_path, write_config(tmp_path, simulator))
    daemon.start()
    try:
        sale = asyncio.create_task(start_sale(daemon, order_no, amount))
        deadline = time.monotonic() + 10
        while (await sim_stats(simulator, order_no))["creates"] == 0:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        assert daemon.proc is not None
        daemon.proc.send_signal(signal.SIGTERM)
        started = time.monotonic()
        # (in a thread: the register in this loop must be able to answer the close handshake)
        assert await asyncio.to_thread(daemon.wait_killed, 20) == 0  # a clean exit
        stopped_in = time.monotonic() - started
        await sale
        log = (tmp_path / "daemon.log").read_text()
        assert '"daemon_stopped"' in log
        txn, events = await final_after_restart(daemon, order_no)
    finally:
        daemon.stop()
    assert stopped_in < 5, stopped_in  # in-flight work reached a safe point quickly
    assert txn["state"] == "approved"
    assert (await sim_stats(simulator, order_no))["creates"] == 1
    assert txn_states(events, order_no).count("approved") == 1
