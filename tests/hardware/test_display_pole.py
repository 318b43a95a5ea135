"""The pole display over a real pseudo-terminal: the test reads the exact bytes sent."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import Iterator

import pytest

from hardware.displays.frames import DisplayFrame, FrameState
from hardware.displays.pole import PoleDisplay
from hardware.displays.vfd import CLR, init_bytes, move_to
from hardware.displays.worker import DeviceWorker
from posbridge.errors import DisplayError

QR_FRAME = DisplayFrame(state=FrameState.QR, amount_text="12.34", currency="CAD",
                        deeplink="https://example.test/pay", order_no="A-1", seq=1)
PAID_FRAME = DisplayFrame(state=FrameState.PAID, amount_text="12.34", currency="CAD", seq=2)


class Pty:
    """A real pty pair: the display writes to the slave path, the test reads the master."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        self.path = os.ttyname(self.slave)
        os.set_blocking(self.master, False)

    def read_exactly(self, n: int, timeout_s: float = 2.0) -> bytes:
        data = b""
        deadline = time.monotonic() + timeout_s
        while len(data) < n:
            assert time.monotonic() < deadline, f"got only {data!r} of {n} bytes"
            try:
                data += os.read(self.master, n - len(data))
            except BlockingIOError:
                time.sleep(0.005)
        return data

    def assert_silent(self) -> None:
        with pytest.raises(BlockingIOError):
            os.read(self.master, 1)

    def close(self) -> None:
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):
                os.close(fd)


@pytest.fixture
def pty() -> Iterator[Pty]:
    p = Pty()
    yield p
    p.close()


def screen(line1: str, line2: str) -> bytes:
    return CLR + move_to(1, 1) + line1.encode() + move_to(1, 2) + line2.encode()


async def test_open_initialises_then_each_frame_is_cleared_and_written(pty: Pty) -> None:
    display = PoleDisplay(name="pole", device=pty.path, baudrate=9600)
    await display.open()
    try:
        assert pty.read_exactly(len(init_bytes())) == b"\x1b@\x1f\x01\x1fC\x00"
        await display.show(QR_FRAME)
        expected = screen("TOTAL      CAD 12.34", "SCAN QR TO PAY")
        assert pty.read_exactly(len(expected)) == expected
        await display.show(PAID_FRAME)
        expected = screen("TOTAL      CAD 12.34", "PAID - THANK YOU")
        assert pty.read_exactly(len(expected)) == expected
        pty.assert_silent()
    finally:
        await display.close()


async def test_custom_size_lays_out_for_that_size(pty: Pty) -> None:
    display = PoleDisplay(name="pole", device=pty.path, columns=16, rows=1)
    await display.open()
    try:
        pty.read_exactly(len(init_bytes()))
        await display.show(QR_FRAME)
        expected = CLR + move_to(1, 1) + b"TOTAL  CAD 12.34"
        assert pty.read_exactly(len(expected)) == expected
    finally:
        await display.close()


async def test_show_does_not_block_the_event_loop(pty: Pty) -> None:
    display = PoleDisplay(name="pole", device=pty.path)
    await display.open()
    try:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(ticker())
        for seq in range(1, 21):
            await display.show(DisplayFrame(state=FrameState.MESSAGE, message=f"m{seq}", seq=seq))
        task.cancel()
        assert ticks > 20  # the loop kept running while the writer thread wrote
    finally:
        await display.close()


async def test_missing_device_raises_display_error() -> None:
    display = PoleDisplay(name="pole", device="/dev/nonexistent-posbridge-pole")
    with pytest.raises(DisplayError, match="cannot open"):
        await display.open()
    with pytest.raises(DisplayError, match="cannot open"):
        await display.show(QR_FRAME)
    await display.close()


async def test_display_plugged_in_later_recovers_on_next_show(
        pty: Pty, tmp_path: os.PathLike[str]) -> None:
    link = os.path.join(os.fspath(tmp_path), "ttyPOLE")
    display = PoleDisplay(name="pole", device=link)
    with pytest.raises(DisplayError):
        await display.open()
    os.symlink(pty.path, link)  # "plugged in"
    try:
        await display.show(PAID_FRAME)
        expected = init_bytes() + screen("TOTAL      CAD 12.34", "PAID - THANK YOU")
        assert pty.read_exactly(len(expected)) == expected
    finally:
        await display.close()


async def test_show_after_close_raises_display_error(pty: Pty) -> None:
    display = PoleDisplay(name="pole", device=pty.path)
    await display.open()
    await display.close()
    with pytest.raises(DisplayError, match="closed"):
        await display.show(QR_FRAME)


async def test_a_hung_device_job_is_abandoned_after_the_timeout() -> None:
    # A write that never returns (a wedged USB-serial driver) must not hold show() up: the
    # worker gives up after its timeout and the queued frame behind it is dropped.
    worker = DeviceWorker("stuck", timeout_s=0.1)
    release = threading.Event()
    started = time.monotonic()
    with pytest.raises(DisplayError, match="did not finish"):
        await worker.run(lambda: release.wait(5.0))
    ran: list[int] = []
    with pytest.raises(DisplayError, match="did not finish"):
        await worker.run(lambda: ran.append(1))
    assert time.monotonic() - started < 1.0
    release.set()
    assert await worker.run(lambda: 42) == 42
    assert ran == []  # the frame queued behind the hung write was cancelled, not written late
    worker.shutdown()
