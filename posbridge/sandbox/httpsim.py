"""What every simulated provider gateway shares: its listener, its callbacks, its faults.

A simulator subclasses :class:`HttpSimulator`, adds its routes in :meth:`HttpSimulator.routes`
and calls the fault hooks where its requests are handled:

- :meth:`HttpSimulator.fail_next` queues a refusal code for the next request of a method;
  the handler takes it with :meth:`HttpSimulator._take_failure` before processing;
- :meth:`HttpSimulator.drop_next_response` makes the next answer of a method "lost": the
  handler processes the request, then :meth:`HttpSimulator._hold_if_dropped` holds the
  connection until the simulator stops;
- :meth:`HttpSimulator.sign_with_wrong_key_next` makes the next answer of a method signed
  with a key the merchant does not know: the signer asks :meth:`HttpSimulator._wrong_key_due`
  and signs with :meth:`HttpSimulator._stranger_key` (or a wrong shared secret).
"""

from __future__ import annotations

import abc
import asyncio
from collections import defaultdict
from collections.abc import Coroutine, Mapping
from typing import Any

import aiohttp
import structlog
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from posbridge.errors import PosbridgeError

__all__ = ["HttpSimulator", "SimulatorError"]

log = structlog.get_logger(__name__)


class SimulatorError(PosbridgeError):
    """A sandbox action that cannot be done (unknown order, not payable)."""


class HttpSimulator(abc.ABC):
    """A simulated gateway on 127.0.0.1. ``await start()``, use :attr:`url`, ``await stop()``."""

    #: the name in log lines and errors
    label = "simulator"

    def __init__(self) -> None:
        self._fail: dict[str, list[str]] = defaultdict(list)
        self._drop: dict[str, int] = defaultdict(int)
        self._wrong_key: dict[str, int] = defaultdict(int)
        self._other_key: RSAPrivateKey | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None
        self._url: str | None = None

    @abc.abstractmethod
    def routes(self, app: web.Application) -> None:
        """Add the simulator's routes to ``app``."""

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Listen on ``host:port`` (port 0: any free port; see :attr:`url`)."""
        app = web.Application()
        self.routes(app)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound = self._runner.addresses[0]
        self._url = f"http://{bound[0]}:{bound[1]}"
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))
        log.info("sim_started", sim=self.label, url=self._url)

    @property
    def url(self) -> str:
        """The base URL (``http://127.0.0.1:PORT``) once started."""
        if self._url is None:
            raise SimulatorError(f"the {self.label} is not started")
        return self._url

    async def stop(self) -> None:
        """Release held answers, stop calling back, close the listener."""
        self._closing.set()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._http is not None:
            await self._http.close()
            self._http = None

    # -- failure injection -----------------------------------------------------------------

    def fail_next(self, method: str, code: str) -> None:
        """The next ``method`` request is refused with ``code`` without being processed."""
        self._fail[method].append(code)

    def drop_next_response(self, method: str) -> None:
        """The next ``method`` request is processed but never answered (until stop)."""
        self._drop[method] += 1

    def sign_with_wrong_key_next(self, method: str) -> None:
        """The next ``method`` answer is signed with a key the merchant does not know."""
        self._wrong_key[method] += 1

    def _take_failure(self, method: str) -> str | None:
        """The refusal code queued for ``method``, if any (taken)."""
        return self._fail[method].pop(0) if self._fail[method] else None

    async def _hold_if_dropped(self, method: str) -> None:
        """When ``method``'s answer is to be lost: hold it until stop, then fail (503)."""
        if self._drop[method]:
            self._drop[method] -= 1
            await self._closing.wait()
            raise web.HTTPServiceUnavailable()

    def _stranger_key(self) -> RSAPrivateKey:
        """An RSA key nobody else knows (made once)."""
        if self._other_key is None:
            self._other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return self._other_key

    def _wrong_key_due(self, method: str) -> bool:
        """Whether this ``method`` answer is to be signed wrongly (taken)."""
        if not self._wrong_key[method]:
            return False
        self._wrong_key[method] -= 1
        return True

    # -- background work ---------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _post_json(self, url: str, body: Mapping[str, Any]) -> str:
        """POST ``body`` as JSON to the merchant; the answer text, or ``error: …``."""
        if self._http is None:
            return ""
        try:
            async with self._http.post(url, json=body) as resp:
                return await resp.text()
        except (aiohttp.ClientError, TimeoutError) as exc:
            return f"error: {exc}"
