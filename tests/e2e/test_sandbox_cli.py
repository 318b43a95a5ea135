"""The README's first command, for real: ``posbridge serve --sandbox`` in its own process with
no configuration, driven by the ``posbridge`` command-line register client."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import zxingcpp
from PIL import Image

pytestmark = pytest.mark.timeout(90)


def posbridge(*args: str, env: dict[str, str],
              timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "posbridge", *args], env=env, text=True,
                          capture_output=True, timeout=timeout, check=False)


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[dict[str, Any]]:
    data_dir = tmp_path / "sandbox"
    ready = tmp_path / "ready.json"
    env = {**os.environ, "POSBRIDGE_SANDBOX_DIR": str(data_dir)}
    env.pop("POSBRIDGE_URL", None)
    env.pop("POSBRIDGE_TOKEN", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "posbridge", "serve", "--sandbox", "--ecr-listen", "127.0.0.1:0",
         "--http-listen", "127.0.0.1:0", "--ready-file", str(ready), "--approve-delay", "0.05",
         "--log-format", "json"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert proc.poll() is None, "the sandbox exited early"
            assert time.monotonic() < deadline, "the sandbox did not start"
            time.sleep(0.05)
        ports = json.loads(ready.read_text())
        assert proc.stdout is not None
        banner = ""
        while "manager PIN" not in banner:  # the banner follows the ready file
            line = proc.stdout.readline()
            assert line, "no banner"
            banner += line
        banner += "".join(proc.stdout.readline() for _ in range(3))
        url = f"ws://127.0.0.1:{ports['ecr_port']}/ecr"
        yield {"env": {**env, "POSBRIDGE_URL": url}, "banner": banner, "url": url,
               "http": f"http://127.0.0.1:{ports['http_port']}", "dir": data_dir}
    finally:
        proc.terminate()
        proc.wait(20)
        if proc.stdout is not None:
            proc.stdout.close()
    assert proc.returncode == 0


def test_banner_names_the_url_the_token_and_the_pin(sandbox: dict[str, Any]) -> None:
    banner = sandbox["banner"]
    assert sandbox["url"] in banner
    token = (sandbox["dir"] / "sandbox-token").read_text().strip()
    assert re.search(rf"register token\s+{re.escape(token)}", banner)
    assert re.search(r"manager PIN\s+\d{6}", banner)


def test_cli_sale_and_decline_against_the_sandbox(sandbox: dict[str, Any]) -> None:
    env = sandbox["env"]
    done = posbridge("sale", "--terminal", "lane-1", "--order-no", "A1", "--amount", "12.00",
                     "--currency", "USD", "--json", env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["state"] == "approved"
    declined = posbridge("sale", "--terminal", "lane-1", "--order-no", "A2", "--amount",
                         "12.05", "--currency", "USD", "--json", env=env)
    assert declined.returncode == 0, declined.stderr
    assert json.loads(declined.stdout)["state"] == "declined"
    status = posbridge("status", "--order-no", "A1", "--json", env=env)
    assert json.loads(status.stdout)["state"] == "approved"
    bad = posbridge("sale", "--terminal", "lane-1", "--order-no", "A3", "--amount", "1.001",
                    "--currency", "USD", env=env)
    assert bad.returncode == 1 and "amount" in bad.stderr


def test_printed_qr_slip_scans_and_pays(sandbox: dict[str, Any]) -> None:
    env = sandbox["env"]
    started = posbridge("qr-sale", "--order-no", "Q1", "--amount", "8.50", "--currency", "CAD",
                        "--subject", "Coffee", "--print", "--no-wait", "--json", env=env)
    assert started.returncode == 0, started.stderr
    txn = json.loads(started.stdout)
    link = txn["qr"]["deeplink"]
    inner = parse_qs(urlsplit(parse_qs(urlsplit(link).query)["link"][0]).query)
    assert inner["ucpOrderNo"] == [txn["provider_ref"]] and inner["amount"] == ["850"]
    # the file printer of lane-1 keeps a picture of each slip: scan it like a phone would
    slips = sandbox["dir"] / "out" / "printer-lane-1"
    deadline = time.monotonic() + 15
    while not list(slips.glob("*Q1*.png")):
        assert time.monotonic() < deadline, "no slip was printed"
        time.sleep(0.1)
    time.sleep(0.2)  # the PNG is written in one go, but give the writer its moment
    found = zxingcpp.read_barcodes(Image.open(next(iter(slips.glob("*Q1*.png")))))
    assert [f.text for f in found] == [link]
    # the customer pays (the display page's sandbox button), the register learns it
    req = urllib.request.Request(f"{sandbox['http']}/display/lane-1/sandbox-pay",
                                 data=json.dumps({"order_no": "Q1"}).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status in (200, 204)
    deadline = time.monotonic() + 20
    while True:
        state = json.loads(posbridge("status", "--order-no", "Q1", "--json", env=env).stdout)
        if state["state"] == "approved":
            break
        assert time.monotonic() < deadline, state
        time.sleep(0.3)


def test_manager_commands_batch_transactions_health(sandbox: dict[str, Any]) -> None:
    env = {**sandbox["env"], "POSBRIDGE_HTTP": sandbox["http"]}
    pin = (sandbox["dir"] / "manager-pin").read_text().strip()
    for order_no, amount in (("B1", "10.00"), ("B2", "2.50")):
        done = posbridge("sale", "--terminal", "lane-1", "--order-no", order_no, "--amount",
                         amount, "--currency", "USD", "--json", env=env)
        assert json.loads(done.stdout)["state"] == "approved", done.stderr
    listed = posbridge("transactions", "--terminal", "lane-1", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    assert {"B1", "B2"} <= {t["order_no"] for t in json.loads(listed.stdout)["items"]}
    status = posbridge("batch", "status", "--terminal", "lane-1", "--json", env=env)
    assert status.returncode == 0, status.stderr
    open_batch = json.loads(status.stdout)[0]
    assert open_batch["totals"]["USD"]["sales"] == "12.50"
    refused = posbridge("batch", "close", "--terminal", "lane-1", "--pin", "000000", env=env)
    assert refused.returncode == 1 and "manager_pin" in refused.stderr
    closed = posbridge("batch", "close", "--terminal", "lane-1", "--pin", pin, "--json", env=env)
    assert closed.returncode == 0, closed.stderr
    batch = json.loads(closed.stdout)
    assert batch["state"] == "closed" and batch["batch_no"] == open_batch["batch_no"]
    assert not batch["discrepancy"]
    reopened = json.loads(posbridge("batch", "status", "--terminal", "lane-1", "--json",
                                    env=env).stdout)[0]
    assert reopened["batch_no"] != batch["batch_no"] and reopened["count"] == 0
    health = posbridge("health", "--json", env=env)
    assert health.returncode == 0, health.stderr
    assert json.loads(health.stdout)["status"] == "ok"
    readable = posbridge("health", env=env)
    assert readable.returncode == 0 and "status    ok" in readable.stdout
    assert "printer   lane-1: ok" in readable.stdout


def test_a_reader_that_stopped_reading_is_not_an_unreachable_daemon(
        sandbox: dict[str, Any]) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # like `posbridge transactions | head` once head has what it wants
    try:
        done = subprocess.run([sys.executable, "-m", "posbridge", "transactions", "--json"],
                              env=sandbox["env"], stdout=write_end, stderr=subprocess.PIPE,
                              text=True, timeout=30, check=False)
    finally:
        os.close(write_end)
    assert done.returncode == 141  # what a tool killed by SIGPIPE reports
    assert done.stderr == ""  # no "cannot reach the daemon", no traceback
