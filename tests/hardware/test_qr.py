"""hardware.qr: the matrix, the PNG (decoded back with zxing-cpp) and the async wrapper."""

from __future__ import annotations

import io

import pytest
import zxingcpp
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from hardware.qr import EC_LEVELS, MIN_BORDER, qr_image, qr_matrix, render_qr_png
from hardware.qr_pool import render_qr_png_async

DEEPLINK = "https://qr.ucanpay.com/pay?ucpOrderNo=UCP20240101000000001234"


def _decode(png: bytes) -> list[str]:
    with Image.open(io.BytesIO(png)) as img:
        return [r.text for r in zxingcpp.read_barcodes(img)]


def test_matrix_is_a_square_symbol_of_a_valid_version() -> None:
    matrix = qr_matrix(DEEPLINK)
    side = len(matrix)
    assert all(len(row) == side for row in matrix)
    assert side >= 21 and (side - 21) % 4 == 0  # version v has 17 + 4v modules
    # The three finder patterns: a dark 7x7 ring in three corners.
    for top, left in ((0, 0), (0, side - 7), (side - 7, 0)):
        assert all(matrix[top][left + i] and matrix[top + 6][left + i] for i in range(7))


def test_higher_error_correction_never_makes_a_smaller_symbol() -> None:
    assert len(qr_matrix(DEEPLINK, ec="H")) >= len(qr_matrix(DEEPLINK, ec="M"))


def test_png_decodes_to_exactly_the_data() -> None:
    assert _decode(render_qr_png(DEEPLINK, scale=4)) == [DEEPLINK]


def test_png_has_the_quiet_zone_and_whole_modules() -> None:
    scale, border = 3, 4
    side = len(qr_matrix(DEEPLINK))
    with Image.open(io.BytesIO(render_qr_png(DEEPLINK, scale=scale, border=border))) as img:
        mono = img.convert("L")
        assert mono.size == ((side + 2 * border) * scale,) * 2
        quiet = border * scale
        px = mono.load()
        assert px is not None
        w = mono.width
        for i in range(w):
            for j in range(quiet):
                assert px[i, j] == 255 and px[j, i] == 255
                assert px[i, w - 1 - j] == 255 and px[w - 1 - j, i] == 255
        assert px[quiet, quiet] == 0  # the finder pattern's corner starts right after


def test_level_l_and_a_thin_quiet_zone_are_refused() -> None:
    with pytest.raises(ValueError, match="error correction"):
        qr_matrix(DEEPLINK, ec="L")
    with pytest.raises(ValueError, match="quiet zone"):
        render_qr_png(DEEPLINK, border=3)
    with pytest.raises(ValueError, match="needs data"):
        qr_matrix("")


async def test_async_render_gives_the_same_png() -> None:
    assert await render_qr_png_async(DEEPLINK, scale=2) == render_qr_png(DEEPLINK, scale=2)


@pytest.mark.parametrize("scale", [1, 2, 3, 5, 8, 11])
@pytest.mark.parametrize("border", [4, 6])
@pytest.mark.parametrize("data", [DEEPLINK, "x", "ü" * 300])
def test_png_has_exactly_the_pixels_pillow_draws(data: str, scale: int, border: int) -> None:
    """render_qr_png writes its PNG itself; pillow reads it back (checking every chunk's CRC)
    to the very pixels of qr_image, whatever the scale (rows that do not end on a byte too)."""
    png = render_qr_png(data, scale=scale, border=border)
    with Image.open(io.BytesIO(png)) as img:
        img.verify()
    _assert_pixels_of_qr_image(png, data, scale=scale, border=border, ec="M")


def _assert_pixels_of_qr_image(png: bytes, data: str, *, scale: int, border: int,
                               ec: str) -> None:
    with Image.open(io.BytesIO(png)) as img:
        drawn = qr_image(data, scale=scale, border=border, ec=ec)
        assert (img.mode, img.size) == ("1", drawn.size)
        assert img.tobytes() == drawn.tobytes()


def test_png_from_the_display_decodes_at_its_own_scale() -> None:
    """The web display's size (8 pixels a module) decodes back to the deeplink."""
    assert _decode(render_qr_png(DEEPLINK, scale=8)) == [DEEPLINK]


def test_matrix_matches_the_drawn_modules() -> None:
    matrix = qr_matrix(DEEPLINK)
    drawn = qr_image(DEEPLINK, scale=1, border=4).convert("L")
    px = drawn.load()
    assert px is not None
    assert all(matrix[y][x] == (px[x + 4, y + 4] == 0)
               for y in range(len(matrix)) for x in range(len(matrix)))


@settings(max_examples=60, deadline=None)
@given(data=st.text(min_size=1, max_size=300), scale=st.integers(1, 9),
       border=st.integers(MIN_BORDER, 7), ec=st.sampled_from(EC_LEVELS))
def test_any_text_gives_the_pixels_pillow_draws(data: str, scale: int, border: int,
                                                ec: str) -> None:
    """Whatever the text (any Unicode), size and level: the same pixels as qr_image."""
    png = render_qr_png(data, scale=scale, border=border, ec=ec)
    _assert_pixels_of_qr_image(png, data, scale=scale, border=border, ec=ec)
