"""The daemon's own log (a real process, JSON lines): every line parses, every line about a
transaction names its order_no, and no token, PIN, key or signature ever appears."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import websockets

from posbridge.client import EcrClient, EcrError

from .conftest import TOKEN
from .procs import Daemon, write_config

pytestmark = pytest.mark.timeout(60)

# log events that are about one transaction (each must carry order_no)
TXN_EVENTS = re.compile(
    r"^(txn_|create_|query_|close_|notification_recorded|codepay_answer|print_job|attention_)")
# an RSA-2048 signature is 344 base64 characters; nothing that long belongs in a log
LONG_BASE64 = re.compile(r"[A-Za-z0-9+/]{120,}={0,2}")
PIN = "424242"


async def test_log_lines_name_their_order_and_hold_no_secret(
        tmp_path: Path, simulator: dict[str, Any]) -> None:
    cfg = write_config(tmp_path, simulator, pin=PIN)
    daemon = Daemon(tmp_path, cfg)
    daemon.start()
    try:
        async with await EcrClient.connect(daemon.url, TOKEN) as ecr:
            sale = {"terminal": "lane-1", "currency": "USD"}
            await ecr.call("sale", {**sale, "order_no": "L1", "amount": "10.00"})
            await ecr.call("sale", {**sale, "order_no": "L2", "amount": "10.05"})
            await ecr.call("refund", {"order_no": "L3", "orig_order_no": "L1",
                                      "amount": "1.00", "manager_pin": PIN})
            with pytest.raises(EcrError):
                await ecr.call("refund", {"order_no": "L4", "orig_order_no": "L1",
                                          "amount": "1.00", "manager_pin": "999999"})
        with pytest.raises(websockets.InvalidStatus):
            await EcrClient.connect(daemon.url, "wrong-token-" + TOKEN)
    finally:
        daemon.stop()
    text = (tmp_path / "daemon.log").read_text()
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    events = {line["event"] for line in lines}
    assert {"txn_recorded", "txn_state", "auth_refused"} <= events, events
    accepted = [line for line in lines if line["event"] == "txn_state"
                and line["order_no"] == "L1" and line["state"] == "in_progress"]
    assert accepted and accepted[0]["provider_ref"], accepted  # the create's acceptance
    for line in lines:
        if TXN_EVENTS.match(line["event"]):
            assert line.get("order_no"), line
    secrets = [TOKEN, PIN, "999999", "wrong-token-"]
    keys_dir = Path(simulator["data_dir"]) / "keys"
    for pem in keys_dir.glob("*.pem"):
        secrets += [row for row in pem.read_text().splitlines()
                    if row and not row.startswith("-----")]
    for secret in secrets:
        assert secret not in text, f"a secret reached the log: {secret[:6]}…"
    assert not LONG_BASE64.search(text), LONG_BASE64.search(text)
