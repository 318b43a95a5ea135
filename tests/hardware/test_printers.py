"""hardware.printers: serial over a real pty, TCP over 127.0.0.1, file, the recording fake."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import zxingcpp
from PIL import Image

from hardware.escpos import PrinterProfile, PrinterStatus
from hardware.escpos_render import render
from hardware.printers import (
    PRINTERS,
    FilePrinter,
    RecordingPrinter,
    SerialPrinter,
    TcpPrinter,
)
from hardware.receipts import qr_slip
from posbridge.errors import PrinterError
from tests.hardware.printer_sim import PAPER_OUT, READY, PtyPrinter

pytestmark = pytest.mark.timeout(20)

DEEPLINK = "https://qr.ucanpay.com/pay?ucpOrderNo=UCP20240101000000009876"


def _slip(native: bool = True) -> bytes:
    profile = PrinterProfile(native_qr=native)
    return qr_slip(deeplink=DEEPLINK, amount_text="7.00", currency="EUR", subject="Tea",
                   order_no="ORD-1", expires_text="", profile=profile)


def _decoded(data: bytes) -> list[str]:
    return [r.text for r in zxingcpp.read_barcodes(render(data))]


@pytest.fixture
def pty_printer(tmp_path: Path) -> Iterator[PtyPrinter]:
    sim = PtyPrinter(tmp_path / "ttyPRN")
    yield sim
    with contextlib.suppress(OSError):
        sim.unplug()


def test_registry_maps_each_config_kind_to_its_class() -> None:
    assert {"serial": SerialPrinter, "tcp": TcpPrinter, "file": FilePrinter} == PRINTERS


# -- serial -------------------------------------------------------------------------------

@pytest.mark.parametrize("native", [True, False])
async def test_serial_printer_writes_a_slip_the_pty_decodes(
        pty_printer: PtyPrinter, native: bool) -> None:
    slip = _slip(native)
    async with SerialPrinter(name="lane-1", device=str(pty_printer.path)) as printer:
        await printer.write(slip, job_id="qr-ORD-1")
        printed = await asyncio.to_thread(pty_printer.wait_printed, len(slip))
    assert printed == slip
    assert _decoded(printed) == [DEEPLINK]


async def test_serial_status_asks_dle_eot_and_reads_paper_out(pty_printer: PtyPrinter) -> None:
    async with SerialPrinter(name="p", device=str(pty_printer.path)) as printer:
        assert await printer.status() == PrinterStatus()
        pty_printer.replies = dict(PAPER_OUT)
        status = await printer.status()
    assert status is not None and status.paper_out and not status.online
    assert status.fault == "paper out"
    assert pty_printer.queries == [1, 2, 4, 1, 2, 4]
    assert pty_printer.printed == b""  # status requests are not printed matter


async def test_serial_printer_that_does_not_answer_gives_none(pty_printer: PtyPrinter) -> None:
    pty_printer.replies = {}
    async with SerialPrinter(name="p", device=str(pty_printer.path),
                             status_timeout_s=0.05) as printer:
        assert await printer.status() is None


async def test_serial_unplugged_write_raises_printer_error(pty_printer: PtyPrinter) -> None:
    printer = SerialPrinter(name="p", device=str(pty_printer.path))
    await printer.open()
    try:
        pty_printer.unplug()
        with pytest.raises(PrinterError, match="failed"):
            await printer.write(b"hello")
        with pytest.raises(PrinterError):
            await printer.status()
    finally:
        await printer.close()
        await printer.close()  # twice is harmless
    pty_printer.replug()


async def test_serial_missing_device_raises_printer_error(tmp_path: Path) -> None:
    printer = SerialPrinter(name="p", device=str(tmp_path / "nothing"))
    with pytest.raises(PrinterError, match="cannot open"):
        await printer.open()
    await printer.close()
    with pytest.raises(PrinterError, match="not open"):
        await printer.write(b"x")


# -- tcp ----------------------------------------------------------------------------------

class FakeNetworkPrinter:
    """A raw-TCP (port 9100 style) printer on 127.0.0.1:0 that answers DLE EOT."""

    def __init__(self) -> None:
        self.received = bytearray()
        self.replies: dict[int, int] = dict(READY)
        self.connections = 0
        self.got_data = asyncio.Event()
        self._writers: list[asyncio.StreamWriter] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.append(writer)
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while chunk := await reader.read(4096):
                while (at := chunk.find(b"\x10\x04")) >= 0 and at + 2 < len(chunk):
                    n = chunk[at + 2]
                    self.received += chunk[:at]
                    chunk = chunk[at + 3:]
                    if n in self.replies:
                        writer.write(bytes([self.replies[n]]))
                self.received += chunk
                self.got_data.set()
        writer.close()

    def drop_connections(self) -> None:
        for writer in self._writers:
            writer.close()


@pytest.fixture
async def net_printer() -> AsyncIterator[tuple[FakeNetworkPrinter, int]]:
    fake = FakeNetworkPrinter()
    server = await asyncio.start_server(fake.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield fake, port
        fake.drop_connections()


async def _wait_received(fake: FakeNetworkPrinter, size: int) -> bytes:
    async with asyncio.timeout(5):
        while len(fake.received) < size:
            fake.got_data.clear()
            await fake.got_data.wait()
    return bytes(fake.received)


async def test_tcp_printer_sends_the_slip(
        net_printer: tuple[FakeNetworkPrinter, int]) -> None:
    fake, port = net_printer
    slip = _slip()
    async with TcpPrinter(name="net", host="127.0.0.1", port=port) as printer:
        await printer.write(slip)
        assert await _wait_received(fake, len(slip)) == slip
    assert _decoded(slip) == [DEEPLINK]


async def test_tcp_status_answered_and_unanswered(
        net_printer: tuple[FakeNetworkPrinter, int]) -> None:
    fake, port = net_printer
    async with TcpPrinter(name="net", host="127.0.0.1", port=port,
                          status_timeout_s=0.1) as printer:
        fake.replies = dict(PAPER_OUT)
        status = await printer.status()
        assert status is not None and status.fault == "paper out"
        fake.replies = {}
        assert await printer.status() is None
        fake.replies = dict(READY)
        assert await printer.status() is None  # not asked again on this connection


async def test_tcp_reconnects_when_the_printer_closed_the_connection(
        net_printer: tuple[FakeNetworkPrinter, int]) -> None:
    fake, port = net_printer
    async with TcpPrinter(name="net", host="127.0.0.1", port=port) as printer:
        await printer.write(b"one\n")
        await _wait_received(fake, 4)
        fake.drop_connections()
        await asyncio.sleep(0.05)  # let the FIN arrive
        await printer.write(b"two\n")
        assert await _wait_received(fake, 8) == b"one\ntwo\n"
    assert fake.connections == 2


async def test_tcp_refused_connection_raises_printer_error() -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    printer = TcpPrinter(name="net", host="127.0.0.1", port=port, connect_timeout_s=1)
    with pytest.raises(PrinterError, match="failed"):
        await printer.open()
    await printer.close()


async def test_tcp_status_on_a_closed_connection_raises(
        net_printer: tuple[FakeNetworkPrinter, int]) -> None:
    fake, port = net_printer
    async with TcpPrinter(name="net", host="127.0.0.1", port=port) as printer:
        fake.drop_connections()
        with pytest.raises(PrinterError, match=r"closed the connection|reset"):
            await printer.status()


# -- file ---------------------------------------------------------------------------------

async def test_file_printer_appends_bytes_and_keeps_a_png(tmp_path: Path) -> None:
    raw, pngs = tmp_path / "out" / "printer.bin", tmp_path / "png"
    slip = _slip()
    async with FilePrinter(name="f", path=raw, png_dir=pngs) as printer:
        assert await printer.status() is None
        await printer.write(slip, job_id="qr-ORD/1")
        await printer.write(b"\x1b@second\n")
    assert raw.read_bytes() == slip + b"\x1b@second\n"
    assert sorted(p.name for p in pngs.iterdir()) == ["job-000001.png", "qr-ORD_1.png"]
    with Image.open(pngs / "qr-ORD_1.png") as img:
        assert img.width == 576
        assert [r.text for r in zxingcpp.read_barcodes(img)] == [DEEPLINK]


async def test_file_printer_keeps_raw_bytes_when_the_png_cannot_be_drawn(
        tmp_path: Path) -> None:
    raw = tmp_path / "printer.bin"
    async with FilePrinter(name="f", path=raw, png_dir=tmp_path / "png") as printer:
        await printer.write(b"\x1b*garbage")
    assert raw.read_bytes() == b"\x1b*garbage"
    assert list((tmp_path / "png").iterdir()) == []


async def test_file_printer_unwritable_path_raises_printer_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    printer = FilePrinter(name="f", path=blocker / "sub" / "printer.bin")
    with pytest.raises(PrinterError, match="cannot open"):
        await printer.open()


# -- the recording fake -------------------------------------------------------------------

async def test_recording_printer_keeps_jobs_and_simulates_faults() -> None:
    printer = RecordingPrinter(name="rec")
    async with printer:
        await printer.write(b"a", job_id="1")
        printer.set_status(PrinterStatus(paper_out=True))
        assert (await printer.status()) == PrinterStatus(paper_out=True)
        with pytest.raises(PrinterError, match="paper out"):
            await printer.write(b"b")
        printer.set_status(PrinterStatus())
        printer.unplug()
        with pytest.raises(PrinterError, match="not connected"):
            await printer.status()
        printer.plug()
        await printer.open()
        await printer.write(b"c", job_id="2")
        await printer.wait_for_jobs(2, timeout_s=1)
    assert printer.jobs == [("1", b"a"), ("2", b"c")]
    assert printer.data == b"ac"

