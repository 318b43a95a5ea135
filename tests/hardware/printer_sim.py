"""A serial receipt printer simulated on a real pty, for the printer and print-queue tests.

The code under test opens ``path`` (a symlink to the pty's slave side) with pyserial; a thread
here reads the master side, keeps every printed byte, and answers each ``DLE EOT n`` with the
status byte set in ``replies`` (no entry: no answer, like a printer that cannot tell).
``unplug()`` closes the master (the device vanishes: writes fail with EIO) and ``replug()``
makes a new pty (with an empty record) behind the same path, as when a USB printer is plugged
back in.
"""

from __future__ import annotations

import os
import select
import threading
import time
from pathlib import Path

STATUS_PREFIX = b"\x10\x04"
# DLE EOT answers of an Epson printer (fixed bits 1 and 4 set), per request n.
READY = {1: 0x12, 2: 0x12, 4: 0x12}
PAPER_OUT = {1: 0x1A, 2: 0x32, 4: 0x72}  # off-line; stopped by paper end; paper end sensor


class PtyPrinter:
    def __init__(self, path: Path, replies: dict[int, int] | None = None) -> None:
        self.path = path
        self.replies = dict(READY if replies is None else replies)
        self.queries: list[int] = []
        self._printed = bytearray()
        self._lock = threading.Lock()
        self._master = -1
        self._slave = -1
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.replug()

    @property
    def printed(self) -> bytes:
        with self._lock:
            return bytes(self._printed)

    def wait_printed(self, size: int, timeout_s: float = 5.0) -> bytes:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            data = self.printed
            if len(data) >= size:
                return data
            time.sleep(0.005)
        raise TimeoutError(f"printed {len(self.printed)} of {size} bytes")

    def replug(self) -> None:
        """A fresh device behind ``path``: what it has printed starts empty."""
        with self._lock:
            self._printed.clear()
        self._master, self._slave = os.openpty()
        if self.path.is_symlink():
            self.path.unlink()
        self.path.symlink_to(os.ttyname(self._slave))
        self._stop.clear()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def unplug(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)
        os.close(self._master)
        os.close(self._slave)
        self.path.unlink()

    def _serve(self) -> None:
        pending = b""
        while not self._stop.is_set():
            ready, _, _ = select.select([self._master], [], [], 0.01)
            if not ready:
                continue
            try:
                pending += os.read(self._master, 65536)
            except OSError:
                return
            pending = self._consume(pending)

    def _consume(self, data: bytes) -> bytes:
        """Record printable bytes, answer status requests; return an unfinished request."""
        while True:
            at = data.find(STATUS_PREFIX)
            if at < 0 or at + 2 >= len(data):
                break
            n = data[at + 2]
            self._keep(data[:at])
            data = data[at + 3:]
            self.queries.append(n)
            if n in self.replies:
                os.write(self._master, bytes([self.replies[n]]))
        keep_from = len(data)
        if data.endswith(STATUS_PREFIX):
            keep_from -= 2
        elif data.endswith(STATUS_PREFIX[:1]):
            keep_from -= 1
        self._keep(data[:keep_from])
        return data[keep_from:]

    def _keep(self, data: bytes) -> None:
        with self._lock:
            self._printed += data
