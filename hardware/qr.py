"""QR codes for the wallet deeplink: the module matrix and a PNG of it.

The symbol comes from zxing-cpp's encoder (C++: about 0.5 ms for a deeplink, best mask
included). The pure-Python ``qrcode`` package took about 10 ms per symbol, most of it choosing
the mask (see bench/README.md). :func:`qr_image` draws it with pillow for the printers and the
picture displays; :func:`render_qr_png`, the web display's PNG, writes the file itself (see
there: it is the one drawing on a QR sale's way to the screen).

zxing-cpp holds the GIL for its whole C++ call (about 0.3 ms for a 110-character deeplink), so
even in a worker thread it stalls the event loop: a thread calling it in a loop delayed a 1 ms
sleep loop by 5 ms at the median (the GIL switch interval), where pillow's PNG encoding in a
thread delayed it by 0.1 ms. The event loop therefore calls
:func:`hardware.qr_pool.render_qr_png_async`, which renders in a worker *process* of
:data:`hardware.qr_pool.POOL` (spawned, and warmed when
:mod:`posbridge.devices` starts the daemon's devices); before that pool is started, or for the
calls in flight when a worker dies, it renders in a thread as before. The other renderers that
draw a QR during a sale (the QR slip's bytes, the file printer's and the file display's
pictures) go through the same pool. The functions here are plain synchronous code: they are
what the pool runs.

Error correction is at least ``M`` (a slip may be creased or a screen may glare) and the PNG
always keeps the 4-module quiet zone the QR standard requires, so a phone can scan it at once.

zxing-cpp and pillow are imported by the first drawing, not with this module: a daemon
without displays or printers never loads them.
"""

from __future__ import annotations

import struct
import zlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["EC_LEVELS", "MIN_BORDER", "qr_image", "qr_matrix", "render_qr_png"]

# "L" (7 %) is deliberately absent: a wallet QR must survive a crease or a glare.
EC_LEVELS: tuple[str, ...] = ("M", "Q", "H")
MIN_BORDER = 4  # quiet zone in modules, ISO/IEC 18004
# The most a QR code holds in byte mode at level M (version 40); longer data is refused.
_MAX_BYTES_AT = {"M": 2331, "Q": 1663, "H": 1273}


def _modules(data: str, ec: str) -> tuple[bytes, int]:
    """The symbol's modules row by row, one byte each (0 = dark, 255 = light), without quiet
    zone, and its side in modules."""
    if ec not in EC_LEVELS:
        raise ValueError(f"error correction must be one of {list(EC_LEVELS)}, not {ec!r}")
    if not data:
        raise ValueError("a QR code needs data")
    if len(data.encode("utf-8")) > _MAX_BYTES_AT[ec]:
        raise ValueError(f"{len(data)} characters do not fit in a QR code")
    import zxingcpp

    try:
        code = zxingcpp.create_barcode(data, zxingcpp.BarcodeFormat.QRCode, ec_level=ec)
    except ValueError as exc:  # zxing-cpp refuses what does not fit
        raise ValueError(f"{len(data)} characters do not fit in a QR code: {exc}") from exc
    # zxingcpp.Image exports the buffer protocol (8-bit, row-major); its stubs do not say so.
    image: Any = code.to_image(scale=1, add_quiet_zones=False)
    pixels = memoryview(image)
    height, width = pixels.shape or (0, 0)
    if height != width:
        raise ValueError(f"zxing-cpp drew a {width}x{height} QR symbol")
    return pixels.tobytes(), width


def _symbol(data: str, ec: str) -> Image.Image:
    """One pixel per module, no quiet zone, mode "L": 0 = dark, 255 = light."""
    from PIL import Image

    modules, side = _modules(data, ec)
    return Image.frombytes("L", (side, side), modules)


def _check_size(scale: int, border: int) -> None:
    if scale < 1:
        raise ValueError("scale must be at least 1 pixel per module")
    if border < MIN_BORDER:
        raise ValueError(f"the quiet zone must be at least {MIN_BORDER} modules")


def qr_matrix(data: str, *, ec: str = "M") -> tuple[tuple[bool, ...], ...]:
    """The QR symbol for ``data`` as rows of modules (``True`` = dark), without quiet zone.

    The smallest version that holds ``data`` at error correction ``ec`` ("M", "Q" or "H") is
    chosen. Raises ValueError for an unknown level, empty data or data too long for any version.
    """
    modules, side = _modules(data, ec)
    return tuple(tuple(v < 128 for v in modules[y * side:(y + 1) * side]) for y in range(side))


def qr_image(data: str, *, scale: int = 8, border: int = MIN_BORDER, ec: str = "M") -> Image.Image:
    """The symbol as a 1-bit pillow image: ``scale`` pixels per module, ``border`` modules of
    quiet zone on each side (at least 4). Black = dark module.
    """
    _check_size(scale, border)
    from PIL import Image, ImageOps

    small = ImageOps.expand(_symbol(data, ec), border=border, fill=255).convert("1")
    if scale == 1:
        return small
    # Nearest-neighbour by a whole factor: every module stays a crisp scale x scale square.
    side = small.width * scale
    return small.resize((side, side), Image.Resampling.NEAREST)


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# A module's byte (0 = dark ... 255 = light) as a letter, "d" or "l", to be widened to its pixels.
_AS_LETTERS = bytes(ord("d") if v < 128 else ord("l") for v in range(256))


def render_qr_png(data: str, *, scale: int = 8, border: int = MIN_BORDER, ec: str = "M") -> bytes:
    """:func:`qr_image` as PNG bytes: the same pixels, written here rather than by pillow.

    A 1-bit greyscale PNG (black = dark). Every pixel row but the first of a module row is
    the row above again, so it is stored with the PNG "Up" filter as zero bytes, and zlib's
    fastest level packs the whole image to about the size pillow's default gave. For a
    deeplink at scale 8 this takes about 0.1 ms after the encoder, where pillow's scaling and
    PNG encoding took 0.7 ms (bench/README.md): the web display renders this on every QR
    sale's way to the screen.
    """
    _check_size(scale, border)
    modules, side = _modules(data, ec)
    width = (side + 2 * border) * scale
    row_bytes = (width + 7) // 8
    pad = "1" * (row_bytes * 8 - width)
    quiet = "1" * (border * scale)
    dark, light = "0" * scale, "1" * scale

    def row(bits: str) -> bytes:  # filter type 0 (None), then the row's bits packed
        return b"\x00" + int(bits + pad, 2).to_bytes(row_bytes, "big")

    again = [b"\x02" + bytes(row_bytes)] * (scale - 1)  # filter type 2 (Up): same as above
    blank = [row("1" * width), *again] * border
    rows = list(blank)
    for y in range(side):
        line = modules[y * side:(y + 1) * side].translate(_AS_LETTERS).decode("ascii")
        rows.append(row(quiet + line.replace("d", dark).replace("l", light) + quiet))
        rows += again
    rows += blank
    # width x height, bit depth 1, colour type 0 (greyscale), deflate, adaptive filters, no
    # interlacing (PNG specification, 11.2.2 IHDR)
    header = struct.pack(">IIBBBBB", width, width, 1, 0, 0, 0, 0)
    return b"".join((_PNG_SIGNATURE, _chunk(b"IHDR", header),
                     _chunk(b"IDAT", zlib.compress(b"".join(rows), 1)), _chunk(b"IEND", b"")))


def _chunk(kind: bytes, body: bytes) -> bytes:
    """One PNG chunk: length, type, data, CRC-32 of type and data."""
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
