"""Which threads functions run in: :func:`thread_spy`."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest


def thread_spy(monkeypatch: pytest.MonkeyPatch, *functions: tuple[object, str]) -> list[str]:
    """Replace each ``(module, name)`` function by a wrapper that calls it as before and notes
    the name of the thread each call runs in, in the list returned."""
    threads: list[str] = []

    def spied(real: Callable[..., Any]) -> Callable[..., Any]:
        def noted(*args: Any, **kwargs: Any) -> Any:
            threads.append(threading.current_thread().name)
            return real(*args, **kwargs)
        return noted

    for module, name in functions:
        monkeypatch.setattr(module, name, spied(getattr(module, name)))
    return threads
