"""hardware.escpos: command bytes, the job builder, DLE EOT parsing; escpos_render's subset."""

from __future__ import annotations

import pytest
from PIL import Image

from hardware.escpos import (
    ALIGN_CENTER,
    ALIGN_LEFT,
    ALIGN_RIGHT,
    BOLD_OFF,
    BOLD_ON,
    CUT_FULL,
    CUT_PARTIAL,
    DRAWER_KICK_PIN2,
    DRAWER_KICK_PIN5,
    GS,
    INIT,
    LF,
    SELECT_CP437,
    EscPosJob,
    PrinterProfile,
    PrinterStatus,
    feed_lines,
    parse_status,
    qr_print,
    qr_select_model2,
    qr_set_ec,
    qr_set_module_size,
    qr_store,
    raster_header,
    size_select,
    status_from_replies,
    status_request,
)
from hardware.escpos_render import CHAR_W, LINE_H, render
from posbridge.errors import PrinterError


def test_constants_are_the_epson_command_bytes() -> None:
    # Hex as printed in the Epson ESC/POS command reference.
    assert bytes.fromhex("1b40") == INIT
    assert bytes.fromhex("1b7400") == SELECT_CP437
    assert bytes.fromhex("1b6100") == ALIGN_LEFT
    assert bytes.fromhex("1b6101") == ALIGN_CENTER
    assert bytes.fromhex("1b6102") == ALIGN_RIGHT
    assert (bytes.fromhex("1b4501"), bytes.fromhex("1b4500")) == (BOLD_ON, BOLD_OFF)
    assert (bytes.fromhex("1d5600"), bytes.fromhex("1d5601")) == (CUT_FULL, CUT_PARTIAL)
    assert bytes.fromhex("1b700019fa") == DRAWER_KICK_PIN2
    assert bytes.fromhex("1b700119fa") == DRAWER_KICK_PIN5
    assert status_request(4) == bytes.fromhex("100404")
    assert size_select(2, 3) == bytes.fromhex("1d2112")
    assert feed_lines(3) == bytes.fromhex("1b6403")


def test_native_qr_commands_follow_gs_paren_k() -> None:
    assert qr_select_model2() == bytes.fromhex("1d286b0400314132 00".replace(" ", ""))
    assert qr_set_module_size(6) == bytes.fromhex("1d286b0300314306")
    assert qr_set_ec("M") == bytes.fromhex("1d286b0300314531")
    assert qr_store(b"AB") == bytes.fromhex("1d286b0500315030") + b"AB"
    assert qr_print() == bytes.fromhex("1d286b0300315130")
    long = b"x" * 300  # pL pH little-endian: 303 = 0x012f
    assert qr_store(long)[:5] == bytes.fromhex("1d286b2f01")


def test_builder_emits_exactly_the_named_commands() -> None:
    job = (EscPosJob().init().align("center").bold().size(2, 2).line("Hi").size().bold(False)
           .align("right").text("x").feed(2).drawer_kick().cut(partial=True))
    assert job.bytes() == (INIT + SELECT_CP437 + ALIGN_CENTER + BOLD_ON + size_select(2, 2)
                           + b"Hi" + LF + size_select(1, 1) + BOLD_OFF + ALIGN_RIGHT + b"x"
                           + feed_lines(2) + DRAWER_KICK_PIN2 + CUT_PARTIAL)


def test_qr_native_is_model_size_level_store_print() -> None:
    data = "ucanpay://pay?no=1"
    assert EscPosJob().qr_native(data, 5, "Q").bytes() == (
        qr_select_model2() + qr_set_module_size(5) + qr_set_ec("Q")
        + qr_store(data.encode()) + qr_print())


def test_text_is_cp437_and_cannot_carry_commands() -> None:
    job = EscPosJob().text("café 5€\x1b@\x1dV\x00\tend")
    assert job.bytes() == b"caf\x82 5?" + b"?@?V??end"
    assert EscPosJob().line("a\nb").bytes() == b"a\nb\n"


def test_raster_packs_dark_pixels_msb_first_and_pads_rows() -> None:
    img = Image.new("1", (10, 2), 1)
    img.putpixel((0, 0), 0)
    img.putpixel((9, 0), 0)
    img.putpixel((7, 1), 0)
    data = EscPosJob().raster(img).bytes()
    assert data == raster_header(2, 2) + bytes([0x80, 0x40, 0x01, 0x00])
    assert raster_header(2, 2) == GS + b"v0" + bytes.fromhex("0002000200")


def test_raster_wider_than_the_paper_is_refused() -> None:
    with pytest.raises(PrinterError, match="exceeds"):
        EscPosJob(PrinterProfile(width_dots=384, columns=32)).raster(Image.new("1", (392, 8)))


def test_qr_picks_native_or_raster_from_the_profile() -> None:
    native = EscPosJob(PrinterProfile(native_qr=True)).qr("hello").bytes()
    raster = EscPosJob(PrinterProfile(native_qr=False)).qr("hello").bytes()
    assert native.startswith(qr_select_model2())
    assert raster.startswith(GS + b"v0") and b"(k" not in raster[:8]


@pytest.mark.parametrize(
    ("n", "byte", "expected"),
    [
        (1, 0x12, PrinterStatus()),
        (1, 0x1A, PrinterStatus(online=False)),
        (1, 0x16, PrinterStatus()),  # bit 2 is the drawer pin, not a fault
        (2, 0x12, PrinterStatus()),
        (2, 0x16, PrinterStatus(cover_open=True)),
        (2, 0x32, PrinterStatus(paper_out=True)),
        (2, 0x52, PrinterStatus(error=True)),
        (3, 0x12, PrinterStatus()),
        (3, 0x1A, PrinterStatus(error=True)),  # autocutter error
        (4, 0x12, PrinterStatus()),
        (4, 0x1E, PrinterStatus(paper_near_end=True)),
        (4, 0x72, PrinterStatus(paper_out=True)),
        (4, 0x7E, PrinterStatus(paper_out=True, paper_near_end=True)),
    ],
)
def test_parse_status_reads_the_epson_bits(n: int, byte: int, expected: PrinterStatus) -> None:
    assert parse_status(n, byte) == expected


def test_status_bytes_without_the_fixed_bits_are_refused() -> None:
    for byte in (0x00, 0xFF, 0x13, 0x92):
        with pytest.raises(PrinterError, match="status byte"):
            parse_status(1, byte)
    with pytest.raises(ValueError, match="unsupported"):
        status_request(5)


def test_replies_combine_and_name_the_fault() -> None:
    paper_out = status_from_replies([(1, 0x1A), (2, 0x32), (4, 0x72)])
    assert paper_out == PrinterStatus(online=False, paper_out=True)
    assert paper_out.fault == "paper out"
    near_end = status_from_replies([(1, 0x12), (2, 0x12), (4, 0x1E)])
    assert near_end.paper_near_end and near_end.fault is None
    assert status_from_replies([(1, 0x1A), (2, 0x16)]).fault == "cover open"
    assert status_from_replies([(1, 0x1A)]).fault == "offline"


def _ink_columns(img: Image.Image, top: int, bottom: int) -> tuple[int, int]:
    box = img.crop((0, top, img.width, bottom)).point(lambda p: 255 - p).getbbox()
    assert box is not None
    return box[0], box[2]


def test_render_lays_out_text_alignment_and_size() -> None:
    data = (EscPosJob().init().line("left").align("right").line("right").align("center")
            .size(2, 2).line("BIG").size().cut().bytes())
    img = render(data, width_dots=576)
    assert img.width == 576
    left_x0, _ = _ink_columns(img, 0, LINE_H)
    _, right_x1 = _ink_columns(img, LINE_H, 2 * LINE_H)
    big_x0, big_x1 = _ink_columns(img, 2 * LINE_H, 4 * LINE_H)
    assert left_x0 < CHAR_W
    assert right_x1 > 576 - CHAR_W
    assert abs((big_x0 + big_x1) / 2 - 288) < CHAR_W  # centred
    assert big_x1 - big_x0 > 3 * 2 * CHAR_W * 0.6  # double width
    assert img.height == 4 * LINE_H + 12  # two normal lines, one double-height, the cut mark


def test_render_refuses_commands_outside_our_subset() -> None:
    with pytest.raises(PrinterError, match="subset"):
        render(INIT + b"\x1b*\x00\x01\x00\xff")
    with pytest.raises(PrinterError, match="truncated"):
        render(qr_store(b"abc")[:-2])
