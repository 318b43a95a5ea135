"""A printer that keeps its bytes in memory: the fake for tests and the sandbox.

It can be told to report paper out, off-line or a cover open (:meth:`set_status`), to stop
answering status requests, or to vanish altogether (:meth:`unplug`) and come back
(:meth:`plug`), so the print queue's fault handling can be exercised without hardware.
"""

from __future__ import annotations

import asyncio

from hardware.errors import PrinterError
from hardware.escpos import PrinterStatus
from hardware.printers.base import PrinterLifecycle

__all__ = ["RecordingPrinter"]


class RecordingPrinter(PrinterLifecycle):
    """Implements :class:`hardware.printers.base.Printer`; ``jobs`` holds what was printed."""

    def __init__(self, *, name: str = "recording", answers_status: bool = True) -> None:
        self._name = name
        self.answers_status = answers_status
        self.jobs: list[tuple[str, bytes]] = []
        self.is_open = False
        self.opens = 0
        self._status = PrinterStatus()
        self._plugged = True
        self._printed = asyncio.Condition()

    @property
    def name(self) -> str:
        return self._name

    @property
    def data(self) -> bytes:
        """Every printed byte, in order."""
        return b"".join(data for _job, data in self.jobs)

    def set_status(self, status: PrinterStatus) -> None:
        """What the printer reports from now on; a fault also refuses writes."""
        self._status = status

    def unplug(self) -> None:
        """The printer vanishes: open, write and status raise PrinterError."""
        self._plugged = False
        self.is_open = False

    def plug(self) -> None:
        """The printer is back (it must be opened again)."""
        self._plugged = True

    async def open(self) -> None:
        if not self._plugged:
            raise PrinterError(f"printer {self._name} is not connected")
        self.is_open = True
        self.opens += 1

    async def write(self, data: bytes, *, job_id: str = "") -> None:
        if not self._plugged or not self.is_open:
            raise PrinterError(f"printer {self._name} is not connected")
        fault = self._status.fault
        if fault is not None:
            raise PrinterError(f"printer {self._name}: {fault}")
        async with self._printed:
            self.jobs.append((job_id, data))
            self._printed.notify_all()

    async def status(self) -> PrinterStatus | None:
        if not self._plugged or not self.is_open:
            raise PrinterError(f"printer {self._name} is not connected")
        return self._status if self.answers_status else None

    async def close(self) -> None:
        self.is_open = False

    async def wait_for_jobs(self, count: int, timeout_s: float) -> None:
        """Wait until at least ``count`` jobs were printed; TimeoutError after ``timeout_s``."""
        async with asyncio.timeout(timeout_s), self._printed:
            await self._printed.wait_for(lambda: len(self.jobs) >= count)
