"""The web display over real sockets: an aiohttp server on 127.0.0.1:0 and a real client."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
import zxingcpp
from aiohttp import web
from PIL import Image

from hardware.displays.frames import DisplayFrame, FrameState
from hardware.displays.web import WebDisplay, display_routes
from posbridge.errors import ProviderRejected

DEEPLINK = ("https://ucanpaydev.page.link/?link=https%3A%2F%2Fucanpaydev.page.link%2Fpay"
            "%3FucpOrderNo%3DUCP2024112200001234%26amount%3D1234%26item%3DCaf%25C3%25A9%2B%2526"
            "&apn=ca.ucanpay.wapp")
TIMEOUT = aiohttp.ClientTimeout(total=5)
Pay = Callable[[str, str], Awaitable[None]]


def qr_frame(seq: int, *, order_no: str = "A-1", deeplink: str = DEEPLINK) -> DisplayFrame:
    return DisplayFrame(state=FrameState.QR, amount_text="12.34", currency="CAD",
                        deeplink=deeplink, expires_at=1.7e9 + 300, order_no=order_no, seq=seq)


async def serve(displays: dict[str, WebDisplay], pay: Pay | None) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.add_routes(display_routes(displays, on_sandbox_pay=pay))
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}"


class Server:
    def __init__(self) -> None:
        self.display = WebDisplay(name="lane-1", sandbox=True)
        self.plain = WebDisplay(name="lane-2")
        self.paid: list[tuple[str, str]] = []
        self.base = ""

    async def pay(self, name: str, order_no: str) -> None:
        if order_no == "REFUSED":
            raise ProviderRejected("order closed", provider_code="ORDERCLOSED")
        self.paid.append((name, order_no))


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    s = Server()
    await s.display.open()
    runner, s.base = await serve({"lane-1": s.display, "lane-2": s.plain}, s.pay)
    yield s
    await s.display.close()
    await runner.cleanup()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
        yield session


async def next_frame(ws: aiohttp.ClientWebSocketResponse) -> dict[str, object]:
    msg = await ws.receive_json(timeout=2)
    assert msg["type"] == "frame"
    assert isinstance(msg["server_time"], float)
    frame: dict[str, object] = msg["frame"]
    return frame


async def wait_subscribers(display: WebDisplay, n: int) -> None:
    async with asyncio.timeout(2):
        while display.subscriber_count != n:
            await asyncio.sleep(0.01)


async def test_websocket_gets_current_frame_then_every_frame_in_order(
        server: Server, http: aiohttp.ClientSession) -> None:
    async with http.ws_connect(f"{server.base}/display/lane-1/ws") as ws:
        assert (await next_frame(ws))["state"] == "idle"
        await wait_subscribers(server.display, 1)
        frames = [qr_frame(1), DisplayFrame(state=FrameState.PAID, amount_text="12.34",
                                            currency="CAD", order_no="A-1", seq=2),
                  DisplayFrame(state=FrameState.IDLE, seq=3)]
        for frame in frames:
            await server.display.show(frame)
        for frame in frames:
            assert await next_frame(ws) == frame.to_dict()


async def test_late_browser_starts_with_the_current_frame(
        server: Server, http: aiohttp.ClientSession) -> None:
    await server.display.show(qr_frame(5))
    async with http.ws_connect(f"{server.base}/display/lane-1/ws") as ws:
        assert await next_frame(ws) == qr_frame(5).to_dict()


async def test_slow_browser_never_blocks_show_and_ends_on_the_newest_frame(
        server: Server, http: aiohttp.ClientSession) -> None:
    display = server.display
    async with display.subscribe() as stream:  # a subscriber that reads nothing for now
        async with asyncio.timeout(1):
            for seq in range(1, 1001):
                await display.show(DisplayFrame(state=FrameState.MESSAGE, message=str(seq),
                                                seq=seq))
        seqs = []
        async with asyncio.timeout(1):
            async for frame in stream:
                seqs.append(frame.seq)
                if frame.seq == 1000:
                    break
    assert seqs == sorted(seqs)
    assert len(seqs) <= 8
    assert seqs[-1] == 1000


async def test_close_ends_the_socket_with_going_away(
        server: Server, http: aiohttp.ClientSession) -> None:
    async with http.ws_connect(f"{server.base}/display/lane-1/ws") as ws:
        await next_frame(ws)
        await wait_subscribers(server.display, 1)
        await server.display.close()
        msg = await ws.receive(timeout=2)
        assert msg.type is aiohttp.WSMsgType.CLOSE
        assert msg.data == 1001
    await wait_subscribers(server.display, 0)


async def test_qr_png_decodes_to_exactly_the_deeplink(
        server: Server, http: aiohttp.ClientSession) -> None:
    await server.display.show(qr_frame(7))
    async with http.get(f"{server.base}/display/lane-1/qr.png?seq=7") as resp:
        assert resp.status == 200
        assert resp.content_type == "image/png"
        assert resp.headers["Cache-Control"] == "no-store"
        png = await resp.read()
    with Image.open(io.BytesIO(png)) as img:
        assert [r.text for r in zxingcpp.read_barcodes(img)] == [DEEPLINK]


async def test_qr_png_is_cached_per_deeplink(server: Server, http: aiohttp.ClientSession) -> None:
    other = DEEPLINK.replace("1234", "9999")
    bodies = []
    for seq, link in ((1, DEEPLINK), (2, other), (3, DEEPLINK)):
        await server.display.show(qr_frame(seq, deeplink=link))
        async with http.get(f"{server.base}/display/lane-1/qr.png?seq={seq}") as resp:
            bodies.append(await resp.read())
    assert bodies[0] is not bodies[2]
    assert bodies[0] == bodies[2] != bodies[1]
    assert await server.display.qr_png(3) is await server.display.qr_png(3)


async def test_qr_png_404_when_not_current_and_400_on_bad_seq(
        server: Server, http: aiohttp.ClientSession) -> None:
    async with http.get(f"{server.base}/display/lane-1/qr.png") as resp:
        assert resp.status == 404  # idle: no QR
    await server.display.show(qr_frame(4))
    async with http.get(f"{server.base}/display/lane-1/qr.png?seq=3") as resp:
        assert resp.status == 404  # an older frame's QR is gone
    async with http.get(f"{server.base}/display/lane-1/qr.png?seq=-1") as resp:
        assert resp.status == 400


async def test_page_embeds_the_current_frame_and_locks_down_scripts(
        server: Server, http: aiohttp.ClientSession) -> None:
    await server.display.show(DisplayFrame(state=FrameState.MESSAGE, seq=1,
                                           message="</script><script>alert(1)</script>"))
    async with http.get(f"{server.base}/display/lane-1") as resp:
        assert resp.status == 200
        assert resp.content_type == "text/html"
        csp = resp.headers["Content-Security-Policy"]
        page = await resp.text()
    assert "</script><script>alert" not in page  # "<" is escaped inside the boot JSON
    start = page.index('type="application/json">') + len('type="application/json">')
    boot = json.loads(page[start:page.index("</script>", start)])
    assert boot["name"] == "lane-1"
    assert boot["sandbox"] is True
    assert boot["frame"]["message"] == "</script><script>alert(1)</script>"
    nonce = csp.split("'nonce-")[1].split("'")[0]
    assert f'<script nonce="{nonce}">' in page
    assert "unsafe-inline" not in csp


async def test_unknown_display_is_404_on_every_route(
        server: Server, http: aiohttp.ClientSession) -> None:
    for path in ("", "/qr.png", "/ws"):
        async with http.get(f"{server.base}/display/nope{path}") as resp:
            assert resp.status == 404
    async with http.post(f"{server.base}/display/nope/sandbox-pay", json={"order_no": "A"}) as r:
        assert r.status == 404


async def test_sandbox_pay_calls_back_for_the_shown_order_only(
        server: Server, http: aiohttp.ClientSession) -> None:
    url = f"{server.base}/display/lane-1/sandbox-pay"
    await server.display.show(qr_frame(1, order_no="A-1"))
    async with http.post(url, json={"order_no": "A-2"}) as resp:
        assert resp.status == 409  # not the order on screen
    async with http.post(url, data="order_no=A-1",
                         headers={"Content-Type": "application/x-www-form-urlencoded"}) as resp:
        assert resp.status == 415  # a cross-site form post cannot trigger it
    async with http.post(url, json={"order_no": "A-1"}) as resp:
        assert resp.status == 200
        assert await resp.json() == {"ok": True, "order_no": "A-1"}
    assert server.paid == [("lane-1", "A-1")]
    await server.display.show(qr_frame(2, order_no="REFUSED"))
    async with http.post(url, json={"order_no": "REFUSED"}) as resp:
        assert resp.status == 409
        assert "order closed" in await resp.text()
    async with http.post(f"{server.base}/display/lane-2/sandbox-pay",
                         json={"order_no": "A-1"}) as resp:
        assert resp.status == 404  # lane-2 is not a sandbox display


async def test_sandbox_pay_route_absent_without_callback(http: aiohttp.ClientSession) -> None:
    display = WebDisplay(name="lane-1", sandbox=True)
    runner, base = await serve({"lane-1": display}, None)
    try:
        await display.show(qr_frame(1))
        async with http.post(f"{base}/display/lane-1/sandbox-pay", json={"order_no": "A-1"}) as r:
            assert r.status == 404  # no such route at all
    finally:
        await runner.cleanup()
