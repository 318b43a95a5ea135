"""The whole card lifecycle end to end (protocol 1.1): pre-authorisation, its cancel and
completion, completion void and refund, cashback, the tip entered on the terminal, tip
adjustment, refunds without the card and the pay-by-link checkout QR - a register over a real
WebSocket, the bridge, the CodePay simulator (which decides by the amount's cents)."""

from __future__ import annotations

import asyncio
import io
from typing import Any

import aiohttp
import pytest
import zxingcpp
from PIL import Image

from posbridge.client import EcrClient, EcrError
from posbridge.providers.codepay.messages import TransType
from posbridge.sandbox.codepay_sim import ON_SCREEN_TIP_PERCENT, CodePaySimulator

from .conftest import PIN, Bridge
from .events import txn_states

pytestmark = pytest.mark.timeout(60)

FINAL = {"approved", "declined", "cancelled", "expired", "failed"}


def sim_of(bridge: Bridge) -> CodePaySimulator:
    sim: CodePaySimulator = bridge.sims.codepay
    return sim


def hold(order_no: str, amount: str = "200.00", **extra: Any) -> dict[str, Any]:
    return {"terminal": "lane-1", "order_no": order_no, "amount": amount, "currency": "USD",
            **extra}


async def approved_hold(ecr: EcrClient, order_no: str, amount: str = "200.00") -> dict[str, Any]:
    txn: dict[str, Any] = await ecr.call("preauth", hold(order_no, amount))
    assert txn["state"] == "approved", txn
    return txn


async def until_final(ecr: EcrClient, order_no: str) -> dict[str, Any]:
    txn: dict[str, Any] = await ecr.call("status", {"order_no": order_no})
    for _ in range(300):
        if txn["state"] in FINAL:
            return txn
        await asyncio.sleep(0.05)
        txn = await ecr.call("status", {"order_no": order_no})
    raise AssertionError(f"{order_no} stayed {txn['state']}")


# -- pre-authorisation and completion, through every behaviour --------------------------------

BEHAVIOURS = [
    (".00", "approved"),   # approve
    (".05", "declined"),   # the card is declined
    (".20", "approved"),   # the answer to the create is lost: one create, then a query
    (".35", "approved"),   # the result by notification only
    (".40", "approved"),   # the result by polling only
]


@pytest.mark.parametrize(("cents", "state"), BEHAVIOURS)
async def test_a_preauth_reaches_its_state(bridge: Bridge, cents: str, state: str) -> None:
    async with await bridge.register() as ecr:
        txn = await ecr.call("preauth", hold("H1", "100" + cents))
        assert (txn["kind"], txn["state"]) == ("preauth", state), txn
        assert txn["completed_amount"] == "0.00"
    sim = sim_of(bridge)
    assert sim.create_count("H1") == 1
    assert sim.orders["H1"].trans_type is TransType.PREAUTH


@pytest.mark.parametrize(("cents", "state"), BEHAVIOURS)
async def test_a_completion_reaches_its_state(bridge: Bridge, cents: str, state: str) -> None:
    async with await bridge.register() as ecr:
        await approved_hold(ecr, "H2")
        txn = await ecr.call("completion", {"order_no": "H2C", "orig_order_no": "H2",
                                            "amount": "150" + cents, "tip": "5.00"})
        assert (txn["kind"], txn["state"], txn["tip"]) == ("completion", state, "5.00"), txn
        preauth = await ecr.call("status", {"order_no": "H2"})
    expected = "150" + cents if state == "approved" else "0.00"
    assert preauth["completed_amount"] == expected
    assert sim_of(bridge).create_count("H2C") == 1
    assert sim_of(bridge).orders["H2C"].trans_type is TransType.COMPLETION


async def test_a_preauth_and_a_completion_can_be_cancelled_in_flight(bridge: Bridge) -> None:
    async with await bridge.register() as ecr:
        await ecr.call("preauth", hold("H3", "100.45", wait=False))  # a slow card holder
        cancelled = await ecr.call("cancel", {"order_no": "H3"})
        assert cancelled["state"] == "cancelled"
        await approved_hold(ecr, "H4")
        await ecr.call("completion", {"order_no": "H4C", "orig_order_no": "H4",
                                      "amount": "150.45", "wait": False})
        cancelled = await ecr.call("cancel", {"order_no": "H4C"})
        assert cancelled["state"] == "cancelled"
        # the hold is still open: it can be completed after all
        done = await ecr.call("completion", {"order_no": "H4D", "orig_order_no": "H4",
                                             "amount": "150.00"})
    assert done["state"] == "approved"


async def test_the_idempotent_retry_of_a_hold_and_a_completion(bridge: Bridge) -> None:
    async with await bridge.register() as ecr:
        first, second = await asyncio.gather(ecr.call("preauth", hold("H5")),
                                             ecr.call("preauth", hold("H5")))
        assert first["order_no"] == second["order_no"] == "H5"
        completion = {"order_no": "H5C", "orig_order_no": "H5", "amount": "120.00"}
        a = await ecr.call("completion", completion)
        b = await ecr.call("completion", {**completion, "amount": "120.0"})  # the same amount
        assert a["state"] == b["state"] == "approved"
        with pytest.raises(EcrError) as conflict:
            await ecr.call("completion", {**completion, "amount": "121.00"})
        assert conflict.value.code == 1004
    sim = sim_of(bridge)
    assert sim.create_count("H5") == 1 and sim.create_count("H5C") == 1


async def test_a_completion_above_the_hold_is_refused_before_any_call(bridge: Bridge) -> None:
    async with await bridge.register() as ecr:
        await approved_hold(ecr, "H6", "100.00")
        with pytest.raises(EcrError) as err:
            await ecr.call("completion", {"order_no": "H6C", "orig_order_no": "H6",
                                          "amount": "95.00", "tip": "5.01"})
        assert (err.value.code, err.value.data["field"]) == (1006, "amount")
        assert "100.00" in err.value.message
        with pytest.raises(EcrError) as missing:
            await ecr.call("status", {"order_no": "H6C"})
    assert missing.value.code == 1005
    assert sim_of(bridge).create_count("H6C") == 0


async def test_a_completion_may_go_above_the_hold_when_configured(make_bridge: Any) -> None:
    b: Bridge = await make_bridge(codepay={"completion_max_percent": 120})
    sim_of(b).completion_max_percent = 120  # the merchant's account allows it at the gateway
    async with await b.register() as ecr:
        await approved_hold(ecr, "H7", "100.00")
        done = await ecr.call("completion", {"order_no": "H7C", "orig_order_no": "H7",
                                             "amount": "115.00", "tip": "5.00"})
        assert done["state"] == "approved"
        await approved_hold(ecr, "H8", "100.00")
        with pytest.raises(EcrError) as err:
            await ecr.call("completion", {"order_no": "H8C", "orig_order_no": "H8",
                                          "amount": "120.01"})
    assert err.value.code == 1006


async def test_a_cancelled_or_not_approved_hold_cannot_be_completed(bridge: Bridge) -> None:
    async with await bridge.manager() as ecr:
        await approved_hold(ecr, "H9")
        cancel = await ecr.call("preauth.cancel", {"order_no": "H9X", "orig_order_no": "H9"})
        assert (cancel["kind"], cancel["state"]) == ("preauth_cancel", "approved")
        assert sim_of(bridge).orders["H9X"].trans_type is TransType.PREAUTH_CANCEL
        declined = await ecr.call("preauth", hold("H10", "100.05"))
        assert declined["state"] == "declined"
        expired_hold = await ecr.call("preauth", hold("H11", "100.45", wait=False))
        await ecr.call("cancel", {"order_no": "H11"})
        for orig, why in (("H9", "cancelled"), ("H10", "declined"), ("H11", "cancelled")):
            with pytest.raises(EcrError) as err:
                await ecr.call("completion", {"order_no": f"{orig}C", "orig_order_no": orig,
                                              "amount": "10.00"})
            assert err.value.code == 1010, (orig, err.value)
            assert why in err.value.message
        with pytest.raises(EcrError) as twice:
            await ecr.call("preauth.cancel", {"order_no": "H9Y", "orig_order_no": "H9"})
        assert twice.value.code == 1010
    assert expired_hold["kind"] == "preauth"


async def test_an_expired_hold_cannot_be_completed(make_bridge: Any) -> None:
    b: Bridge = await make_bridge(expires_s=2)
    async with await b.register() as ecr:
        expired = await ecr.call("preauth", hold("H12", "100.10"))  # the terminal stays silent
        assert expired["state"] == "expired"
        with pytest.raises(EcrError) as err:
            await ecr.call("completion", {"order_no": "H12C", "orig_order_no": "H12",
                                          "amount": "10.00"})
    assert err.value.code == 1010 and "expired" in err.value.message


async def test_a_completion_is_voided_and_refunded_as_a_completion(bridge: Bridge) -> None:
    async with await bridge.manager() as ecr:
        await approved_hold(ecr, "H13")
        await ecr.call("completion", {"order_no": "H13C", "orig_order_no": "H13",
                                      "amount": "100.00", "tip": "10.00"})
        refund = await ecr.call("refund", {"order_no": "H13R", "orig_order_no": "H13C",
                                           "amount": "30.00"})
        assert (refund["kind"], refund["state"]) == ("refund", "approved")
        await approved_hold(ecr, "H14")
        await ecr.call("completion", {"order_no": "H14C", "orig_order_no": "H14",
                                      "amount": "100.00"})
        void = await ecr.call("void", {"order_no": "H14V", "orig_order_no": "H14C"})
        assert (void["kind"], void["state"], void["amount"]) == ("void", "approved", "100.00")
    sim = sim_of(bridge)
    assert sim.orders["H13R"].trans_type is TransType.COMPLETION_REFUND
    assert sim.orders["H14V"].trans_type is TransType.COMPLETION_CANCEL


# -- cashback, the tip on the terminal, tip adjustments ----------------------------------------


async def test_a_cashback_sale_tells_the_register_the_cash_to_hand_out(bridge: Bridge) -> None:
    async with await bridge.register() as ecr:
        txn = await ecr.call("sale", {"terminal": "lane-1", "order_no": "CB1",
                                      "amount": "20.00", "currency": "USD",
                                      "cashback": "40.00"})
        assert (txn["state"], txn["amount"], txn["cashback"]) == ("approved", "20.00", "40.00")
        [batch] = await ecr.call("batch.status", {"terminal": "lane-1"})
    assert sim_of(bridge).orders["CB1"].trans_type is TransType.CASHBACK
    totals = batch["totals"]["USD"]
    assert (totals["sales"], totals["cashback"], totals["net"]) == ("20.00", "40.00", "60.00")


async def test_the_tip_entered_on_the_terminal_comes_back(bridge: Bridge) -> None:
    async with await bridge.register() as ecr:
        txn = await ecr.call("sale", {"terminal": "lane-1", "order_no": "OT1",
                                      "amount": "40.00", "currency": "USD",
                                      "on_screen_tip": True})
        assert txn["state"] == "approved"
        hold_ = await ecr.call("preauth", hold("OT2", "100.00", on_screen_tip=True))
    assert txn["tip"] == f"{40 * ON_SCREEN_TIP_PERCENT / 100:.2f}"
    assert hold_["tip"] == f"{100 * ON_SCREEN_TIP_PERCENT / 100:.2f}"


async def test_a_tip_adjustment_sets_the_new_total_tip(bridge: Bridge) -> None:
    async with await bridge.manager() as ecr:
        await ecr.call("sale", {"terminal": "lane-1", "order_no": "TA1", "amount": "50.00",
                                "tip": "2.00", "currency": "USD"})
        adj = await ecr.call("tip.adjust", {"order_no": "TA1T", "orig_order_no": "TA1",
                                            "tip": "7.50"})
        assert (adj["kind"], adj["state"], adj["tip"], adj["amount"]) == (
            "tip_adjust", "approved", "7.50", "5.50")
        again = await ecr.call("tip.adjust", {"order_no": "TA1T", "orig_order_no": "TA1",
                                              "tip": "7.50"})  # the same request: no change
        assert again["amount"] == "5.50"
        lower = await ecr.call("tip.adjust", {"order_no": "TA1U", "orig_order_no": "TA1",
                                              "tip": "6.00"})
        assert lower["amount"] == "-1.50"
        with pytest.raises(EcrError) as same:
            await ecr.call("tip.adjust", {"order_no": "TA1W", "orig_order_no": "TA1",
                                          "tip": "6.00"})
        assert same.value.code == 1010
        # a refund can take the adjusted tip back too: 50.00 + 6.00
        with pytest.raises(EcrError) as too_much:
            await ecr.call("refund", {"order_no": "TA1R", "orig_order_no": "TA1",
                                      "amount": "56.01"})
        assert too_much.value.code == 1006 and "56.00" in too_much.value.message
        [batch] = await ecr.call("batch.status", {"terminal": "lane-1"})
    assert sim_of(bridge).orders["TA1"].tip == 600  # the gateway holds the new total
    totals = batch["totals"]["USD"]
    assert (totals["tips"], totals["tip_adjustments"], totals["net"]) == (
        "2.00", "4.00", "56.00")


async def test_a_tip_adjustment_whose_answer_was_lost_is_settled_by_a_query(
        bridge: Bridge) -> None:
    async with await bridge.manager() as ecr:
        await ecr.call("sale", {"terminal": "lane-1", "order_no": "TA2", "amount": "50.00",
                                "currency": "USD"})
        adj = await ecr.call("tip.adjust", {"order_no": "TA2T", "orig_order_no": "TA2",
                                            "tip": "3.20"})  # .20: the answer is lost
        assert adj["state"] == "approved", adj
    assert sim_of(bridge).method_log("TA2").count("tip.adjustment") == 1


async def test_a_tip_cannot_be_adjusted_after_the_batch_closed(bridge: Bridge) -> None:
    async with await bridge.manager() as ecr:
        await ecr.call("sale", {"terminal": "lane-1", "order_no": "TA3", "amount": "50.00",
                                "currency": "USD"})
        await ecr.call("batch.close", {"terminal": "lane-1"})
        with pytest.raises(EcrError) as err:
            await ecr.call("tip.adjust", {"order_no": "TA3T", "orig_order_no": "TA3",
                                          "tip": "5.00"})
    assert (err.value.code, err.value.data["field"]) == (1010, "orig_order_no")
    assert "tip.adjustment" not in sim_of(bridge).method_log("TA3")


async def test_a_cashier_needs_the_pin_for_a_tip_adjustment_and_a_hold_release(
        bridge: Bridge) -> None:
    async with await bridge.register() as ecr:
        await approved_hold(ecr, "H15")
        for method, params in (("preauth.cancel", {"order_no": "H15X", "orig_order_no": "H15"}),
                               ("tip.adjust", {"order_no": "H15T", "orig_order_no": "H15",
                                               "tip": "1"})):
            with pytest.raises(EcrError) as err:
                await ecr.call(method, params)
            assert err.value.code == 1002
        done = await ecr.call("preauth.cancel", {"order_no": "H15X", "orig_order_no": "H15",
                                                 "manager_pin": PIN})
    assert done["state"] == "approved"


# -- refunds without the card -----------------------------------------------------------------


@pytest.mark.parametrize(("cents", "state"), [(".00", "approved"), (".05", "declined"),
                                             (".35", "approved"), (".40", "approved")])
async def test_a_refund_without_the_card(bridge: Bridge, cents: str, state: str) -> None:
    async with await bridge.manager() as ecr:
        await ecr.call("sale", {"terminal": "lane-1", "order_no": "RC1", "amount": "50.00",
                                "currency": "USD"})
        refund = await ecr.call("refund", {"order_no": "RC1R", "orig_order_no": "RC1",
                                           "amount": "5" + cents, "card_present": False})
        assert (refund["kind"], refund["state"]) == ("refund", state), refund
        orig = await ecr.call("status", {"order_no": "RC1"})
    methods = sim_of(bridge).method_log("RC1R")
    assert "order.refund.submit" in methods and "wisehub.cloud.pay.order" not in methods
    assert orig["refunded_amount"] == ("5" + cents if state == "approved" else "0.00")


# -- pay-by-link checkout QR -------------------------------------------------------------------


async def test_a_checkout_qr_shows_the_pay_url_and_is_paid(bridge: Bridge) -> None:
    async with await bridge.register() as ecr:
        txn = await ecr.call("checkout_qr", {"order_no": "W1", "amount": "25.00",
                                             "currency": "USD", "subject": "Order 17",
                                             "display": "lane-1", "wait": False})
        assert (txn["kind"], txn["provider"], txn["state"]) == (
            "checkout_qr", "codepay", "in_progress")
        pay_url = txn["qr"]["deeplink"]
        assert pay_url.startswith(sim_of(bridge).url)
        async with aiohttp.ClientSession() as http:
            await asyncio.sleep(0.2)
            async with http.get(f"{bridge.http}/display/lane-1/qr.png") as resp:
                found = zxingcpp.read_barcodes(Image.open(io.BytesIO(await resp.read())))
            assert [r.text for r in found] == [pay_url]
            async with http.get(pay_url) as page:  # the customer opens it on their phone
                assert page.status == 200
        await bridge.sims.pay("codepay", "W1")
        final = await until_final(ecr, "W1")
    assert final["state"] == "approved" and final["batch_no"] == 1


async def test_a_checkout_qr_can_be_cancelled(bridge: Bridge) -> None:
    async with await bridge.register() as ecr:
        await ecr.call("checkout_qr", {"order_no": "W2", "amount": "25.00", "currency": "USD",
                                       "wait": False})
        txn = await ecr.call("cancel", {"order_no": "W2"})
    assert txn["state"] == "cancelled"
    assert "order.revoker" in sim_of(bridge).method_log("W2")


async def test_a_checkout_whose_answer_was_lost_is_withdrawn(bridge: Bridge) -> None:
    """.20: the page exists at CodePay but its pay_url never reached the bridge: no QR can be
    shown, so nobody can pay it; the bridge withdraws it rather than leave it waiting."""
    async with await bridge.register() as ecr:
        await ecr.call("checkout_qr", {"order_no": "W3", "amount": "25.20", "currency": "USD",
                                       "wait": False})
        final = await until_final(ecr, "W3")
        events = await ecr.call("events.replay", {"since_seq": 0})
    assert (final["state"], final["error"]["code"]) == ("cancelled", "qr_lost")
    assert sim_of(bridge).create_count("W3") == 1
    assert txn_states(events, "W3")[-1] == "cancelled"


# -- batches ------------------------------------------------------------------------------------


async def test_the_batch_lines_of_the_lifecycle_and_a_close_that_agrees(bridge: Bridge) -> None:
    async with await bridge.manager() as ecr:
        await approved_hold(ecr, "B1", "100.00")
        await approved_hold(ecr, "B2", "80.00")  # stays open: a hold, not money
        await ecr.call("completion", {"order_no": "B1C", "orig_order_no": "B1",
                                      "amount": "90.00", "tip": "9.00"})
        await ecr.call("sale", {"terminal": "lane-1", "order_no": "B3", "amount": "10.00",
                                "currency": "USD", "cashback": "20.00"})
        await ecr.call("sale", {"terminal": "lane-1", "order_no": "B4", "amount": "30.00",
                                "tip": "1.00", "currency": "USD"})
        await ecr.call("tip.adjust", {"order_no": "B4T", "orig_order_no": "B4", "tip": "3.00"})
        [batch] = await ecr.call("batch.status", {"terminal": "lane-1"})
        usd = batch["totals"]["USD"]
        assert usd == {"count": 6, "sales": "40.00", "refunds": "0.00", "voids": "0.00",
                       "tips": "10.00", "preauths": "180.00", "completions": "90.00",
                       "cashback": "20.00", "tip_adjustments": "2.00", "net": "162.00"}
        closed = await ecr.call("batch.close", {"terminal": "lane-1"})
    assert closed["discrepancy"] == {}, closed["discrepancy"]


async def test_a_batch_close_waits_for_a_completion_in_flight(bridge: Bridge) -> None:
    async with await bridge.manager() as ecr:
        await approved_hold(ecr, "B5")
        await ecr.call("completion", {"order_no": "B5C", "orig_order_no": "B5",
                                      "amount": "50.45", "wait": False})  # slow
        with pytest.raises(EcrError) as err:
            await ecr.call("batch.close", {"terminal": "lane-1"})
        assert err.value.code == 1010 and "B5C" in err.value.message
        await until_final(ecr, "B5C")
        closed = await ecr.call("batch.close", {"terminal": "lane-1"})
    assert closed["state"] == "closed"
