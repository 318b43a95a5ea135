"""ESC/POS: the named command bytes, a pure job builder and the real-time status parser.

Every byte the bridge sends to a receipt printer is built here, from the named constants
below (Epson ESC/POS command reference; the subset every 58/80 mm thermal printer supports).
Nothing here does I/O: :class:`EscPosJob` only appends bytes, and :func:`parse_status`
only reads one status byte; the transports in :mod:`hardware.printers` move the bytes.

Text is printed in code page 437 (selected explicitly by :meth:`EscPosJob.init`): characters it
lacks become ``?``, and control characters in text become ``?`` too, so a subject sent by a
register can never smuggle a printer command into a slip.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Self

from hardware.errors import PrinterError
from hardware.qr import MIN_BORDER, qr_image, qr_matrix

if TYPE_CHECKING:
    from PIL import Image

__all__ = [
    "ALIGN_CENTER",
    "ALIGN_LEFT",
    "ALIGN_RIGHT",
    "BOLD_OFF",
    "BOLD_ON",
    "CODE_PAGE",
    "CUT_FULL",
    "CUT_PARTIAL",
    "DLE",
    "DRAWER_KICK_PIN2",
    "DRAWER_KICK_PIN5",
    "EOT",
    "ESC",
    "GS",
    "INIT",
    "LF",
    "QR_EC",
    "SELECT_CP437",
    "STATUS_QUERIES",
    "EscPosJob",
    "PrinterProfile",
    "PrinterStatus",
    "encode_text",
    "feed_lines",
    "parse_status",
    "qr_module_size",
    "qr_print",
    "qr_select_model2",
    "qr_set_ec",
    "qr_set_module_size",
    "qr_store",
    "raster_header",
    "size_select",
    "status_from_replies",
    "status_request",
]

# -- control characters ---------------------------------------------------------------------
ESC = b"\x1b"
GS = b"\x1d"
DLE = b"\x10"
EOT = b"\x04"
LF = b"\n"

# -- printer setup and text -----------------------------------------------------------------
INIT = ESC + b"@"  # ESC @: clear the buffer, reset modes
SELECT_CP437 = ESC + b"t\x00"  # ESC t 0: character code table PC437
CODE_PAGE = "cp437"
ALIGN_LEFT = ESC + b"a\x00"  # ESC a n: justification
ALIGN_CENTER = ESC + b"a\x01"
ALIGN_RIGHT = ESC + b"a\x02"
BOLD_ON = ESC + b"E\x01"  # ESC E n: emphasized mode
BOLD_OFF = ESC + b"E\x00"
FEED_LINES = ESC + b"d"  # ESC d n: print the buffer and feed n lines
SIZE = GS + b"!"  # GS ! n: character size, (width - 1) << 4 | (height - 1)

# -- native QR: GS ( k pL pH cn fn [parameters], cn = 49 (QR Code) ----------------------------
QR_FUNCTION = GS + b"(k"
QR_CN = 49
QR_FN_MODEL = 65  # select the model
QR_FN_SIZE = 67  # module size in dots
QR_FN_EC = 69  # error correction level
QR_FN_STORE = 80  # store data in the symbol storage area
QR_FN_PRINT = 81  # print the stored symbol
QR_MODEL_2 = 50
QR_EC: dict[str, int] = {"L": 48, "M": 49, "Q": 50, "H": 51}
QR_MAX_DATA = 7089  # bytes the symbol storage area accepts (version 40)

# -- raster bit image, cut, drawer, real-time status ----------------------------------------
RASTER = GS + b"v0"  # GS v 0 m xL xH yL yH d1...dk
RASTER_NORMAL = 0
RASTER_MAX_ROWS = 2303
CUT_FULL = GS + b"V\x00"  # GS V m
CUT_PARTIAL = GS + b"V\x01"
# ESC p m t1 t2: pulse 25 x 2 ms on, 250 x 2 ms off, the usual values for a cash drawer.
DRAWER_KICK_PIN2 = ESC + b"p\x00\x19\xfa"
DRAWER_KICK_PIN5 = ESC + b"p\x01\x19\xfa"
STATUS = DLE + EOT  # DLE EOT n: transmit real-time status
STATUS_PRINTER = 1
STATUS_OFFLINE_CAUSE = 2
STATUS_ERROR_CAUSE = 3
STATUS_ROLL_PAPER = 4
# What a transport asks, in order: on-line flag, why off-line (cover, paper end, error), paper.
STATUS_QUERIES = (STATUS_PRINTER, STATUS_OFFLINE_CAUSE, STATUS_ROLL_PAPER)

MAX_QR_MODULE_DOTS = 8  # 1 mm per module at 203 dpi: large enough, and the slip stays short


@dataclass(frozen=True, slots=True)
class PrinterProfile:
    """What the printer can do: paper width in dots, native QR support, characters per line
    in font A (80 mm: 576 dots, 48 columns; 58 mm: 384 dots, 32 columns).
    """

    width_dots: int = 576
    native_qr: bool = True
    columns: int = 48

    def __post_init__(self) -> None:
        if self.width_dots < 64 or self.width_dots % 8:
            raise ValueError("width_dots must be a multiple of 8, at least 64")
        if self.columns < 16:
            raise ValueError("columns must be at least 16")


@dataclass(frozen=True, slots=True)
class PrinterStatus:
    """The printer's condition as far as one or more ``DLE EOT`` answers tell.

    Fields a status byte does not speak about keep their "all well" default, so answers to
    several requests combine with :meth:`merge`.
    """

    online: bool = True
    paper_out: bool = False
    paper_near_end: bool = False
    cover_open: bool = False
    error: bool = False

    @property
    def fault(self) -> str | None:
        """Why the printer cannot print now, or None when it can (near-end still prints)."""
        if self.paper_out:
            return "paper out"
        if self.cover_open:
            return "cover open"
        if self.error:
            return "printer error"
        if not self.online:
            return "offline"
        return None

    def merge(self, other: PrinterStatus) -> PrinterStatus:
        """Both answers at once: on-line only if both say so, any trouble reported by either."""
        return PrinterStatus(
            online=self.online and other.online,
            paper_out=self.paper_out or other.paper_out,
            paper_near_end=self.paper_near_end or other.paper_near_end,
            cover_open=self.cover_open or other.cover_open,
            error=self.error or other.error,
        )


def status_request(n: int) -> bytes:
    """``DLE EOT n`` for n in 1..4; the printer answers one byte at once, even off-line."""
    if n not in (STATUS_PRINTER, STATUS_OFFLINE_CAUSE, STATUS_ERROR_CAUSE, STATUS_ROLL_PAPER):
        raise ValueError(f"unsupported DLE EOT request {n}")
    return STATUS + bytes([n])


def _bit(byte: int, n: int) -> bool:
    return bool(byte >> n & 1)


def parse_status(n: int, byte: int) -> PrinterStatus:
    """Read the answer to ``DLE EOT n`` (Epson ESC/POS reference, "DLE EOT").

    Every answer has bits 0 and 7 clear and bits 1 and 4 set; anything else is not a status
    byte (line noise, a printer in another mode) and raises PrinterError.

    - n=1 printer status: bit 3 off-line.
    - n=2 off-line cause: bit 2 cover open, bit 5 printing stopped by paper end, bit 6 error.
    - n=3 error cause: bits 2 (mechanical / recoverable), 3 (autocutter), 5 (unrecoverable),
      6 (auto-recoverable) are errors.
    - n=4 roll paper sensor: bits 2-3 paper near end, bits 5-6 paper end. Epson sets both bits
      of a pair; either one is taken as set, because some compatible printers set only one.
    """
    if not 0 <= byte <= 0xFF or byte & 0x93 != 0x12:
        raise PrinterError(f"not a DLE EOT {n} status byte: 0x{byte:02x}")
    if n == STATUS_PRINTER:
        return PrinterStatus(online=not _bit(byte, 3))
    if n == STATUS_OFFLINE_CAUSE:
        return PrinterStatus(cover_open=_bit(byte, 2), paper_out=_bit(byte, 5),
                             error=_bit(byte, 6))
    if n == STATUS_ERROR_CAUSE:
        return PrinterStatus(error=any(_bit(byte, b) for b in (2, 3, 5, 6)))
    if n == STATUS_ROLL_PAPER:
        return PrinterStatus(paper_near_end=_bit(byte, 2) or _bit(byte, 3),
                             paper_out=_bit(byte, 5) or _bit(byte, 6))
    raise ValueError(f"unsupported DLE EOT request {n}")


def status_from_replies(replies: Iterable[tuple[int, int]]) -> PrinterStatus:
    """Combine ``(n, byte)`` answers into one status (see :func:`parse_status`)."""
    status = PrinterStatus()
    for n, byte in replies:
        status = status.merge(parse_status(n, byte))
    return status


# -- command builders (pure functions, used by EscPosJob and by tests) ------------------------

def size_select(width: int = 1, height: int = 1) -> bytes:
    """``GS ! n`` for a character ``width`` x ``height`` times the normal size (1..8 each)."""
    if not (1 <= width <= 8 and 1 <= height <= 8):
        raise ValueError("character width and height are 1..8")
    return SIZE + bytes([(width - 1) << 4 | (height - 1)])


def feed_lines(n: int) -> bytes:
    """``ESC d n``: print what is buffered and feed ``n`` lines (0..255)."""
    if not 0 <= n <= 255:
        raise ValueError("feed is 0..255 lines")
    return FEED_LINES + bytes([n])


def _qr_command(fn: int, params: bytes) -> bytes:
    length = len(params) + 2  # cn and fn count in pL pH
    return QR_FUNCTION + length.to_bytes(2, "little") + bytes([QR_CN, fn]) + params


def qr_select_model2() -> bytes:
    """``GS ( k`` fn 65: QR Code model 2."""
    return _qr_command(QR_FN_MODEL, bytes([QR_MODEL_2, 0]))


def qr_set_module_size(dots: int) -> bytes:
    """``GS ( k`` fn 67: each module is ``dots`` x ``dots`` (1..16)."""
    if not 1 <= dots <= 16:
        raise ValueError("the QR module size is 1..16 dots")
    return _qr_command(QR_FN_SIZE, bytes([dots]))


def qr_set_ec(ec: str) -> bytes:
    """``GS ( k`` fn 69: error correction level L, M, Q or H."""
    if ec not in QR_EC:
        raise ValueError(f"error correction must be one of {sorted(QR_EC)}, not {ec!r}")
    return _qr_command(QR_FN_EC, bytes([QR_EC[ec]]))


def qr_store(data: bytes) -> bytes:
    """``GS ( k`` fn 80: store ``data`` (m = 48) in the symbol storage area."""
    if not 1 <= len(data) <= QR_MAX_DATA:
        raise ValueError(f"QR data is 1..{QR_MAX_DATA} bytes")
    return _qr_command(QR_FN_STORE, b"0" + data)


def qr_print() -> bytes:
    """``GS ( k`` fn 81: print the stored symbol (m = 48)."""
    return _qr_command(QR_FN_PRINT, b"0")


def raster_header(width_bytes: int, height: int) -> bytes:
    """``GS v 0`` in normal mode for ``width_bytes`` x 8 dots by ``height`` rows."""
    if not (1 <= width_bytes <= 0xFFFF and 1 <= height <= RASTER_MAX_ROWS):
        raise ValueError("raster image size out of range")
    return (RASTER + bytes([RASTER_NORMAL]) + width_bytes.to_bytes(2, "little")
            + height.to_bytes(2, "little"))


def qr_module_size(data: str, width_dots: int, *, ec: str = "M") -> int:
    """The largest module size (dots, at most 8) at which the symbol for ``data`` and its
    4-module quiet zone fit in ``width_dots``; PrinterError if not even 1 dot fits.
    """
    side = len(qr_matrix(data, ec=ec)) + 2 * MIN_BORDER
    dots = min(MAX_QR_MODULE_DOTS, width_dots // side)
    if dots < 1:
        raise PrinterError(f"a QR code of {side} modules does not fit {width_dots} dots")
    return dots


def encode_text(text: str) -> bytes:
    """``text`` in code page 437; other characters and control characters (except newline,
    printed as LF) become ``?``.
    """
    clean = "".join(c if c == "\n" or (c.isprintable() and c != "\x7f") else "?" for c in text)
    return clean.encode(CODE_PAGE, errors="replace")


class EscPosJob:
    """A print job under construction: each method appends commands and returns the job.

    ::

        data = EscPosJob(profile).init().align("center").bold().line("PAID").cut().bytes()

    Pure: nothing is sent anywhere; :meth:`bytes` is the whole job.
    """

    def __init__(self, profile: PrinterProfile | None = None) -> None:
        self.profile = profile or PrinterProfile()
        self._parts: list[bytes] = []

    def raw(self, data: bytes) -> Self:
        """Append bytes as they are (for commands built by the functions above)."""
        self._parts.append(data)
        return self

    def init(self) -> Self:
        """``ESC @`` then ``ESC t 0``: a known state and code page 437."""
        return self.raw(INIT + SELECT_CP437)

    def text(self, text: str) -> Self:
        """Text in the current style, without a line end (see :func:`encode_text`)."""
        return self.raw(encode_text(text))

    def line(self, text: str = "") -> Self:
        """Text followed by LF (prints the line)."""
        return self.raw(encode_text(text) + LF)

    def align(self, where: Literal["left", "center", "right"]) -> Self:
        """``ESC a``: justification of the following lines, QR codes and images."""
        return self.raw({"left": ALIGN_LEFT, "center": ALIGN_CENTER, "right": ALIGN_RIGHT}[where])

    def bold(self, on: bool = True) -> Self:
        """``ESC E``: emphasized text on or off."""
        return self.raw(BOLD_ON if on else BOLD_OFF)

    def size(self, width: int = 1, height: int = 1) -> Self:
        """``GS !``: character size multipliers (1..8)."""
        return self.raw(size_select(width, height))

    def feed(self, lines: int = 1) -> Self:
        """``ESC d``: print the buffer and feed ``lines`` lines."""
        return self.raw(feed_lines(lines))

    def qr_native(self, data: str, module_size: int = 6, ec: str = "M") -> Self:
        """The printer draws the QR itself: model 2, size, level, store, print (GS ( k).

        The data is sent as UTF-8 bytes; the printer picks the smallest version.
        """
        return self.raw(qr_select_model2() + qr_set_module_size(module_size) + qr_set_ec(ec)
                        + qr_store(data.encode("utf-8")) + qr_print())

    def raster(self, image: Image.Image) -> Self:
        """``GS v 0``: a 1-bit image (dark pixels print), no wider than the paper.

        Rows are padded with white to whole bytes; images taller than the 2303 rows one
        command takes are sent as several commands.
        """
        from PIL import Image  # imported by the first raster, not by a daemon without one

        mono = image.convert("1")
        width, height = mono.size
        if width > self.profile.width_dots:
            raise PrinterError(f"image {width} dots wide exceeds {self.profile.width_dots}")
        width_bytes = (width + 7) // 8
        padded = Image.new("1", (width_bytes * 8, height), 1)
        padded.paste(mono, (0, 0))
        # PIL packs mode "1" with 1 = white; ESC/POS wants 1 = print (black): invert.
        packed = bytes(b ^ 0xFF for b in padded.tobytes())
        for top in range(0, height, RASTER_MAX_ROWS):
            rows = min(RASTER_MAX_ROWS, height - top)
            start = top * width_bytes
            self.raw(raster_header(width_bytes, rows)
                     + packed[start:start + rows * width_bytes])
        return self

    def qr_raster(self, data: str, ec: str = "M") -> Self:
        """The QR drawn here and sent as a raster image, with its quiet zone, as large as fits
        the paper (for printers without native QR).
        """
        dots = qr_module_size(data, self.profile.width_dots, ec=ec)
        return self.raster(qr_image(data, scale=dots, border=MIN_BORDER, ec=ec))

    def qr(self, data: str, ec: str = "M") -> Self:
        """Native QR when the profile says the printer has it, else :meth:`qr_raster`;
        same module size either way.
        """
        if self.profile.native_qr:
            return self.qr_native(data, qr_module_size(data, self.profile.width_dots, ec=ec), ec)
        return self.qr_raster(data, ec)

    def cut(self, *, partial: bool = False) -> Self:
        """``GS V``: cut the paper (feed first: the cutter sits above the print head)."""
        return self.raw(CUT_PARTIAL if partial else CUT_FULL)

    def drawer_kick(self, *, pin: Literal[2, 5] = 2) -> Self:
        """``ESC p``: open the cash drawer on connector pin 2 or 5."""
        return self.raw(DRAWER_KICK_PIN2 if pin == 2 else DRAWER_KICK_PIN5)

    # Named as the brief's builder API asks; annotated via builtins because inside the class
    # body the name ``bytes`` is this method.
    def bytes(self) -> builtins.bytes:
        """The whole job."""
        return b"".join(self._parts)
