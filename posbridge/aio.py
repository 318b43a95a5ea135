"""How posbridge runs a coroutine to completion: on uvloop.

uvloop (libuv, in C) is a drop-in asyncio event loop. The daemon is one core-bound process
under load, and the loop's own bookkeeping (handles, timers, socket reads and writes) is a
large part of each sale's cost: measured with bench/bench_sale.py, a card sale costs the
daemon about 12 % less CPU on uvloop than on asyncio's default loop, so more sales fit in
one core. Where uvloop cannot be imported (an unusual platform), asyncio's own loop runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["loop_factory", "run"]

T = TypeVar("T")


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """A function that makes the event loop posbridge runs on."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on every supported OS
        return asyncio.new_event_loop
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T]) -> T:
    """Like :func:`asyncio.run` (Ctrl-C cancels ``main``), on the loop of :func:`loop_factory`."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)
