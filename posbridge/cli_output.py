"""What the command line needs to know about its own standard output."""

from __future__ import annotations

import select
import sys

__all__ = ["output_gone"]


def output_gone() -> bool:
    """True when standard output is a pipe whose reader has closed it (``... | head``)."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (OSError, ValueError):  # no real file behind stdout (e.g. captured by a test)
        return False
