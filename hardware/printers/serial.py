"""A receipt printer on a serial port (``/dev/ttyUSB0``, ``/dev/ttyS0``, a pty), via pyserial.

Every pyserial call runs in the printer's one writer thread (a single-worker executor: its
queue keeps jobs and status requests in order), never on the event loop. Writes are bounded
by pyserial's ``write_timeout``, sized to the job: a raster slip of 16 KB needs 8.5 s on a
19,200-baud line (10 bits a byte), a native-QR slip a fifth of a second. Status is asked with
``DLE EOT 1, 2, 4``, each answer awaited ``status_timeout_s``; a printer that does not answer
gives None. ``serial.SerialException``, ``OSError`` and ``termios.error`` (which pyserial lets
through from ``tcflush`` on a vanished device) never leave this module: they become
:class:`posbridge.errors.PrinterError`. POSIX only, like the daemon.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import termios
from collections.abc import Callable
from typing import TypeVar

import serial
import structlog

from hardware.errors import PrinterError
from hardware.escpos import STATUS_QUERIES, PrinterStatus, status_from_replies, status_request
from hardware.printers.base import PrinterLifecycle

__all__ = ["SerialPrinter", "line_seconds"]

log = structlog.get_logger(__name__)
T = TypeVar("T")

BITS_PER_BYTE = 10  # 8N1: start bit, 8 data bits, stop bit
LINE_SLACK = 1.5  # flow control pauses (a printer busy cutting) stretch the line time


def line_seconds(size: int, baudrate: int) -> float:
    """Seconds ``size`` bytes take on a ``baudrate`` 8N1 line."""
    return size * BITS_PER_BYTE / baudrate


class SerialPrinter(PrinterLifecycle):
    """Implements :class:`hardware.printers.base.Printer` over pyserial.

    ``timeout_s`` is the fixed part of every bound (open, close, a write on top of its line
    time); ``status_timeout_s`` how long one ``DLE EOT`` answer is awaited.
    """

    def __init__(
        self,
        *,
        name: str,
        device: str,
        baudrate: int = 19200,
        timeout_s: float = 2.0,
        status_timeout_s: float = 0.3,
    ) -> None:
        self._name = name
        self.device = device
        self.baudrate = baudrate
        self.timeout_s = timeout_s
        self.status_timeout_s = status_timeout_s
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._port: serial.Serial | None = None  # touched only in the writer thread
        self._log = log.bind(printer=name, device=device)

    @property
    def name(self) -> str:
        return self._name

    async def open(self) -> None:
        """Start the writer thread and open the port; PrinterError if the port cannot open."""
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(
                max_workers=1, thread_name_prefix=f"printer-{self._name}")
        await self._run(self._open_port, self.timeout_s)
        self._log.info("printer_opened")

    async def write(self, data: bytes, *, job_id: str = "") -> None:
        """Send ``data``; bounded by its line time plus ``timeout_s``."""
        budget = line_seconds(len(data), self.baudrate) * LINE_SLACK + self.timeout_s
        await self._run(lambda: self._write(data, budget), budget + self.timeout_s)

    async def status(self) -> PrinterStatus | None:
        """``DLE EOT 1, 2, 4`` answered by the printer, or None if it does not answer."""
        bound = self.status_timeout_s * len(STATUS_QUERIES) + self.timeout_s
        return await self._run(self._query_status, bound)

    async def close(self) -> None:
        """Close the port and stop the writer thread; never raises."""
        if self._pool is None:
            return
        try:
            await self._run(self._close_port, self.timeout_s)
        except PrinterError as exc:
            self._log.warning("printer_close_failed", error=str(exc))
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = None

    async def _run(self, job: Callable[[], T], timeout_s: float) -> T:
        if self._pool is None:
            raise PrinterError(f"printer {self._name} is not open")
        try:
            future = asyncio.get_running_loop().run_in_executor(self._pool, job)
        except RuntimeError as exc:  # the pool was shut down by a concurrent close()
            raise PrinterError(f"printer {self._name} is closed") from exc
        try:
            return await asyncio.wait_for(future, timeout_s)
        except TimeoutError as exc:
            # The thread finishes on its own, bounded by pyserial's timeouts.
            raise PrinterError(f"printer {self._name}: timeout after {timeout_s:.1f} s") from exc

    # -- the writer thread ------------------------------------------------------------------

    def _open_port(self) -> None:
        if self._port is not None:
            return
        try:
            self._port = serial.Serial(self.device, self.baudrate, timeout=self.status_timeout_s,
                                       write_timeout=self.timeout_s)
        except (serial.SerialException, OSError, termios.error, ValueError) as exc:
            raise PrinterError(f"cannot open {self.device}: {exc}") from exc

    def _port_or_raise(self) -> serial.Serial:
        if self._port is None:
            raise PrinterError(f"printer {self._name} is not open")
        return self._port

    def _write(self, data: bytes, budget: float) -> None:
        port = self._port_or_raise()
        try:
            port.write_timeout = budget
            # No flush(): it is tcdrain(), which has no timeout and would wedge this thread
            # behind a printer holding flow control; write() is bounded by write_timeout.
            port.write(data)
        except serial.SerialTimeoutException as exc:
            raise PrinterError(f"write to {self.device}: timeout after {budget:.1f} s") from exc
        except (serial.SerialException, OSError, termios.error) as exc:
            raise PrinterError(f"write to {self.device} failed: {exc}") from exc

    def _query_status(self) -> PrinterStatus | None:
        port = self._port_or_raise()
        replies: list[tuple[int, int]] = []
        try:
            port.reset_input_buffer()  # a late answer to an earlier request must not count
            for n in STATUS_QUERIES:
                port.write(status_request(n))
                answer = port.read(1)
                if not answer:
                    return None
                replies.append((n, answer[0]))
        except (serial.SerialException, OSError, termios.error) as exc:
            raise PrinterError(f"status of {self.device} failed: {exc}") from exc
        try:
            return status_from_replies(replies)
        except PrinterError as exc:
            self._log.warning("printer_status_garbled", error=str(exc))
            return None

    def _close_port(self) -> None:
        port, self._port = self._port, None
        if port is not None:
            with contextlib.suppress(serial.SerialException, OSError, termios.error):
                port.close()
