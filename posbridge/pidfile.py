"""The running daemon's process id in its data folder, held under a lock.

The daemon writes ``<data_dir>/posbridge.pid`` when it starts and holds an exclusive ``flock``
on it while it runs; a second daemon on the same data folder is refused (two engines on one
journal would both drive its payments). ``posbridge reload`` signals the pid only while the lock
is held: a file left by a daemon that died names a process that may be another program now,
and its lock is free (the kernel drops it with the process).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import Final

from posbridge.errors import JournalError

PID_FILE: Final = "posbridge.pid"


class PidFile:
    """``acquire()`` at start, ``release()`` at stop."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / PID_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        """Lock the file and write this process's id, or raise JournalError naming the
        daemon that holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            holder = running_pid(self.path.parent)
            raise JournalError(
                f"another posbridge (pid {holder or '?'}) is running with the data folder "
                f"{self.path.parent}") from exc
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        with contextlib.suppress(OSError):
            self.path.unlink()
        os.close(fd)  # closing drops the lock


def running_pid(data_dir: Path) -> int | None:
    """The id of the daemon running with ``data_dir``, or None when none holds the lock."""
    path = data_dir / PID_FILE
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:  # held: a daemon is running
            text = os.read(fd, 32).decode("ascii", "replace").strip()
            return int(text) if text.isdigit() else None
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None  # free: left behind by a daemon that is gone
    finally:
        os.close(fd)
