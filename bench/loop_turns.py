"""Diagnostic: where an event loop's long turns go, callback by callback.

:func:`run` runs a coroutine on asyncio's own loop (not uvloop: its callbacks cannot be timed
from Python) with pure-Python tasks, so that a task's step can be named by the lines of its
coroutines where it resumed and where it stopped. Every callback is timed in wall time and in
the loop thread's CPU time, with the thread's voluntary context switches (waits: for the GIL,
mostly, as the loop never blocks otherwise) and involuntary ones (preempted), and beside it
the CPU time the process's other threads used meanwhile (those that can hold the GIL the loop
waits for). :func:`report`
sums the turns whose callbacks took more than :data:`LONG_TURN_S` in all. All of this slows the loop
down several times: the shares are what it shows, not the times.

    bench_qr.py --loop-turns FILE   (the daemon runs this way, records while 20 QR sales
                                     start at once, and writes the report to FILE)
"""

from __future__ import annotations

import asyncio
import asyncio.base_events
import asyncio.events
import asyncio.tasks
import collections
import re
import resource
import threading
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

#: Turns whose callbacks take longer than this in all are kept for the report.
LONG_TURN_S = 0.002

# (wall s, CPU s, voluntary, involuntary switches, where it resumed, where it stopped)
Callback = tuple[float, float, int, int, str, str]
_long_turns: list[list[Callback]] = []
_turn: list[Callback] = []
_count = [0]  # turns recorded in all
_others: collections.Counter[str] = collections.Counter()  # CPU s of other threads, long turns
_turn_others: collections.Counter[str] = collections.Counter()
_recording = [True]


def record(on: bool) -> None:
    """Record turns from now on (``on``, the default from the start) or not."""
    _recording[0] = on


def _others_cpu() -> dict[str, float]:
    """The CPU seconds so far of this process's other Python threads, by thread name with
    its pool number taken off (``provider-crypto_0`` counts as ``provider-crypto``)."""
    me, cpu = threading.get_ident(), {}
    for thread in threading.enumerate():
        if thread.ident is None or thread.ident == me:
            continue
        try:
            seconds = time.clock_gettime(time.pthread_getcpuclockid(thread.ident))
        except OSError:  # it has just ended
            continue
        name = re.sub(r"_\d+$", "", thread.name)
        cpu[name] = cpu.get(name, 0.0) + seconds
    return cpu


def _where(callback: object) -> str:
    """A task's step as the innermost three coroutine lines it is at; else the callable."""
    owner = getattr(callback, "__self__", None)
    if owner is not None and hasattr(owner, "get_coro"):
        coro, frames = owner.get_coro(), []
        while coro is not None and getattr(coro, "cr_frame", None) is not None:
            frames.append(f"{coro.cr_frame.f_code.co_name}:{coro.cr_frame.f_lineno}")
            coro = coro.cr_await
        return "task " + " > ".join(frames[-3:]) if frames else "task (done)"
    name = getattr(callback, "__qualname__", None) or type(callback).__name__
    protocol = getattr(owner, "_protocol", None)
    return f"{name} [{type(protocol).__name__}]" if protocol is not None else str(name)


def _install() -> None:
    handle_run = asyncio.events.Handle._run
    run_once = asyncio.base_events.BaseEventLoop._run_once

    def timed_run(self: asyncio.events.Handle) -> None:
        callback = self._callback
        before = _where(callback)
        others = _others_cpu()
        usage, cpu, wall = (resource.getrusage(resource.RUSAGE_THREAD), time.thread_time(),
                            time.perf_counter())
        handle_run(self)
        wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
        after = resource.getrusage(resource.RUSAGE_THREAD)
        for name, seconds in _others_cpu().items():
            _turn_others[name] += seconds - others.get(name, seconds)
        _turn.append((wall, cpu, after.ru_nvcsw - usage.ru_nvcsw,
                      after.ru_nivcsw - usage.ru_nivcsw, before,
                      _where(callback) if before.startswith("task") else ""))

    def timed_run_once(self: asyncio.base_events.BaseEventLoop) -> None:
        _turn.clear()
        _turn_others.clear()
        run_once(self)
        if not _recording[0]:
            return
        _count[0] += 1
        if sum(c[0] for c in _turn) > LONG_TURN_S:
            _long_turns.append(list(_turn))
            _others.update(_turn_others)

    # asyncio's private internals, patched on purpose: this is a diagnostic, not the product
    asyncio.events.Handle._run = timed_run
    asyncio.base_events.BaseEventLoop._run_once = timed_run_once


def run(main: Coroutine[Any, Any, T]) -> T:
    """``main`` to completion on a timed asyncio loop with pure-Python tasks."""
    _install()

    def new_loop() -> asyncio.AbstractEventLoop:
        loop = asyncio.new_event_loop()
        loop.set_task_factory(
            lambda loop, coro, **kw: asyncio.tasks._PyTask(coro, loop=loop, **kw))
        return loop

    with asyncio.Runner(loop_factory=new_loop) as runner:
        return runner.run(main)


def report(top: int = 25) -> str:
    """The turns whose callbacks took more than :data:`LONG_TURN_S`: how much of their wall
    time the loop thread ran, and the callbacks that took the most of it."""
    calls = [c for turn in _long_turns for c in turn]
    wall, cpu = sum(c[0] for c in calls), sum(c[1] for c in calls)
    lines = [f"{len(_long_turns)} of {_count[0]} loop turns took more than"
             f" {LONG_TURN_S * 1000:g} ms"
             f" of callbacks: {wall * 1000:.1f} ms in all, the loop thread running"
             f" {cpu * 1000:.1f} ms ({cpu / wall:.0%}), waiting {sum(c[2] for c in calls)}"
             f" times, preempted {sum(c[3] for c in calls)} times" if wall else "no long turns"]
    if wall:
        lines.append("meanwhile the other threads ran: " + ", ".join(
            f"{name} {seconds * 1000:.1f} ms" for name, seconds in _others.most_common()
            if seconds > 0) + " (their CPU, while the loop ran those turns' callbacks)")
    by_step: dict[tuple[str, str], list[float]] = collections.defaultdict(lambda: [0, 0.0, 0.0])
    for c in calls:
        step = by_step[(c[4], c[5])]
        step[0] += 1
        step[1] += c[0]
        step[2] += c[1]
    lines.append(f"{'share':>6} {'calls':>6} {'wall/call':>10} {'cpu/call':>9}  callback")
    for (before, after), (n, w, c) in sorted(by_step.items(), key=lambda kv: -kv[1][1])[:top]:
        step = f"{before} -> {after}" if after else before
        lines.append(f"{w / wall:6.1%} {int(n):6d} {w / n * 1000:8.3f}ms {c / n * 1000:7.3f}ms"
                     f"  {step}")
    return "\n".join(lines)
