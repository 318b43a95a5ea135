"""Command bytes for a serial pole display (VFD), built in one place; the transport only writes.

Command set: the Epson "ESC/POS customer display" commands of the DM-D series (DM-D110/D210,
and the many 2x20 pole displays that emulate them, usually selectable as "EPSON" or "ESC/POS"
mode). Only the small common subset every emulation implements is used:

=============  ===========  ====================================================================
name           bytes        effect
=============  ===========  ====================================================================
ESC @          1B 40        initialise: clear the screen, reset modes, cursor home
US MD1         1F 01        overwrite mode (writing past the last column never scrolls)
US C n         1F 43 n      cursor display off (n = 0)
CLR            0C           clear the screen, cursor to the upper-left position
US $ x y       1F 24 x y    move the cursor to column x, row y (both 1-based)
=============  ===========  ====================================================================

Text is sent as printable ASCII (see :func:`hardware.displays.frames.pole_lines`): code pages
differ between models, ASCII is the part they all share.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "CLR", "CURSOR_OFF", "ESC_INIT", "OVERWRITE_MODE", "init_bytes", "move_to", "screen_bytes",
]

ESC_INIT: Final = b"\x1b\x40"
OVERWRITE_MODE: Final = b"\x1f\x01"
CURSOR_OFF: Final = b"\x1f\x43\x00"
CLR: Final = b"\x0c"
_US_MOVE: Final = b"\x1f\x24"


def init_bytes() -> bytes:
    """Sent once after the port opens (and again after a reconnect)."""
    return ESC_INIT + OVERWRITE_MODE + CURSOR_OFF


def move_to(column: int, row: int) -> bytes:
    """``US $ x y``: cursor to 1-based ``column`` and ``row``."""
    if not (1 <= column <= 255 and 1 <= row <= 255):
        raise ValueError("cursor position out of range")
    return _US_MOVE + bytes((column, row))


def screen_bytes(lines: list[str]) -> bytes:
    """Clear, then write each non-empty line at the start of its row.

    Each row is addressed explicitly rather than relying on line wrap, whose behaviour differs
    between emulations. Raises ValueError for text that is not printable ASCII.
    """
    out = bytearray(CLR)
    for row, line in enumerate(lines, start=1):
        if not line:
            continue
        if not all(" " <= ch <= "~" for ch in line):
            raise ValueError("pole display text must be printable ASCII")
        out += move_to(1, row)
        out += line.encode("ascii")
    return bytes(out)
