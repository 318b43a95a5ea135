"""A "display" that writes each frame as a PNG file, for headless installs and the sandbox.

Files in ``dir``: ``<seq>-<state>.png`` per frame (e.g. ``7-qr.png``) and ``current.png``, the
newest frame, replaced atomically (written to a temporary file in the same directory, then
renamed) so a viewer never reads half a picture. Only the newest :data:`KEEP_FILES` per-frame
files are kept, so a long-running install cannot fill its disk.

Frames are drawn (pillow, QR) in the render pool's worker process (:mod:`hardware.qr_pool`:
zxing-cpp would hold the GIL in a thread), waited for and written by the display's one worker
thread, in order, never on the event loop; ``OSError`` never leaves this module (it becomes
:class:`posbridge.errors.DisplayError`).
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import structlog

from hardware.displays.base import SHOW_TIMEOUT_S
from hardware.displays.frame_png import render_frame_png
from hardware.displays.frames import DisplayFrame
from hardware.displays.worker import DeviceWorker
from hardware.errors import DisplayError
from hardware.qr_pool import POOL

__all__ = ["KEEP_FILES", "FileDisplay"]

log = structlog.get_logger(__name__)

KEEP_FILES = 500
CURRENT = "current.png"
_FRAME_FILE = re.compile(r"[0-9]+-[a-z]+\.png")


class FileDisplay:
    """Implements :class:`hardware.displays.base.Display` with PNG files in ``dir``."""

    def __init__(self, *, name: str, dir: str | os.PathLike[str],  # the config key's name
                 keep: int = KEEP_FILES, show_timeout_s: float = SHOW_TIMEOUT_S) -> None:
        self._name = name
        self.dir = Path(dir)
        self.keep = keep
        # One thread, jobs in order: current.png always ends up as the newest frame shown.
        self._worker = DeviceWorker(name, timeout_s=show_timeout_s)
        self._log = log.bind(display=name, dir=str(self.dir))

    @property
    def name(self) -> str:
        return self._name

    async def open(self) -> None:
        """Create ``dir`` if needed; DisplayError if it cannot be created or is not writable."""
        try:
            await self._worker.run(self._prepare)
        except OSError as exc:
            raise DisplayError(f"display directory {self.dir}: {exc}") from exc

    async def show(self, frame: DisplayFrame) -> None:
        """Render and write the frame; DisplayError on a file error or after the timeout."""
        try:
            await self._worker.run(lambda: self._write(frame))
        except OSError as exc:
            raise DisplayError(f"display {self._name}: {exc}") from exc

    async def close(self) -> None:
        """Stop the worker thread (every file is already closed after each write)."""
        self._worker.shutdown()

    def path_for(self, frame: DisplayFrame) -> Path:
        """The per-frame file of ``frame``."""
        return self.dir / f"{frame.seq}-{frame.state.value}.png"

    # -- worker thread ----------------------------------------------------------------------

    def _prepare(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        if not os.access(self.dir, os.W_OK):
            raise PermissionError(f"{self.dir} is not writable")

    def _write(self, frame: DisplayFrame) -> None:
        png = POOL.run_blocking(render_frame_png, frame)
        _atomic_write(self.path_for(frame), png)
        _atomic_write(self.dir / CURRENT, png)
        self._prune()

    def _prune(self) -> None:
        frames = [p for p in self.dir.iterdir() if _FRAME_FILE.fullmatch(p.name)]
        if len(frames) <= self.keep:
            return
        frames.sort(key=lambda p: p.stat().st_mtime_ns)
        for old in frames[: len(frames) - self.keep]:
            old.unlink(missing_ok=True)


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".png")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
