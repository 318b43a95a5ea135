"""A small pool of worker processes for the daemon's QR rendering, so zxing-cpp never holds
its GIL.

Why a process and not a thread: zxing-cpp's encoder keeps the GIL for its whole C++ call, so a
thread encoding QR codes stalls the event loop (see :mod:`hardware.qr`); a worker process has a
GIL of its own. What runs here is pure CPU work on picklable values: the wallet QR PNG of the
web display, the QR slip's bytes, the file printer's and the file display's pictures. One
worker by default: a deeplink's PNG takes about 0.5 ms, so one process keeps up with a burst of
QR sales and leaves the other core to the event loop (two workers measured no better in
bench/bench_qr.py on a 2-core machine).

- Start method "spawn", never fork: the daemon has threads, and a forked child of a threaded
  process may inherit locks held by threads that do not exist in it. A spawned child imports
  the main module again as ``__mp_main__``, which is why every entry point runs ``main()`` only
  under ``if __name__ == "__main__":``.
- Each worker talks over one socket pair: a call is pickled and written by the caller, and the
  event loop reads the answers (``add_reader``) and resolves the callers' futures itself. No
  helper thread sits in between: ``concurrent.futures.ProcessPoolExecutor`` hands each call and
  each answer through two threads of its own, which cost about 0.5 ms per render on a 2-core
  VM (bench/README.md). At most ``MAX_PENDING_BYTES`` of calls wait per worker, well under
  the socket's buffer, so a write never blocks the loop; beyond that, calls run in a thread.
- :meth:`RenderPool.start` starts the workers and waits until each has imported zxing-cpp
  and pillow and rendered one QR, so the first sale does not pay the spawn. Calls are counted:
  every ``start()`` needs one :meth:`RenderPool.close`, and the last ``close()`` lets the calls
  in flight finish, then stops the workers and waits for them (several daemons may share one
  process in tests).
- :meth:`RenderPool.run` (from the event loop) and :meth:`RenderPool.run_blocking` (from a
  worker thread) run a function in a worker and return its result or raise its exception
  (pickled across: a ValueError stays a ValueError). Without a started pool they run it in a
  thread (``run``) or in the calling thread (``run_blocking``), as before the pool existed.
- When a worker dies (killed, out of memory) its calls in flight run again in a thread, so
  they still get their result; a warning is logged once per death and a fresh worker is
  started (and warmed in the background) for later calls. If that fresh worker cannot even
  warm up, the pool is given up and everything runs in threads until the next ``start()``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import multiprocessing
import os
import pickle
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any, Final, ParamSpec, TypeVar

import structlog

from hardware.qr import MIN_BORDER, qr_image, render_qr_png

__all__ = ["POOL", "RenderPool"]

log = structlog.get_logger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

START_METHOD: Final = "spawn"
WARM_TIMEOUT_S = 60.0  # a spawn imports the interpreter, pillow and zxing-cpp; generous
STOP_TIMEOUT_S = 10.0
MAX_PENDING_BYTES = 64 * 1024  # per worker; a Unix socket buffers about 200 KiB by default
# A call travels as its id (outside the pickle, so even a call the worker cannot load gets
# its answer) followed by the pickled (fn, args, kwargs).
_ID_BYTES = 8


class _WorkerDied(Exception):
    """The worker died with this call in flight: run it here instead."""


def _serve(conn: Connection) -> None:
    """A worker process: run each call that arrives, answer ``(id, ok, value)``, until the
    daemon closes its end."""
    # Ctrl-C reaches the whole process group: the daemon handles it and stops the workers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        try:
            message = conn.recv_bytes()
        except (EOFError, OSError):
            return
        call_id = int.from_bytes(message[:_ID_BYTES], "little")
        try:
            # S301 silenced: the bytes come only from the daemon that spawned this process,
            # over a socket pair nobody else holds.
            fn, args, kwargs = pickle.loads(message[_ID_BYTES:])  # noqa: S301
            answer: tuple[int, bool, object] = (call_id, True, fn(*args, **kwargs))
        except Exception as exc:  # the call's own error, or a call this process cannot load
            answer = (call_id, False, exc)
        try:
            data = pickle.dumps(answer)
        except Exception as exc:  # a result or an exception that does not pickle
            data = pickle.dumps((call_id, False, RuntimeError(f"unpicklable answer: {exc}")))
        try:
            conn.send_bytes(data)
        except OSError:  # the daemon has gone or given this worker up
            return


def _warm_up() -> int:
    """Import the renderers and draw one QR both ways (the web display's PNG, and pillow's
    picture the slips and the picture displays use); returns the worker's pid."""
    render_qr_png("https://example.com/posbridge-warm-up")
    qr_image("https://example.com/posbridge-warm-up")
    return os.getpid()


@dataclass
class _Call:
    """A call written to a worker: its caller's future, and what it weighs."""

    future: asyncio.Future[Any] | concurrent.futures.Future[Any]
    size: int  # bytes of the pickled call, counted against the worker's budget

    def resolve(self, ok: bool, value: Any) -> None:
        """Called on the event loop: the caller's future gets the worker's answer."""
        if self.future.done():  # a cancelled waiter
            return
        if ok:
            self.future.set_result(value)
        else:
            self.future.set_exception(value)


@dataclass(eq=False)
class _Worker:
    """One worker process and the loop's end of its socket pair."""

    process: multiprocessing.process.BaseProcess
    conn: Connection
    calls: dict[int, _Call] = field(default_factory=dict)
    pending_bytes: int = 0  # of the calls written and not answered yet
    dead: bool = False


class RenderPool:
    """A pool of ``workers`` processes (see the module docstring)."""

    def __init__(self, workers: int = 1) -> None:
        if workers < 1:
            raise ValueError("a render pool needs at least one worker")
        self.workers = workers
        self._lock = threading.Lock()  # the worker list, each worker's calls, every send
        self._workers: list[_Worker] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ids = itertools.count()
        self._users = 0

    @property
    def started(self) -> bool:
        """True while calls go to worker processes (False before start, after close, and
        after the pool was given up)."""
        return bool(self._workers)

    def worker_pids(self) -> list[int]:
        """The pids of the current worker processes (for tests and diagnostics)."""
        return [w.process.pid for w in self._workers if w.process.pid is not None]

    async def start(self) -> None:
        """Start the workers (first caller) and wait until they are warm; never raises: a pool
        that cannot start is logged and the work runs in threads."""
        with self._lock:
            self._users += 1
            if self._workers or self._users > 1:
                return
        self._loop = asyncio.get_running_loop()
        try:
            workers = [self._spawn() for _ in range(self.workers)]
            with self._lock:
                self._workers = workers
            warm = [self._submit_to(w, _warm_up, (), {}, self._loop.create_future())
                    for w in workers]
            await asyncio.wait_for(asyncio.gather(*warm), WARM_TIMEOUT_S)
        except (OSError, RuntimeError, TimeoutError, _WorkerDied) as exc:
            log.warning("qr_pool_unavailable", error=str(exc) or type(exc).__name__)
            self._give_up()

    async def close(self) -> None:
        """Undo one :meth:`start`; the last one lets the calls in flight finish, then stops
        the workers and waits for them."""
        with self._lock:
            if self._users == 0:
                return
            self._users -= 1
            if self._users > 0:
                return
            workers, self._workers = self._workers, []
        in_flight = [c.future for w in workers for c in list(w.calls.values())]
        if in_flight:
            await asyncio.wait([asyncio.ensure_future(asyncio.wrap_future(f))
                                if isinstance(f, concurrent.futures.Future) else f
                                for f in in_flight], timeout=STOP_TIMEOUT_S)
        await asyncio.gather(*(self._stop(w) for w in workers))

    async def run(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """``fn(*args, **kwargs)`` in a worker process, else in a thread. ``fn``, its
        arguments and its result must pickle (``fn`` a module-level function)."""
        loop = asyncio.get_running_loop()
        if loop is self._loop:
            future: asyncio.Future[T] = loop.create_future()
            if self._submit(fn, args, kwargs, future):
                try:
                    return await future
                except _WorkerDied:
                    pass
        return await asyncio.to_thread(fn, *args, **kwargs)

    def run_blocking(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """:meth:`run` for a worker thread: waits for the worker (without holding the GIL),
        or calls ``fn`` here when there is none. Never call it on the event loop."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        if self._submit(fn, args, kwargs, future):
            try:
                return future.result()
            except _WorkerDied:
                pass
        return fn(*args, **kwargs)

    # -- plumbing ------------------------------------------------------------------------------

    def _submit(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
                future: asyncio.Future[Any] | concurrent.futures.Future[Any]) -> bool:
        """Send the call to the least busy worker; False when it must run here instead."""
        with self._lock:
            live = [w for w in self._workers if not w.dead]
        if not live:
            return False
        worker = min(live, key=lambda w: w.pending_bytes)
        try:
            self._submit_to(worker, fn, args, kwargs, future)
        except _WorkerDied:
            return False
        return True

    def _submit_to(self, worker: _Worker, fn: Callable[..., Any], args: tuple[Any, ...],
                   kwargs: dict[str, Any], future: Any) -> Any:
        """Write one call to ``worker``; raises _WorkerDied when it cannot take it (dead, or
        its budget of pending bytes is spent)."""
        call_id = next(self._ids)
        data = call_id.to_bytes(_ID_BYTES, "little") + pickle.dumps((fn, args, kwargs))
        with self._lock:
            if worker.dead or worker.pending_bytes + len(data) > MAX_PENDING_BYTES:
                raise _WorkerDied
            worker.calls[call_id] = _Call(future, len(data))
            worker.pending_bytes += len(data)
            try:
                worker.conn.send_bytes(data)
            except OSError:
                del worker.calls[call_id]
                worker.pending_bytes -= len(data)
                raise _WorkerDied from None
        return future

    def _spawn(self) -> _Worker:
        ctx = multiprocessing.get_context(START_METHOD)
        ours, theirs = ctx.Pipe(duplex=True)
        process = ctx.Process(target=_serve, args=(theirs,), name="posbridge-render",
                              daemon=True)
        try:
            process.start()
        finally:
            theirs.close()
        worker = _Worker(process, ours)
        assert self._loop is not None
        self._loop.add_reader(ours.fileno(), self._answers, worker)
        return worker

    def _answers(self, worker: _Worker) -> None:
        """On the loop, when the worker's socket is readable: every answer that is there."""
        try:
            while worker.conn.poll(0):
                # S301 silenced: answers of our own spawned worker, on our private socket pair
                call_id, ok, value = pickle.loads(worker.conn.recv_bytes())  # noqa: S301
                with self._lock:
                    call = worker.calls.pop(call_id, None)
                    if call is not None:
                        worker.pending_bytes -= call.size
                if call is not None:
                    call.resolve(ok, value)
        except (EOFError, OSError, pickle.UnpicklingError):
            self._died(worker)

    def _died(self, worker: _Worker) -> None:
        """``worker`` is gone: its calls run in a thread, a fresh worker takes its place."""
        with self._lock:
            if worker.dead:
                return
            worker.dead = True
            calls, worker.calls = list(worker.calls.values()), {}
            replace = worker in self._workers
        self._forget(worker)
        for call in calls:
            _fail_over(call)
        if not replace:
            return
        log.warning("qr_pool_broken", detail="a render worker process died; the calls in "
                    "flight render in a thread, later ones in a fresh worker")
        try:
            fresh = self._spawn()
        except (OSError, RuntimeError) as exc:
            log.warning("qr_pool_unavailable", error=str(exc) or type(exc).__name__)
            self._give_up()
            return
        with self._lock:
            self._workers = [fresh if w is worker else w for w in self._workers]
        assert self._loop is not None
        warm: asyncio.Future[int] = self._loop.create_future()
        warm.add_done_callback(lambda f: None if not f.exception() else self._give_up())
        try:
            self._submit_to(fresh, _warm_up, (), {}, warm)
        except _WorkerDied:
            self._give_up()

    def _give_up(self) -> None:
        """The workers cannot work: render in threads from now on (until the next start)."""
        with self._lock:
            workers, self._workers = self._workers, []
        if not workers:
            return
        log.warning("qr_pool_disabled", detail="QR rendering runs in threads")
        for worker in workers:
            with self._lock:
                worker.dead = True
                calls, worker.calls = list(worker.calls.values()), {}
            for call in calls:
                _fail_over(call)
            self._forget(worker)
            worker.process.kill()

    def _forget(self, worker: _Worker) -> None:
        """Stop reading from ``worker``, close our end, reap the process in the background."""
        assert self._loop is not None
        self._loop.remove_reader(worker.conn.fileno())
        worker.conn.close()
        self._loop.run_in_executor(None, worker.process.join, STOP_TIMEOUT_S)

    async def _stop(self, worker: _Worker) -> None:
        """Close our end (the worker sees EOF and exits) and wait for the process."""
        with self._lock:
            worker.dead = True
        assert self._loop is not None
        self._loop.remove_reader(worker.conn.fileno())
        worker.conn.close()
        await asyncio.to_thread(worker.process.join, STOP_TIMEOUT_S)
        if worker.process.is_alive():
            worker.process.kill()
            await asyncio.to_thread(worker.process.join, STOP_TIMEOUT_S)


def _fail_over(call: _Call) -> None:
    """Its worker died: the caller runs the call itself (see RenderPool.run)."""
    if not call.future.done():
        call.future.set_exception(_WorkerDied())


# The daemon's pool: :mod:`posbridge.devices` starts and closes it, the renderers use it.
POOL = RenderPool()


async def render_qr_png_async(
    data: str, *, scale: int = 8, border: int = MIN_BORDER, ec: str = "M"
) -> bytes:
    """:func:`hardware.qr.render_qr_png` in the render pool's worker process (in a thread when
    the pool is not started or broke), so the event loop never waits on zxing-cpp.
    The same bytes, and the same ValueError for data no QR code holds.
    """
    return await POOL.run(render_qr_png, data, scale=scale, border=border, ec=ec)
