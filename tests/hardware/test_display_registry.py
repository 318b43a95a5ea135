"""The display registry and the recording fake."""

from __future__ import annotations

from pathlib import Path

import pytest

from hardware.displays import (
    DISPLAYS,
    Display,
    DisplayFrame,
    FileDisplay,
    FrameState,
    PoleDisplay,
    RecordingDisplay,
    WebDisplay,
)
from posbridge.errors import DisplayError


def test_registry_maps_config_kinds_to_classes(tmp_path: Path) -> None:
    assert {"web": WebDisplay, "serial": PoleDisplay, "file": FileDisplay} == DISPLAYS
    made: list[Display] = [
        DISPLAYS["web"](name="a", sandbox=True),
        DISPLAYS["serial"](name="b", device="/dev/ttyUSB0", baudrate=9600, columns=20, rows=2),
        DISPLAYS["file"](name="c", dir=tmp_path),
    ]
    assert [d.name for d in made] == ["a", "b", "c"]


async def test_recording_display_keeps_frames_and_can_fail_on_demand() -> None:
    display = RecordingDisplay(name="rec")
    await display.open()
    frame = DisplayFrame(state=FrameState.IDLE, seq=1)
    await display.show(frame)
    display.fail = "unplugged"
    with pytest.raises(DisplayError, match="unplugged"):
        await display.show(DisplayFrame(state=FrameState.IDLE, seq=2))
    await display.close()
    assert display.frames == [frame]
    assert display.opened
    assert display.closed
