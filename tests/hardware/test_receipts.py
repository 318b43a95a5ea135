"""hardware.receipts: the slips, rendered with escpos_render and their QR decoded (zxing-cpp)."""

from __future__ import annotations

import pytest
import zxingcpp

from hardware.escpos import GS, PrinterProfile, encode_text, qr_select_model2, qr_store
from hardware.escpos_render import render
from hardware.receipts import (
    BatchTotals,
    batch_report,
    batch_report_from_view,
    card_receipt,
    qr_slip,
    refund_receipt,
)

DEEPLINK = "https://qr.ucanpay.com/pay?ucpOrderNo=UCP20240101000000001234&sign=ab12"
PROFILES = {
    "80mm-native": PrinterProfile(width_dots=576, native_qr=True, columns=48),
    "80mm-raster": PrinterProfile(width_dots=576, native_qr=False, columns=48),
    "58mm-native": PrinterProfile(width_dots=384, native_qr=True, columns=32),
    "58mm-raster": PrinterProfile(width_dots=384, native_qr=False, columns=32),
}


def _slip(profile: PrinterProfile, deeplink: str = DEEPLINK, subject: str = "Coffee") -> bytes:
    return qr_slip(deeplink=deeplink, amount_text="12.50", currency="EUR", subject=subject,
                   order_no="ORD-42", expires_text="2024-01-01T10:05:00Z", profile=profile)


@pytest.mark.parametrize("kind", sorted(PROFILES))
def test_qr_slip_decodes_to_exactly_the_deeplink(kind: str) -> None:
    profile = PROFILES[kind]
    img = render(_slip(profile), width_dots=profile.width_dots)
    assert img.width == profile.width_dots
    assert [r.text for r in zxingcpp.read_barcodes(img)] == [DEEPLINK]


def test_native_qr_slip_is_under_one_kilobyte_and_uses_gs_paren_k() -> None:
    data = _slip(PROFILES["80mm-native"])
    assert len(data) <= 1024
    assert qr_select_model2() in data
    assert qr_store(DEEPLINK.encode()) in data
    assert GS + b"v0" not in data


def test_raster_qr_slip_fits_the_paper_and_has_no_native_qr() -> None:
    for kind in ("80mm-raster", "58mm-raster"):
        profile = PROFILES[kind]
        data = _slip(profile)
        at = data.index(GS + b"v0")
        width_bytes = int.from_bytes(data[at + 4:at + 6], "little")
        assert width_bytes * 8 <= profile.width_dots
        assert qr_select_model2() not in data


def test_qr_slip_shows_amount_order_and_expiry_and_cuts() -> None:
    data = _slip(PROFILES["58mm-native"])
    for text in ("12.50 EUR", "Coffee", "ORD-42", "2024-01-01T10:05:00Z"):
        assert encode_text(text) in data
    assert data.endswith(GS + b"V\x01")


def test_a_subject_cannot_inject_printer_commands() -> None:
    data = _slip(PROFILES["80mm-native"], subject="Tea\x1bp\x00\x19\xfa")
    assert b"\x1bp" not in data  # no drawer kick smuggled in
    assert b"Tea?p?" in data


def test_a_long_subject_is_wrapped_and_cut_to_three_lines() -> None:
    data = _slip(PROFILES["58mm-native"], subject="word " * 60)
    text_lines = [line for line in data.split(b"\n") if b"word" in line]
    assert len(text_lines) == 3
    assert text_lines[-1].endswith(b"...")
    assert all(len(line[line.index(b"word"):]) <= 32 for line in text_lines)


def test_card_receipt_has_the_result_and_only_the_last_four_digits() -> None:
    profile = PROFILES["80mm-native"]
    data = card_receipt(kind="sale", state="approved", amount_text="25.00", currency="USD",
                        card_brand="VISA", card_last4="4242", auth_no="A1B2C3",
                        order_no="ORD-7", time_text="2024-01-01T10:00:00Z", profile=profile)
    for text in ("SALE", "VISA **** 4242", "A1B2C3", "ORD-7", "25.00 USD", "APPROVED",
                 "2024-01-01T10:00:00Z"):
        assert encode_text(text) in data
    assert render(data).height > 0  # every byte is in the renderer's subset


def test_declined_receipt_without_card_details() -> None:
    data = card_receipt(kind="void", state="declined", amount_text="5.00", currency="USD",
                        card_brand=None, card_last4=None, auth_no=None, order_no="ORD-8",
                        time_text="", profile=PROFILES["58mm-native"])
    assert b"VOID" in data and b"DECLINED" in data
    assert b"Card" not in data and b"Auth" not in data


def test_refund_receipt_names_the_original_order() -> None:
    data = refund_receipt(amount_text="3.00", currency="EUR", card_brand="MC",
                          card_last4="0005", auth_no="Z9", order_no="RF-1",
                          time_text="2024-01-02T09:00:00Z", state="approved",
                          orig_order_no="ORD-7", profile=PROFILES["80mm-native"])
    for text in ("REFUND", "MC **** 0005", "RF-1", "ORD-7", "3.00 EUR", "APPROVED"):
        assert encode_text(text) in data


def test_batch_report_lists_each_currency_and_the_discrepancy() -> None:
    totals = [BatchTotals(currency="EUR", sales="100.00", tips="5.00", refunds="10.00",
                          voids="2.00", net="93.00", count=7),
              BatchTotals(currency="USD", sales="1.00", tips="0.00", refunds="0.00",
                          voids="0.00", net="1.00", count=1)]
    profile = PROFILES["80mm-native"]
    data = batch_report(terminal="WPYB002248000865", batch_no=12, totals=totals,
                        discrepancies=["count: bridge 7, provider 6"], profile=profile)
    lines = data.split(b"\n")
    pair = b"Net" + b" " * (48 - 3 - 5) + b"93.00"
    assert any(line.endswith(pair) for line in lines)
    for text in ("BATCH REPORT", "WPYB002248000865", "12", "EUR", "USD", "100.00", "5.00",
                 "10.00", "2.00", "DISCREPANCY", "count: bridge 7, provider 6"):
        assert encode_text(text) in data
    assert render(data).height > 0


def test_batch_report_from_an_ecr_batch_object() -> None:
    batch = {"terminal": "T1", "batch_no": 3, "state": "closed", "opened_at": "o",
             "closed_at": "2024-01-01T22:00:00Z", "count": 2,
             "totals": {"EUR": {"count": 2, "sales": "9.00", "refunds": "0.00",
                                "voids": "0.00", "tips": "1.00", "net": "10.00"}},
             "discrepancy": {"total_amount": {"bridge": "10.00", "provider": "9.00",
                                              "currency": "EUR"}}}
    data = batch_report_from_view(batch, profile=PROFILES["80mm-native"])
    for text in ("T1", "9.00", "10.00", "2024-01-01T22:00:00Z",
                 "total_amount: bridge 10.00, provider 9.00,", "currency EUR"):
        assert encode_text(text) in data
    agree = batch_report_from_view({**batch, "discrepancy": {}},
                                   profile=PROFILES["80mm-native"])
    assert b"agree" in agree and b"DISCREPANCY" not in agree
