"""DisplayFrame validation and JSON, pole_lines layout, and the VFD command bytes."""

from __future__ import annotations

import json
from typing import Any

import pytest

from hardware.displays.frames import DisplayFrame, FrameState, pole_lines
from hardware.displays.vfd import (
    CLR,
    CURSOR_OFF,
    ESC_INIT,
    OVERWRITE_MODE,
    init_bytes,
    move_to,
    screen_bytes,
)

DEEPLINK = "https://ucanpaydev.page.link/?link=x&apn=ca.ucanpay.wapp"


def qr(amount: str = "12.34", currency: str = "CAD") -> DisplayFrame:
    return DisplayFrame(state=FrameState.QR, amount_text=amount, currency=currency,
                        deeplink=DEEPLINK, expires_at=1700000300.5, order_no="A-1", seq=7)


def test_to_json_round_trips_every_field() -> None:
    assert json.loads(qr().to_json()) == {
        "state": "qr", "amount_text": "12.34", "currency": "CAD", "deeplink": DEEPLINK,
        "expires_at": 1700000300.5, "message": "", "order_no": "A-1", "seq": 7}


def test_to_json_keeps_non_ascii_message() -> None:
    frame = DisplayFrame(state=FrameState.MESSAGE, message="Café ☕")
    assert '"message":"Café ☕"' in frame.to_json()


@pytest.mark.parametrize(("kwargs", "problem"), [
    ({"state": FrameState.QR}, "needs a deeplink"),
    ({"state": FrameState.PAID, "amount_text": "12.34"}, "go together"),
    ({"state": FrameState.PAID, "amount_text": "12.3.4", "currency": "CAD"}, "not a decimal"),
    ({"state": FrameState.PAID, "amount_text": "1e3", "currency": "CAD"}, "not a decimal"),
    ({"state": FrameState.PAID, "amount_text": "12.34", "currency": "cad"}, "not an ISO 4217"),
    ({"state": FrameState.IDLE, "seq": -1}, "seq must not be negative"),
    ({"state": FrameState.MESSAGE, "message": "x" * 201}, "message longer"),
    ({"state": FrameState.QR, "deeplink": "h" * 2049}, "deeplink longer"),
    # to_json wrote NaN / Infinity, which the web display's JSON.parse refuses
    ({"state": FrameState.QR, "deeplink": "h", "expires_at": float("nan")}, "finite time"),
    ({"state": FrameState.QR, "deeplink": "h", "expires_at": float("inf")}, "finite time"),
])
def test_frames_no_display_could_draw_truthfully_are_refused(
        kwargs: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        DisplayFrame(**kwargs)


def test_frame_is_immutable() -> None:
    with pytest.raises(AttributeError):
        qr().seq = 8  # type: ignore[misc]  # asserting the frozen dataclass refuses it


def test_pole_lines_qr() -> None:
    assert pole_lines(qr()) == ["TOTAL      CAD 12.34", "SCAN QR TO PAY"]


def test_pole_lines_paid_and_failed_use_message_or_default() -> None:
    paid = DisplayFrame(state=FrameState.PAID, amount_text="12.34", currency="CAD")
    failed = DisplayFrame(state=FrameState.FAILED, amount_text="5", currency="JPY",
                          message="Payment expired")
    assert pole_lines(paid) == ["TOTAL      CAD 12.34", "PAID - THANK YOU"]
    assert pole_lines(failed) == ["TOTAL          JPY 5", "PAYMENT EXPIRED"]
    assert pole_lines(DisplayFrame(state=FrameState.FAILED)) == ["PAYMENT FAILED", ""]


def test_pole_lines_idle_is_centred_welcome() -> None:
    assert pole_lines(DisplayFrame(state=FrameState.IDLE)) == ["      WELCOME", ""]


def test_pole_lines_long_amount_drops_label_then_currency_never_digits() -> None:
    assert pole_lines(qr("123456789012.34"))[0] == " CAD 123456789012.34"
    assert pole_lines(qr("12345678901234.56"))[0] == "   12345678901234.56"
    assert pole_lines(qr("123456789012345678.9"), columns=16)[0] == "#" * 16


def test_pole_lines_message_wraps_and_folds_to_ascii() -> None:
    frame = DisplayFrame(state=FrameState.MESSAGE, message="Café closing in five minutes ☕")
    assert pole_lines(frame) == ["CAFE CLOSING IN FIVE", "MINUTES ?"]
    assert pole_lines(frame, columns=10, rows=4) == ["CAFE", "CLOSING IN", "FIVE", "MINUTES ?"]


def test_pole_lines_single_row_keeps_what_matters() -> None:
    assert pole_lines(qr(), rows=1) == ["TOTAL      CAD 12.34"]
    paid = DisplayFrame(state=FrameState.PAID, amount_text="1.00", currency="USD")
    assert pole_lines(paid, rows=1) == ["PAID - THANK YOU"]


def test_pole_lines_always_exact_rows_and_width() -> None:
    for frame in (qr(), DisplayFrame(state=FrameState.MESSAGE, message="word " * 30)):
        for columns, rows in ((20, 2), (16, 1), (40, 4)):
            lines = pole_lines(frame, columns, rows)
            assert len(lines) == rows
            assert all(len(line) <= columns and line.isascii() for line in lines)


def test_vfd_init_and_screen_bytes() -> None:
    assert init_bytes() == b"\x1b@" + b"\x1f\x01" + b"\x1f\x43\x00"
    assert init_bytes() == ESC_INIT + OVERWRITE_MODE + CURSOR_OFF
    assert move_to(1, 2) == b"\x1f$\x01\x02"
    assert screen_bytes(["AB", "", "C"]) == CLR + b"\x1f$\x01\x01AB" + b"\x1f$\x01\x03C"


def test_vfd_refuses_non_ascii_and_bad_positions() -> None:
    with pytest.raises(ValueError, match="printable ASCII"):
        screen_bytes(["Café"])
    with pytest.raises(ValueError, match="out of range"):
        move_to(0, 1)
