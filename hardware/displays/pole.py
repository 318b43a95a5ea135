"""A serial 2x20 pole display (VFD) driven with the ESC/POS customer-display commands.

The bytes come from :mod:`hardware.displays.vfd`; this module only moves them to the port.
Every pyserial call runs in the display's one writer thread, never on the event loop, and is
bounded by pyserial's ``write_timeout``; ``serial.SerialException`` and ``OSError`` never leave
this module (they become :class:`posbridge.errors.DisplayError`).

Frames that pile up behind a stuck write are dropped: ``show()`` waits at most its timeout,
and a frame whose write had not started by then is cancelled, since only the newest matters.
After a failed write the port is closed and reopened on the next ``show()``, so a display that
was unplugged and plugged back in recovers without a restart.
"""

from __future__ import annotations

import contextlib

import serial
import structlog

from hardware.displays.base import SHOW_TIMEOUT_S
from hardware.displays.frames import DisplayFrame, pole_lines
from hardware.displays.vfd import init_bytes, screen_bytes
from hardware.displays.worker import DeviceWorker
from hardware.errors import DisplayError

__all__ = ["PoleDisplay"]

log = structlog.get_logger(__name__)

WRITE_TIMEOUT_S = 1.0  # a 2x20 screen is ~60 bytes: 60 ms at 9600 baud, so 1 s means "stuck"


class PoleDisplay:
    """A customer pole display on a serial port (``/dev/ttyUSB0``, a pty, ...).

    Implements :class:`hardware.displays.base.Display`. ``columns`` x ``rows`` is the screen size
    (2x20 for nearly all models).
    """

    def __init__(
        self,
        *,
        name: str,
        device: str,
        baudrate: int = 9600,
        columns: int = 20,
        rows: int = 2,
        show_timeout_s: float = SHOW_TIMEOUT_S,
    ) -> None:
        if columns < 1 or rows < 1:
            raise ValueError("a pole display has at least one row and one column")
        self._name = name
        self.device = device
        self.baudrate = baudrate
        self.columns = columns
        self.rows = rows
        # Touched only from the writer thread.
        self._port: serial.Serial | None = None
        self._writer = DeviceWorker(name, timeout_s=show_timeout_s)
        self._log = log.bind(display=name, device=device)

    @property
    def name(self) -> str:
        return self._name

    async def open(self) -> None:
        """Open the port and initialise the display; DisplayError if it cannot."""
        await self._writer.run(self._ensure_open)
        self._log.info("display_opened")

    async def show(self, frame: DisplayFrame) -> None:
        """Clear the screen and write the frame's :func:`pole_lines`; bounded by the timeout."""
        data = screen_bytes(pole_lines(frame, self.columns, self.rows))
        await self._writer.run(lambda: self._write(data))

    async def close(self) -> None:
        """Close the port and stop the writer thread; never raises."""
        try:
            await self._writer.run(self._close_port)
        except DisplayError as exc:
            self._log.warning("display_close_failed", error=str(exc))
        self._writer.shutdown()

    # -- the writer thread ------------------------------------------------------------------

    def _ensure_open(self) -> None:
        if self._port is not None:
            return
        try:
            port = serial.Serial(self.device, self.baudrate, timeout=0,
                                 write_timeout=WRITE_TIMEOUT_S)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise DisplayError(f"cannot open {self.device}: {exc}") from exc
        self._port = port
        self._write_raw(init_bytes())

    def _write(self, data: bytes) -> None:
        self._ensure_open()
        self._write_raw(data)

    def _write_raw(self, data: bytes) -> None:
        port = self._port
        assert port is not None
        try:
            # No flush(): it is tcdrain(), which has no timeout and would wedge the writer
            # thread behind a display holding flow control; write() is bounded by write_timeout.
            port.write(data)
        except (serial.SerialException, OSError) as exc:
            # Reopen on the next show(): the usual cause is a display unplugged and back.
            with contextlib.suppress(DisplayError):
                self._close_port()
            raise DisplayError(f"write to {self.device} failed: {exc}") from exc

    def _close_port(self) -> None:
        port, self._port = self._port, None
        if port is None:
            return
        try:
            port.close()
        except (serial.SerialException, OSError) as exc:
            raise DisplayError(f"close of {self.device} failed: {exc}") from exc

