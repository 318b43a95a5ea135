"""A small async ECR client: what a register does, for the CLI, tests and benchmarks.

::

    async with EcrClient.connect("ws://127.0.0.1:8765/ecr", token) as ecr:
        txn = await ecr.call("sale", {"terminal": "lane-1", "order_no": "A1",
                                      "amount": "12.34", "currency": "USD"})
        async for note in ecr.notifications():   # transaction.updated, ...
            ...

Responses are matched to requests by id; notifications are queued in arrival order.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from posbridge.errors import PosbridgeError


class EcrError(PosbridgeError):
    """A JSON-RPC error answer from the bridge."""

    def __init__(self, code: int, message: str, data: dict[str, Any] | None) -> None:
        super().__init__(f"{code} {message}")
        self.code = code
        self.message = message
        self.data = data or {}

    @property
    def reason(self) -> str | None:
        reason = self.data.get("reason")
        return str(reason) if reason is not None else None


class EcrClient:
    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[Any]] = {}
        self._notes: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def connect(cls, url: str, token: str, *, header: bool = True,
                      open_timeout: float = 10.0) -> EcrClient:
        """Connect and authenticate (by header, or by an ``auth`` message)."""
        headers = {"Authorization": f"Bearer {token}"} if header else None
        ws = await connect(url, additional_headers=headers, open_timeout=open_timeout,
                           max_size=2**20, compression=None)
        client = cls(ws)
        if not header:
            try:
                await client.call("auth", {"token": token}, timeout=10.0)
            except BaseException:
                await client.close()
                raise
        return client

    async def __aenter__(self) -> EcrClient:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    async def close(self) -> None:
        await self.ws.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader

    async def call(self, method: str, params: dict[str, Any] | None = None, *,
                   timeout: float = 60.0) -> Any:
        call_id = next(self._ids)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[call_id] = fut
        frame = {"jsonrpc": "2.0", "id": call_id, "method": method}
        if params is not None:
            frame["params"] = params
        try:
            await self.ws.send(json.dumps(frame))
            async with asyncio.timeout(timeout):  # unlike wait_for, no extra task per call
                return await fut
        finally:
            self._waiting.pop(call_id, None)

    async def next_notification(self, timeout: float = 10.0) -> dict[str, Any]:
        return await asyncio.wait_for(self._notes.get(), timeout)

    async def notifications(self) -> AsyncIterator[dict[str, Any]]:
        while True:
            yield await self._notes.get()

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                msg = json.loads(raw)
                if "id" in msg and msg.get("id") is not None and "method" not in msg:
                    fut = self._waiting.get(msg["id"])
                    if fut is None or fut.done():
                        continue
                    if "error" in msg:
                        err = msg["error"]
                        fut.set_exception(EcrError(err.get("code", 0), err.get("message", ""),
                                                   err.get("data")))
                    else:
                        fut.set_result(msg.get("result"))
                elif "id" in msg and msg["id"] is None and "error" in msg:
                    # An error the bridge could not tie to a request (e.g. a parse error).
                    for fut in self._waiting.values():
                        if not fut.done():
                            err = msg["error"]
                            fut.set_exception(EcrError(err.get("code", 0),
                                                       err.get("message", ""), err.get("data")))
                            break
                else:
                    await self._notes.put(msg)
        except ConnectionClosed:
            pass
        finally:
            for fut in self._waiting.values():
                if not fut.done():
                    fut.set_exception(ConnectionError("the bridge closed the connection"))
