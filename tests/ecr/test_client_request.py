"""The register client's request bookkeeping when the connection goes mid-send."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from posbridge.client import ConnectionLost, EcrClient


class _ClosingConnection:
    """A connection whose close the client's reader notices while a frame is being sent:
    the reader fails the waiting request, then the send itself fails."""

    def __init__(self, client: EcrClient) -> None:
        self.client = client

    async def send(self, _frame: str) -> None:
        await asyncio.sleep(0)
        self.client._fail_waiting(ConnectionLost("the connection to the bridge was lost"))
        raise ConnectionClosed(None, None)


async def test_a_request_lost_while_sending_fails_once_and_leaves_nothing_unretrieved() -> None:
    reported: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    try:
        client = EcrClient("ws://127.0.0.1:9/ecr", "a-token", header=True, open_timeout=1.0,
                           reconnect=False, last_seq=None, backoff_s=(0.1, 1.0))
        with pytest.raises(ConnectionLost):
            await client._request(_ClosingConnection(client), "ping", None)
        gc.collect()
        await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(None)
    assert [c.get("message") for c in reported] == []
