"""What every receipt printer transport offers the print queue.

A printer is opened and closed explicitly (``await p.open()`` / ``await p.close()``, or
``async with p:``), never in a property or ``__del__``. Transports only move bytes built by
:mod:`hardware.escpos`; every failure leaves them as :class:`posbridge.errors.PrinterError`.

After a PrinterError from :meth:`Printer.write` or :meth:`Printer.status` the caller closes the
printer and opens it again before retrying: that is how a printer unplugged and plugged back in
(or a TCP printer restarted) recovers.
"""

from __future__ import annotations

import re
from types import TracebackType
from typing import Protocol, TypeVar

from hardware.escpos import PrinterStatus

__all__ = ["Printer", "PrinterLifecycle", "job_file_stem"]


class Printer(Protocol):
    """A receipt printer transport."""

    @property
    def name(self) -> str:
        """The configured ``[[printers]]`` name, used in logs and fault reports."""
        ...

    async def open(self) -> None:
        """Connect to the printer; PrinterError if it cannot be reached."""
        ...

    async def write(self, data: bytes, *, job_id: str = "") -> None:
        """Send one whole job, bounded in time; PrinterError if it did not go out.

        ``job_id`` names the job for transports that keep copies (the file printer).
        """
        ...

    async def status(self) -> PrinterStatus | None:
        """The printer's real-time status, or None when the transport cannot tell
        (no answer to ``DLE EOT``); PrinterError when the printer is gone.
        """
        ...

    async def close(self) -> None:
        """Disconnect; never raises, safe to call twice or without :meth:`open`."""
        ...


P = TypeVar("P", bound=Printer)


class PrinterLifecycle:
    """``async with printer:`` = open, then close on the way out (a mixin for transports)."""

    async def __aenter__(self: P) -> P:
        await self.open()
        return self

    async def __aexit__(
        self: P,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def job_file_stem(job_id: str) -> str:
    """``job_id`` made safe as a file name (no path separators, no leading dot)."""
    stem = _UNSAFE.sub("_", job_id).lstrip(".")
    return stem[:120] or "job"
