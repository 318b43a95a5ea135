"""A display that keeps its frames: the recording fake for tests and embedded simulations."""

from __future__ import annotations

from hardware.displays.frames import DisplayFrame
from hardware.errors import DisplayError

__all__ = ["RecordingDisplay"]


class RecordingDisplay:
    """Implements :class:`hardware.displays.base.Display` by appending each frame to ``frames``.

    ``fail`` set to a message makes ``open()``/``show()`` raise DisplayError with it, to exercise
    the bridge's device-fault path.
    """

    def __init__(self, *, name: str) -> None:
        self._name = name
        self.frames: list[DisplayFrame] = []
        self.opened = False
        self.closed = False
        self.fail: str | None = None

    @property
    def name(self) -> str:
        return self._name

    async def open(self) -> None:
        self._check()
        self.opened = True

    async def show(self, frame: DisplayFrame) -> None:
        self._check()
        self.frames.append(frame)

    async def close(self) -> None:
        self.closed = True

    def _check(self) -> None:
        if self.fail is not None:
            raise DisplayError(self.fail)
