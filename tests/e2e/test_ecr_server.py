"""The ECR server over real sockets: authentication, malformed input, isolation."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from posbridge.client import EcrClient

from .conftest import TOKEN, Bridge

pytestmark = pytest.mark.timeout(60)


async def raw(bridge: Bridge, frame: str | bytes) -> dict[str, Any]:
    async with connect(bridge.url, additional_headers={"Authorization": f"Bearer {TOKEN}"},
                       max_size=2**21) as ws:
        await ws.send(frame)
        return dict(json.loads(await asyncio.wait_for(ws.recv(), 5)))


def call(method: str, params: Any = None, id: Any = 1) -> str:
    frame: dict[str, Any] = {"jsonrpc": "2.0", "id": id, "method": method}
    if params is not None:
        frame["params"] = params
    return json.dumps(frame)


SALE = {"terminal": "lane-1", "order_no": "M1", "amount": "1.00", "currency": "USD"}


@pytest.mark.parametrize(
    ("frame", "code", "field"),
    [
        ("{not json", -32700, None),
        (b"\xff\xfe", -32700, None),
        ('{"a":1,"a":2}', -32700, None),
        ("[" + call("ping") + "]", -32600, None),
        ('{"jsonrpc":"1.0","id":1,"method":"ping"}', -32600, None),
        ('{"jsonrpc":"2.0","id":1,"method":5}', -32600, None),
        ('{"jsonrpc":"2.0","id":{"x":1},"method":"ping"}', -32600, None),
        (call("no.such.method"), -32601, None),
        (call("sale", [1, 2]), -32602, "params"),
        (call("sale", {**SALE, "amount": 1.0}), -32602, "amount"),
        (call("sale", {**SALE, "amount": "1.001"}), -32602, "amount"),
        (call("sale", {**SALE, "amount": "0.00"}), -32602, "amount"),
        (call("sale", {**SALE, "amount": "-1.00"}), -32602, "amount"),
        (call("sale", {**SALE, "amount": "10000.01"}), -32602, "amount"),
        (call("sale", {**SALE, "currency": "usd"}), -32602, "currency"),
        (call("sale", {**SALE, "currency": "XXX"}), -32602, "currency"),
        (call("sale", {**SALE, "order_no": "bad order!"}), -32602, "order_no"),
        (call("sale", {**SALE, "order_no": "x" * 33}), -32602, "order_no"),
        (call("sale", {**SALE, "surprise": 1}), -32602, "surprise"),
        (call("sale", {**SALE, "wait": "yes"}), -32602, "wait"),
        (call("sale", {**SALE, "terminal": "nowhere"}), 1003, "terminal"),
        (call("status", {"order_no": "NEVER"}), 1005, "order_no"),
        (call("void", {"order_no": "V9", "orig_order_no": "X"}), 1002, "manager_pin"),
        (call("transactions.list", {"cursor": "garbage"}), -32602, "cursor"),
        (call("qr_sale", {"order_no": "Q_1", "amount": "1.00", "currency": "CAD",
                          "subject": "x"}), -32602, "order_no"),
    ],
)
async def test_malformed_input_gets_the_right_error(
        bridge: Bridge, frame: str | bytes, code: int, field: str | None) -> None:
    answer = await raw(bridge, frame)
    assert answer["error"]["code"] == code, answer
    assert answer["error"]["data"]["reason"]
    if field is not None:
        assert answer["error"]["data"].get("field") == field, answer
    # ... and the daemon still serves everyone else
    async with await bridge.register() as ecr:
        assert "time" in await ecr.call("ping")


async def test_oversized_frame_closes_with_1009(bridge: Bridge) -> None:
    async with connect(bridge.url, additional_headers={"Authorization": f"Bearer {TOKEN}"},
                       max_size=2**21) as ws:
        await ws.send("x" * (64 * 1024 + 1))
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


async def test_wrong_header_is_refused_at_the_upgrade(bridge: Bridge) -> None:
    for header in (f"Bearer {TOKEN}x", TOKEN, f"Basic {TOKEN}"):
        with pytest.raises(InvalidStatus) as err:
            async with connect(bridge.url, additional_headers={"Authorization": header}):
                pass
        assert err.value.response.status_code == 401


async def test_auth_by_message_and_nothing_before_it(bridge: Bridge) -> None:
    async with await bridge.register(header=False) as ecr:
        assert "time" in await ecr.call("ping")
    async with connect(bridge.url) as ws:
        await ws.send(call("sale", SALE))
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)  # no answer, only the close
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
    async with connect(bridge.url) as ws:
        await ws.send(call("auth", {"token": "wrong"}))
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401


async def test_silent_connection_is_closed_after_5s(bridge: Bridge) -> None:
    started = time.monotonic()
    async with connect(bridge.url) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
    assert 4.5 <= time.monotonic() - started < 8


async def test_unknown_path_is_404(bridge: Bridge) -> None:
    with pytest.raises(InvalidStatus) as err:
        async with connect(bridge.url.replace("/ecr", "/other"),
                           additional_headers={"Authorization": f"Bearer {TOKEN}"}):
            pass
    assert err.value.response.status_code == 404


async def test_a_waiting_sale_does_not_block_the_connection(bridge: Bridge) -> None:
    async with await bridge.register() as ecr:
        slow = asyncio.create_task(ecr.call("sale", {**SALE, "order_no": "W1",
                                                     "amount": "12.45"}))
        await asyncio.sleep(0.1)
        pong = await asyncio.wait_for(ecr.call("ping"), 2)
        assert "time" in pong
        assert not slow.done()
        assert (await slow)["state"] == "approved"


async def test_notifications_go_to_the_identity_that_started_it(bridge: Bridge) -> None:
    async with await bridge.register() as lane, await bridge.manager() as office:
        await lane.call("sale", {**SALE, "order_no": "ID1"})
        note = await lane.next_notification(5)
        assert note["method"] == "transaction.updated" and note["params"]["seq"] >= 1
        seen = []
        with contextlib.suppress(asyncio.TimeoutError):
            for _ in range(10):
                seen.append((await office.next_notification(0.5))["method"])
    # terminal.status goes to every connection; transaction events only to their identity
    assert "transaction.updated" not in seen


async def test_terminals_list(bridge: Bridge) -> None:
    async with await bridge.register() as ecr:
        terms = await ecr.call("terminals.list")
    assert {t["name"] for t in terms} == {"lane-1", "lane-2"}
    assert all(t["provider"] == "codepay" for t in terms)


async def test_transactions_list_filters_and_pages(bridge: Bridge) -> None:
    async with await bridge.register() as ecr:
        for i in range(5):
            await ecr.call("sale", {**SALE, "order_no": f"TL{i}",
                                    "amount": "12.05" if i == 2 else "1.00"})
        page = await ecr.call("transactions.list", {"limit": 2})
        assert [t["order_no"] for t in page["items"]] == ["TL4", "TL3"]
        rest = await ecr.call("transactions.list", {"limit": 10, "cursor": page["next_cursor"]})
        assert [t["order_no"] for t in rest["items"]] == ["TL2", "TL1", "TL0"]
        assert rest["next_cursor"] is None
        declined = await ecr.call("transactions.list", {"state": "declined"})
        assert [t["order_no"] for t in declined["items"]] == ["TL2"]


async def test_client_helper_raises_on_closed(bridge: Bridge) -> None:
    ecr = await EcrClient.connect(bridge.url, TOKEN)
    await ecr.close()
    with pytest.raises((ConnectionClosed, ConnectionError)):
        await ecr.call("ping", timeout=2)


async def test_more_than_32_requests_in_flight_are_rate_limited(bridge: Bridge) -> None:
    async with connect(bridge.url, additional_headers={"Authorization": f"Bearer {TOKEN}"},
                       max_size=2**21) as ws:
        for i in range(40):  # .45: slow approval, so they all wait at once
            await ws.send(call("sale", {**SALE, "order_no": f"RL{i}", "amount": "1.45"}, id=i))
        answers: list[dict[str, Any]] = []
        for _ in range(400):  # bounded: answers and transaction.updated notifications
            msg = json.loads(await asyncio.wait_for(ws.recv(), 15))
            if "id" in msg:
                answers.append(msg)
            if len(answers) == 40:
                break
    limited = [a for a in answers if "error" in a]
    assert len(limited) == 8, limited
    assert {a["error"]["code"] for a in limited} == {1009}
    assert {a["result"]["state"] for a in answers if "result" in a} == {"approved"}


async def test_auth_again_with_a_wrong_token_closes_the_connection(bridge: Bridge) -> None:
    async with connect(bridge.url, additional_headers={"Authorization": f"Bearer {TOKEN}"}) as ws:
        await ws.send(call("auth", {"token": TOKEN}, id=1))
        again = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert again["result"]["name"] == "lane-1"
        await ws.send(call("auth", {"token": "wrong"}, id=2))
        await ws.wait_closed()
    assert ws.close_code == 4401
