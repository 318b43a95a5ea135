"""Wallet QR payments end to end: register → bridge → UCanPay simulator → display / printer."""

from __future__ import annotations

import asyncio
import io
import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
import zxingcpp
from cryptography.hazmat.primitives.asymmetric import rsa
from PIL import Image

from posbridge.client import EcrError

from .conftest import Bridge

pytestmark = pytest.mark.timeout(60)


def qr(order_no: str, amount: str = "8.50", **extra: Any) -> dict[str, Any]:
    return {"order_no": order_no, "amount": amount, "currency": "CAD", "subject": "Coffee",
            **extra}


def decode_png(data: bytes) -> str:
    image = Image.open(io.BytesIO(data))
    found = zxingcpp.read_barcodes(image)
    assert found, "no QR code found"
    return str(found[0].text)


def inner(deeplink: str) -> dict[str, list[str]]:
    outer = parse_qs(urlsplit(deeplink).query)
    return parse_qs(urlsplit(outer["link"][0]).query)


async def test_qr_sale_shows_a_scannable_qr_and_completes(bridge: Bridge) -> None:
    async with await bridge.register() as ecr:
        txn = await ecr.call("qr_sale", qr("Q1", display="lane-1", wait=False))
        assert txn["state"] == "in_progress" and txn["kind"] == "qr_sale"
        link = txn["qr"]["deeplink"]
        fields = inner(link)
        assert fields["ucpOrderNo"] == [txn["provider_ref"]]
        assert fields["amount"] == ["850"] and fields["item"] == ["Coffee"]
        async with aiohttp.ClientSession() as http:
            await asyncio.sleep(0.2)
            async with http.get(f"{bridge.http}/display/lane-1/qr.png") as resp:
                assert resp.status == 200
                assert decode_png(await resp.read()) == link
        await bridge.sims.ucanpay.scan_and_pay(txn["provider_ref"])
        final = await ecr.call("status", {"order_no": "Q1"})
        for _ in range(50):
            if final["state"] != "in_progress":
                break
            await asyncio.sleep(0.1)
            final = await ecr.call("status", {"order_no": "Q1"})
        assert final["state"] == "approved"


async def test_qr_cancel_closes_the_order(bridge: Bridge) -> None:
    async with await bridge.register() as ecr:
        await ecr.call("qr_sale", qr("Q2", wait=False))
        txn = await ecr.call("cancel", {"order_no": "Q2"})
    assert txn["state"] == "cancelled"
    assert bridge.sims.ucanpay.count("closeorder", "Q2") == 1


async def test_qr_timeout_expires_once_confirmed(make_bridge: Any) -> None:
    b: Bridge = await make_bridge(qr_timeout_s=2)
    async with await b.register() as ecr:
        txn = await ecr.call("qr_sale", qr("Q3"))
    assert txn["state"] == "expired"


async def test_qr_refunds_full_and_partial(bridge: Bridge) -> None:
    async with await bridge.manager() as ecr:
        txn = await ecr.call("qr_sale", qr("Q4", "10.00", wait=False))
        await bridge.sims.ucanpay.scan_and_pay(txn["provider_ref"])
        paid = await ecr.call("qr_sale", qr("Q4", "10.00"))
        assert paid["state"] == "approved"
        r1 = await ecr.call("refund", {"order_no": "Q4R1", "orig_order_no": "Q4",
                                       "amount": "3.00"})
        assert r1["state"] == "approved" and r1["kind"] == "qr_refund"
        with pytest.raises(EcrError) as err:
            await ecr.call("refund", {"order_no": "Q4R2", "orig_order_no": "Q4",
                                      "amount": "7.01"})
        assert err.value.code == 1006
        r2 = await ecr.call("refund", {"order_no": "Q4R3", "orig_order_no": "Q4",
                                       "amount": "7.00"})
        assert r2["state"] == "approved"
        with pytest.raises(EcrError) as err:
            await ecr.call("refund", {"order_no": "Q4_R4", "orig_order_no": "Q4",
                                      "amount": "0.01"})
        assert err.value.code in (-32602, 1006)
        orig = await ecr.call("status", {"order_no": "Q4"})
        assert orig["refunded_amount"] == "10.00"


@pytest.mark.parametrize(("params", "field"), [
    (qr("Q_5"), "order_no"),
    (qr("Q5", subject="x" * 31), "subject"),
    (qr("Q5", subject="a/b"), "subject"),
    (qr("Q5", subject="a=b"), "subject"),
    (qr("Q5", subject="a&b"), "subject"),
    (qr("Q5", body="a&b"), "body"),
    (qr("Q5", amount="1.001"), "amount"),
])
async def test_bad_qr_requests_are_refused_naming_the_field(
        bridge: Bridge, params: dict[str, Any], field: str) -> None:
    async with await bridge.register() as ecr:
        with pytest.raises(EcrError) as err:
            await ecr.call("qr_sale", params)
    assert err.value.code == -32602
    assert err.value.data["field"] == field


async def test_forged_ucanpay_notification_is_rejected(bridge: Bridge) -> None:
    async with await bridge.register() as ecr:
        txn = await ecr.call("qr_sale", qr("Q6", wait=False))
        other = rsa.generate_private_key(public_exponent=65537, key_size=1024)
        data = {"outTradeNo": "Q6", "ucpOrderNo": txn["provider_ref"], "totalAmt": 850,
                "tradeStatus": "SUCCESS", "currency": "CAD"}
        from posbridge.providers.ucanpay.signing import sign, string_a

        forged = {**data, "sign": sign(string_a(data), other)}
        body = {"code": 0, "msg": "OK", "data": forged, "timestamp": 1}
        async with aiohttp.ClientSession() as http, http.post(
                f"{bridge.http}/notify/ucanpay", json=body) as resp:
            answer = json.loads(await resp.text())
        assert answer["return_code"] == "FAIL"
        assert (await ecr.call("status", {"order_no": "Q6"}))["state"] == "in_progress"


async def test_lost_order_answer_then_a_clear_query_carries_on(make_bridge: Any) -> None:
    b: Bridge = await make_bridge(ucanpay={"timeout_s": 1.0})
    sim = b.sims.ucanpay
    sim.drop_next_response("unifiedorder")
    async with await b.register() as ecr:
        txn = await ecr.call("qr_sale", qr("QL1", wait=False))
        for _ in range(100):  # the create times out (1 s), then orderquery finds the order
            txn = await ecr.call("status", {"order_no": "QL1"})
            if txn["state"] == "in_progress" and txn["qr"]["deeplink"]:
                break
            await asyncio.sleep(0.05)
        assert txn["state"] == "in_progress"
        assert inner(txn["qr"]["deeplink"])["ucpOrderNo"] == [txn["provider_ref"]]
        await sim.scan_and_pay(txn["provider_ref"])
        for _ in range(100):
            txn = await ecr.call("status", {"order_no": "QL1"})
            if txn["state"] == "approved":
                break
            await asyncio.sleep(0.05)
    assert txn["state"] == "approved"
    assert sim.count("unifiedorder", "QL1") == 1 and sim.count("reverse", "QL1") == 0


@pytest.mark.timeout(60)
async def test_lost_order_answer_and_no_clear_query_is_reversed_after_15s(
        make_bridge: Any) -> None:
    b: Bridge = await make_bridge(ucanpay={"timeout_s": 1.0, "poll_interval_s": 1.0})
    sim = b.sims.ucanpay
    sim.drop_next_response("unifiedorder")
    for _ in range(200):  # every orderquery goes unanswered
        sim.drop_next_response("orderquery")
    async with await b.register() as ecr:
        txn = await ecr.call("qr_sale", qr("QL2", timeout_s=40))
    assert txn["state"] == "cancelled", txn
    assert txn["error"]["code"] == "reversed"
    assert sim.count("unifiedorder", "QL2") == 1
    assert sim.count("reverse", "QL2") == 1
    assert sim.order("QL2").status == "REVOKED"


async def test_a_provider_refusal_is_1008_with_its_code(bridge: Bridge) -> None:
    # INVALID_REQUEST: unifiedorder's "参数错误", a final refusal. (ORDERPAID on a create is
    # not one: the order exists, so the bridge queries it instead.)
    bridge.sims.ucanpay.fail_next("unifiedorder", "INVALID_REQUEST")
    async with await bridge.register() as ecr:
        with pytest.raises(EcrError) as err:
            await ecr.call("qr_sale", qr("QR8"))
        assert err.value.code == 1008
        assert err.value.data["provider_code"] == "INVALID_REQUEST"
        txn = await ecr.call("status", {"order_no": "QR8"})
    assert txn["state"] == "failed" and txn["error"]["provider_code"] == "INVALID_REQUEST"


async def test_orderpaid_on_a_create_is_queried_not_failed(bridge: Bridge) -> None:
    """ORDERPAID answers a create only when the number exists: the bridge asks, and carries
    on with what the provider says (here: no such order, so the create is sent again)."""
    sim = bridge.sims.ucanpay
    sim.fail_next("unifiedorder", "ORDERPAID")
    async with await bridge.register() as ecr:
        txn = await ecr.call("qr_sale", qr("QR9", wait=False))
        for _ in range(100):
            if txn["state"] == "in_progress" and txn["qr"]["deeplink"]:
                break
            await asyncio.sleep(0.05)
            txn = await ecr.call("status", {"order_no": "QR9"})
        assert txn["state"] == "in_progress", txn
        await sim.scan_and_pay(txn["provider_ref"])
        for _ in range(100):
            txn = await ecr.call("status", {"order_no": "QR9"})
            if txn["state"] == "approved":
                break
            await asyncio.sleep(0.05)
    assert txn["state"] == "approved"
    assert sim.count("unifiedorder", "QR9") == 2 and sim.count("orderquery", "QR9") >= 1


@pytest.mark.parametrize(("params", "code", "field"), [
    ({"display": "nope"}, 1003, "display"),  # a QR shown nowhere would just time out
    ({"currency": "USD"}, -32602, "currency"),  # UCanPay is configured for CAD here
])
async def test_a_qr_sale_the_lane_cannot_show_or_take_is_refused(
        bridge: Bridge, params: dict[str, Any], code: int, field: str) -> None:
    async with await bridge.register() as ecr:
        with pytest.raises(EcrError) as err:
            await ecr.call("qr_sale", {**qr("QX1"), **params})
        assert (err.value.code, err.value.data["field"]) == (code, field)
        with pytest.raises(EcrError) as missing:
            await ecr.call("status", {"order_no": "QX1"})  # nothing was recorded
    assert missing.value.code == 1005
    assert bridge.sims.ucanpay.count("unifiedorder") == 0


async def test_void_and_refund_take_wait_false(bridge: Bridge) -> None:
    async with await bridge.manager() as ecr:
        txn = await ecr.call("qr_sale", qr("QW1", "4.00", wait=False))
        await bridge.sims.ucanpay.scan_and_pay(txn["provider_ref"])
        for _ in range(100):
            if (await ecr.call("status", {"order_no": "QW1"}))["state"] == "approved":
                break
            await asyncio.sleep(0.05)
        started = await ecr.call("refund", {"order_no": "QW1R", "orig_order_no": "QW1",
                                            "amount": "1.00", "wait": False})
        assert started["state"] in ("pending", "in_progress", "approved")
        final = await ecr.call("refund", {"order_no": "QW1R", "orig_order_no": "QW1",
                                          "amount": "1.00", "timeout_s": 10})
    assert final["state"] == "approved" and final["order_no"] == "QW1R"
