"""The providers' signing threads: how many, and what runs in them (the QR providers' use of
them is tested with each provider's client)."""

from __future__ import annotations

import contextvars
import os
import threading

import pytest

from posbridge.providers import crypto_threads
from posbridge.providers.crypto_threads import MAX_THREADS, THREAD_NAME_PREFIX, thread_count

pytestmark = pytest.mark.timeout(20)

REQUEST = contextvars.ContextVar[str]("REQUEST")


@pytest.mark.parametrize(("cores", "threads"),
                         [(1, 1), (2, 1), (3, 2), (4, 3), (MAX_THREADS + 1, MAX_THREADS),
                          (64, MAX_THREADS)])
def test_as_many_threads_as_the_cores_the_loop_leaves(cores: int, threads: int) -> None:
    assert thread_count(cores) == threads


def test_the_cores_counted_are_those_the_process_may_run_on() -> None:
    allowed = len(os.sched_getaffinity(0))
    assert thread_count() == max(1, min(MAX_THREADS, allowed - 1))


async def test_a_call_runs_in_a_signing_thread_with_the_callers_context() -> None:
    REQUEST.set("R-1")

    def where(x: int, *, y: int) -> tuple[str, str, int]:
        return threading.current_thread().name, REQUEST.get(), x + y

    name, request, total = await crypto_threads.to_thread(where, 2, y=3)
    assert name.startswith(THREAD_NAME_PREFIX) and name != threading.current_thread().name
    assert (request, total) == ("R-1", 5)


async def test_an_exception_in_the_thread_reaches_the_caller() -> None:
    def fail() -> None:
        raise ValueError("bad key")

    with pytest.raises(ValueError, match="bad key"):
        await crypto_threads.to_thread(fail)
