"""The interface every customer display kind implements."""

from __future__ import annotations

from typing import Protocol

from hardware.displays.frames import DisplayFrame

__all__ = ["SHOW_TIMEOUT_S", "Display"]

# The longest a show() may take before it gives up with DisplayError: a display is cosmetic and
# must never hold a payment up.
SHOW_TIMEOUT_S = 2.0


class Display(Protocol):
    """A customer-facing screen.

    Contract: ``open()`` before the first ``show()``, ``close()`` once at the end (also after a
    failed ``open()``). ``show()`` returns within a bounded time (about :data:`SHOW_TIMEOUT_S`),
    never blocks the event loop, and raises :class:`posbridge.errors.DisplayError` when the device
    is in trouble; the next ``show()`` tries again, so an unplugged display recovers by itself.
    Only the newest frame matters: a display may drop a frame that a newer one replaced.
    """

    @property
    def name(self) -> str:
        """The configured ``[[displays]]`` name."""
        ...

    async def open(self) -> None:
        """Acquire the device; raises DisplayError if it cannot be reached."""
        ...

    async def show(self, frame: DisplayFrame) -> None:
        """Put ``frame`` on the screen; raises DisplayError on device trouble."""
        ...

    async def close(self) -> None:
        """Release the device; never raises for a device that is already gone."""
        ...
