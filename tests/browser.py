"""Headless Chromium for tests: screenshot a page as the kiosk would show it.

Uses Debian's ``chromium`` found on PATH (``apt-get install -y chromium``; ``.ci/run`` installs
it). A missing browser is a test failure with a message saying so, never a skip: the display
pages are only proven by a real browser.

Two ways in:

- :func:`screenshot`: one ``chromium --headless --screenshot`` run (the page loads, scripts run
  for a virtual-time budget, a PNG is written);
- :class:`DevTools`: a browser kept open and driven over the DevTools protocol (CDP) on its
  WebSocket, to watch a page change live and to click.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import re
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import websockets

WINDOW = (800, 600)
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars", "--force-device-scale-factor=1",
)
MISSING = ("chromium is not installed: install Debian's chromium "
           "(apt-get update && apt-get install -y chromium) so that `chromium` is on PATH")


def chromium() -> str:
    """The path of ``chromium`` on PATH; AssertionError with install advice when absent."""
    path = shutil.which("chromium")
    assert path is not None, MISSING
    return path


def screenshot(url: str, out: Path, *, budget_ms: int = 3000, timeout_s: float = 30.0) -> Path:
    """Load ``url`` in a fresh headless Chromium (800x600) and write a PNG screenshot to ``out``.

    ``budget_ms`` is the virtual time the page gets to run its scripts and load its images.
    Blocking: call it through ``asyncio.to_thread`` when the page's server runs on this loop.
    """
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        cmd = [chromium(), *FLAGS, f"--user-data-dir={profile}",
               f"--window-size={WINDOW[0]},{WINDOW[1]}", f"--screenshot={out}",
               f"--virtual-time-budget={budget_ms}", url]
        done = subprocess.run(cmd, capture_output=True, timeout=timeout_s, check=False)
    assert out.is_file(), f"chromium wrote no screenshot (rc={done.returncode}): " + (
        done.stderr.decode(errors="replace")[-2000:])
    return out


class DevTools:
    """One headless Chromium page driven over CDP. Use :meth:`launch` as a context manager."""

    def __init__(self, ws: Any) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        self._events: list[dict[str, Any]] = []  # events that arrived while awaiting a reply

    @classmethod
    @contextlib.asynccontextmanager
    async def launch(cls, *, timeout_s: float = 20.0) -> AsyncIterator[DevTools]:
        """Start Chromium with a debugging port on 127.0.0.1 (port 0) and attach to its page."""
        with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
            proc = await asyncio.create_subprocess_exec(
                chromium(), *FLAGS, f"--user-data-dir={profile}",
                f"--window-size={WINDOW[0]},{WINDOW[1]}",
                "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
                "about:blank",
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
            drain: asyncio.Task[bytes] | None = None
            try:
                assert proc.stderr is not None
                browser_url = await asyncio.wait_for(_devtools_url(proc.stderr), timeout_s)
                # Keep reading stderr so chromium never blocks on a full pipe.
                drain = asyncio.get_running_loop().create_task(proc.stderr.read())
                page_url = await asyncio.wait_for(_page_target(browser_url), timeout_s)
                async with websockets.connect(page_url, max_size=64 * 1024 * 1024) as ws:
                    tools = cls(ws)
                    await tools.call("Page.enable")
                    yield tools
            finally:
                if proc.returncode is None:
                    proc.kill()
                await proc.wait()
                if drain is not None:
                    await drain

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one CDP command and return its result (events in between are kept)."""
        msg_id = next(self._ids)
        await self._ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        while True:
            reply = json.loads(await asyncio.wait_for(self._ws.recv(), 15.0))
            if reply.get("id") == msg_id:
                assert "error" not in reply, f"{method}: {reply['error']}"
                result: dict[str, Any] = reply.get("result", {})
                return result
            if "method" in reply:
                self._events.append(reply)

    async def wait_event(self, method: str, *, timeout_s: float = 10.0) -> dict[str, Any]:
        """The next CDP event named ``method`` (including one that already arrived)."""
        async with asyncio.timeout(timeout_s):
            while True:
                for event in self._events:
                    if event.get("method") == method:
                        self._events.remove(event)
                        return event
                self._events.append(json.loads(await self._ws.recv()))

    async def navigate(self, url: str) -> None:
        """Open ``url`` and wait for its load event (scripts ran, images loaded)."""
        self._events.clear()
        await self.call("Page.navigate", url=url)
        await self.wait_event("Page.loadEventFired")

    async def evaluate(self, expression: str) -> Any:
        """The JSON value of a JavaScript expression in the page."""
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        assert "exceptionDetails" not in result, result["exceptionDetails"]
        return result["result"].get("value")

    async def wait_for(self, expression: str, *, timeout_s: float = 5.0) -> Any:
        """Poll ``expression`` until it is truthy; AssertionError naming it after the timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            value = await self.evaluate(expression)
            if value:
                return value
            assert loop.time() < deadline, f"page never satisfied: {expression}"
            await asyncio.sleep(0.05)

    async def click(self, selector: str) -> None:
        """Click the first element matching ``selector`` with real mouse events at its centre
        (scrolled into view first); AssertionError when nothing matches."""
        centre = await self.evaluate(
            f"(() => {{ const el = document.querySelector({json.dumps(selector)});"
            " if (!el) return null; el.scrollIntoView({block: 'center'});"
            " const r = el.getBoundingClientRect();"
            " return [r.left + r.width / 2, r.top + r.height / 2]; })()")
        assert centre is not None, f"no element matches {selector}"
        x, y = centre
        for kind in ("mousePressed", "mouseReleased"):
            await self.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left",
                            clickCount=1)

    async def type_into(self, selector: str, text: str) -> None:
        """Focus the element matching ``selector``, clear it, and type ``text`` as keyboard
        input would (``Input.insertText``)."""
        found = await self.evaluate(
            f"(() => {{ const el = document.querySelector({json.dumps(selector)});"
            " if (!el) return false; el.focus(); el.select && el.select(); return true; })()")
        assert found, f"no element matches {selector}"
        await self.call("Input.insertText", text=text)

    async def click_and_wait_load(self, selector: str, *, timeout_s: float = 10.0) -> None:
        """Click ``selector`` (a submit button or link) and wait for the page it loads."""
        self._events.clear()
        await self.click(selector)
        await self.wait_event("Page.loadEventFired", timeout_s=timeout_s)

    async def location(self) -> str:
        """The page's path and query (``location.pathname + location.search``)."""
        value: str = await self.evaluate("location.pathname + location.search")
        return value

    async def screenshot(self) -> bytes:
        """A PNG of the viewport."""
        result = await self.call("Page.captureScreenshot", format="png")
        return base64.b64decode(result["data"])


async def _devtools_url(stderr: asyncio.StreamReader) -> str:
    while line := await stderr.readline():
        match = re.search(rb"DevTools listening on (ws://\S+)", line)
        if match:
            return match.group(1).decode()
    raise AssertionError("chromium exited before opening its DevTools port")


async def _page_target(browser_url: str) -> str:
    """The WebSocket URL of the browser's first page target."""
    async with websockets.connect(browser_url) as ws:
        await ws.send(json.dumps({"id": 1, "method": "Target.getTargets"}))
        while True:
            reply = json.loads(await ws.recv())
            if reply.get("id") == 1:
                break
    target = next(t for t in reply["result"]["targetInfos"] if t["type"] == "page")
    host = browser_url.split("/devtools/")[0]
    return f"{host}/devtools/page/{target['targetId']}"
