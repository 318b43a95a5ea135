"""One worker thread per display, so blocking device work never runs on the event loop.

Jobs run one at a time in submission order. A caller waits at most ``timeout_s``; a job that
had not started by then is cancelled (only the newest frame matters), one already running is
left to finish in the thread, bounded by the device's own I/O timeout.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable
from typing import TypeVar

from hardware.errors import DisplayError

__all__ = ["DeviceWorker"]

T = TypeVar("T")


class DeviceWorker:
    """A single named worker thread for one display."""

    def __init__(self, name: str, *, timeout_s: float) -> None:
        self._name = name
        self.timeout_s = timeout_s
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"display-{name}")

    async def run(self, job: Callable[[], T]) -> T:
        """Run ``job`` in the worker thread; DisplayError if it does not finish in time.

        Exceptions of the job propagate unchanged (callers translate their library's errors).
        """
        loop = asyncio.get_running_loop()
        try:
            future = loop.run_in_executor(self._pool, job)
        except RuntimeError as exc:  # the pool was shut down by close()
            raise DisplayError(f"display {self._name} is closed") from exc
        try:
            return await asyncio.wait_for(future, self.timeout_s)
        except TimeoutError as exc:
            raise DisplayError(
                f"display {self._name} did not finish in {self.timeout_s} s") from exc

    def shutdown(self) -> None:
        """Refuse new jobs and drop queued ones; a running job finishes in the background."""
        self._pool.shutdown(wait=False, cancel_futures=True)
