"""A receipt printer on the network (raw TCP, port 9100), via asyncio streams.

Every step is bounded: connect ``connect_timeout_s``, a whole write ``write_timeout_s``, one
``DLE EOT`` answer ``status_timeout_s``. A printer that leaves a status request unanswered is
not asked again on this connection (its late answer would be taken for the next one's), so
:meth:`TcpPrinter.status` returns None from then on. A connection the printer has closed (many
close idle ones) is re-opened before the next job. ``OSError`` and timeouts never leave this
module: they become :class:`posbridge.errors.PrinterError`.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from hardware.errors import PrinterError
from hardware.escpos import STATUS_QUERIES, PrinterStatus, status_from_replies, status_request
from hardware.printers.base import PrinterLifecycle

__all__ = ["TcpPrinter"]

log = structlog.get_logger(__name__)


class TcpPrinter(PrinterLifecycle):
    """Implements :class:`hardware.printers.base.Printer` over a TCP connection."""

    def __init__(
        self,
        *,
        name: str,
        host: str,
        port: int = 9100,
        connect_timeout_s: float = 3.0,
        write_timeout_s: float = 10.0,
        status_timeout_s: float = 0.5,
    ) -> None:
        self._name = name
        self.host = host
        self.port = port
        self.connect_timeout_s = connect_timeout_s
        self.write_timeout_s = write_timeout_s
        self.status_timeout_s = status_timeout_s
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._answers_status = True
        self._log = log.bind(printer=name, host=host, port=port)

    @property
    def name(self) -> str:
        return self._name

    async def open(self) -> None:
        """Connect; PrinterError if refused or not answered within ``connect_timeout_s``."""
        if self._writer is not None:
            return
        try:
            self._reader, self._writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port), self.connect_timeout_s)
        except TimeoutError as exc:
            raise PrinterError(f"connect to {self.host}:{self.port}: timeout") from exc
        except OSError as exc:
            raise PrinterError(f"connect to {self.host}:{self.port} failed: {exc}") from exc
        self._answers_status = True
        self._log.info("printer_opened")

    async def write(self, data: bytes, *, job_id: str = "") -> None:
        """Send ``data`` and wait until the socket took it all."""
        reader, writer = self._streams()
        if reader.at_eof() or writer.is_closing():
            await self.close()
            await self.open()
            reader, writer = self._streams()
        try:
            writer.write(data)
            await asyncio.wait_for(writer.drain(), self.write_timeout_s)
        except TimeoutError as exc:
            raise PrinterError(f"write to {self.host}:{self.port}: timeout") from exc
        except OSError as exc:
            raise PrinterError(f"write to {self.host}:{self.port} failed: {exc}") from exc

    async def status(self) -> PrinterStatus | None:
        """``DLE EOT 1, 2, 4`` answered over the connection, or None if the printer does not
        answer; PrinterError if the connection is gone.
        """
        reader, writer = self._streams()
        if not self._answers_status:
            return None
        replies: list[tuple[int, int]] = []
        try:
            for n in STATUS_QUERIES:
                writer.write(status_request(n))
                await asyncio.wait_for(writer.drain(), self.write_timeout_s)
                answer = await asyncio.wait_for(reader.readexactly(1), self.status_timeout_s)
                replies.append((n, answer[0]))
        except TimeoutError:
            self._answers_status = False
            self._log.info("printer_status_unanswered")
            return None
        except asyncio.IncompleteReadError as exc:
            raise PrinterError(f"{self.host}:{self.port} closed the connection") from exc
        except OSError as exc:
            raise PrinterError(f"status of {self.host}:{self.port} failed: {exc}") from exc
        try:
            return status_from_replies(replies)
        except PrinterError as exc:
            self._log.warning("printer_status_garbled", error=str(exc))
            return None

    async def close(self) -> None:
        """Close the connection; never raises."""
        writer, self._writer, self._reader = self._writer, None, None
        if writer is None:
            return
        writer.close()
        with contextlib.suppress(OSError, TimeoutError):
            await asyncio.wait_for(writer.wait_closed(), self.connect_timeout_s)

    def _streams(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._reader is None or self._writer is None:
            raise PrinterError(f"printer {self._name} is not open")
        return self._reader, self._writer
