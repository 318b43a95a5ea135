"""Crash tests with real processes: the daemon is SIGKILLed at awkward instants of a sale and
restarted; the sale ends in its true final state, the gateway saw exactly one create, and the
register learns the result through events.replay."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from posbridge.client import EcrClient

from .conftest import TOKEN
from .events import txn_events, txn_states
from .procs import Daemon, final_after_restart, sim_stats, start_sale, write_config

pytestmark = pytest.mark.timeout(120)

PIN = "424242"


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
    stats = (await sim_stats(simulator, "K1"))["codepay"]
    assert stats["creates"] == 1, stats
    finals = [e for e in txn_events(events, "K1")
              if e["params"]["transaction"]["state"] == "approved"]
    assert len(finals) == 1


@pytest.mark.parametrize(("failpoint", "on_disk"), [
    # a crash: the in-progress state was committed, not yet durable; the crash keeps it
    ("committed:in_progress@2", {"in_progress"}),
    # a power cut at the same instant: the WAL loses what was not durable, back to the intent
    ("power_cut:in_progress@2", {"pending"}),
    # the approval is committed and told, its fsync not done yet: a crash keeps it
    ("committed:approved@2", {"approved"}),
    # a power cut there takes it back to the last durable point: the intent, or the
    # in-progress state if its event had been made durable (within milliseconds) by then
    ("power_cut:approved@2", {"pending", "in_progress"}),
])
async def test_kill_with_a_state_committed_but_not_durable(
        tmp_path: Path, simulator: dict[str, Any], failpoint: str, on_disk: set[str]) -> None:
    """The second sale of the run is killed once a state of it is committed but not yet
    durable. After the restart it ends approved with one create at the gateway, and every
    event the register was shown live comes back from events.replay with the same seq and
    content: it saw nothing that the crash or the power cut took back. (The first sale puts
    the terminal on-line, whose status event would make the second sale's group durable.)"""
    daemon = Daemon(tmp_path, write_config(tmp_path, simulator))
    daemon.start(failpoint=failpoint)
    seen: list[dict[str, Any]] = []
    try:
        async with await EcrClient.connect(daemon.url, TOKEN) as ecr:
            first = await ecr.call("sale", {"terminal": "lane-1", "order_no": "N0",
                                            "amount": "10.00", "currency": "USD"})
            assert first["state"] == "approved"
            with contextlib.suppress(Exception):  # the daemon dies mid-call
                await ecr.call("sale", {"terminal": "lane-1", "order_no": "N1",
                                        "amount": "10.00", "currency": "USD"}, timeout=15)
            with contextlib.suppress(TimeoutError):
                while True:
                    seen.append((await ecr.next_notification(timeout=0.2))["params"])
        assert await asyncio.to_thread(daemon.wait_killed) == -signal.SIGKILL
        with contextlib.closing(sqlite3.connect(tmp_path / "data" / "journal.sqlite")) as db:
            [(state,)] = db.execute("SELECT state FROM transactions WHERE order_no = 'N1'")
        if failpoint.startswith("power_cut:") and wal_bytes_lost(tmp_path) == 0:
            # Nothing to take back: an event sync made the state durable before the kill
            # point was reached (a slow machine), so the power cut keeps it, as a crash would.
            on_disk = {failpoint.partition(":")[2].partition("@")[0]}
        assert state in on_disk
        txn, events = await final_after_restart(daemon, "N1")
    finally:
        daemon.stop()
    assert txn["state"] == "approved"
    assert (await sim_stats(simulator, "N1"))["codepay"]["creates"] == 1
    replayed = {e["seq"]: e["params"] for e in events}
    shown = [p["transaction"]["state"] for p in seen
             if p.get("transaction", {}).get("order_no") == "N1"]
    assert shown in (["pending"], ["pending", "in_progress"])  # never the approval
    assert seen and all(replayed.get(p["seq"]) == p for p in seen), (seen, events)
    assert txn_states(events, "N1").count("approved") == 1


def wal_bytes_lost(tmp_path: Path) -> int:
    """How many bytes of the WAL the daemon's simulated power cut took back (its log)."""
    for line in (tmp_path / "daemon.log").read_text(encoding="utf-8").splitlines():
        record = json.loads(line) if line.startswith("{") else {}
        if record.get("event") == "power_cut_simulated":
            return int(record["wal_bytes_lost"])
    raise AssertionError("the daemon did not log its simulated power cut")


async def test_kill_while_the_gateway_has_not_answered(
        tmp_path: Path, simulator: dict[str, Any]) -> None:
    """Cents .20: the gateway processes the create but its answer never comes back; the
    daemon is killed while it waits, then restarted."""
    daemon = Daemon(tmp_path, write_config(tmp_path, simulator))
    daemon.start()
    try:
        sale = asyncio.create_task(start_sale(daemon, "K2", "10.20"))
        deadline = time.monotonic() + 10
        while (await sim_stats(simulator, "K2"))["codepay"]["creates"] == 0:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        daemon.kill()
        await sale
        txn, events = await final_after_restart(daemon, "K2")
    finally:
        daemon.stop()
    assert txn["state"] == "approved"
    assert (await sim_stats(simulator, "K2"))["codepay"]["creates"] == 1
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
        while (await sim_stats(simulator, order_no))["codepay"]["creates"] == 0:
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
    assert (await sim_stats(simulator, order_no))["codepay"]["creates"] == 1
    assert txn_states(events, order_no).count("approved") == 1


@pytest.mark.parametrize("failpoint", [
    "batch_close:begun",     # the batch is frozen and the next one open; nothing sent yet
    "batch_close:answered",  # the provider closed it; the bridge has not recorded that
])
async def test_kill_during_a_batch_close_resumes_and_closes_once(
        tmp_path: Path, simulator: dict[str, Any], failpoint: str) -> None:
    daemon = Daemon(tmp_path, write_config(tmp_path, simulator, pin=PIN))
    daemon.start(failpoint=failpoint)
    try:
        async with await EcrClient.connect(daemon.url, TOKEN) as ecr:
            await ecr.call("sale", {"terminal": "lane-1", "order_no": "BC1", "amount": "10.00",
                                    "currency": "USD"})
            with contextlib.suppress(Exception):  # the daemon dies mid-call
                await ecr.call("batch.close", {"terminal": "lane-1", "manager_pin": PIN},
                               timeout=10)
        assert await asyncio.to_thread(daemon.wait_killed) == -signal.SIGKILL
        daemon.start()
        async with await EcrClient.connect(daemon.url, TOKEN) as ecr:
            deadline = time.monotonic() + 15
            while True:  # the restarted daemon finishes the close by itself
                [open_] = await ecr.call("batch.status", {"terminal": "lane-1"})
                if open_["batch_no"] == 2 and (await sim_stats(simulator, "BC1"))["codepay"][
                        "batch_closes"]:
                    break
                assert time.monotonic() < deadline, open_
                await asyncio.sleep(0.2)
            await asyncio.sleep(0.5)  # room for a (wrong) second close to show up
            events = await ecr.call("events.replay", {"since_seq": 0})
    finally:
        daemon.stop()
    assert open_["count"] == 0
    assert (await sim_stats(simulator, "BC1"))["codepay"]["batch_closes"] == ["SANDBOX0000000001"]
    closed = [e["params"]["batch"] for e in events if e["type"] == "batch.closed"]
    assert [(b["batch_no"], b["state"]) for b in closed] == [(1, "closed")]
    assert closed[0]["totals"]["USD"]["sales"] == "10.00"


@pytest.mark.parametrize("failpoint", [
    "before_create:crypto_sale",     # intent recorded, nothing sent: never made at the platform
    "create_answered:crypto_sale",   # the platform made the order; its orderNum is not recorded
    "publish:approved",              # the result is recorded, the register not yet told
])
async def test_kill_during_a_crypto_sale_then_restart(
        tmp_path: Path, simulator: dict[str, Any], failpoint: str) -> None:
    """A crypto sale (paid without a scan: .45) killed at each instant ends in its true final
    state: never made (failed, once the platform's statement is settled), or paid (found by
    the callback or in the statement: only the platform's orderNum addresses an order, so a
    second create is never sent)."""
    daemon = Daemon(tmp_path, write_config(tmp_path, simulator))
    daemon.start(failpoint=failpoint)
    try:
        with contextlib.suppress(ConnectionError, OSError, TimeoutError):
            async with await EcrClient.connect(daemon.url, TOKEN) as ecr:
                await ecr.call("crypto_sale", {
                    "order_no": "KC1", "amount": "10.45", "coin": "USDT",
                    "payer": {"open_id": "u1"}, "terminal": "lane-1"}, timeout=15)
        assert await asyncio.to_thread(daemon.wait_killed) == -signal.SIGKILL
        daemon.start()
        async with await EcrClient.connect(daemon.url, TOKEN) as ecr:
            deadline = time.monotonic() + 60  # a never-made order waits for its expiry (10 s)
            while True:
                txn = await ecr.call("status", {"order_no": "KC1"})
                if txn["state"] in ("approved", "declined", "cancelled", "expired", "failed"):
                    break
                assert time.monotonic() < deadline, txn
                await asyncio.sleep(0.2)
            events = await ecr.call("events.replay", {"since_seq": 0})
    finally:
        daemon.stop()
    creates = (await sim_stats(simulator, "KC1"))["opay"]["creates"]
    if failpoint.startswith("before_create"):
        assert (txn["state"], txn["error"]["code"], creates) == ("failed", "not_sent", 0)
    else:
        assert (txn["state"], creates) == ("approved", 1)
        assert txn_states(events, "KC1").count("approved") == 1


@pytest.mark.parametrize(("kind", "failpoint"), [
    ("completion", "before_create:completion"),    # recorded, not sent
    ("completion", "create_answered:completion"),  # the gateway took it; not recorded
    ("tip_adjust", "before_create:tip_adjust"),
    ("tip_adjust", "create_answered:tip_adjust"),
])
async def test_kill_during_a_completion_or_a_tip_adjustment(
        tmp_path: Path, simulator: dict[str, Any], kind: str, failpoint: str) -> None:
    """The daemon dies at each instant of a completion or a tip adjustment; after the restart
    the operation ends approved, the gateway saw it once, and the original shows it."""
    daemon = Daemon(tmp_path, write_config(tmp_path, simulator, pin=PIN))
    daemon.start(failpoint=failpoint)
    try:
        async with await EcrClient.connect(daemon.url, TOKEN) as ecr:
            if kind == "completion":
                first = await ecr.call("preauth", {"terminal": "lane-1", "order_no": "KP1",
                                                   "amount": "100.00", "currency": "USD"})
                second = {"order_no": "KP1C", "orig_order_no": "KP1", "amount": "80.00"}
                method, order_no = "completion", "KP1C"
            else:
                first = await ecr.call("sale", {"terminal": "lane-1", "order_no": "KP1",
                                                "amount": "40.00", "tip": "1.00",
                                                "currency": "USD"})
                second = {"order_no": "KP1T", "orig_order_no": "KP1", "tip": "4.00",
                          "manager_pin": PIN}
                method, order_no = "tip.adjust", "KP1T"
            assert first["state"] == "approved"
            with contextlib.suppress(Exception):  # the daemon dies mid-call
                await ecr.call(method, second, timeout=15)
        assert await asyncio.to_thread(daemon.wait_killed) == -signal.SIGKILL
        txn, events = await final_after_restart(daemon, order_no)
        async with await EcrClient.connect(daemon.url, TOKEN) as ecr:
            orig = await ecr.call("status", {"order_no": "KP1"})
            [batch] = await ecr.call("batch.status", {"terminal": "lane-1"})
    finally:
        daemon.stop()
    assert txn["state"] == "approved", txn
    assert txn_states(events, order_no).count("approved") == 1
    methods = (await sim_stats(simulator, order_no if kind == "completion" else "KP1"))[
        "codepay"]["methods"]
    if kind == "completion":
        assert methods.count("wisehub.cloud.pay.order") == 1
        assert orig["completed_amount"] == "80.00"
    else:
        assert methods.count("tip.adjustment") == 1
        assert batch["totals"]["USD"]["tip_adjustments"] == "3.00"
