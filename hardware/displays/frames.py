"""What a customer display shows: one immutable frame, and its text form for a pole display.

Pure: no I/O, no clock. A :class:`DisplayFrame` is built by the bridge for each change the
customer should see (welcome, "scan this QR", paid, failed, a free message) and handed to every
display kind unchanged; each kind decides how to draw it (a web page, a 2x20 VFD, a PNG file).

Money on a frame is already text (``amount_text`` = ``"12.34"``, formatted by
:func:`posbridge.money.format_amount`): a display never computes with amounts, so it never holds
one as a number. ``expires_at`` is a time, not money, so a float of epoch seconds is fine.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import re
import unicodedata
from typing import Any

__all__ = ["DisplayFrame", "FrameState", "pole_lines"]

# A decimal amount exactly as posbridge.money.format_amount writes it (sign allowed for refunds).
# ISO 4217 amounts have at most 4 decimals; a coin (USDT, BTC, ETH) up to 18.
_AMOUNT_TEXT = re.compile(r"-?[0-9]{1,18}(\.[0-9]{1,18})?")
_CURRENCY = re.compile(r"[A-Z0-9]{2,10}")  # an ISO 4217 code, or a coin's symbol
MAX_DEEPLINK_CHARS = 2048  # far above UCanPay's template; keeps a QR scannable (version <= 40)
MAX_MESSAGE_CHARS = 200


class FrameState(enum.Enum):
    """The screen a display is asked to show."""

    IDLE = "idle"
    QR = "qr"
    PAID = "paid"
    FAILED = "failed"
    MESSAGE = "message"


@dataclasses.dataclass(frozen=True, slots=True)
class DisplayFrame:
    """One screen for the customer.

    ``seq`` grows with each frame the bridge emits (it restarts at 1 with the daemon), so a
    display can tell a newer frame from an older one within one run. A ``QR`` frame must carry
    its ``deeplink``; ``amount_text`` and ``currency`` are empty or valid together.

    Raises ValueError on a frame that no display could draw truthfully.
    """

    state: FrameState
    amount_text: str = ""
    currency: str = ""
    deeplink: str = ""
    expires_at: float | None = None
    message: str = ""
    order_no: str = ""
    seq: int = 0

    def __post_init__(self) -> None:
        if self.state is FrameState.QR and not self.deeplink:
            raise ValueError("a QR frame needs a deeplink")
        if len(self.deeplink) > MAX_DEEPLINK_CHARS:
            raise ValueError(f"deeplink longer than {MAX_DEEPLINK_CHARS} characters")
        if bool(self.amount_text) != bool(self.currency):
            raise ValueError("amount_text and currency go together")
        if self.amount_text and not _AMOUNT_TEXT.fullmatch(self.amount_text):
            raise ValueError(f"amount_text {self.amount_text[:30]!r} is not a decimal string")
        if self.currency and not _CURRENCY.fullmatch(self.currency):
            raise ValueError(f"currency {self.currency[:10]!r} is not an ISO 4217 code or a "
                             "coin symbol")
        if len(self.message) > MAX_MESSAGE_CHARS:
            raise ValueError(f"message longer than {MAX_MESSAGE_CHARS} characters")
        if self.seq < 0:
            raise ValueError("seq must not be negative")
        # The web display parses the frame with JSON.parse, which has no NaN or Infinity.
        if self.expires_at is not None and not math.isfinite(self.expires_at):
            raise ValueError("expires_at must be a finite time")

    def to_dict(self) -> dict[str, Any]:
        """The frame as JSON-ready values; ``state`` as its lowercase name."""
        return {
            "state": self.state.value,
            "amount_text": self.amount_text,
            "currency": self.currency,
            "deeplink": self.deeplink,
            "expires_at": self.expires_at,
            "message": self.message,
            "order_no": self.order_no,
            "seq": self.seq,
        }

    def to_json(self) -> str:
        """Compact JSON of :meth:`to_dict` (UTF-8 text, non-ASCII kept as is)."""
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"))


IDLE_TEXT = "WELCOME"
QR_TEXT = "SCAN QR TO PAY"
PAID_TEXT = "PAID - THANK YOU"
FAILED_TEXT = "PAYMENT FAILED"


def pole_lines(frame: DisplayFrame, columns: int = 20, rows: int = 2) -> list[str]:
    """The frame as exactly ``rows`` lines of at most ``columns`` printable ASCII characters.

    Layout (2x20): line 1 the amount (``TOTAL`` left, ``CAD 12.34`` right), line 2 the status
    (``SCAN QR TO PAY``, ``PAID - THANK YOU``, the failure message, ...). Idle shows a centred
    ``WELCOME``; a ``MESSAGE`` frame is word-wrapped over all rows. With one row only the most
    important line is kept: the amount while the customer must pay, the status otherwise.

    An amount is never cut: when even the bare number does not fit, the amount line is all
    ``#`` (as a spreadsheet does) rather than a shorter, wrong number.
    """
    if columns < 1 or rows < 1:
        raise ValueError("a pole display has at least one row and one column")
    status = _ascii(frame.message).upper()
    match frame.state:
        case FrameState.IDLE:
            lines = [(status or IDLE_TEXT).center(columns).rstrip()]
        case FrameState.MESSAGE:
            lines = _wrap(status, columns)
        case FrameState.QR:
            lines = [_amount_line(frame, columns), QR_TEXT]
        case FrameState.PAID:
            lines = [_amount_line(frame, columns), status or PAID_TEXT]
        case FrameState.FAILED:
            lines = [_amount_line(frame, columns), status or FAILED_TEXT]
    lines = [line for line in lines if line] or [""]
    if rows == 1 and len(lines) > 1 and frame.state is not FrameState.MESSAGE:
        lines = [lines[0] if frame.state is FrameState.QR else lines[1]]
    lines = [line[:columns] for line in lines[:rows]]
    return lines + [""] * (rows - len(lines))


def _amount_line(frame: DisplayFrame, columns: int) -> str:
    """``TOTAL      CAD 12.34``, dropping the label, then the currency, to make it fit."""
    if not frame.amount_text:
        return ""
    money = f"{frame.currency} {frame.amount_text}"
    if len("TOTAL ") + len(money) <= columns:
        return "TOTAL" + money.rjust(columns - len("TOTAL"))
    for text in (money, frame.amount_text):
        if len(text) <= columns:
            return text.rjust(columns)
    return "#" * columns


def _wrap(text: str, columns: int) -> list[str]:
    """Greedy word wrap; a word longer than a line is split."""
    lines: list[str] = []
    current = ""
    for word in text.split():
        while len(word) > columns:
            if current:
                lines.append(current)
                current = ""
            lines.append(word[:columns])
            word = word[columns:]
        if not current:
            current = word
        elif len(current) + 1 + len(word) <= columns:
            current = f"{current} {word}"
        else:
            lines.append(current)
            current = word
    if current:
        lines.append(current)
    return lines


def _ascii(text: str) -> str:
    """Fold to printable ASCII: accents dropped ("Café" -> "Cafe"), anything else -> "?".

    Pole displays differ in their code pages; plain ASCII is the one set they all share.
    """
    folded = unicodedata.normalize("NFKD", text)
    out = []
    for ch in folded:
        if unicodedata.combining(ch):
            continue
        out.append(ch if " " <= ch <= "~" else (" " if ch.isspace() else "?"))
    return "".join(out)
