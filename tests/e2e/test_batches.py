"""End of day over real sockets: batch totals, close at the provider, discrepancies, resume."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from posbridge.client import EcrError
from posbridge.daemon import Daemon

from .conftest import PIN, Bridge, bridge_config

#: The batch lines protocol 1.1 added, with nothing in them.
NONE_OF_1_1 = {"preauths": "0.00", "completions": "0.00", "cashback": "0.00",
               "tip_adjustments": "0.00"}

pytestmark = pytest.mark.timeout(90)


def sale(order_no: str, amount: str, terminal: str = "lane-1", currency: str = "USD",
         **extra: Any) -> dict[str, Any]:
    return {"terminal": terminal, "order_no": order_no, "amount": amount,
            "currency": currency, **extra}


async def test_totals_are_exact_per_terminal_and_currency(bridge: Bridge) -> None:
    async with await bridge.manager() as ecr:
        await ecr.call("sale", sale("S1", "10.00", tip="1.00"))
        await ecr.call("sale", sale("S2", "20.00"))
        await ecr.call("sale", sale("S3", "12.05"))  # declined: not counted
        await ecr.call("sale", sale("S4", "7.00", currency="EUR"))
        await ecr.call("sale", sale("S5", "5.00", terminal="lane-2"))
        await ecr.call("void", {"order_no": "S2V", "orig_order_no": "S2"})
        await ecr.call("refund", {"order_no": "S1R", "orig_order_no": "S1", "amount": "2.50"})
        qr = await ecr.call("qr_sale", {"order_no": "Q1", "amount": "8.00", "currency": "CAD",
                                        "subject": "Tea", "terminal": "lane-1", "wait": False})
        await bridge.sims.ucanpay.scan_and_pay(qr["provider_ref"])
        for _ in range(50):
            if (await ecr.call("status", {"order_no": "Q1"}))["state"] == "approved":
                break
            await asyncio.sleep(0.1)
        [lane1] = await ecr.call("batch.status", {"terminal": "lane-1"})
        [lane2] = await ecr.call("batch.status", {"terminal": "lane-2"})
    assert lane1["state"] == "open" and lane1["batch_no"] == 1
    assert lane1["totals"]["USD"] == {"count": 4, "sales": "30.00", "tips": "1.00",
                                      "refunds": "2.50", "voids": "20.00", "net": "8.50",
                                      **NONE_OF_1_1}
    assert lane1["totals"]["EUR"]["net"] == "7.00"
    assert lane1["totals"]["CAD"] == {"count": 1, "sales": "8.00", "tips": "0.00",
                                      "refunds": "0.00", "voids": "0.00", "net": "8.00",
                                      **NONE_OF_1_1}
    assert lane1["count"] == 6
    assert lane2["totals"] == {"USD": {"count": 1, "sales": "5.00", "tips": "0.00",
                                       "refunds": "0.00", "voids": "0.00", "net": "5.00",
                                       **NONE_OF_1_1}}


async def test_close_opens_a_new_batch_and_refuses_voids_of_the_old(bridge: Bridge) -> None:
    async with await bridge.register() as ecr:
        await ecr.call("sale", sale("C1", "10.00"))
        with pytest.raises(EcrError) as err:
            await ecr.call("batch.close", {"terminal": "lane-1"})
        assert err.value.code == 1002
        closed = await ecr.call("batch.close", {"terminal": "lane-1", "manager_pin": PIN})
        assert closed["state"] == "closed" and closed["batch_no"] == 1
        assert closed["discrepancy"] == {}
        assert closed["totals"]["USD"]["net"] == "10.00"
        note = await _next_of(ecr, "batch.closed")
        assert note["params"]["batch"]["batch_no"] == 1
        [open_] = await ecr.call("batch.status", {"terminal": "lane-1"})
        assert open_["batch_no"] == 2 and open_["count"] == 0
        with pytest.raises(EcrError) as err:
            await ecr.call("void", {"order_no": "C1V", "orig_order_no": "C1",
                                    "manager_pin": PIN})
        assert err.value.code == 1010
        refund = await ecr.call("refund", {"order_no": "C1R", "orig_order_no": "C1",
                                           "amount": "1.00", "manager_pin": PIN})
        assert refund["state"] == "approved" and refund["batch_no"] == 2
    closes = bridge.sims.codepay.batch_closes
    assert closes == ["SANDBOX0000000001"]


async def test_a_discrepancy_is_reported(bridge: Bridge) -> None:
    async with await bridge.manager() as ecr:
        await ecr.call("sale", sale("X1", "10.00"))
        bridge.sims.codepay.adjust_open_batch("SANDBOX0000000001", "USD", 100)
        closed = await ecr.call("batch.close", {"terminal": "lane-1"})
    assert closed["discrepancy"]["total_amount"] == {"bridge": "10.00", "provider": "11.00",
                                                     "currency": "USD"}


async def test_a_close_interrupted_after_sending_resumes_without_closing_twice(
        tmp_path: Any, keys: Any, sims: Any) -> None:
    cfg = bridge_config(tmp_path / "b", keys, sims)
    first = Daemon(cfg)
    await first.start()
    async with await _connect(first) as ecr:
        await ecr.call("sale", sale("R1", "10.00"))
    # the first three steps of a close happen, then the daemon "crashes" before recording
    from posbridge.batches import _begin_close, _mark_sent
    from posbridge.journal import now_ms

    batch = await first.journal.run(
        lambda tx: _begin_close(tx, "SANDBOX0000000001", now_ms(), "codepay"))
    await first.journal.run(lambda tx: _mark_sent(tx, batch, {}))
    provider: Any = first.providers["codepay"]
    await provider.batch_close("SANDBOX0000000001")
    await first.stop(grace_s=1)

    second = Daemon(cfg)
    await second.start()
    try:
        async with await _connect(second) as ecr:
            for _ in range(50):
                history = await second.batches.history("lane-1")
                if history[-1]["state"] == "closed":
                    break
                await asyncio.sleep(0.1)
            assert [b["state"] for b in history] == ["open", "closed"]
            [open_] = await ecr.call("batch.status", {"terminal": "lane-1"})
            assert open_["batch_no"] == 2
    finally:
        await second.stop(grace_s=1)
    assert sims.codepay.batch_closes == ["SANDBOX0000000001"]


async def test_a_close_interrupted_before_sending_is_sent_once(
        tmp_path: Any, keys: Any, sims: Any) -> None:
    cfg = bridge_config(tmp_path / "b", keys, sims)
    first = Daemon(cfg)
    await first.start()
    async with await _connect(first) as ecr:
        await ecr.call("sale", sale("R2", "10.00"))
    from posbridge.batches import _begin_close
    from posbridge.journal import now_ms

    await first.journal.run(
        lambda tx: _begin_close(tx, "SANDBOX0000000001", now_ms(), "codepay"))
    await first.stop(grace_s=1)
    second = Daemon(cfg)
    await second.start()
    try:
        for _ in range(50):
            history = await second.batches.history("lane-1")
            if history[-1]["state"] == "closed":
                break
            await asyncio.sleep(0.1)
        assert history[-1]["state"] == "closed"
        from posbridge.audit_log import all_records

        [record] = await second.journal.read(lambda r: list(all_records(r.conn)))
        assert (record.actor, record.action, record.outcome, record.detail["resumed"]) == (
            "system", "batch.close", "ok", True)  # the bridge finished it: its own record
    finally:
        await second.stop(grace_s=1)
    assert sims.codepay.batch_closes == ["SANDBOX0000000001"]


async def _connect(daemon: Daemon) -> Any:
    from posbridge.client import EcrClient

    from .conftest import MANAGER_TOKEN

    return await EcrClient.connect(f"ws://127.0.0.1:{daemon.ecr_port}/ecr", MANAGER_TOKEN)


async def _next_of(ecr: Any, method: str) -> dict[str, Any]:
    while True:
        note = await ecr.next_notification(5)
        if note["method"] == method:
            return dict(note)


async def test_close_goes_ahead_when_the_open_batch_figures_are_unavailable(
        make_bridge: Any) -> None:
    """The gateway does not know the configured "Get Open Batch" method: the close still
    happens (once) and the report says the totals could not be checked."""
    b = await make_bridge(codepay={"open_batch_method": "no.such.method"})
    async with await b.manager() as ecr:
        await ecr.call("sale", sale("OB1", "10.00"))
        closed = await ecr.call("batch.close", {"terminal": "lane-1"})
    assert closed["state"] == "closed"
    assert "unavailable" in str(closed["discrepancy"]["provider"])
    assert b.sims.codepay.batch_closes == ["SANDBOX0000000001"]
