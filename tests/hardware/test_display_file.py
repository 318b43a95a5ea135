"""The file display: real PNG files, decoded by a real QR reader (zxing-cpp)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import zxingcpp
from PIL import Image

from hardware.displays.file import CURRENT, FileDisplay
from hardware.displays.frames import DisplayFrame, FrameState
from posbridge.errors import DisplayError

# The shape of UCanPay's dynamic-QR template (seed 001): a link inside a link, doubly encoded.
DEEPLINK = ("https://ucanpaydev.page.link/?link=https%3A%2F%2Fucanpaydev.page.link%2Fpay"
            "%3FucpOrderNo%3DUCP2024112200001234%26amount%3D1234%26item%3DCaf%25C3%25A9%2B%2526"
            "&apn=ca.ucanpay.wapp")


def decode(path: Path) -> list[str]:
    with Image.open(path) as img:
        return [r.text for r in zxingcpp.read_barcodes(img)
                if r.format == zxingcpp.BarcodeFormat.QRCode]


def qr_frame(seq: int = 3) -> DisplayFrame:
    return DisplayFrame(state=FrameState.QR, amount_text="12.34", currency="CAD",
                        deeplink=DEEPLINK, expires_at=1.7e9, order_no="A-1", seq=seq)


async def test_qr_frame_png_decodes_to_exactly_the_deeplink(tmp_path: Path) -> None:
    display = FileDisplay(name="lane-1", dir=tmp_path / "frames")
    await display.open()
    await display.show(qr_frame())
    await display.close()
    assert decode(tmp_path / "frames" / "3-qr.png") == [DEEPLINK]
    assert decode(tmp_path / "frames" / CURRENT) == [DEEPLINK]


async def test_current_png_follows_the_newest_frame(tmp_path: Path) -> None:
    display = FileDisplay(name="lane-1", dir=tmp_path)
    await display.open()
    await display.show(qr_frame(seq=1))
    await display.show(DisplayFrame(state=FrameState.PAID, amount_text="12.34",
                                    currency="CAD", seq=2))
    await display.close()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["1-qr.png", "2-paid.png", CURRENT]  # no temporary file left behind
    assert (tmp_path / CURRENT).read_bytes() == (tmp_path / "2-paid.png").read_bytes()
    assert decode(tmp_path / CURRENT) == []
    with Image.open(tmp_path / "2-paid.png") as img:
        assert img.format == "PNG"
        # the paid screen is drawn in green
        colours = img.convert("RGB").getcolors(maxcolors=1 << 20) or []
        assert any(isinstance(c, tuple) and c[1] > 100 and c[0] < 60 and c[2] < 60
                   for _n, c in colours)


async def test_old_frame_files_are_pruned(tmp_path: Path) -> None:
    display = FileDisplay(name="lane-1", dir=tmp_path, keep=3)
    await display.open()
    for seq in range(1, 7):
        await display.show(DisplayFrame(state=FrameState.MESSAGE, message=f"m{seq}", seq=seq))
    await display.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "4-message.png", "5-message.png", "6-message.png", CURRENT]


async def test_unwritable_dir_raises_display_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    display = FileDisplay(name="lane-1", dir=blocker / "frames")
    with pytest.raises(DisplayError):
        await display.open()
    with pytest.raises(DisplayError):
        await display.show(qr_frame())
    await display.close()


async def test_dir_removed_under_a_running_display_raises_then_recovers(tmp_path: Path) -> None:
    target = tmp_path / "frames"
    display = FileDisplay(name="lane-1", dir=target)
    await display.open()
    os.rmdir(target)
    with pytest.raises(DisplayError):
        await display.show(qr_frame(seq=1))
    target.mkdir()
    await display.show(qr_frame(seq=2))
    await display.close()
    assert decode(target / "2-qr.png") == [DEEPLINK]
