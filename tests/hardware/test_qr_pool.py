"""hardware.qr_pool: QR rendering in a spawned worker process, so zxing-cpp (which holds the
GIL for its whole C++ call) never stalls the event loop.

Real processes throughout: the pool's worker is a spawned Python, killed with SIGKILL where a
test needs it dead; child processes are read from /proc.
"""

from __future__ import annotations

import asyncio
import io
import os
import signal
import sys
import time
import types
from collections.abc import AsyncIterator
from multiprocessing import resource_tracker
from pathlib import Path

import pytest
import zxingcpp
from PIL import Image
from structlog.testing import capture_logs

from hardware.displays.file import CURRENT, FileDisplay
from hardware.displays.frames import DisplayFrame, FrameState
from hardware.displays.web import WebDisplay
from hardware.escpos import PrinterProfile
from hardware.escpos_render import render_png
from hardware.printers.file import FilePrinter
from hardware.qr import render_qr_png
from hardware.qr_pool import MAX_PENDING_BYTES, POOL, RenderPool, render_qr_png_async
from hardware.receipts import qr_slip
from posbridge.devices import Devices
from posbridge.errors import PrinterError

DEEPLINK = "https://qr.ucanpay.com/pay?ucpOrderNo=UCP20240101000000001234"


def _decode(png: bytes) -> list[str]:
    with Image.open(io.BytesIO(png)) as img:
        return [r.text for r in zxingcpp.read_barcodes(img)]


def _pid_with(data: bytes) -> int:
    """The pid of the process that ran the call (``data`` only makes the call big)."""
    return os.getpid() if data else -1


def _unpicklable() -> object:
    return lambda: None  # a lambda cannot travel back to the daemon


def _slip(deeplink: str, *, native: bool) -> bytes:
    return qr_slip(deeplink=deeplink, amount_text="8.50", currency="CAD", subject="Coffee",
                   order_no="P-1", expires_text="", profile=PrinterProfile(native_qr=native))


def _children() -> set[int]:
    """Pids whose parent is this process, zombies (exited, not yet reaped) included."""
    me = os.getpid()
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # exited meanwhile
        if int(stat.rsplit(")", 1)[1].split()[1]) == me:
            found.add(int(entry.name))
    return found


def _new_children(before: set[int]) -> set[int]:
    # multiprocessing's resource tracker is one helper process per parent, started with the
    # first pool and kept for the life of the process by design: not the pool's.
    tracker = resource_tracker._resource_tracker._pid
    return _children() - before - {tracker}


def _gone(pid: int) -> bool:
    return not Path(f"/proc/{pid}").exists()


@pytest.fixture
async def pool() -> AsyncIterator[RenderPool]:
    assert not POOL.started
    before = _children()
    await POOL.start()
    try:
        yield POOL
    finally:
        await POOL.close()
    assert not POOL.started
    assert _new_children(before) == set()


async def test_start_warms_a_worker_process_and_renders_run_there(pool: RenderPool) -> None:
    assert pool.started
    (worker,) = pool.worker_pids()
    assert worker != os.getpid() and worker in _children()
    assert await pool.run(os.getpid) == worker


@pytest.mark.parametrize(("scale", "border", "ec"), [(8, 4, "M"), (1, 4, "M"), (3, 6, "H")])
async def test_pool_png_is_byte_equal_to_render_qr_png_and_decodes(
        pool: RenderPool, scale: int, border: int, ec: str) -> None:
    png = await render_qr_png_async(DEEPLINK, scale=scale, border=border, ec=ec)
    assert png == render_qr_png(DEEPLINK, scale=scale, border=border, ec=ec)
    assert _decode(png) == [DEEPLINK]


async def test_validation_errors_surface_as_value_error(pool: RenderPool) -> None:
    with pytest.raises(ValueError, match="do not fit"):
        await render_qr_png_async("x" * 3000)
    with pytest.raises(ValueError, match="error correction"):
        await render_qr_png_async(DEEPLINK, ec="L")
    with pytest.raises(ValueError, match="needs data"):
        await render_qr_png_async("")
    with pytest.raises(ValueError, match="quiet zone"):
        await asyncio.to_thread(pool.run_blocking, render_qr_png, DEEPLINK, border=2)
    assert _decode(await render_qr_png_async(DEEPLINK)) == [DEEPLINK]  # the worker lives on


async def test_slips_and_pictures_render_in_the_pool(pool: RenderPool, tmp_path: Path) -> None:
    # What posbridge.devices, the file printer and the file display hand to the pool.
    for native in (True, False):
        slip = await pool.run(_slip, DEEPLINK, native=native)
        assert slip == _slip(DEEPLINK, native=native)
        assert _decode(await pool.run(render_png, slip)) == [DEEPLINK]
    with pytest.raises(PrinterError, match="not in our subset"):  # crosses the process as is
        await pool.run(render_png, b"\x1b*garbage")
    async with FilePrinter(name="f", path=tmp_path / "raw.bin", png_dir=tmp_path) as printer:
        await printer.write(_slip(DEEPLINK, native=True), job_id="qr-P-1")
    assert _decode((tmp_path / "qr-P-1.png").read_bytes()) == [DEEPLINK]
    display = FileDisplay(name="lane-1", dir=tmp_path / "frames")
    await display.open()
    await display.show(DisplayFrame(state=FrameState.QR, amount_text="8.50", currency="CAD",
                                    deeplink=DEEPLINK, order_no="P-1", seq=1))
    await display.close()
    assert _decode((tmp_path / "frames" / CURRENT).read_bytes()) == [DEEPLINK]


async def test_a_killed_worker_still_gives_every_png_then_a_fresh_pool_serves(
        pool: RenderPool) -> None:
    (worker,) = pool.worker_pids()
    links = [f"{DEEPLINK}{i:03d}" for i in range(20)]
    with capture_logs() as logs:
        renders = [asyncio.ensure_future(render_qr_png_async(link)) for link in links]
        await asyncio.sleep(0)  # every call is submitted to the pool
        os.kill(worker, signal.SIGKILL)
        pngs = await asyncio.gather(*renders)
        assert pngs == [render_qr_png(link) for link in links]
        # A call after the breakage: a fresh worker process renders it.
        assert _decode(await render_qr_png_async(DEEPLINK)) == [DEEPLINK]
        fresh = await pool.run(os.getpid)
    assert fresh not in (worker, os.getpid()) and pool.worker_pids() == [fresh]
    assert [e["event"] for e in logs if e["log_level"] == "warning"] == ["qr_pool_broken"]


async def test_a_call_too_big_for_the_socket_runs_here_and_the_worker_stays(
        pool: RenderPool) -> None:
    (worker,) = pool.worker_pids()
    assert await pool.run(_pid_with, b"x" * 100) == worker
    # Writing it whole could block the event loop on a full socket: it runs in a thread.
    assert await pool.run(_pid_with, b"x" * (MAX_PENDING_BYTES + 1)) == os.getpid()
    assert await pool.run(_pid_with, b"x" * 100) == worker


async def test_an_answer_that_cannot_travel_back_is_an_error_not_a_dead_pool(
        pool: RenderPool) -> None:
    (worker,) = pool.worker_pids()
    with pytest.raises(RuntimeError, match="unpicklable"):
        await pool.run(_unpicklable)
    assert pool.worker_pids() == [worker] and await pool.run(os.getpid) == worker


async def test_a_call_the_worker_cannot_load_is_an_error_not_a_dead_pool(
        pool: RenderPool) -> None:
    (worker,) = pool.worker_pids()
    only_here = types.ModuleType("posbridge_test_module_only_in_the_daemon")
    exec("def fn():\n    return 1\n", only_here.__dict__)
    sys.modules[only_here.__name__] = only_here
    try:
        with pytest.raises(ModuleNotFoundError):
            await pool.run(only_here.fn)
    finally:
        del sys.modules[only_here.__name__]
    assert pool.worker_pids() == [worker] and await pool.run(os.getpid) == worker


async def test_a_worker_killed_while_idle_costs_no_call(pool: RenderPool) -> None:
    (worker,) = pool.worker_pids()
    os.kill(worker, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while not _gone(worker) and time.monotonic() < deadline:  # reaped by the pool
        await asyncio.sleep(0.01)
    assert _gone(worker)
    assert await render_qr_png_async(DEEPLINK) == render_qr_png(DEEPLINK)
    assert await asyncio.to_thread(pool.run_blocking, render_qr_png, DEEPLINK) == \
        render_qr_png(DEEPLINK)
    assert await pool.run(os.getpid) not in (worker, os.getpid())


async def test_close_leaves_no_child_process() -> None:
    before = _children()
    await POOL.start()
    workers = POOL.worker_pids()
    assert workers and set(workers) <= _children()
    await POOL.close()
    assert not POOL.started and POOL.worker_pids() == []
    assert all(_gone(pid) for pid in workers)  # exited and reaped, no zombie left
    assert _new_children(before) == set()


async def test_starts_are_counted_and_the_last_close_stops_the_pool() -> None:
    await POOL.start()
    await POOL.start()
    workers = POOL.worker_pids()
    await POOL.close()
    assert POOL.started and POOL.worker_pids() == workers
    await POOL.close()
    assert not POOL.started
    await POOL.close()  # one close too many changes nothing
    assert not POOL.started


async def test_without_a_pool_the_work_runs_in_this_process() -> None:
    assert not POOL.started
    assert await POOL.run(os.getpid) == os.getpid()
    assert await asyncio.to_thread(POOL.run_blocking, os.getpid) == os.getpid()
    assert await render_qr_png_async(DEEPLINK) == render_qr_png(DEEPLINK)
    with pytest.raises(ValueError, match="do not fit"):
        await render_qr_png_async("x" * 3000)


async def test_the_daemons_devices_start_and_close_the_pool() -> None:
    devices = Devices(displays={"lane-1": WebDisplay(name="lane-1")}, printers={},
                      terminals=())
    await devices.start()
    try:
        assert POOL.started
    finally:
        await devices.stop()
    assert not POOL.started


async def test_the_event_loop_keeps_ticking_while_20_qr_codes_render(pool: RenderPool) -> None:
    """The drawing happens in the worker: while a call runs there, the loop goes on running
    other callbacks. A call that takes long on purpose (it sleeps in the worker) shows it
    without any clock bound: a loop blocked by the call could not tick at all meanwhile."""
    ticks = 0
    slow = asyncio.ensure_future(pool.run(_sleep_then_pid, 0.3))
    while not slow.done():
        await asyncio.sleep(0.001)
        ticks += 1
    assert await slow != os.getpid()
    assert ticks >= 2
    for round_no in range(5):
        links = [f"{DEEPLINK}{round_no}{i:03d}" for i in range(20)]
        pngs = await asyncio.gather(*(render_qr_png_async(link) for link in links))
        assert [_decode(png) for png in pngs] == [[link] for link in links]


def _sleep_then_pid(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()
