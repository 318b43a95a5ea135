"""A "printer" that appends the raw ESC/POS bytes to a file, for sandboxes and headless
installs; with ``png_dir`` it also keeps a picture of each slip as ``<job_id>.png``.

File I/O runs in a worker thread (``asyncio.to_thread``) and the slip's picture is drawn in the
render pool's worker process (:mod:`hardware.qr_pool`: in a thread, zxing-cpp would hold the
GIL), never on the event loop; OSError becomes PrinterError here. A slip that cannot be drawn
is still printed (the raw bytes are the print; the PNG is a copy), and the failure is logged.
"""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import structlog

from hardware.errors import PrinterError
from hardware.escpos import PrinterStatus
from hardware.escpos_render import render_png
from hardware.printers.base import PrinterLifecycle, job_file_stem
from hardware.qr_pool import POOL

__all__ = ["FilePrinter"]

log = structlog.get_logger(__name__)


class FilePrinter(PrinterLifecycle):
    """Implements :class:`hardware.printers.base.Printer` over a file (and a PNG directory).

    ``width_dots`` is the paper width the PNG copies are drawn at.
    """

    def __init__(
        self,
        *,
        name: str,
        path: Path | str,
        png_dir: Path | str | None = None,
        width_dots: int = 576,
    ) -> None:
        self._name = name
        self.path = Path(path)
        self.png_dir = Path(png_dir) if png_dir is not None else None
        self.width_dots = width_dots
        self._open = False
        self._unnamed = itertools.count(1)
        self._log = log.bind(printer=name)

    @property
    def name(self) -> str:
        return self._name

    async def open(self) -> None:
        """Create the directories and check the file can be appended to."""
        await asyncio.to_thread(self._prepare)
        self._open = True

    async def write(self, data: bytes, *, job_id: str = "") -> None:
        """Append ``data`` to the file, then save its PNG copy when ``png_dir`` is set."""
        if not self._open:
            raise PrinterError(f"printer {self._name} is not open")
        await asyncio.to_thread(self._append, data)
        if self.png_dir is not None:
            stem = job_file_stem(job_id) if job_id else f"job-{next(self._unnamed):06d}"
            try:
                png = await POOL.run(render_png, data, width_dots=self.width_dots)
                await asyncio.to_thread(self._save_png, png, self.png_dir / f"{stem}.png")
            except PrinterError as exc:
                self._log.warning("printer_png_failed", job=job_id, error=str(exc))

    async def status(self) -> PrinterStatus | None:
        """A file has no paper sensor: None (write reports a full disk or a bad path)."""
        return None

    async def close(self) -> None:
        """Nothing stays open between jobs; only marks the printer closed."""
        self._open = False

    # -- worker thread ---------------------------------------------------------------------

    def _prepare(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("ab"):
                pass
            if self.png_dir is not None:
                self.png_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise PrinterError(f"cannot open {self.path}: {exc}") from exc

    def _append(self, data: bytes) -> None:
        try:
            with self.path.open("ab") as f:
                f.write(data)
        except OSError as exc:
            raise PrinterError(f"cannot write {self.path}: {exc}") from exc

    def _save_png(self, png: bytes, target: Path) -> None:
        try:
            target.write_bytes(png)
        except OSError as exc:
            raise PrinterError(f"cannot write {target}: {exc}") from exc
