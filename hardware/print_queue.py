"""One print queue per printer: the payment flow hands over a job and never waits or fails.

Theory of operation. :meth:`PrintQueue.submit` appends the job and returns at once; it never
raises. A single worker task prints jobs strictly in order. Before each job it asks the printer
for its status (when the transport can tell): paper out, cover open, an error or off-line is a
fault -- the job is kept and retried after ``retry_delays`` (the last delay repeats). A
PrinterError from the transport is a fault too; the printer is then closed and re-opened before
the next attempt, which is how an unplugged printer comes back. Faults are reported through
``on_fault(printer_name, reason)`` when they begin or their reason changes (not on every retry),
and ``on_recovered(printer_name)`` is called once a job prints again.

The queue is bounded (``max_jobs`` waiting jobs): when full, the oldest job not yet started is
dropped and reported as a fault, since a slip of long ago is worth less than the newest one.
Callbacks run on the event loop; an exception in one is logged and does not stop the worker.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import structlog

from hardware.errors import PrinterError
from hardware.printers.base import Printer

__all__ = ["PrintJob", "PrintQueue"]

log = structlog.get_logger(__name__)

DEFAULT_RETRY_DELAYS = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)


@dataclass(frozen=True, slots=True)
class PrintJob:
    """One job: an id for logs and file names, and the whole ESC/POS bytes."""

    job_id: str
    data: bytes


class PrintQueue:
    """The queue and worker of one printer. ``submit`` from the event loop's thread only.

    Counters for metrics: ``jobs_printed``, ``faults`` (fault reports made), ``jobs_dropped``;
    ``pending`` is the number of jobs waiting or printing, ``fault`` the current fault or None.
    """

    def __init__(
        self,
        printer: Printer,
        *,
        retry_delays: Sequence[float] = DEFAULT_RETRY_DELAYS,
        max_jobs: int = 100,
        on_fault: Callable[[str, str | None], None] | None = None,
        on_recovered: Callable[[str], None] | None = None,
    ) -> None:
        if not retry_delays or min(retry_delays) < 0:
            raise ValueError("retry_delays needs at least one delay, none negative")
        if max_jobs < 1:
            raise ValueError("max_jobs must be at least 1")
        self.printer = printer
        self.retry_delays = tuple(retry_delays)
        self.max_jobs = max_jobs
        self._on_fault = on_fault
        self._on_recovered = on_recovered
        self._overflowed = False
        self._waiting: collections.deque[PrintJob] = collections.deque()
        self._current: PrintJob | None = None
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._worker: asyncio.Task[None] | None = None
        self._is_open = False
        self.fault: str | None = None
        self.jobs_printed = 0
        self.faults = 0
        self.jobs_dropped = 0
        self._log = log.bind(printer=printer.name)

    @property
    def pending(self) -> int:
        return len(self._waiting) + (self._current is not None)

    def submit(self, job_id: str, data: bytes) -> None:
        """Queue a job and return at once; never raises (a full queue drops its oldest
        waiting job, with a fault report).
        """
        try:
            if len(self._waiting) >= self.max_jobs:
                dropped = self._waiting.popleft()
                self.jobs_dropped += 1
                self._log.warning("print_job_dropped", job=dropped.job_id)
                self._report_fault(f"queue full: dropped job {dropped.job_id}")
            self._waiting.append(PrintJob(job_id, data))
            self._idle.clear()
            self._wakeup.set()
        except Exception:  # the payment flow must never see a printer problem
            self._log.exception("print_submit_failed", job=job_id)

    async def start(self) -> None:
        """Start the worker; the printer is opened by the worker, so this never fails."""
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(
                self._run(), name=f"print-queue-{self.printer.name}")

    async def stop(self, drain_timeout_s: float) -> None:
        """Let the worker print what is queued for up to ``drain_timeout_s``, then stop it and
        close the printer. Jobs still queued are logged and lost.
        """
        if self._worker is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), drain_timeout_s)
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        if self.pending:
            self._log.warning("print_jobs_lost", count=self.pending)
        await self._close_printer()

    # -- the worker --------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            if not self._waiting:
                self._idle.set()
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            job = self._current = self._waiting.popleft()
            attempt = 0
            while (reason := await self._attempt(job)) is not None:
                self._report_fault(reason)
                await asyncio.sleep(self.retry_delays[min(attempt, len(self.retry_delays) - 1)])
                attempt += 1
            self._current = None

    async def _attempt(self, job: PrintJob) -> str | None:
        """Print ``job`` once; None when printed, else why not."""
        try:
            if not self._is_open:
                await self.printer.open()
                self._is_open = True
            status = await self.printer.status()
            if status is not None and status.fault is not None:
                return status.fault
            await self.printer.write(job.data, job_id=job.job_id)
        except PrinterError as exc:
            await self._close_printer()
            return str(exc) or "printer error"
        except Exception as exc:  # a transport bug must not kill the queue: report, retry
            self._log.exception("print_attempt_crashed", job=job.job_id)
            await self._close_printer()
            return f"internal error: {type(exc).__name__}"
        self.jobs_printed += 1
        self._log.info("print_job_done", job=job.job_id, size=len(job.data))
        if self.fault is not None or self._overflowed:
            self.fault, self._overflowed = None, False
            self._log.info("printer_recovered")
            self._call(self._on_recovered, self.printer.name)
        return None

    async def _close_printer(self) -> None:
        # Always: a half-done open (thread started, port not opened) is released too.
        self._is_open = False
        await self.printer.close()

    def _report_fault(self, reason: str) -> None:
        if reason == self.fault:
            return  # the same fault again: a retry, not news
        if reason.startswith("queue full"):
            self._overflowed = True  # cleared, and announced as recovered, by the next print
        else:
            self.fault = reason
        self.faults += 1
        self._log.warning("printer_fault", reason=reason)
        self._call(self._on_fault, self.printer.name, reason)

    def _call(self, callback: Callable[..., None] | None, *args: object) -> None:
        if callback is None:
            return
        try:
            callback(*args)
        except Exception:
            self._log.exception("print_callback_failed")
