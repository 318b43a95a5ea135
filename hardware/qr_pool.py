"""A small process pool for the daemon's QR rendering, so zxing-cpp never holds its GIL.

Why a process and not a thread: zxing-cpp's encoder keeps the GIL for its whole C++ call, so a
thread encoding QR codes stalls the event loop (see :mod:`hardware.qr`); a worker process has a
GIL of its own. What runs here is pure CPU work on picklable values: the wallet QR PNG of the
web display, the QR slip's bytes, the file printer's and the file display's pictures. One
worker by default: a deeplink's PNG takes about 1.3 ms, so one process keeps up with a burst of
QR sales and leaves the other core to the event loop (two workers measured no better in
bench/bench_qr.py on a 2-core machine).

- Start method "spawn", never fork: the daemon has threads, and a forked child of a threaded
  process may inherit locks held by threads that do not exist in it. A spawned child imports
  the main module again as ``__mp_main__``, which is why every entry point runs ``main()`` only
  under ``if __name__ == "__main__":``.
- :meth:`RenderPool.start` creates the workers and waits until each has imported zxing-cpp
  and pillow and rendered one QR, so the first sale does not pay the spawn. Calls are counted:
  every ``start()`` needs one :meth:`RenderPool.close`, and the last ``close()`` shuts the
  workers down and waits for them (several daemons may share one process in tests).
- :meth:`RenderPool.run` (from the event loop) and :meth:`RenderPool.run_blocking` (from a
  worker thread) run a function in the pool and return its result or raise its exception
  (pickled across: a ValueError stays a ValueError). Without a started pool they run it in a
  thread (``run``) or in the calling thread (``run_blocking``), as before the pool existed.
- When a worker dies (killed, out of memory) the pool is broken: the calls in flight run again
  in a thread, so they still get their result; a warning is logged once per breakage and a
  fresh pool is started (and warmed in the background) for later calls. If that fresh pool
  cannot even warm up, the pool is given up and everything runs in threads until the next
  ``start()``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import multiprocessing
import os
import signal
import threading
from collections.abc import Callable
from concurrent.futures.process import BrokenProcessPool
from typing import ParamSpec, TypeVar

import structlog

__all__ = ["POOL", "RenderPool"]

log = structlog.get_logger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

START_METHOD = "spawn"
WARM_TIMEOUT_S = 60.0  # a spawn imports the interpreter, pillow and zxing-cpp; generous


def _init_worker() -> None:
    # Ctrl-C reaches the whole process group: the daemon handles it and closes the pool; a
    # worker that died of it first would only break the pool and print a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _warm_up() -> int:
    """Import the renderers and draw one QR; returns the worker's pid."""
    from hardware.qr import render_qr_png

    render_qr_png("https://example.com/posbridge-warm-up")
    return os.getpid()


class RenderPool:
    """A process pool of ``workers`` processes (see the module docstring)."""

    def __init__(self, workers: int = 1) -> None:
        if workers < 1:
            raise ValueError("a render pool needs at least one worker")
        self.workers = workers
        self._lock = threading.Lock()
        self._executor: concurrent.futures.ProcessPoolExecutor | None = None
        self._retired: list[concurrent.futures.ProcessPoolExecutor] = []  # broken, given up
        self._users = 0

    @property
    def started(self) -> bool:
        """True while calls go to worker processes (False before start, after close, and
        after the pool was given up)."""
        return self._executor is not None

    def worker_pids(self) -> list[int]:
        """The pids of the current worker processes (for tests and diagnostics)."""
        executor = self._executor
        return list(executor._processes or ()) if executor is not None else []

    async def start(self) -> None:
        """Start the workers (first caller) and wait until they are warm; never raises: a pool
        that cannot start is logged and the work runs in threads."""
        with self._lock:
            self._users += 1
            if self._executor is not None or self._users > 1:
                return
            executor = self._executor = self._new_executor()
        try:
            futures = [asyncio.wrap_future(executor.submit(_warm_up))
                       for _ in range(self.workers)]
            await asyncio.wait_for(asyncio.gather(*futures), WARM_TIMEOUT_S)
        except (OSError, RuntimeError, TimeoutError) as exc:  # BrokenProcessPool included
            log.warning("qr_pool_unavailable", error=str(exc) or type(exc).__name__)
            self._give_up(executor)

    async def close(self) -> None:
        """Undo one :meth:`start`; the last one shuts the workers down and waits for them
        (work already submitted finishes first)."""
        with self._lock:
            if self._users == 0:
                return
            self._users -= 1
            if self._users > 0:
                return
            executor, self._executor = self._executor, None
            executors, self._retired = [*self._retired, executor], []
        for old in executors:  # waits for every process, broken pools' ones too
            if old is not None:
                await asyncio.to_thread(old.shutdown, wait=True)

    async def run(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """``fn(*args, **kwargs)`` in a worker process, else in a thread. ``fn``, its
        arguments and its result must pickle (``fn`` a module-level function)."""
        submitted = self._submit(fn, *args, **kwargs)
        if submitted is not None:
            executor, future = submitted
            try:
                return await asyncio.wrap_future(future)
            except BrokenProcessPool:
                self._broken(executor)
        return await asyncio.to_thread(fn, *args, **kwargs)

    def run_blocking(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """:meth:`run` for a worker thread: waits for the pool (without holding the GIL), or
        calls ``fn`` here when there is no pool. Never call it on the event loop."""
        submitted = self._submit(fn, *args, **kwargs)
        if submitted is not None:
            executor, future = submitted
            try:
                return future.result()
            except BrokenProcessPool:
                self._broken(executor)
        return fn(*args, **kwargs)

    def _submit(
        self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs
    ) -> tuple[concurrent.futures.ProcessPoolExecutor, concurrent.futures.Future[T]] | None:
        """The pool and its future for ``fn``, or None when it must run here instead."""
        executor = self._executor
        if executor is None:
            return None
        try:
            return executor, executor.submit(fn, *args, **kwargs)
        except BrokenProcessPool:
            self._broken(executor)
        except RuntimeError:
            pass  # closed meanwhile
        return None

    # -- plumbing ------------------------------------------------------------------------------

    def _new_executor(self) -> concurrent.futures.ProcessPoolExecutor:
        return concurrent.futures.ProcessPoolExecutor(
            max_workers=self.workers, mp_context=multiprocessing.get_context(START_METHOD),
            initializer=_init_worker)

    def _broken(self, executor: concurrent.futures.ProcessPoolExecutor) -> None:
        """A worker of ``executor`` died: replace it by a fresh pool, once."""
        with self._lock:
            if self._executor is not executor:
                return  # another call replaced it already, or the pool was closed
            fresh = self._executor = self._new_executor()
            self._retired.append(executor)
        log.warning("qr_pool_broken", detail="a render worker process died; the calls in "
                    "flight render in a thread, later ones in a fresh pool")
        executor.shutdown(wait=False)

        def warmed(future: concurrent.futures.Future[int]) -> None:
            if future.exception() is not None:
                self._give_up(fresh)

        try:
            for _ in range(self.workers):
                fresh.submit(_warm_up).add_done_callback(warmed)
        except (OSError, RuntimeError) as exc:
            log.warning("qr_pool_unavailable", error=str(exc) or type(exc).__name__)
            self._give_up(fresh)

    def _give_up(self, executor: concurrent.futures.ProcessPoolExecutor) -> None:
        """``executor`` cannot work: render in threads from now on (until the next start)."""
        with self._lock:
            if self._executor is not executor:
                return
            self._executor = None
            self._retired.append(executor)
        log.warning("qr_pool_disabled", detail="QR rendering runs in threads")
        executor.shutdown(wait=False)


# The daemon's pool: :mod:`posbridge.devices` starts and closes it, the renderers use it.
POOL = RenderPool()
