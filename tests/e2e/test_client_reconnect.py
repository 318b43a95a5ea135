"""The Python register client across a dropped connection: it reconnects with back-off,
replays what it missed with ``events.replay`` and delivers every notification once, in order.

The connection is dropped for real: the client talks to the bridge through a TCP relay on
127.0.0.1 that the test cuts and, for a while, refuses to relay.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from posbridge.client import ConnectionLost, EcrClient, Notification

from .conftest import TOKEN, Bridge

pytestmark = pytest.mark.timeout(60)


class Relay:
    """A TCP relay to ``port``; :meth:`cut` drops every connection, ``refusing`` closes new
    ones at once."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.refusing = False
        self._pipes: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"ws://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/ecr"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refusing:
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.port)
        pipes = [asyncio.create_task(_pump(reader, up_writer)),
                 asyncio.create_task(_pump(up_reader, writer))]
        self._pipes.update(pipes)
        await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        for task in pipes:
            task.cancel()
            self._pipes.discard(task)
        for w in (writer, up_writer):
            w.close()

    def cut(self) -> None:
        for task in list(self._pipes):
            task.cancel()

    async def stop(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()


@pytest.fixture
async def relay(bridge: Bridge) -> AsyncIterator[Relay]:
    r = Relay(bridge.daemon.ecr_port)
    await r.start()
    yield r
    await r.stop()


async def _until(ecr: EcrClient, order_no: str, state: str) -> None:
    for _ in range(300):  # bounded: the simulated terminal approves within seconds
        if (await ecr.status(order_no))["state"] == state:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{order_no} never became {state}")


async def test_a_dropped_connection_is_replayed_once_in_order(
        bridge: Bridge, relay: Relay) -> None:
    url = relay.url
    seen: list[Notification] = []
    async with await EcrClient.connect(url, TOKEN, reconnect=True, last_seq=0,
                                       backoff_s=(0.05, 0.2)) as ecr, \
            await bridge.register() as direct:
        # ".45": the simulated card holder is slow, so the sale ends while we are away
        txn = await ecr.sale(terminal="lane-1", order_no="RC1", amount="10.45",
                             currency="USD", wait=False)
        assert txn["state"] in ("pending", "in_progress")
        seen.append(await ecr.next_notification())
        relay.refusing = True
        relay.cut()
        await _until(direct, "RC1", "approved")  # meanwhile, without our client
        waiting = asyncio.create_task(ecr.status("RC1"))  # waits for the reconnect
        relay.refusing = False
        for _ in range(50):  # bounded: every event of RC1 arrives
            note = await ecr.next_notification(timeout=20)
            seen.append(note)
            if note["method"] == "transaction.updated" and \
                    note["params"]["transaction"]["state"] == "approved":
                break
        assert (await waiting)["state"] == "approved"
        assert ecr.reconnects >= 1
    seqs = [n["params"]["seq"] for n in seen]
    assert seqs == sorted(set(seqs)), "each event once, in order"
    states = [n["params"]["transaction"]["state"] for n in seen
              if n["method"] == "transaction.updated"]
    assert states[-1] == "approved" and states.count("approved") == 1


async def test_without_reconnect_a_call_fails_when_the_connection_goes(
        bridge: Bridge, relay: Relay) -> None:
    ecr = await EcrClient.connect(relay.url, TOKEN)
    try:
        await ecr.ping()
        relay.cut()
        for _ in range(100):  # bounded: the close reaches the client at once
            if not ecr.connected:
                break
            await asyncio.sleep(0.02)
        with pytest.raises(ConnectionLost):
            await ecr.ping()
    finally:
        await ecr.close()
