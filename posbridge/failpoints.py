"""Crash points for the crash tests: the daemon kills itself at a named instant.

Set ``POSBRIDGE_FAILPOINT=<name>:<detail>`` in the daemon's environment; when the code passes
``failpoint(name, detail)`` with the same values, the process is SIGKILLed on the spot —
exactly like a power cut at that instant (no cleanup, no flush beyond what is committed).
Unset (always, in production) this costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

_TARGET = os.environ.get("POSBRIDGE_FAILPOINT")


def failpoint(name: str, detail: str = "") -> None:
    if _TARGET is not None and f"{name}:{detail}" == _TARGET:
        os.kill(os.getpid(), signal.SIGKILL)
