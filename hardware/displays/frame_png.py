"""A frame drawn as a PNG picture (pillow): amount, status line and, for QR frames, the code.

Pure CPU work without I/O except reading a system font once; callers run it off the event loop.
The QR modules come from :mod:`hardware.qr` and are only ever scaled by a whole factor with
nearest-neighbour sampling, so every module stays a crisp square a phone can scan.
"""

from __future__ import annotations

import functools
import io
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from hardware.displays.frames import DisplayFrame, FrameState
from hardware.qr import render_qr_png

__all__ = ["render_frame_png"]

WIDTH = 480
QR_BOX = 440  # the largest QR side, quiet zone included, in pixels
_FONT_FILES = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",  # Debian fonts-dejavu-core
    "/usr/share/fonts/TTF/DejaVuSans-Bold.ttf",
)
_STATUS = {
    FrameState.IDLE: ("Welcome", (30, 30, 30)),
    FrameState.QR: ("Scan to pay", (30, 30, 30)),
    FrameState.PAID: ("Paid - thank you", (0, 128, 0)),
    FrameState.FAILED: ("Payment failed", (190, 0, 0)),
    FrameState.MESSAGE: ("", (30, 30, 30)),
}

_Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


@functools.cache
def _font(size: int) -> _Font:
    for path in _FONT_FILES:
        if Path(path).is_file():
            return ImageFont.truetype(path, size)
    return ImageFont.load_default(size)


def render_frame_png(frame: DisplayFrame) -> bytes:
    """The frame as PNG bytes, ``WIDTH`` pixels wide, black on white.

    Top: ``CAD 12.34``; middle: the QR (QR frames); bottom: the status ("Paid - thank you", the
    frame's message, ...) and the order number in small print.
    """
    qr = _qr_image(frame.deeplink) if frame.state is FrameState.QR else None
    height = 150 + (qr.height + 20 if qr is not None else 0) + 90
    img = Image.new("RGB", (WIDTH, height), "white")
    draw = ImageDraw.Draw(img)
    y = 30
    if frame.amount_text:
        _centered(draw, y, f"{frame.currency} {frame.amount_text}", _font(56), (0, 0, 0))
    y = 120
    if qr is not None:
        img.paste(qr, ((WIDTH - qr.width) // 2, y))
        y += qr.height + 20
    default, colour = _STATUS[frame.state]
    _centered(draw, y, frame.message or default, _font(32), colour)
    if frame.order_no:
        _centered(draw, y + 50, f"Order {frame.order_no}", _font(18), (90, 90, 90))
    out = io.BytesIO()
    img.save(out, format="PNG")
    return out.getvalue()


def _qr_image(deeplink: str) -> Image.Image:
    # One pixel per module, then the largest whole-number enlargement that fits the box.
    with Image.open(io.BytesIO(render_qr_png(deeplink, scale=1, border=4))) as raw:
        small = raw.convert("RGB")
    factor = max(1, QR_BOX // small.width)
    return small.resize((small.width * factor, small.height * factor), Image.Resampling.NEAREST)


def _centered(draw: ImageDraw.ImageDraw, y: int, text: str, font: _Font,
              colour: tuple[int, int, int]) -> None:
    left, _top, right, _bottom = draw.textbbox((0, 0), text, font=font)
    draw.text(((WIDTH - (right - left)) // 2, y), text, font=font, fill=colour)
