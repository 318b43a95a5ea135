"""The web customer display: a page at ``/display/<name>`` for a kiosk browser.

Theory of operation. :class:`WebDisplay` keeps the newest frame and fans every frame out to the
browsers watching it, each through its own small bounded queue. A frame is a complete picture
of the screen, so when a slow browser's queue is full the oldest queued frame is dropped: the
browser still ends on the newest frame, in order, and ``show()`` never waits for anybody.

:func:`display_routes` gives the aiohttp routes:

- ``GET /display/{name}``: the page (``web_page.html``; plain HTML+JS, no external assets), with
  the newest frame embedded so the first paint needs no round trip;
- ``GET /display/{name}/ws``: a WebSocket pushing ``{"type": "frame", "frame": {...},
  "server_time": t}`` text messages, the newest frame first;
- ``GET /display/{name}/qr.png?seq=N``: the QR of the current frame (404 once frame ``N`` is no
  longer current), rendered by :func:`hardware.qr.render_qr_png_async` (in the render pool's
  worker process, see :mod:`hardware.qr_pool`) as soon as the frame is shown, and cached per
  deeplink;
- ``POST /display/{name}/sandbox-pay`` (only when a callback is given, only for sandbox
  displays): "the customer scanned and paid", for demos without a phone.

Why a WebSocket rather than Server-Sent Events: aiohttp's WebSocket heartbeat notices a kiosk
that vanished without closing its TCP connection (power cut, Wi-Fi drop) and frees its queue,
and closing the socket on shutdown tells the page at once to start reconnecting. The page's
reconnect loop is a few lines, where EventSource's built-in one cannot be bounded or observed.

``server_time`` travels with every frame because kiosk clocks drift: the page counts down to
``expires_at`` on the daemon's clock, not its own.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import html
import json
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, Final

import structlog
from aiohttp import WSMsgType, web

from hardware.displays.frames import DisplayFrame, FrameState
from hardware.errors import PosbridgeError

__all__ = ["QR_SCALE", "WebDisplay", "display_routes"]

log = structlog.get_logger(__name__)

QR_SCALE: Final = 8  # pixels per module in qr.png; the page scales it with pixelated sampling
QR_BORDER: Final = 4  # the quiet zone the QR standard asks for, in modules
SUBSCRIBER_QUEUE: Final = 8
QR_CACHE_SIZE: Final = 8
HEARTBEAT_S: Final = 10.0
MAX_SANDBOX_BODY: Final = 1024
_BOOT_MARK: Final = "/*POSBRIDGE_BOOT*/null"
_NONCE_MARK: Final = "POSBRIDGE_NONCE"


@functools.cache
def _page() -> str:
    """The kiosk page's template, read when a kiosk first asks for it."""
    import importlib.resources  # (and zipfile with it): not at every start

    return (importlib.resources.files("hardware.displays") / "web_page.html").read_text(
        encoding="utf-8")


async def render_qr_png_async(data: str, *, scale: int, border: int) -> bytes:
    """:func:`hardware.qr_pool.render_qr_png_async`; the render pool's module (and
    multiprocessing) loads with the first QR a web display shows."""
    from hardware.qr_pool import render_qr_png_async as render

    return await render(data, scale=scale, border=border)


class _Closed:
    """Queue sentinel: the display was closed, the subscriber must end."""


_CLOSED: Final = _Closed()


class WebDisplay:
    """Implements :class:`hardware.displays.base.Display` for any number of browsers.

    ``sandbox`` shows the "Simulate scan & pay" button on QR screens. ``show()`` only stores and
    queues: it cannot block or fail.
    """

    def __init__(self, *, name: str, sandbox: bool = False,
                 queue_size: int = SUBSCRIBER_QUEUE) -> None:
        self._name = name
        self.sandbox = sandbox
        self._queue_size = queue_size
        self._latest = DisplayFrame(state=FrameState.IDLE)
        self._subscribers: set[asyncio.Queue[DisplayFrame | _Closed]] = set()
        self._qr_cache: collections.OrderedDict[str, asyncio.Task[bytes]] = (
            collections.OrderedDict())
        self._closed = False
        self.log = log.bind(display=name)

    @property
    def name(self) -> str:
        return self._name

    @property
    def latest(self) -> DisplayFrame:
        """The frame on screen now (an idle frame before the first ``show()``)."""
        return self._latest

    @property
    def subscriber_count(self) -> int:
        """How many browsers are connected."""
        return len(self._subscribers)

    async def open(self) -> None:
        """Accept subscribers (again, after a ``close()``)."""
        self._closed = False

    async def show(self, frame: DisplayFrame) -> None:
        """Make ``frame`` current and queue it for every browser; starts the QR rendering."""
        self._latest = frame
        if frame.state is FrameState.QR:
            self._qr_task(frame.deeplink)
        for queue in self._subscribers:
            _offer(queue, frame)

    async def close(self) -> None:
        """End every subscription (their WebSockets close, pages start reconnecting)."""
        self._closed = True
        for queue in self._subscribers:
            _offer(queue, _CLOSED)
        for task in self._qr_cache.values():
            task.cancel()
        self._qr_cache.clear()

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[AsyncIterator[DisplayFrame]]:
        """Frames for one browser: the current frame first, then each new one, in order.

        Iteration ends when the display is closed. Frames a slow reader had not taken yet may
        be skipped, never reordered; the newest one always arrives.
        """
        queue: asyncio.Queue[DisplayFrame | _Closed] = asyncio.Queue(self._queue_size)
        queue.put_nowait(_CLOSED if self._closed else self._latest)
        self._subscribers.add(queue)
        try:
            yield _drain(queue)
        finally:
            self._subscribers.discard(queue)

    async def qr_png(self, seq: int | None = None) -> bytes | None:
        """The PNG of the current QR, or None when no QR is shown (or frame ``seq`` is gone)."""
        frame = self._latest
        if frame.state is not FrameState.QR or (seq is not None and seq != frame.seq):
            return None
        # shield: a browser that gives up must not cancel a rendering other requests share.
        return await asyncio.shield(self._qr_task(frame.deeplink))

    def _qr_task(self, deeplink: str) -> asyncio.Task[bytes]:
        task = self._qr_cache.get(deeplink)
        if task is None or (task.done() and (task.cancelled() or task.exception())):
            task = asyncio.get_running_loop().create_task(
                render_qr_png_async(deeplink, scale=QR_SCALE, border=QR_BORDER))
            task.add_done_callback(self._log_render_failure)
            self._qr_cache[deeplink] = task
        self._qr_cache.move_to_end(deeplink)
        while len(self._qr_cache) > QR_CACHE_SIZE:
            self._qr_cache.popitem(last=False)[1].cancel()
        return task

    def _log_render_failure(self, task: asyncio.Task[bytes]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self.log.warning("display_qr_render_failed", error=str(task.exception()))


def _offer(queue: asyncio.Queue[DisplayFrame | _Closed], item: DisplayFrame | _Closed) -> None:
    """Put without waiting; when full, drop the oldest queued frame to make room."""
    if queue.full():
        queue.get_nowait()
    queue.put_nowait(item)


async def _drain(queue: asyncio.Queue[DisplayFrame | _Closed]) -> AsyncIterator[DisplayFrame]:
    while True:
        item = await queue.get()
        if isinstance(item, _Closed):
            return
        yield item


# -- HTTP ------------------------------------------------------------------------------------


def frame_message(frame: DisplayFrame, *, now: float) -> str:
    """The WebSocket text message for ``frame``, stamped with the daemon's clock ``now``."""
    return json.dumps({"type": "frame", "frame": frame.to_dict(), "server_time": now},
                      ensure_ascii=False, separators=(",", ":"))


def render_page(display: WebDisplay, *, nonce: str, now: float) -> str:
    """The display page with its boot data (name, sandbox flag, newest frame) embedded.

    ``<`` is escaped in the JSON so no text inside a frame can close the ``<script>`` element.
    """
    boot = json.dumps({"name": display.name, "sandbox": display.sandbox,
                       "frame": display.latest.to_dict(), "server_time": now},
                      ensure_ascii=False, separators=(",", ":")).replace("<", "\\u003c")
    page = _page().replace(_BOOT_MARK, boot).replace(_NONCE_MARK, nonce)
    return page.replace("POSBRIDGE_TITLE", html.escape(display.name))


def display_routes(
    displays: Mapping[str, WebDisplay],
    *,
    on_sandbox_pay: Callable[[str, str], Awaitable[None]] | None,
) -> list[web.RouteDef]:
    """The aiohttp routes of the web displays (see the module docstring).

    ``on_sandbox_pay(display_name, order_no)`` marks the shown QR order paid in the simulated
    provider; without it the sandbox-pay route does not exist. Unknown names answer 404.
    """

    def lookup(request: web.Request) -> WebDisplay:
        display = displays.get(request.match_info["name"])
        if display is None:
            raise web.HTTPNotFound(text="no such display")
        return display

    async def page(request: web.Request) -> web.Response:
        display = lookup(request)
        nonce = secrets.token_urlsafe(16)
        return web.Response(
            text=render_page(display, nonce=nonce, now=time.time()),
            content_type="text/html",
            headers={
                "Cache-Control": "no-store",
                # Only this page's own nonce-tagged script/style, images and socket of this origin.
                "Content-Security-Policy": (
                    f"default-src 'none'; script-src 'nonce-{nonce}'; "
                    f"style-src 'nonce-{nonce}'; img-src 'self'; connect-src 'self'; "
                    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"),
                "X-Content-Type-Options": "nosniff",
            },
        )

    async def frames(request: web.Request) -> web.WebSocketResponse:
        display = lookup(request)
        ws = web.WebSocketResponse(heartbeat=HEARTBEAT_S, max_msg_size=MAX_SANDBOX_BODY)
        await ws.prepare(request)
        bound = display.log.bind(peer=request.remote)
        bound.info("display_browser_connected")
        async with display.subscribe() as stream:
            sender = asyncio.get_running_loop().create_task(_pump(ws, stream))
            try:
                # The page sends nothing; reading is how a close or a dead peer is noticed.
                async for msg in ws:
                    if msg.type is WSMsgType.ERROR:
                        break
            finally:
                sender.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sender
        bound.info("display_browser_gone")
        return ws

    async def qr_png(request: web.Request) -> web.Response:
        display = lookup(request)
        raw_seq = request.query.get("seq")
        seq: int | None = None
        if raw_seq is not None:
            if not raw_seq.isdigit() or len(raw_seq) > 18:
                raise web.HTTPBadRequest(text="seq must be a frame number")
            seq = int(raw_seq)
        try:
            png = await display.qr_png(seq)
        except (PosbridgeError, ValueError) as exc:  # a deeplink the QR encoder refuses
            raise web.HTTPServiceUnavailable(text="QR rendering failed") from exc
        if png is None:
            raise web.HTTPNotFound(text="no QR on this display now")
        # no-store: seq restarts with the daemon, so the same URL can name another QR later.
        return web.Response(body=png, content_type="image/png",
                            headers={"Cache-Control": "no-store"})

    routes = [
        web.get("/display/{name}", page),
        web.get("/display/{name}/ws", frames),
        web.get("/display/{name}/qr.png", qr_png),
    ]
    if on_sandbox_pay is not None:
        pay = on_sandbox_pay

        async def sandbox_pay(request: web.Request) -> web.Response:
            display = lookup(request)
            if not display.sandbox:
                raise web.HTTPNotFound(text="not a sandbox display")
            # Requiring JSON keeps other sites' plain form posts (CSRF) out: a cross-origin
            # application/json POST needs a CORS preflight, which this server never grants.
            if request.content_type != "application/json":
                raise web.HTTPUnsupportedMediaType(text="send application/json")
            order_no = await _read_order_no(request)
            current = display.latest
            if current.state is not FrameState.QR or current.order_no != order_no:
                raise web.HTTPConflict(text="that order is not the QR on this display")
            try:
                await pay(display.name, order_no)
            except PosbridgeError as exc:
                raise web.HTTPConflict(text=str(exc)) from exc
            display.log.info("display_sandbox_pay", order_no=order_no)
            return web.json_response({"ok": True, "order_no": order_no})

        routes.append(web.post("/display/{name}/sandbox-pay", sandbox_pay))
    return routes


async def _pump(ws: web.WebSocketResponse, stream: AsyncIterator[DisplayFrame]) -> None:
    """Send each frame; when the display closes, close the socket (1001: going away)."""
    try:
        async for frame in stream:
            await ws.send_str(frame_message(frame, now=time.time()))
    except (ConnectionError, RuntimeError):
        return  # the browser went away while we were sending; the reader loop sees it too
    await ws.close(code=1001, message=b"display closed")


async def _read_order_no(request: web.Request) -> str:
    if request.content_length is None:
        raise web.HTTPLengthRequired(text="Content-Length required")
    if request.content_length > MAX_SANDBOX_BODY:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_SANDBOX_BODY,
                                            actual_size=request.content_length)
    try:
        body: Any = json.loads(await request.read())
    except (ValueError, UnicodeDecodeError) as exc:
        raise web.HTTPBadRequest(text="body is not JSON") from exc
    order_no = body.get("order_no") if isinstance(body, dict) else None
    if not isinstance(order_no, str) or not order_no or len(order_no) > 64:
        raise web.HTTPBadRequest(text="order_no missing")
    return order_no
