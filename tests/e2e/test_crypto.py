"""Crypto payments end to end: register → bridge → the crypto platform's simulator → display,
printer and batch. The simulator decides by the amount's hundredths (see
posbridge.sandbox.opay_sim.BEHAVIOURS); ``.00`` waits for the customer."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
import zxingcpp
from cryptography.hazmat.primitives.asymmetric import rsa
from PIL import Image

from posbridge.client import EcrClient, EcrError
from posbridge.providers.opay.envelope import DEFAULT_SUITE, seal
from posbridge.sandbox.opay_sim import OPaySimulator

from .conftest import Bridge
from .events import txn_states

pytestmark = pytest.mark.timeout(60)

PAYER = {"open_id": "2ae04ed9165624419bad68e9e0f3f29fbd"}


def crypto(order_no: str, amount: str = "12.00", coin: str = "USDT",
           **extra: Any) -> dict[str, Any]:
    return {"order_no": order_no, "amount": amount, "coin": coin, "payer": PAYER,
            "subject": "Latte", **extra}


async def until_state(ecr: EcrClient, order_no: str, states: set[str],
                      rounds: int = 200) -> dict[str, Any]:
    txn: dict[str, Any] = await ecr.call("status", {"order_no": order_no})
    for _ in range(rounds):
        if txn["state"] in states:
            return txn
        await asyncio.sleep(0.05)
        txn = await ecr.call("status", {"order_no": order_no})
    raise AssertionError(f"{order_no} stayed {txn['state']}")


def sent_callbacks(sim: OPaySimulator, order_no: str) -> list[Any]:
    """The callbacks the platform has sent for ``order_no``, with the answers it got."""
    return [c for c in sim.callbacks if c[1]["outOrderId"] == order_no]


async def callbacks_of(sim: OPaySimulator, order_no: str) -> list[Any]:
    """:func:`sent_callbacks` once there is one: the register is answered as soon as the
    result is committed, the callback once it is durable, a moment later (bounded: 10 s)."""
    for _ in range(200):
        if sent := sent_callbacks(sim, order_no):
            return sent
        await asyncio.sleep(0.05)
    return []


def sim_of(bridge: Bridge) -> OPaySimulator:
    sim: OPaySimulator = bridge.sims.opay
    return sim


def decode_png(data: bytes) -> str:
    found = zxingcpp.read_barcodes(Image.open(io.BytesIO(data)))
    assert found, "no QR code found"
    return str(found[0].text)


async def test_a_crypto_sale_shows_the_pay_page_and_is_paid(bridge: Bridge) -> None:
    sim = sim_of(bridge)
    async with await bridge.register() as ecr:
        txn = await ecr.call("crypto_sale", crypto("C1", display="lane-1", wait=False))
        assert (txn["kind"], txn["provider"], txn["currency"]) == (
            "crypto_sale", "opay", "USDT")
        assert (txn["amount"], txn["state"], txn["subject"]) == (
            "12.000000", "in_progress", "Latte")
        link = txn["qr"]["deeplink"]
        url = urlsplit(link)
        assert f"{url.scheme}://{url.netloc}{url.path}" == f"{sim.url}/platform/pay.html"
        assert parse_qs(url.query) == {"appKey": [sim.app_id], "orderNum": [txn["provider_ref"]],
                                       "openId": [PAYER["open_id"]]}
        assert txn["terminal"] == "SANDBOX0000000001"  # the lane of the display
        async with aiohttp.ClientSession() as http:
            await asyncio.sleep(0.2)
            async with http.get(f"{bridge.http}/display/lane-1/qr.png") as resp:
                assert resp.status == 200
                assert decode_png(await resp.read()) == link
        await bridge.sims.pay("opay", txn["provider_ref"])  # the display's sandbox button
        final = await until_state(ecr, "C1", {"approved"})
    assert final["batch_no"] == 1 and sim.count("createThirdOrder", "C1") == 1


@pytest.mark.parametrize(("amount", "state", "callbacks"), [
    ("12.35", "approved", True),    # the result by callback only (queries say pending)
    ("12.40", "approved", False),   # by polling only (no callback)
    ("12.05", "declined", True),    # the payment failed
    ("12.10", "cancelled", True),   # the platform closed the order itself
])
async def test_the_result_comes_by_callback_or_by_polling(
        bridge: Bridge, amount: str, state: str, callbacks: bool) -> None:
    sim = sim_of(bridge)
    async with await bridge.register() as ecr:
        txn = await ecr.call("crypto_sale", crypto("C2", amount))
    assert txn["state"] == state, txn
    sent = await callbacks_of(sim, "C2") if callbacks else sent_callbacks(sim, "C2")
    assert bool(sent) is callbacks
    assert sim.count("createThirdOrder", "C2") == 1


async def test_cancel_while_pending_cancels_the_order(bridge: Bridge) -> None:
    sim = sim_of(bridge)
    async with await bridge.register() as ecr:
        await ecr.call("crypto_sale", crypto("C3", wait=False))
        txn = await ecr.call("cancel", {"order_no": "C3"})
    assert txn["state"] == "cancelled"
    assert sim.count("cancelOrder") == 1 and sim.order("C3").status == "0"


async def test_a_lost_create_answer_is_never_followed_by_a_second_create(
        make_bridge: Any) -> None:
    """.20: the platform makes the order but its answer is lost. Only ``orderNum`` addresses
    an order, so the bridge can neither ask about it nor close it: the sale is unknown until
    the customer pays and the callback (with the orderNum) settles it."""
    b: Bridge = await make_bridge(opay={"lost_order_settle_s": 3600})
    sim = sim_of(b)
    async with await b.register() as ecr:
        txn = await ecr.call("crypto_sale", crypto("C4", "12.20", wait=False))
        txn = await until_state(ecr, "C4", {"unknown"})
        assert txn["qr"] is None and txn["provider_ref"] is None
        sim.pay("C4")
        final = await until_state(ecr, "C4", {"approved"})
        assert final["provider_ref"] == sim.order("C4").order_num
        events = await ecr.call("events.replay", {"since_seq": 0})
    assert sim.count("createThirdOrder", "C4") == 1
    assert sim.count("cancelOrder") == 0
    assert txn_states(events, "C4") == ["pending", "unknown", "approved"]


async def test_duplicate_and_out_of_order_callbacks_change_nothing(bridge: Bridge) -> None:
    sim = sim_of(bridge)
    async with await bridge.register() as ecr:
        txn = await ecr.call("crypto_sale", crypto("C5", "12.25"))
        assert txn["state"] == "approved"
        for _ in range(100):  # the late "pending" callback arrives too
            if len(sent_callbacks(sim, "C5")) >= 3:
                break
            await asyncio.sleep(0.05)
        again = await ecr.call("status", {"order_no": "C5"})
        events = await ecr.call("events.replay", {"since_seq": 0})
    assert again["state"] == "approved"
    assert txn_states(events, "C5").count("approved") == 1
    assert {c[1]["orderStatus"] for c in sent_callbacks(sim, "C5")} == {"1", "3"}


def _callback(sim: OPaySimulator, params: dict[str, str], *,
              key: rsa.RSAPrivateKey | None = None) -> dict[str, str]:
    return seal(params, app_id=sim.app_id, now_ms=1_700_000_000_000,
                receiver_key=sim._merchant_public_key,  # the merchant's public key
                sender_key=key or sim._platform_key, suite=DEFAULT_SUITE)


async def test_forged_tampered_and_wrong_callbacks_are_refused(bridge: Bridge) -> None:
    sim = sim_of(bridge)
    async with await bridge.register() as ecr:
        txn = await ecr.call("crypto_sale", crypto("C6", wait=False))
        good = {"outOrderId": "C6", "orderNum": txn["provider_ref"], "orderStatus": "3",
                "payAmount": "12.000000", "returnUrl": "https://x.example/"}
        stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        tampered = _callback(sim, good)
        cipher = tampered["data"]
        tampered["data"] = cipher[:40] + ("A" if cipher[40] != "A" else "B") + cipher[41:]
        bodies = {
            "wrong key": _callback(sim, good, key=stranger),
            "tampered ciphertext": tampered,
            "wrong amount": _callback(sim, {**good, "payAmount": "1.000000"}),
            "unknown order": _callback(sim, {**good, "outOrderId": "NOPE1"}),
            "not json": {"data": "x"},
        }
        async with aiohttp.ClientSession() as http:
            for why, body in bodies.items():
                async with http.post(f"{bridge.http}/notify/opay", json=body) as resp:
                    answer = await resp.text()
                assert "success" not in answer, why
        assert (await ecr.call("status", {"order_no": "C6"}))["state"] == "in_progress"
        async with aiohttp.ClientSession() as http, http.post(
                f"{bridge.http}/notify/opay", json=_callback(sim, good)) as resp:
            assert (await resp.text()).strip() == "success"  # the real one is taken
        assert (await ecr.call("status", {"order_no": "C6"}))["state"] == "approved"


async def test_a_crypto_sale_cannot_be_refunded_or_voided(bridge: Bridge) -> None:
    async with await bridge.manager() as ecr:
        txn = await ecr.call("crypto_sale", crypto("C7", "12.45"))
        assert txn["state"] == "approved"
        for method, params in (("refund", {"amount": "1"}), ("void", {})):
            with pytest.raises(EcrError) as refused:
                await ecr.call(method, {"order_no": f"C7{method}", "orig_order_no": "C7",
                                        **params})
            assert (refused.value.code, refused.value.data["field"]) == (1010,
                                                                          "orig_order_no")
            assert "no refund" in refused.value.message
            with pytest.raises(EcrError) as missing:
                await ecr.call("status", {"order_no": f"C7{method}"})
            assert missing.value.code == 1005


@pytest.mark.parametrize(("params", "code", "field"), [
    ({"coin": "DOGE"}, -32602, "coin"),
    ({"amount": "1.0000001"}, -32602, "amount"),  # USDT has 6 decimals here
    ({"amount": "0.000000001", "coin": "BTC"}, -32602, "amount"),
    ({"payer": {"uid": "1"}}, -32602, "payer"),
    ({"display": "nope"}, 1003, "display"),
])
async def test_bad_crypto_requests_are_refused_before_anything_is_recorded(
        bridge: Bridge, params: dict[str, Any], code: int, field: str) -> None:
    async with await bridge.register() as ecr:
        with pytest.raises(EcrError) as err:
            await ecr.call("crypto_sale", {**crypto("CX1"), **params})
        assert (err.value.code, err.value.data["field"]) == (code, field)
        with pytest.raises(EcrError) as missing:
            await ecr.call("status", {"order_no": "CX1"})
    assert missing.value.code == 1005
    assert sim_of(bridge).count("createThirdOrder") == 0


async def test_the_printed_slip_decodes_to_the_pay_page(make_bridge: Any) -> None:
    b: Bridge = await make_bridge()
    async with await b.register() as ecr:
        txn = await ecr.call("crypto_sale", crypto("C8", display="lane-1", print=True,
                                                   wait=False))
    png_dir = Path(b.daemon.config.printers[0].png_dir or "")
    for _ in range(200):
        slips = sorted(png_dir.glob("*C8*.png"))
        if slips:
            break
        await asyncio.sleep(0.05)
    assert slips, "no slip was printed"
    assert decode_png(slips[-1].read_bytes()) == txn["qr"]["deeplink"]


async def test_crypto_sales_count_per_coin_and_the_close_checks_the_statement(
        bridge: Bridge) -> None:
    sim = sim_of(bridge)
    async with await bridge.manager() as ecr:
        for order_no, amount, coin in (("CB1", "12.45", "USDT"), ("CB2", "1.45", "BTC"),
                                       ("CB3", "1.45", "USDT")):
            txn = await ecr.call("crypto_sale", {**crypto(order_no, amount, coin),
                                                 "terminal": "lane-1"})
            assert txn["state"] == "approved", txn
        [batch] = await ecr.call("batch.status", {"terminal": "lane-1"})
        zero = "0.000000"
        assert batch["totals"]["USDT"] == {"count": 2, "sales": "13.900000", "refunds": zero,
                                           "voids": zero, "tips": zero, "net": "13.900000",
                                           "preauths": zero, "completions": zero,
                                           "cashback": zero, "tip_adjustments": zero}
        assert batch["totals"]["BTC"]["net"] == "1.45000000"
        closed = await ecr.call("batch.close", {"terminal": "lane-1"})
        assert closed["discrepancy"] == {}, closed["discrepancy"]
        # the platform's statement and the bridge disagree on the next day's close
        txn = await ecr.call("crypto_sale", {**crypto("CB4", "2.45"), "terminal": "lane-1"})
        assert txn["state"] == "approved"
        sim.order("CB4").amount = "2.5"
        closed = await ecr.call("batch.close", {"terminal": "lane-1"})
    assert closed["discrepancy"]["opay"]["total_amount"] == {
        "bridge": "2.450000", "provider": "2.500000", "currency": "USDT"}


async def test_the_callback_answer_is_json_when_configured(make_bridge: Any) -> None:
    b: Bridge = await make_bridge(opay={"callback_answer": "json"})
    sim = sim_of(b)
    async with await b.register() as ecr:
        txn = await ecr.call("crypto_sale", crypto("C9", "12.35"))
    assert txn["state"] == "approved"
    answers = [json.loads(c[2]) for c in await callbacks_of(sim, "C9")]
    assert answers and answers[-1] == {"data": "success"}
