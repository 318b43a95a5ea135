"""Card payments end to end: a register over a real WebSocket, the bridge, the CodePay simulator."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from posbridge.client import EcrClient, EcrError
from posbridge.ecr.methods import ENVELOPE_RESERVE
from posbridge.ecr.protocol import MAX_FRAME_BYTES, dumps
from posbridge.providers.codepay.messages import TransStatus

from .conftest import PIN, Bridge
from .events import txn_events, txn_states

pytestmark = pytest.mark.timeout(60)


def sale(order_no: str, amount: str, **extra: Any) -> dict[str, Any]:
    return {"terminal": "lane-1", "order_no": order_no, "amount": amount, "currency": "USD",
            **extra}


async def states_of(ecr: EcrClient, order_no: str, until: str, timeout: float = 10) -> list[str]:
    """The states announced by transaction.updated for one order, up to ``until``."""
    seen: list[str] = []
    while until not in seen:
        note = await ecr.next_notification(timeout)
        txn = note["params"].get("transaction", {})
        if txn.get("order_no") == order_no:
            seen.append(txn["state"])
    return seen


async def test_approval_reaches_the_register_with_card_details(bridge: Bridge) -> None:
    async with await bridge.register() as ecr:
        txn = await ecr.call("sale", sale("A1", "12.00", tip="1.50"))
        assert txn["state"] == "approved"
        assert (txn["amount"], txn["tip"], txn["currency"]) == ("12.00", "1.50", "USD")
        assert txn["provider"] == "codepay" and txn["kind"] == "sale"
        assert txn["terminal"] == "SANDBOX0000000001"
        assert txn["provider_ref"]
        assert txn["batch_no"] == 1
        assert await states_of(ecr, "A1", "approved") == ["pending", "in_progress", "approved"]
    assert bridge.sims.codepay.create_count("A1") == 1


async def test_decline_is_final_with_the_provider_code(bridge: Bridge) -> None:
    async with await bridge.register() as ecr:
        txn = await ecr.call("sale", sale("D1", "12.05"))
    assert txn["state"] == "declined"
    assert txn["error"]["provider_code"]


async def test_cancel_in_flight(bridge: Bridge) -> None:
    async with await bridge.register() as ecr:
        started = await ecr.call("sale", sale("C1", "12.45", wait=False))
        assert started["state"] in ("pending", "in_progress")
        cancelled = await ecr.call("cancel", {"order_no": "C1"})
        assert cancelled["state"] in ("cancelled", "approved")
        # whatever it reached first is final and never changes afterwards
        await asyncio.sleep(1.5)
        again = await ecr.call("status", {"order_no": "C1", "refresh": True})
        assert again["state"] == cancelled["state"]
    assert cancelled["state"] == "cancelled"


async def test_expiry_closes_then_confirms(make_bridge: Any) -> None:
    b: Bridge = await make_bridge(expires_s=2)
    async with await b.register() as ecr:
        txn = await ecr.call("sale", sale("E1", "12.10"))  # the terminal stays silent
    assert txn["state"] == "expired"
    assert b.sims.codepay.create_count("E1") == 1


async def test_idempotent_retry_sequential_and_concurrent(bridge: Bridge) -> None:
    async with await bridge.register() as ecr:
        first = await ecr.call("sale", sale("I1", "3.00"))
        second = await ecr.call("sale", sale("I1", "3.00"))
        assert first["state"] == second["state"] == "approved"
        assert first["provider_ref"] == second["provider_ref"]
        results = await asyncio.gather(*(ecr.call("sale", sale("I2", "4.00")) for _ in range(10)))
        assert {r["state"] for r in results} == {"approved"}
        assert len({r["provider_ref"] for r in results}) == 1
    assert bridge.sims.codepay.create_count("I1") == 1
    assert bridge.sims.codepay.create_count("I2") == 1


async def test_order_no_conflict(bridge: Bridge) -> None:
    async with await bridge.register() as ecr:
        await ecr.call("sale", sale("K1", "5.00"))
        with pytest.raises(EcrError) as err:
            await ecr.call("sale", sale("K1", "6.00"))
    assert err.value.code == 1004 and err.value.reason == "order_no_conflict"
    assert bridge.sims.codepay.create_count("K1") == 1


async def test_lost_create_response_still_one_create_and_true_state(bridge: Bridge) -> None:
    async with await bridge.register() as ecr:
        txn = await ecr.call("sale", sale("L1", "12.20"))
    assert txn["state"] == "approved"
    assert bridge.sims.codepay.create_count("L1") == 1


@pytest.mark.parametrize(("cents", "how"), [("12.35", "notification only"),
                                            ("12.40", "polling only")])
async def test_result_by_one_channel_only(bridge: Bridge, cents: str, how: str) -> None:
    async with await bridge.register() as ecr:
        txn = await ecr.call("sale", sale("N" + cents.replace(".", ""), cents))
    assert txn["state"] == "approved", how


async def test_duplicate_and_out_of_order_notifications_are_harmless(bridge: Bridge) -> None:
    async with await bridge.register() as ecr:
        txn = await ecr.call("sale", sale("U1", "12.25"))
        assert txn["state"] == "approved"
        await asyncio.sleep(1.0)  # the simulator re-sends an older in-progress notification
        assert (await ecr.call("status", {"order_no": "U1"}))["state"] == "approved"
        replay = await ecr.call("events.replay", {"since_seq": 0})
    assert txn_states(replay, "U1") == ["pending", "in_progress", "approved"]


async def test_void_needs_a_manager_and_is_enforced_once(bridge: Bridge) -> None:
    async with await bridge.register() as ecr:
        await ecr.call("sale", sale("V1", "20.00"))
        with pytest.raises(EcrError) as err:
            await ecr.call("void", {"order_no": "V1X", "orig_order_no": "V1"})
        assert err.value.code == 1002
        with pytest.raises(EcrError) as err:
            await ecr.call("void", {"order_no": "V1X", "orig_order_no": "V1",
                                    "manager_pin": "000000"})
        assert err.value.code == 1002
        void = await ecr.call("void", {"order_no": "V1X", "orig_order_no": "V1",
                                       "manager_pin": PIN})
        assert void["state"] == "approved" and void["kind"] == "void"
        assert void["amount"] == "20.00"
        with pytest.raises(EcrError) as err:
            await ecr.call("void", {"order_no": "V1Y", "orig_order_no": "V1",
                                    "manager_pin": PIN})
        assert err.value.code == 1006
        orig = await ecr.call("status", {"order_no": "V1"})
        assert orig["refunded_amount"] == "20.00"


async def test_partial_refunds_and_over_refund(bridge: Bridge) -> None:
    async with await bridge.register() as ecr, await bridge.manager() as mgr:
        await ecr.call("sale", sale("P1", "10.00", tip="2.00"))
        r1 = await mgr.call("refund", {"order_no": "P1R1", "orig_order_no": "P1",
                                       "amount": "4.00"})
        r2 = await mgr.call("refund", {"order_no": "P1R2", "orig_order_no": "P1",
                                       "amount": "7.50"})
        assert r1["state"] == r2["state"] == "approved"
        assert r1["kind"] == "refund"
        with pytest.raises(EcrError) as err:
            await mgr.call("refund", {"order_no": "P1R3", "orig_order_no": "P1",
                                      "amount": "0.51"})
        assert err.value.code == 1006 and err.value.data["field"] == "amount"
        last = await mgr.call("refund", {"order_no": "P1R4", "orig_order_no": "P1",
                                         "amount": "0.50"})
        assert last["state"] == "approved"
        orig = await mgr.call("status", {"order_no": "P1"})
        assert orig["refunded_amount"] == "12.00"
        with pytest.raises(EcrError) as err:
            await mgr.call("refund", {"order_no": "P1R5", "orig_order_no": "NOPE",
                                      "amount": "1.00"})
        assert err.value.code == 1005


async def test_concurrent_refunds_never_overshoot(bridge: Bridge) -> None:
    async with await bridge.manager() as mgr:
        await mgr.call("sale", sale("CR1", "10.00"))
        results = await asyncio.gather(
            *(mgr.call("refund", {"order_no": f"CR1R{i}", "orig_order_no": "CR1",
                                  "amount": "3.00"}) for i in range(5)),
            return_exceptions=True)
    approved = [r for r in results if isinstance(r, dict) and r["state"] == "approved"]
    refused = [r for r in results if isinstance(r, EcrError)]
    assert len(approved) == 3 and len(refused) == 2
    assert all(r.code == 1006 for r in refused)


async def test_register_disconnect_then_replay(bridge: Bridge) -> None:
    async with await bridge.register() as ecr:
        await ecr.call("sale", sale("RP1", "12.45", wait=False))
    # the register is gone while the terminal approves
    await asyncio.sleep(2.0)
    async with await bridge.register() as ecr:
        events = await ecr.call("events.replay", {"since_seq": 0})
        seqs = [e["seq"] for e in events]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
        finals = [e for e in txn_events(events, "RP1")
                  if e["params"]["transaction"]["state"] == "approved"]
        assert len(finals) == 1
        later = await ecr.call("events.replay", {"since_seq": finals[0]["seq"]})
        assert all(e["seq"] > finals[0]["seq"] for e in later)


async def test_a_long_replay_comes_in_frames_under_64_kib_and_misses_nothing(
        bridge: Bridge) -> None:
    async with await bridge.register() as ecr:
        for first in range(0, 120, 30):  # a register may have 32 requests in flight
            await asyncio.gather(*(ecr.call("sale", sale(f"LR{i:03d}", "1.00"))
                                   for i in range(first, first + 30)))
        pages: list[list[dict[str, Any]]] = []
        since = 0
        for _ in range(50):  # bounded: 120 sales make a few hundred events
            page = await ecr.call("events.replay", {"since_seq": since})
            if not page:
                break
            assert len(dumps(page).encode()) < MAX_FRAME_BYTES - ENVELOPE_RESERVE
            pages.append(page)
            since = page[-1]["seq"]
    assert len(pages) > 1  # it did not fit in one frame
    seqs = [e["seq"] for page in pages for e in page]
    assert seqs == list(range(1, len(seqs) + 1))  # every event, once, in order
    replayed = [e for page in pages for e in page]
    approved = {e["params"]["transaction"]["order_no"] for e in replayed
                if e["type"] == "transaction.updated"
                and e["params"]["transaction"]["state"] == "approved"}
    assert approved == {f"LR{i:03d}" for i in range(120)}


async def test_provider_unreachable_is_1007_and_the_transaction_exists(
        make_bridge: Any) -> None:
    b: Bridge = await make_bridge(codepay={"base_url": "http://127.0.0.1:9"}, expires_s=2)
    async with await b.register() as ecr:
        with pytest.raises(EcrError) as err:
            await ecr.call("sale", sale("UR1", "1.00"))
        assert err.value.code == 1007
        txn = await ecr.call("status", {"order_no": "UR1"})
        assert txn["state"] in ("pending", "failed")
        await asyncio.sleep(3.5)
        txn = await ecr.call("status", {"order_no": "UR1"})
        assert txn["state"] == "failed"


async def test_an_approval_after_a_cancel_is_surfaced_not_dropped(bridge: Bridge) -> None:
    """Cents .30: the close succeeds, then the terminal approves anyway."""
    # A terminal slow enough that the close surely reaches it before it takes the card, even
    # on a busy machine (it picks the order up after half of this, and approves after it).
    bridge.sims.codepay.approve_delay_s = 2.0
    async with await bridge.register() as ecr:
        await ecr.call("sale", sale("LA1", "9.30", wait=False))
        cancelled = await ecr.call("cancel", {"order_no": "LA1"})
        # the cancel answers with the state as it stands when it wakes: cancelled, or - on a
        # busy machine - already the late approval that followed it
        assert cancelled["state"] in ("cancelled", "approved")
        note = None
        for _ in range(40):  # bounded: the late approval comes within about a second
            note = await ecr.next_notification(5)
            txn = note["params"].get("transaction", {})
            if txn.get("order_no") == "LA1" and txn["state"] == "approved":
                break
        assert note is not None
        late = note["params"]["transaction"]
        assert late["state"] == "approved" and late["error"]["code"] == "late_approval"
        assert (await ecr.call("status", {"order_no": "LA1"}))["state"] == "approved"
        replay = await ecr.call("events.replay", {"since_seq": 0})
    assert txn_states(replay, "LA1")[-2:] == ["cancelled", "approved"]
    # and it counts in the batch, where the money really is
    async with await bridge.manager() as office:
        batches = await office.call("batch.status", {"terminal": "lane-1"})
    assert batches[0]["totals"]["USD"]["sales"] == "9.30"


@pytest.mark.parametrize("error", [None, ("C01", "order closed by merchant")],
                         ids=["without error code", "with error code"])
@pytest.mark.parametrize(("action", "state"), [("cancel", "cancelled"), ("expire", "expired")])
async def test_a_close_reported_as_status_1_is_not_a_decline(
        make_bridge: Any, action: str, state: str, error: tuple[str, str] | None) -> None:
    """PROVIDERS.md: trans_status 1 is "closed/failed". A gateway that reports the bridge's
    close as 1, with or without a trans_error_code, gives cancelled (a register asked) or
    expired (the order timed out), never declined."""
    b: Bridge = await make_bridge(expires_s=2)
    b.sims.codepay.closed_status = TransStatus.FAILED
    b.sims.codepay.closed_error = error
    # The bridge's close, not the gateway's own at the same moment (a status 1 with an error
    # code that the gateway sends unasked is a decline): the gateway waits past ``expires``,
    # and the terminal is offline, so the order is still closable (created) when it expires.
    b.sims.codepay.expiry_grace_s = 60.0
    async with await b.register() as ecr:
        if action == "cancel":
            await ecr.call("sale", sale("S1C", "12.15", wait=False))
            txn = await ecr.call("cancel", {"order_no": "S1C"})
        else:
            txn = await ecr.call("sale", sale("S1C", "12.15"))
    assert txn["state"] == state, txn
    assert b.sims.codepay.orders["S1C"].status is TransStatus.FAILED
    assert b.sims.codepay.orders["S1C"].error_code == (error[0] if error else None)


async def test_cancel_of_a_card_already_on_the_terminal_answers_once_final(
        make_bridge: Any) -> None:
    """.10: the terminal has the order (in progress), so the close is refused; the cancel
    answers with the final state once the order expired and was closed - never in_progress."""
    b: Bridge = await make_bridge(expires_s=3)
    async with await b.register() as ecr:
        await ecr.call("sale", sale("CX1", "12.10", wait=False))
        for _ in range(100):
            if (await ecr.call("status", {"order_no": "CX1"}))["state"] == "in_progress":
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)  # the simulated terminal picks the order up
        txn = await ecr.call("cancel", {"order_no": "CX1"}, timeout=30)
    assert txn["state"] == "cancelled", txn
    assert "wisehub.cloud.pay.close" in b.sims.codepay.method_log("CX1")
