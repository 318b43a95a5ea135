"""Crash points for the crash tests: the daemon kills itself at a named instant.

Set ``POSBRIDGE_FAILPOINT=<name>:<detail>`` in the daemon's environment; when the code passes
``failpoint(name, detail)`` with the same values, the process is SIGKILLed on the spot —
exactly like a crash at that instant (no cleanup, no flush beyond what is committed).
``<name>:<detail>@<n>`` kills at the n-th pass instead of the first. A kill point may also
take back, first, what a power cut would (``before_kill``; see
:meth:`posbridge.journal.Journal.simulate_power_cut`). Unset (always, in production) this
costs one comparison.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable

_TARGET, _, _NTH = (os.environ.get("POSBRIDGE_FAILPOINT") or "").partition("@")
_passes = 0


def armed(name: str) -> bool:
    """Whether a kill point called ``name`` (any detail) is set for this process."""
    return _TARGET.partition(":")[0] == name


def failpoint(name: str, detail: str = "",
              before_kill: Callable[[], None] | None = None) -> None:
    global _passes
    if _TARGET and f"{name}:{detail}" == _TARGET:
        _passes += 1
        if _passes < int(_NTH or 1):
            return
        if before_kill is not None:
            before_kill()
        os.kill(os.getpid(), signal.SIGKILL)
