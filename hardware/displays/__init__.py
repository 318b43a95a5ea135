"""Customer displays: what the customer sees while paying.

``DISPLAYS`` maps a ``[[displays]]`` ``kind`` from the configuration to its class:

- ``web``: a page at ``/display/<name>`` for a kiosk browser (:mod:`.web`);
- ``serial``: a 2x20 pole display on a serial port (:mod:`.pole`);
- ``file``: PNG files in a directory, for headless installs (:mod:`.file`).

Every kind implements :class:`Display` and draws the same :class:`DisplayFrame`.
:class:`RecordingDisplay` is the recording fake for tests.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hardware.displays.base import Display
from hardware.displays.frames import DisplayFrame, FrameState, pole_lines
from hardware.lazy import LazyKinds, lazy_attributes

if TYPE_CHECKING:
    from hardware.displays.file import FileDisplay
    from hardware.displays.pole import PoleDisplay
    from hardware.displays.recording import RecordingDisplay
    from hardware.displays.web import WebDisplay, display_routes

__all__ = [
    "DISPLAYS",
    "Display",
    "DisplayFrame",
    "FileDisplay",
    "FrameState",
    "PoleDisplay",
    "RecordingDisplay",
    "WebDisplay",
    "display_routes",
    "pole_lines",
]

# Each class takes its own keyword arguments (the [[displays]] keys of its kind). A kind's
# module (pyserial for ``serial``, Pillow's drawing for ``file``) is imported when first used.
DISPLAYS: LazyKinds[Display] = LazyKinds({
    "web": "hardware.displays.web:WebDisplay",
    "serial": "hardware.displays.pole:PoleDisplay",
    "file": "hardware.displays.file:FileDisplay",
})

__getattr__ = lazy_attributes(globals(), [
    *DISPLAYS.targets(),
    "hardware.displays.recording:RecordingDisplay",
    "hardware.displays.web:display_routes",
])
