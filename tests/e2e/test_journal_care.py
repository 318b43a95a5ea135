"""Journal care and reload beside a running daemon, through the real command line: a backup
taken while sales run restores to a journal that ``journal check`` passes; pruning in the daemon
keeps every batch's totals; ``reload`` applies a new PIN and token (and names what needs a
restart); ``audit list --json`` and ``audit export`` read the running daemon's trail."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import websockets
from websockets.asyncio.client import connect

from posbridge.audit_log import all_records
from posbridge.client import EcrClient, EcrError
from posbridge.journal import Journal, now_ms
from posbridge.journal_care import DAY_MS, check_journal
from tests.configs import journal_config

from .conftest import PIN, TOKEN, Bridge, hashed
from .procs import Daemon, run_cli, write_config
from .test_manager_page import sale

pytestmark = pytest.mark.timeout(90)


async def test_a_backup_taken_while_sales_run_restores_to_a_sound_journal(
        bridge: Bridge, tmp_path: Path) -> None:
    config = journal_config(tmp_path / "live.toml", bridge.data_dir)
    dest = tmp_path / "backup.sqlite"
    async with await bridge.register() as ecr:
        assert (await ecr.call("sale", sale("B0", "1.00")))["state"] == "approved"
        backing_up = asyncio.create_task(run_cli("backup", "--config", config, dest))
        states = []
        while not backing_up.done() and len(states) < 100:  # sales go on all the while
            states.append((await ecr.call("sale", sale(f"B{len(states) + 1}", "2.00")))["state"])
        code, out, err = await backing_up
    assert code == 0, err
    assert out.startswith(f"backup written to {dest}: ") and "schema version 4" in out
    assert states and states == ["approved"] * len(states)  # the daemon served on meanwhile

    restored = tmp_path / "restored"
    restored.mkdir()
    shutil.copyfile(dest, restored / "journal.sqlite")
    code, out, err = await run_cli("journal", "check", "--config",
                                   journal_config(tmp_path / "restored.toml", restored))
    assert code == 0, out + err
    assert out.startswith(f"journal OK: {restored / 'journal.sqlite'}")
    async with Journal(restored / "journal.sqlite") as journal:  # as a daemon opens it
        b0 = await journal.get("B0")
        assert b0 is not None and b0.state.value == "approved"


async def test_pruning_in_the_daemon_keeps_batch_totals(make_bridge: Any) -> None:
    bridge: Bridge = await make_bridge(bridge={"retention_days": 1})
    async with await bridge.register() as ecr, await bridge.manager() as mgr:
        for order_no, amount in (("S1", "10.00"), ("S2", "20.00"), ("S3", "7.25")):
            await ecr.call("sale", sale(order_no, amount))
        await mgr.call("refund", {"order_no": "R1", "orig_order_no": "S1", "amount": "4.00"})
        await mgr.call("void", {"order_no": "V2", "orig_order_no": "S2"})
        await mgr.call("batch.close", {"terminal": "lane-1"})
        await ecr.call("sale", sale("S4", "3.00"))  # the new, open batch
    before = await bridge.daemon.batches.history("lane-1")
    assert [b["state"] for b in before] == ["open", "closed"]

    three_days_on = now_ms() + 3 * DAY_MS
    report = await bridge.daemon.prune_journal(clock=lambda: three_days_on)
    assert report.transactions == 5 and report.events > 0
    assert await bridge.daemon.batches.history("lane-1") == before
    for order_no in ("S1", "S2", "S3", "R1", "V2"):
        assert await bridge.daemon.engine.get(order_no) is None
    assert await bridge.daemon.engine.get("S4") is not None
    path = bridge.data_dir / "journal.sqlite"
    assert (await asyncio.to_thread(check_journal, path)).problems == []
    records = await bridge.daemon.journal.read(lambda r: list(all_records(r.conn)))
    pruned = [r for r in records if r.action == "journal.prune"]
    assert pruned and {(r.actor, r.outcome) for r in pruned} == {("system", "ok")}
    assert sum(int(str(r.detail.get("transactions", 0))) for r in pruned) == 5
    # the registers' event sequences go on where they were
    async with await bridge.register() as ecr:
        last = (await ecr.call("events.replay", {"since_seq": 0}))[-1]["params"]["seq"]
        await ecr.call("sale", sale("S5", "1.00"))
        replay = await ecr.call("events.replay", {"since_seq": last})
    assert [e["params"]["seq"] for e in replay][:1] == [last + 1]


NEW_PIN = "737373"
NEW_TOKEN = "a-new-register-token-0123456789abcdef"


async def test_reload_and_the_audit_commands_on_a_running_daemon(
        tmp_path: Path, simulator: dict[str, Any]) -> None:
    cfg = write_config(tmp_path, simulator, pin=PIN)
    daemon = Daemon(tmp_path, cfg)
    daemon.start()
    try:
        async with connect(daemon.url, additional_headers={
                "Authorization": f"Bearer {TOKEN}"}) as lane:
            async with await EcrClient.connect(daemon.url, TOKEN) as ecr:
                with pytest.raises(EcrError) as err:
                    await ecr.call("void", {"order_no": "V1", "orig_order_no": "NOPE",
                                            "manager_pin": NEW_PIN})
                assert err.value.code == 1002  # not the PIN yet

            # a new PIN, and a limit that only a restart changes
            text = cfg.read_text()
            cfg.write_text(text.replace(hashed(PIN), hashed(NEW_PIN)).replace(
                'max_amount = "10000.00"', 'max_amount = "500.00"'))
            code, out, err = await run_cli("reload", "--config", cfg)
            assert (code, out.strip()) == (1, "reload: refused: a restart is needed to apply "
                                              "bridge.max_amount (the tokens and PIN were "
                                              "applied)"), err
            async with await EcrClient.connect(daemon.url, TOKEN) as ecr:
                for pin, code in ((NEW_PIN, 1005), (PIN, 1002)):  # 1005: past the PIN check
                    with pytest.raises(EcrError) as err:
                        await ecr.call("void", {"order_no": "V1", "orig_order_no": "NOPE",
                                                "manager_pin": pin})
                    assert err.value.code == code

            # a new token for lane-1: its connection made with the old one is closed
            cfg.write_text(text.replace(hashed(PIN), hashed(NEW_PIN)).replace(
                hashed(TOKEN), hashed(NEW_TOKEN)))
            code, out, err = await run_cli("reload", "--config", cfg)
            assert (code, out.strip()) == (0, "reload: ok"), err
            await asyncio.wait_for(lane.wait_closed(), 10)
            assert lane.close_code == 4401
        with pytest.raises(websockets.InvalidStatus):
            async with connect(daemon.url, additional_headers={
                    "Authorization": f"Bearer {TOKEN}"}):
                pass
        async with await EcrClient.connect(daemon.url, NEW_TOKEN) as ecr:
            await ecr.call("ping")

        # the trail of the running daemon, as a script reads it (three readers at once)
        jsonl = tmp_path / "audit.jsonl"
        (code, out, err), (csv_code, csv_out, _), (jsonl_code, _, _) = await asyncio.gather(
            run_cli("audit", "list", "--config", cfg, "--json"),
            run_cli("audit", "export", "--config", cfg, "--format", "csv"),
            run_cli("audit", "export", "--config", cfg, "--format", "jsonl", "--output", jsonl))
        assert (code, csv_code, jsonl_code) == (0, 0, 0), err
        listed = [json.loads(line) for line in out.splitlines()]
        assert [(r["seq"], r["actor"], r["action"], r["order_no"], r["outcome"].split(":")[0])
                for r in listed] == [
            (1, "lane-1", "void", "V1", "refused"),
            (2, "system", "config.reload", None, "refused"),
            (3, "lane-1", "void", "V1", "refused"),
            (4, "lane-1", "void", "V1", "refused"),
            (5, "system", "config.reload", None, "ok")]
        assert listed[2]["outcome"] == "refused: no transaction 'NOPE'"
        assert listed[1]["detail"]["applied"] == ["manager.pin_hash"]
        assert listed[4]["detail"]["applied"] == ["ecr_clients.lane-1.token_hash"]
        assert all({"at", "peer"} <= set(r) for r in listed)
        rows = list(csv.DictReader(io.StringIO(csv_out)))
        assert [(int(r["seq"]), r["action"], r["hash"]) for r in rows] == [
            (r["seq"], r["action"], r["hash"]) for r in listed]
        assert [json.loads(line) for line in jsonl.read_text().splitlines()] == listed
    finally:
        daemon.stop()


async def test_one_daemon_per_data_folder(bridge: Bridge) -> None:
    from posbridge.daemon import Daemon as InProcess
    from posbridge.errors import JournalError
    from posbridge.pidfile import running_pid

    assert running_pid(bridge.data_dir) == os.getpid()
    second = InProcess(bridge.daemon.config)
    with pytest.raises(JournalError, match=f"another posbridge \\(pid {os.getpid()}\\) is "
                                           "running with the data folder"):
        await second.start()
    await bridge.daemon.stop(grace_s=1)
    assert running_pid(bridge.data_dir) is None
