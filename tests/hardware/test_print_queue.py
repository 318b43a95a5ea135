"""hardware.print_queue: order, faults kept and retried, recovery, bounds, drain -- against the
recording printer and against a SerialPrinter on a real pty.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import zxingcpp

from hardware.escpos import PrinterProfile, PrinterStatus
from hardware.escpos_render import render
from hardware.print_queue import PrintQueue
from hardware.printers import RecordingPrinter, SerialPrinter
from hardware.receipts import qr_slip
from tests.hardware.printer_sim import PAPER_OUT, READY, PtyPrinter

pytestmark = pytest.mark.timeout(20)

MS = 0.001  # one time unit for the queue's retry delays
DELAYS = (5 * MS, 10 * MS)


class Events:
    """Records the queue's fault / recovered callbacks."""

    def __init__(self) -> None:
        self.faults: list[tuple[str, str | None]] = []
        self.recovered: list[str] = []

    def on_fault(self, name: str, reason: str | None) -> None:
        self.faults.append((name, reason))

    def on_recovered(self, name: str) -> None:
        self.recovered.append(name)


def _queue(printer: RecordingPrinter | SerialPrinter, events: Events,
           **kwargs: int) -> PrintQueue:
    return PrintQueue(printer, retry_delays=DELAYS, on_fault=events.on_fault,
                      on_recovered=events.on_recovered, **kwargs)


async def _until(check: Callable[[], bool], timeout_s: float = 5.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not check():
            await asyncio.sleep(2 * MS)


async def test_jobs_print_in_order() -> None:
    printer, events = RecordingPrinter(name="p"), Events()
    queue = _queue(printer, events)
    await queue.start()
    for i in range(5):
        queue.submit(f"job-{i}", f"slip {i}\n".encode())
    await printer.wait_for_jobs(5, timeout_s=2)
    await queue.stop(drain_timeout_s=1)
    assert [job for job, _ in printer.jobs] == [f"job-{i}" for i in range(5)]
    assert queue.jobs_printed == 5 and queue.faults == 0 and events.faults == []
    assert not printer.is_open  # stop closed it


async def test_paper_out_keeps_the_job_and_prints_it_when_paper_is_back() -> None:
    printer, events = RecordingPrinter(name="lane-1"), Events()
    printer.set_status(PrinterStatus(online=False, paper_out=True))
    queue = _queue(printer, events)
    await queue.start()
    queue.submit("qr-1", b"slip\n")
    await _until(lambda: queue.fault is not None)
    await asyncio.sleep(30 * MS)  # several retries
    assert printer.jobs == []
    assert events.faults == [("lane-1", "paper out")]  # reported once, not per retry
    assert queue.pending == 1
    printer.set_status(PrinterStatus())
    await printer.wait_for_jobs(1, timeout_s=2)
    await queue.stop(drain_timeout_s=1)
    assert printer.jobs == [("qr-1", b"slip\n")]
    assert events.recovered == ["lane-1"]
    assert queue.fault is None and queue.faults == 1 and queue.jobs_printed == 1


async def test_unplugged_printer_faults_submit_never_raises_and_recovers() -> None:
    printer, events = RecordingPrinter(name="p"), Events()
    queue = _queue(printer, events)
    await queue.start()
    queue.submit("a", b"a")
    await printer.wait_for_jobs(1, timeout_s=2)
    printer.unplug()
    queue.submit("b", b"b")
    await _until(lambda: bool(events.faults))
    for i in range(10):
        queue.submit(f"more-{i}", b"m")  # the payment flow keeps going
    assert "not connected" in (events.faults[0][1] or "")
    printer.plug()
    await printer.wait_for_jobs(12, timeout_s=2)
    await queue.stop(drain_timeout_s=1)
    assert [job for job, _ in printer.jobs][:2] == ["a", "b"]
    assert events.recovered == ["p"]
    assert printer.opens >= 2  # closed after the fault, opened again


async def test_a_printer_that_cannot_tell_its_status_still_prints() -> None:
    printer, events = RecordingPrinter(name="p", answers_status=False), Events()
    queue = _queue(printer, events)
    await queue.start()
    queue.submit("a", b"a")
    await printer.wait_for_jobs(1, timeout_s=2)
    await queue.stop(drain_timeout_s=1)
    assert events.faults == []


async def test_full_queue_drops_the_oldest_waiting_job_with_a_fault() -> None:
    printer, events = RecordingPrinter(name="p"), Events()
    printer.set_status(PrinterStatus(cover_open=True))
    queue = _queue(printer, events, max_jobs=3)
    await queue.start()
    queue.submit("first", b"1")
    await _until(lambda: queue.fault == "cover open")  # "first" is being retried
    for name in ("w1", "w2", "w3", "w4"):
        queue.submit(name, name.encode())
    assert queue.jobs_dropped == 1 and queue.pending == 4
    assert events.faults[-1] == ("p", "queue full: dropped job w1")
    printer.set_status(PrinterStatus())
    await printer.wait_for_jobs(4, timeout_s=2)
    await queue.stop(drain_timeout_s=1)
    assert [job for job, _ in printer.jobs] == ["first", "w2", "w3", "w4"]


async def test_an_overflow_on_a_healthy_printer_is_cleared_by_the_next_print() -> None:
    printer, events = RecordingPrinter(name="p"), Events()
    queue = _queue(printer, events, max_jobs=2)
    for name in ("a", "b", "c"):  # submitted before the worker runs: "a" is dropped
        queue.submit(name, name.encode())
    assert events.faults == [("p", "queue full: dropped job a")]
    await queue.start()
    await printer.wait_for_jobs(2, timeout_s=2)
    await _until(lambda: events.recovered == ["p"])
    await queue.stop(drain_timeout_s=1)
    assert [job for job, _ in printer.jobs] == ["b", "c"]


async def test_stop_gives_up_after_the_drain_timeout() -> None:
    printer, events = RecordingPrinter(name="p"), Events()
    printer.set_status(PrinterStatus(paper_out=True))
    queue = _queue(printer, events)
    await queue.start()
    queue.submit("stuck", b"x")
    loop = asyncio.get_running_loop()
    started = loop.time()
    await queue.stop(drain_timeout_s=50 * MS)
    assert loop.time() - started < 1
    assert printer.jobs == [] and queue.pending == 1


async def test_a_failing_callback_does_not_stop_the_queue() -> None:
    printer = RecordingPrinter(name="p")
    printer.set_status(PrinterStatus(paper_out=True))

    def broken(name: str, reason: str | None) -> None:
        raise RuntimeError("listener bug")

    queue = PrintQueue(printer, retry_delays=DELAYS, on_fault=broken)
    await queue.start()
    queue.submit("a", b"a")
    await _until(lambda: queue.faults == 1)
    printer.set_status(PrinterStatus())
    await printer.wait_for_jobs(1, timeout_s=2)
    await queue.stop(drain_timeout_s=1)


# -- with a SerialPrinter on a real pty ---------------------------------------------------

DEEPLINK = "https://qr.ucanpay.com/pay?ucpOrderNo=UCP20240101000000005555"


def _slip() -> bytes:
    return qr_slip(deeplink=DEEPLINK, amount_text="3.20", currency="EUR", subject="Juice",
                   order_no="ORD-9", expires_text="", profile=PrinterProfile())


@pytest.fixture
def pty_printer(tmp_path: Path) -> Iterator[PtyPrinter]:
    sim = PtyPrinter(tmp_path / "ttyPRN", replies=PAPER_OUT)
    yield sim
    with contextlib.suppress(OSError):
        sim.unplug()


async def test_serial_paper_out_then_ok_prints_the_kept_job(pty_printer: PtyPrinter) -> None:
    events = Events()
    queue = _queue(SerialPrinter(name="lane-1", device=str(pty_printer.path)), events)
    await queue.start()
    slip = _slip()
    queue.submit("qr-ORD-9", slip)
    await _until(lambda: events.faults == [("lane-1", "paper out")])
    assert pty_printer.printed == b""
    pty_printer.replies = dict(READY)
    printed = await asyncio.to_thread(pty_printer.wait_printed, len(slip))
    await queue.stop(drain_timeout_s=1)
    assert printed == slip
    assert [r.text for r in zxingcpp.read_barcodes(render(printed))] == [DEEPLINK]
    assert events.recovered == ["lane-1"]


async def test_serial_unplug_faults_and_replug_recovers(pty_printer: PtyPrinter) -> None:
    pty_printer.replies = dict(READY)
    events = Events()
    queue = _queue(SerialPrinter(name="lane-1", device=str(pty_printer.path)), events)
    await queue.start()
    queue.submit("one", b"one\n")
    await asyncio.to_thread(pty_printer.wait_printed, 4)
    pty_printer.unplug()
    queue.submit("two", b"two\n")  # never raises, even with the device gone
    await _until(lambda: bool(events.faults))
    assert events.faults[0][0] == "lane-1"
    pty_printer.replug()
    printed = await asyncio.to_thread(pty_printer.wait_printed, 4)
    await queue.stop(drain_timeout_s=1)
    assert printed == b"two\n"  # the new pty saw only what was printed after the replug
    assert events.recovered == ["lane-1"]
    assert queue.jobs_printed == 2
