"""The web display page in a real headless Chromium: what the customer's screen really shows."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import zxingcpp
from aiohttp import web
from PIL import Image

from hardware.displays.frames import DisplayFrame, FrameState
from hardware.displays.web import WebDisplay, display_routes
from tests.browser import DevTools, chromium, screenshot

DEEPLINK = ("https://ucanpaydev.page.link/?link=https%3A%2F%2Fucanpaydev.page.link%2Fpay"
            "%3FucpOrderNo%3DUCP2024112200001234%26amount%3D1234%26item%3DCaf%25C3%25A9%2B%2526"
            "&apn=ca.ucanpay.wapp")


def qr_frame(seq: int, *, expires_at: float | None = None) -> DisplayFrame:
    return DisplayFrame(state=FrameState.QR, amount_text="12.34", currency="CAD",
                        deeplink=DEEPLINK, expires_at=expires_at, order_no="A-1", seq=seq)


class Site:
    def __init__(self) -> None:
        self.display = WebDisplay(name="lane-1", sandbox=True)
        self.paid: list[tuple[str, str]] = []
        self.url = ""
        self.runner: web.AppRunner | None = None

    async def pay(self, name: str, order_no: str) -> None:
        self.paid.append((name, order_no))
        await self.display.show(DisplayFrame(state=FrameState.PAID, amount_text="12.34",
                                             currency="CAD", order_no=order_no, seq=99))


@pytest.fixture
async def site() -> AsyncIterator[Site]:
    s = Site()
    runner = await start(s.display, 0, s)
    s.url = f"http://127.0.0.1:{runner.addresses[0][1]}/display/lane-1"
    s.runner = runner
    yield s
    await s.display.close()
    assert s.runner is not None
    await s.runner.cleanup()


async def start(display: WebDisplay, port: int, s: Site) -> web.AppRunner:
    app = web.Application()
    app.add_routes(display_routes({"lane-1": display}, on_sandbox_pay=s.pay))
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


async def wait_subscribed(display: WebDisplay) -> None:
    async with asyncio.timeout(5):
        while display.subscriber_count < 1:
            await asyncio.sleep(0.02)


def decode_png(png: bytes) -> list[str]:
    with Image.open(io.BytesIO(png)) as img:
        return [r.text for r in zxingcpp.read_barcodes(img)]


async def test_screenshot_of_the_qr_page_decodes_to_exactly_the_deeplink(
        site: Site, tmp_path: Path) -> None:
    await site.display.show(qr_frame(1))
    shot = await asyncio.to_thread(screenshot, site.url, tmp_path / "qr.png")
    assert decode_png(shot.read_bytes()) == [DEEPLINK]


async def test_page_updates_live_and_sandbox_button_pays(site: Site) -> None:
    async with DevTools.launch() as page:
        await page.navigate(site.url)
        await page.wait_for("document.body.dataset.state === 'idle'")
        await wait_subscribed(site.display)
        await site.display.show(qr_frame(1, expires_at=time.time() + 125))
        await page.wait_for("!document.getElementById('qrimg').hidden")
        countdown = await page.evaluate("document.getElementById('countdown').textContent")
        assert countdown in ("Scan to pay \u2014 2:04 left", "Scan to pay \u2014 2:03 left")
        assert decode_png(await page.screenshot()) == [DEEPLINK]
        assert await page.evaluate("document.getElementById('qr-amount').textContent") == \
            "CAD 12.34"
        await page.evaluate("document.getElementById('pay').click()")
        await page.wait_for("document.body.dataset.state === 'paid'")
        assert site.paid == [("lane-1", "A-1")]
        assert await page.evaluate("document.getElementById('paid-text').textContent") == \
            "Paid - thank you"


async def test_page_reconnects_by_itself_after_the_daemon_restarts(site: Site) -> None:
    async with DevTools.launch() as page:
        await page.navigate(site.url)
        await wait_subscribed(site.display)
        # "Daemon restart": the display closes (sockets get 1001), the server goes away, and a
        # new one with a fresh display (seq restarting at 1) comes up on the same port.
        port = int(site.url.split(":")[2].split("/")[0])
        await site.display.close()
        assert site.runner is not None
        await site.runner.cleanup()
        await page.wait_for("!document.getElementById('offline').hidden")
        site.display = WebDisplay(name="lane-1", sandbox=True)
        site.runner = await start(site.display, port, site)
        await site.display.show(qr_frame(1))
        await page.wait_for("document.body.dataset.state === 'qr'", timeout_s=8)
        await page.wait_for("document.getElementById('offline').hidden")
        await page.wait_for("!document.getElementById('qrimg').hidden")
        assert decode_png(await page.screenshot()) == [DEEPLINK]


def test_missing_chromium_fails_with_install_advice(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no chromium anywhere
    with pytest.raises(AssertionError, match="install Debian's chromium"):
        chromium()
