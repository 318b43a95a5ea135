"""QR codes for the wallet deeplink: the module matrix and a PNG of it.

Pure and synchronous (``qrcode`` builds the matrix, pillow draws it); the event loop calls
:func:`render_qr_png_async`, which runs the same work in a thread. Error correction is at least
``M`` (a slip may be creased or a screen may glare) and the PNG always keeps the 4-module quiet
zone the QR standard requires, so a phone can scan it at once.
"""

from __future__ import annotations

import asyncio
import io

import qrcode
import qrcode.constants
from PIL import Image

__all__ = ["EC_LEVELS", "MIN_BORDER", "qr_image", "qr_matrix", "render_qr_png",
           "render_qr_png_async"]

# "L" (7 %) is deliberately absent: a wallet QR must survive a crease or a glare.
EC_LEVELS: dict[str, int] = {
    "M": qrcode.constants.ERROR_CORRECT_M,
    "Q": qrcode.constants.ERROR_CORRECT_Q,
    "H": qrcode.constants.ERROR_CORRECT_H,
}
MIN_BORDER = 4  # quiet zone in modules, ISO/IEC 18004


def qr_matrix(data: str, *, ec: str = "M") -> tuple[tuple[bool, ...], ...]:
    """The QR symbol for ``data`` as rows of modules (``True`` = dark), without quiet zone.

    The smallest version that holds ``data`` at error correction ``ec`` ("M", "Q" or "H") is
    chosen. Raises ValueError for an unknown level, empty data or data too long for any version.
    """
    if ec not in EC_LEVELS:
        raise ValueError(f"error correction must be one of {sorted(EC_LEVELS)}, not {ec!r}")
    if not data:
        raise ValueError("a QR code needs data")
    code = qrcode.QRCode(version=None, error_correction=EC_LEVELS[ec], box_size=1, border=0)
    code.add_data(data)
    try:
        code.make(fit=True)
    except qrcode.exceptions.DataOverflowError as exc:
        raise ValueError(f"{len(data)} characters do not fit in a QR code") from exc
    return tuple(tuple(bool(m) for m in row) for row in code.get_matrix())


def qr_image(data: str, *, scale: int = 8, border: int = MIN_BORDER, ec: str = "M") -> Image.Image:
    """The symbol as a 1-bit pillow image: ``scale`` pixels per module, ``border`` modules of
    quiet zone on each side (at least 4). Black = dark module.
    """
    if scale < 1:
        raise ValueError("scale must be at least 1 pixel per module")
    if border < MIN_BORDER:
        raise ValueError(f"the quiet zone must be at least {MIN_BORDER} modules")
    matrix = qr_matrix(data, ec=ec)
    side = len(matrix) + 2 * border
    # Draw one pixel per module, then scale by a whole factor with nearest-neighbour sampling,
    # so every module stays a crisp square of exactly scale x scale pixels.
    small = Image.new("1", (side, side), 1)
    pixels = [1] * (side * side)
    for y, row in enumerate(matrix):
        base = (y + border) * side + border
        for x, dark in enumerate(row):
            if dark:
                pixels[base + x] = 0
    small.putdata(pixels)
    if scale == 1:
        return small
    return small.resize((side * scale, side * scale), Image.Resampling.NEAREST)


def render_qr_png(data: str, *, scale: int = 8, border: int = MIN_BORDER, ec: str = "M") -> bytes:
    """:func:`qr_image` encoded as PNG bytes."""
    out = io.BytesIO()
    qr_image(data, scale=scale, border=border, ec=ec).save(out, format="PNG", optimize=True)
    return out.getvalue()


async def render_qr_png_async(
    data: str, *, scale: int = 8, border: int = MIN_BORDER, ec: str = "M"
) -> bytes:
    """:func:`render_qr_png` in a worker thread, so the event loop never waits on pillow."""
    return await asyncio.to_thread(render_qr_png, data, scale=scale, border=border, ec=ec)
