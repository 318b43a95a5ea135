"""Our ESC/POS subset drawn as a picture of the paper (pure: bytes in, pillow image out).

Used by the file printer to keep a PNG copy of every slip (:func:`render_png`), and by tests
to check what a real printer would show (the QR is decoded back with zxing-cpp). It understands
exactly the commands :class:`hardware.escpos.EscPosJob` emits -- ESC @, ESC t, ESC a, ESC E,
ESC d, GS !, GS ( k (QR model 2), GS v 0, GS V, ESC p, DLE EOT -- and raises PrinterError on
any other command, so a builder change that the renderer does not follow is noticed.

Geometry follows a 203 dpi thermal printer in font A: 12 x 24 dot characters, 30-dot lines.
A native QR is drawn by :mod:`hardware.qr` (the printer may choose a different mask, never a
different content) and, as Epson printers do, without its own quiet zone: the slip's blank
lines and centring leave it white paper.
"""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass, field

from PIL import Image, ImageDraw, ImageFont

from hardware.errors import PrinterError
from hardware.escpos import (
    CODE_PAGE,
    QR_CN,
    QR_EC,
    QR_FN_EC,
    QR_FN_PRINT,
    QR_FN_SIZE,
    QR_FN_STORE,
)
from hardware.qr import qr_image

__all__ = ["CHAR_H", "CHAR_W", "LINE_H", "render", "render_png"]

CHAR_W = 12
CHAR_H = 24
LINE_H = 30  # default line spacing: 24-dot characters plus 6 dots
CUT_MARK_H = 12
_FONT_FILES = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf",  # Debian fonts-dejavu-core
    "/usr/share/fonts/TTF/DejaVuSansMono.ttf",
)
_EC_BY_BYTE = {v: k for k, v in QR_EC.items()}
_Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


@functools.cache
def _font() -> _Font:
    for path in _FONT_FILES:
        try:
            return ImageFont.truetype(path, 20)
        except OSError:
            continue
    return ImageFont.load_default(size=20)


@dataclass
class _Run:
    text: str
    bold: bool
    width: int
    height: int


@dataclass
class _State:
    width_dots: int
    align: int = 0
    bold: bool = False
    char_w: int = 1
    char_h: int = 1
    qr_module: int = 3  # the printer's default module size
    qr_ec: str = "L"  # the printer's default level
    qr_data: bytes = b""
    line: list[_Run] = field(default_factory=list)
    bands: list[tuple[Image.Image, int]] = field(default_factory=list)  # (band, alignment)

    def reset(self) -> None:
        self.align, self.bold, self.char_w, self.char_h = 0, False, 1, 1
        self.qr_module, self.qr_ec, self.qr_data = 3, "L", b""

    def add_text(self, text: str) -> None:
        if self.line and (self.line[-1].bold, self.line[-1].width, self.line[-1].height) == (
                self.bold, self.char_w, self.char_h):
            self.line[-1].text += text
        else:
            self.line.append(_Run(text, self.bold, self.char_w, self.char_h))

    def print_line(self) -> None:
        """LF: the buffered text becomes one band (an empty buffer feeds one blank line)."""
        runs, self.line = self.line, []
        height = max((r.height for r in runs), default=1)
        width = sum(len(r.text) * CHAR_W * r.width for r in runs)
        band = Image.new("1", (max(1, min(width, self.width_dots)), LINE_H * height), 1)
        x = 0
        for run in runs:
            x += _paste_run(band, run, x, (LINE_H * height) - (LINE_H * run.height))
        self.bands.append((band, self.align))

    def flush(self) -> None:
        if self.line:
            self.print_line()

    def image(self, img: Image.Image) -> None:
        self.flush()
        if img.width > self.width_dots:
            raise PrinterError(f"image {img.width} dots wide exceeds {self.width_dots}")
        self.bands.append((img, self.align))


def _paste_run(band: Image.Image, run: _Run, x: int, y: int) -> int:
    """Draw a run at its size multipliers; return its width in dots."""
    width = len(run.text) * CHAR_W
    if width == 0:
        return 0
    cell = Image.new("1", (width, LINE_H), 1)
    draw = ImageDraw.Draw(cell)
    font = _font()
    for i, ch in enumerate(run.text):
        draw.text((i * CHAR_W, 2), ch, font=font, fill=0)
        if run.bold:
            draw.text((i * CHAR_W + 1, 2), ch, font=font, fill=0)
    if (run.width, run.height) != (1, 1):
        cell = cell.resize((width * run.width, LINE_H * run.height), Image.Resampling.NEAREST)
    band.paste(cell, (x, y))
    return cell.width


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise PrinterError(f"command truncated at byte {self.pos}")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def byte(self) -> int:
        return self.take(1)[0]


def _justify(n: int) -> int:
    return n - 48 if n >= 48 else n  # ESC a takes 0..2 or "0".."2"


def _qr_function(state: _State, r: _Reader) -> None:
    length = int.from_bytes(r.take(2), "little")
    body = r.take(length)
    if len(body) < 2 or body[0] != QR_CN:
        raise PrinterError("GS ( k other than QR Code is not in our subset")
    fn, params = body[1], body[2:]
    if fn == QR_FN_SIZE:
        state.qr_module = params[0]
    elif fn == QR_FN_EC:
        state.qr_ec = _EC_BY_BYTE[params[0]]
    elif fn == QR_FN_STORE:
        state.qr_data = params[1:]
    elif fn == QR_FN_PRINT and state.qr_data:
        # qr.py refuses level L; drawing a stored level-L symbol at M keeps the same content.
        ec = state.qr_ec if state.qr_ec != "L" else "M"
        img = qr_image(state.qr_data.decode("utf-8"), scale=state.qr_module, border=4, ec=ec)
        quiet = 4 * state.qr_module
        state.image(img.crop((quiet, quiet, img.width - quiet, img.height - quiet)))
    # fn 65 (model) needs no action: model 2 is the only model we draw.


def _raster(state: _State, r: _Reader) -> None:
    mode = r.byte()
    if mode not in (0, 48):
        raise PrinterError("GS v 0 in a scaled mode is not in our subset")
    width_bytes = int.from_bytes(r.take(2), "little")
    height = int.from_bytes(r.take(2), "little")
    packed = bytes(b ^ 0xFF for b in r.take(width_bytes * height))
    state.image(Image.frombytes("1", (width_bytes * 8, height), packed))


def _interpret(state: _State, r: _Reader) -> None:
    data = r.data
    while r.pos < len(data):
        b = r.byte()
        if b == 0x0A:
            state.print_line()
        elif b == 0x1B:
            cmd = r.byte()
            if cmd == ord("@"):
                state.flush()
                state.reset()
            elif cmd == ord("t"):
                r.byte()  # code page: we always decode as CP437
            elif cmd == ord("a"):
                state.align = _justify(r.byte())
            elif cmd == ord("E"):
                state.bold = bool(r.byte() & 1)
            elif cmd == ord("d"):
                state.flush()
                for _ in range(r.byte()):
                    state.print_line()
            elif cmd == ord("p"):
                r.take(3)  # drawer kick: nothing to draw
            else:
                raise PrinterError(f"ESC 0x{cmd:02x} is not in our subset")
        elif b == 0x1D:
            cmd = r.byte()
            if cmd == ord("!"):
                n = r.byte()
                state.char_w, state.char_h = (n >> 4) + 1, (n & 0x0F) + 1
            elif cmd == ord("(") and r.byte() == ord("k"):
                _qr_function(state, r)
            elif cmd == ord("v") and r.byte() == ord("0"):
                _raster(state, r)
            elif cmd == ord("V"):
                if r.byte() in (65, 66):
                    r.byte()  # function B carries a feed amount
                state.flush()
                cut = Image.new("1", (state.width_dots, CUT_MARK_H), 1)
                ImageDraw.Draw(cut).line((0, CUT_MARK_H // 2, state.width_dots, CUT_MARK_H // 2),
                                         fill=0, width=1)
                state.bands.append((cut, 0))
            else:
                raise PrinterError(f"GS 0x{cmd:02x} is not in our subset")
        elif b == 0x10:
            if r.byte() != 0x04:
                raise PrinterError("DLE other than DLE EOT is not in our subset")
            r.byte()  # a status request prints nothing
        elif b >= 0x20:
            start = r.pos - 1
            while r.pos < len(data) and data[r.pos] >= 0x20:
                r.pos += 1
            state.add_text(data[start:r.pos].decode(CODE_PAGE))
        else:
            raise PrinterError(f"control byte 0x{b:02x} is not in our subset")


def render(data: bytes, *, width_dots: int = 576) -> Image.Image:
    """The paper as a 1-bit image ``width_dots`` wide, after printing ``data``.

    Text still buffered at the end is printed, as a printer would on its next line feed.
    Raises PrinterError on bytes outside our subset or a truncated command.
    """
    state = _State(width_dots=width_dots)
    try:
        _interpret(state, _Reader(data))
    except (KeyError, IndexError, UnicodeDecodeError, ValueError) as exc:
        raise PrinterError(f"cannot render ESC/POS data: {exc}") from exc
    state.flush()
    height = sum(band.height for band, _ in state.bands)
    paper = Image.new("1", (width_dots, max(1, height)), 1)
    y = 0
    for band, align in state.bands:
        x = {0: 0, 1: (width_dots - band.width) // 2, 2: width_dots - band.width}.get(align, 0)
        paper.paste(band, (x, y))
        y += band.height
    return paper


def render_png(data: bytes, *, width_dots: int = 576) -> bytes:
    """:func:`render` as PNG bytes (optimized): the file printer's copy of a slip. Pure, so
    the daemon runs it in :data:`hardware.qr_pool.POOL`'s worker process.
    """
    out = io.BytesIO()
    render(data, width_dots=width_dots).save(out, format="PNG", optimize=True)
    return out.getvalue()
