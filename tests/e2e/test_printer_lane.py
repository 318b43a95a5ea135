"""The lane-1 receipt printer end to end: a bridge whose lane-1 printer is a ``serial`` printer
on a real pty (:class:`tests.hardware.printer_sim.PtyPrinter`, which answers ``DLE EOT``).

- a QR slip is printed (native ``GS ( k`` or raster ``GS v 0``), rendered back to paper and
  decoded with zxing-cpp to exactly the transaction's deeplink; the sale is then paid;
- the printer unplugged, or out of paper, mid-sale: the sale completes all the same and in
  good time; the fault shows as log lines, in ``posbridge_printer_faults_total`` on /metrics,
  in /healthz and as a ``terminal.status`` notification to the register, which for a device
  carries ``{"terminal", "online", "printer": {"name", "ok", "reason"}}``; when the printer
  comes back the kept jobs print in order and ``ok: true`` is announced;
- a card sale prints its receipt after, never before, the register has its answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import zxingcpp
from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import capture_logs

from hardware.escpos_render import render
from posbridge.client import EcrClient
from posbridge.config import parse_config
from posbridge.daemon import Daemon
from posbridge.sandbox.runtime import SandboxKeys, Simulators, sandbox_config_data
from tests.hardware.printer_sim import PAPER_OUT, READY, PtyPrinter

from .conftest import MANAGER_TOKEN, PIN, TOKEN, Bridge, hashed

pytestmark = pytest.mark.timeout(30)

LANE1_SN = "SANDBOX0000000001"
NATIVE_QR = b"\x1d(k"
RASTER = b"\x1dv0"
# A payment that the printer must not hold up: ucanpay's simulator notifies every 0.05 s and the
# bridge polls every 0.2 s; CodePay's simulated terminal approves after 0.05 s.
QUICK_S = 2.0

MakeBridge = Callable[..., Any]


# -- fixtures -----------------------------------------------------------------------------------

@pytest.fixture
def pty(tmp_path: Path) -> Iterator[PtyPrinter]:
    sim = PtyPrinter(tmp_path / "ttyPRN-lane-1")
    yield sim
    if sim.path.is_symlink():  # not already unplugged (a second close could hit a reused fd)
        with contextlib.suppress(OSError):
            sim.unplug()


@pytest.fixture
async def serial_bridge(
        tmp_path: Path, keys: SandboxKeys, sims: Simulators, pty: PtyPrinter,
) -> AsyncIterator[MakeBridge]:
    """``await serial_bridge(**printer_keys)``: the sandbox bridge, lane-1's printer on ``pty``."""
    started: list[Daemon] = []

    async def make(**printer: Any) -> Bridge:
        data_dir = tmp_path / f"bridge{len(started)}"
        data = sandbox_config_data(
            data_dir, keys, sims, token=TOKEN, pin=PIN, ecr_listen="127.0.0.1:0",
            http_listen="127.0.0.1:0", public_url="", poll_interval_s=0.2, expires_s=30,
            qr_timeout_s=30, hashed=hashed)
        data["ecr_clients"].append(
            {"name": "backoffice", "role": "manager", "token_hash": hashed(MANAGER_TOKEN)})
        assert data["printers"][0]["name"] == "lane-1"
        data["printers"][0] = {"name": "lane-1", "kind": "serial", "device": str(pty.path),
                               **printer}
        daemon = Daemon(parse_config(data, env={}))
        await daemon.start()
        started.append(daemon)
        return Bridge(daemon, sims, data_dir)

    yield make
    for daemon in reversed(started):
        if not daemon.stopped.is_set():
            await daemon.stop(grace_s=1)


# -- helpers ------------------------------------------------------------------------------------

def qr_params(order_no: str, amount: str = "8.50", **extra: Any) -> dict[str, Any]:
    return {"order_no": order_no, "amount": amount, "currency": "CAD", "subject": "Coffee",
            "display": "lane-1", "print": True, "wait": False, **extra}


def sale_params(order_no: str, amount: str = "12.00", **extra: Any) -> dict[str, Any]:
    return {"terminal": "lane-1", "order_no": order_no, "amount": amount, "currency": "USD",
            **extra}


async def printed_until(sim: PtyPrinter, check: Callable[[bytes], bool],
                        timeout_s: float = 5.0) -> bytes:
    """What the pty has printed, once ``check`` accepts it."""
    deadline = time.monotonic() + timeout_s
    while True:
        data = sim.printed
        if check(data):
            return data
        if time.monotonic() > deadline:
            raise AssertionError(f"printed {len(data)} bytes, check still false: {data[:200]!r}")
        await asyncio.sleep(0.01)


def decoded(data: bytes) -> list[str]:
    """The QR codes on the paper these ESC/POS bytes would print."""
    return [str(r.text) for r in zxingcpp.read_barcodes(render(data))]


async def final_state(ecr: EcrClient, order_no: str, timeout_s: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        txn: dict[str, Any] = await ecr.call("status", {"order_no": order_no})
        if txn["state"] not in ("pending", "in_progress"):
            return txn
        assert time.monotonic() < deadline, f"{order_no} still {txn['state']}"
        await asyncio.sleep(0.05)


async def pay_qr(bridge: Bridge, ecr: EcrClient, txn: dict[str, Any]) -> float:
    """The customer pays; the sale must end approved. Returns the seconds it took."""
    t0 = time.monotonic()
    await bridge.sims.ucanpay.scan_and_pay(txn["provider_ref"])
    final = await final_state(ecr, txn["order_no"])
    assert final["state"] == "approved"
    return time.monotonic() - t0


class Notes:
    """Every notification a register has received so far, read as they come."""

    def __init__(self, ecr: EcrClient) -> None:
        self.ecr = ecr
        self.seen: list[dict[str, Any]] = []

    async def wait(self, check: Callable[[dict[str, Any]], bool],
                   timeout_s: float = 8.0) -> dict[str, Any]:
        for note in self.seen:
            if check(note):
                return note
        async with asyncio.timeout(timeout_s):
            while True:
                note = await self.ecr.next_notification(timeout_s)
                self.seen.append(note)
                if check(note):
                    return note

    def printer_statuses(self) -> list[dict[str, Any]]:
        return [n["params"] for n in self.seen
                if n["method"] == "terminal.status" and "printer" in n["params"]]


def printer_status(ok: bool, reason: str | None = None) -> Callable[[dict[str, Any]], bool]:
    def check(note: dict[str, Any]) -> bool:
        if note["method"] != "terminal.status":
            return False
        p = note["params"]
        dev = p.get("printer")
        return (p["terminal"] == LANE1_SN and isinstance(dev, dict) and dev["name"] == "lane-1"
                and dev["ok"] is ok and (reason is None or reason in (dev["reason"] or "")))
    return check


async def printer_faults(bridge: Bridge) -> dict[str, float]:
    """``posbridge_printer_faults_total`` of lane-1 by reason, from the real /metrics."""
    async with aiohttp.ClientSession() as http, http.get(f"{bridge.http}/metrics") as resp:
        assert resp.status == 200
        text = await resp.text()
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "posbridge_printer_faults_total" and s.labels["printer"] == "lane-1":
                out[s.labels["reason"]] = s.value
    return out


async def health_printer(bridge: Bridge) -> str:
    async with aiohttp.ClientSession() as http, http.get(f"{bridge.http}/healthz") as resp:
        body = await resp.json()
    return str(body["devices"]["printers"]["lane-1"])


def events(logs: Sequence[Mapping[str, Any]], name: str) -> list[Mapping[str, Any]]:
    return [e for e in logs if e["event"] == name]


# -- 1. the QR slip -----------------------------------------------------------------------------

@pytest.mark.parametrize("native", [True, False], ids=["native-qr", "raster-qr"])
async def test_qr_slip_on_the_serial_printer_decodes_to_the_deeplink_then_is_paid(
        serial_bridge: MakeBridge, pty: PtyPrinter, native: bool) -> None:
    bridge: Bridge = await serial_bridge(native_qr=native)
    async with await bridge.register() as ecr:
        txn = await ecr.call("qr_sale", qr_params("QP1"))
        assert txn["state"] == "in_progress"
        link = txn["qr"]["deeplink"]
        slip = await printed_until(pty, lambda d: d.endswith(b"\x1dV\x01"))  # the partial cut
        assert (NATIVE_QR in slip) is native and (RASTER in slip) is not native
        assert decoded(slip) == [link]
        assert b"QP1" in slip and b"8.50 CAD" in slip
        assert await pay_qr(bridge, ecr, txn) < QUICK_S
    assert pty.queries[:3] == [1, 2, 4]  # the bridge asked DLE EOT before printing
    assert await printer_faults(bridge) == {}


# -- 2. faults mid-sale -------------------------------------------------------------------------

async def test_printer_unplugged_mid_sale_the_sales_complete_and_the_jobs_print_on_replug(
        serial_bridge: MakeBridge, pty: PtyPrinter) -> None:
    with capture_logs() as logs:
        bridge: Bridge = await serial_bridge()
        async with await bridge.register() as ecr:
            notes = Notes(ecr)
            # A QR slip prints: the port is open and in use.
            first = await ecr.call("qr_sale", qr_params("UQ0"))
            await printed_until(pty, lambda d: d.endswith(b"\x1dV\x01"))
            # A card sale (12.45: the simulated terminal takes 1 s) is on the terminal when
            # the printer's USB cable comes out; its receipt is due when it is approved.
            t0 = time.monotonic()
            started = await ecr.call("sale", sale_params("UC1", "12.45", wait=False))
            assert started["state"] in ("pending", "in_progress")
            pty.unplug()
            # The customer pays the QR shown before: unaffected.
            assert await pay_qr(bridge, ecr, first) < QUICK_S
            card = await final_state(ecr, "UC1")
            card_s = time.monotonic() - t0
            assert card["state"] == "approved" and card_s < 1.0 + QUICK_S
            # A QR sale with its slip, while the printer is still gone.
            txn = await ecr.call("qr_sale", qr_params("UQ1"))
            assert txn["state"] == "in_progress"
            assert await pay_qr(bridge, ecr, txn) < QUICK_S

            down = (await notes.wait(printer_status(ok=False)))["params"]
            assert down["terminal"] == LANE1_SN and "online" in down
            # journaled like other events, so it carries a seq
            assert set(down) == {"seq", "terminal", "online", "printer"}
            # The open port fails first (EIO: "status of ... failed" / "write to ... failed");
            # a retry while the device is still gone fails to re-open it ("cannot open ..."),
            # a new reason and so a second report.
            assert "failed" in down["printer"]["reason"]
            faults = await printer_faults(bridge)
            assert faults.get("error", 0) >= 1, faults
            assert await health_printer(bridge) != "ok"

            # Plugged back in: both kept jobs print, in order, on the new device.
            pty.replug()
            printed = await printed_until(pty, lambda d: d.count(b"\x1dV\x01") == 2,
                                          timeout_s=10)
            assert printed.index(b"UC1") < printed.index(b"UQ1")
            assert b"APPROVED" in printed
            assert decoded(printed) == [txn["qr"]["deeplink"]]
            await notes.wait(printer_status(ok=True))
            assert await health_printer(bridge) == "ok"
    assert events(logs, "printer_fault") and events(logs, "printer_recovered")
    assert [e["name"] for e in events(logs, "device_fault")] == ["lane-1"]
    assert events(logs, "device_recovered")
    assert all(e["printer"] == "lane-1" for e in events(logs, "printer_fault"))
    # Announced once down (per distinct reason) and once back up, in that order.
    oks = [s["printer"]["ok"] for s in notes.printer_statuses()]
    assert oks[-1] is True and oks.count(True) == 1 and not any(oks[:-1])


async def test_printer_out_of_paper_mid_sale_the_sales_complete_and_print_once_refilled(
        serial_bridge: MakeBridge, pty: PtyPrinter) -> None:
    with capture_logs() as logs:
        bridge: Bridge = await serial_bridge()
        async with await bridge.register() as ecr:
            notes = Notes(ecr)
            # The paper ran out on the last slip; the printer says so to the next DLE EOT.
            pty.replies = dict(PAPER_OUT)
            txn = await ecr.call("qr_sale", qr_params("PQ1"))
            assert txn["state"] == "in_progress"
            down = (await notes.wait(
                printer_status(ok=False, reason="paper out")))["params"]
            assert down["printer"] == {"name": "lane-1", "ok": False, "reason": "paper out"}
            assert pty.printed == b""  # nothing is sent to a printer without paper
            assert await pay_qr(bridge, ecr, txn) < QUICK_S
            # A card sale meanwhile: approved at once, its receipt queued behind the slip.
            t0 = time.monotonic()
            card = await ecr.call("sale", sale_params("PC1"))
            assert card["state"] == "approved" and time.monotonic() - t0 < QUICK_S
            assert (await printer_faults(bridge)).get("paper") == 1
            assert await health_printer(bridge) == "paper out"
            assert pty.printed == b""

            pty.replies = dict(READY)  # paper refilled
            printed = await printed_until(pty, lambda d: d.count(b"\x1dV\x01") == 2,
                                          timeout_s=10)
            assert decoded(printed) == [txn["qr"]["deeplink"]]
            assert printed.index(b"PQ1") < printed.index(b"PC1")
            up = (await notes.wait(printer_status(ok=True)))["params"]
            assert up["printer"] == {"name": "lane-1", "ok": True, "reason": None}
            assert await health_printer(bridge) == "ok"
            # One fault report, not one per retry.
            assert await printer_faults(bridge) == {"paper": 1}
    assert [e["reason"] for e in events(logs, "printer_fault")] == ["paper out"]
    assert [e["name"] for e in events(logs, "device_fault")] == ["lane-1"]
    assert len(events(logs, "device_recovered")) == 1
    assert [s["printer"]["ok"] for s in notes.printer_statuses()] == [False, True]


# -- 3. card receipts ---------------------------------------------------------------------------

async def test_card_sale_prints_its_receipt_without_waiting_for_the_printer(
        serial_bridge: MakeBridge, pty: PtyPrinter) -> None:
    # A printer that never answers DLE EOT: each job waits 0.3 s for the status answer before
    # it goes out, so a sale that waited for its receipt would have it printed by its answer.
    pty.replies = {}
    bridge: Bridge = await serial_bridge()
    async with await bridge.register() as ecr:
        t0 = time.monotonic()
        card = await ecr.call("sale", sale_params("RC1", "12.00", tip="1.50"))
        answered_s = time.monotonic() - t0
        assert card["state"] == "approved"
        assert pty.printed == b""  # the register has its answer; the receipt is still to come
        receipt = await printed_until(pty, lambda d: d.endswith(b"\x1dV\x01"))
        printed_s = time.monotonic() - t0
    assert b"RC1" in receipt and b"APPROVED" in receipt and b"13.50 USD" in receipt
    assert answered_s < printed_s and answered_s < QUICK_S
    assert await printer_faults(bridge) == {}  # a printer that cannot tell is not a fault
