"""The worker threads the providers' RSA work runs in: :func:`to_thread`.

UCanPay's and the crypto platform's clients sign, seal, open and verify their messages in
worker threads: one RSA-2048 signature is 0.2 to 0.9 ms of CPU and OpenSSL releases the GIL
while it computes, so the event loop goes on while a burst of QR sales is being signed on
another core. (A card sale's and a crypto sale's create are signed ahead on the loop instead,
while the journal's writer thread makes the intent durable: ``Engine._prepare``.)

These threads are the providers' own, as many as the cores the event loop leaves (at least
one, at most :data:`MAX_THREADS`), rather than asyncio's default executor, which has four
more threads than cores and also runs the slow scrypt checks of register tokens. More
signing threads than free cores cannot sign any faster: they only take the core and the GIL
from the event loop in turns. With 20 QR sales starting at once on two cores, one signing
thread instead of six lowered the event loop's lag p99 in every one of six alternating pairs
of ``bench/bench_qr.py`` runs, by 0.34 ms on average (bench/README.md), with the QR images
ready as soon.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

__all__ = ["MAX_THREADS", "THREAD_NAME_PREFIX", "thread_count", "to_thread"]

P = ParamSpec("P")
T = TypeVar("T")

#: No more signing threads than this, however many cores: a store's signatures are few.
MAX_THREADS = 8
THREAD_NAME_PREFIX = "provider-crypto"

_executor: ThreadPoolExecutor | None = None
_lock = threading.Lock()


def thread_count(cores: int | None = None) -> int:
    """How many threads: the cores this process may run on (``cores``, by default its CPU
    affinity), less the event loop's, at least 1 and at most :data:`MAX_THREADS`."""
    if cores is None:
        cores = _usable_cores()
    return max(1, min(MAX_THREADS, cores - 1))


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))  # a CPUAffinity= or taskset limit counts
    except (AttributeError, OSError):  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


def _pool() -> ThreadPoolExecutor:
    global _executor
    with _lock:
        if _executor is None:  # threads start as work comes, up to thread_count()
            _executor = ThreadPoolExecutor(max_workers=thread_count(),
                                           thread_name_prefix=THREAD_NAME_PREFIX)
        return _executor


async def to_thread(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """Like :func:`asyncio.to_thread` (the caller's context variables go along), in the
    providers' signing threads."""
    call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
    return await asyncio.get_running_loop().run_in_executor(_pool(), call)
