"""The card lifecycle through CodePayProvider against the CodePay simulator, over real sockets
on 127.0.0.1: pre-auths, cancels, completions and their voids and refunds, cashback, on-screen
tips, refunds without the card, tip adjustments, hosted checkout and Cancel Order."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import aiohttp
import pytest

from posbridge.errors import OutcomeUnknown, ProviderRejected, RequestError
from posbridge.providers.base import Outcome, PaymentOrder, ProviderReport, TxnKind
from posbridge.providers.codepay import messages as m
from posbridge.providers.codepay.client import CodePayProvider
from posbridge.sandbox.codepay_sim import Behaviour, CodePaySimulator

from .conftest import DELAY, TERMINAL, Receiver, until_outcome

pytestmark = pytest.mark.timeout(30)

Make = Callable[..., CodePayProvider]


def card(order_no: str, kind: TxnKind, amount: int, *, orig: PaymentOrder | None = None,
         **fields: Any) -> PaymentOrder:
    """A terminal order; a child names ``orig`` (its number, kind and captured amount)."""
    if orig is not None:
        fields.update(orig_order_no=orig.order_no, orig_kind=orig.kind,
                      orig_amount=orig.amount + orig.tip)
    return PaymentOrder(order_no=order_no, kind=kind, amount=amount, currency="USD",
                        terminal_sn=TERMINAL, expires_s=30, **fields)


async def approved(provider: CodePayProvider, order: PaymentOrder) -> ProviderReport:
    await provider.create(order)
    return await until_outcome(provider, order, Outcome.APPROVED)


async def final_at_sim(sim: CodePaySimulator, order_no: str) -> m.TransStatus:
    """The order's status once the simulator made it final (bounded wait)."""
    for _ in range(400):
        found = sim.orders.get(order_no)
        if found is not None and found.status in (m.TransStatus.SUCCESS, m.TransStatus.FAILED,
                                                  m.TransStatus.CANCELLED):
            return found.status
        await asyncio.sleep(DELAY / 5)
    raise AssertionError(f"{order_no} never became final")


# -- pre-auth, completion, cancel ------------------------------------------------------------

async def test_preauth_then_a_partial_completion_with_a_tip(
        provider: CodePayProvider, sim: CodePaySimulator) -> None:
    hold = card("PA1", TxnKind.PREAUTH, 10000)
    first = await provider.create(hold)
    assert (first.outcome, first.closable) == (Outcome.PENDING, True)
    report = await until_outcome(provider, hold, Outcome.APPROVED)
    assert (report.amount, report.tip) == (10000, None)
    assert sim.creates[-1]["trans_type"] == 4

    completion = card("PA1C", TxnKind.COMPLETION, 8000, tip=1500, orig=hold)
    done = await approved(provider, completion)
    assert (done.amount, done.tip) == (8000, 1500)  # order_amount and tip_amount, as stated
    create = sim.creates[-1]
    assert (create["trans_type"], create["orig_merchant_order_no"], create["order_amount"],
            create["tip_amount"]) == (6, "PA1", "80.00", "15.00")
    assert sim.orders["PA1"].hold_ended == "completed"

    with pytest.raises(ProviderRejected) as again:
        await provider.create(card("PA1C2", TxnKind.COMPLETION, 100, orig=hold))
    assert again.value.provider_code == "ORIG_ORDER_INVALID"
    with pytest.raises(ProviderRejected) as cancel:
        await provider.create(card("PA1X", TxnKind.PREAUTH_CANCEL, 10000, orig=hold))
    assert cancel.value.provider_code == "ORIG_ORDER_INVALID"


async def test_a_completion_above_the_hold_is_refused_unless_allowed(
        provider: CodePayProvider, sim: CodePaySimulator) -> None:
    hold = card("PA2", TxnKind.PREAUTH, 10000)
    await approved(provider, hold)
    with pytest.raises(ProviderRejected) as err:
        await provider.create(card("PA2C1", TxnKind.COMPLETION, 10000, tip=1, orig=hold))
    assert err.value.provider_code == "COMPLETION_AMOUNT_EXCEEDED"
    sim.completion_max_percent = 120
    with pytest.raises(ProviderRejected):
        await provider.create(card("PA2C2", TxnKind.COMPLETION, 12001, orig=hold))
    done = await approved(provider, card("PA2C3", TxnKind.COMPLETION, 10000, tip=2000,
                                         orig=hold))
    assert (done.amount, done.tip) == (10000, 2000)


def test_the_adapter_declares_the_lifecycle_and_the_completion_limit(make_provider: Make) -> None:
    plain, generous = make_provider(), make_provider(completion_max_percent=125)
    assert plain.caps.kinds >= {TxnKind.PREAUTH, TxnKind.PREAUTH_CANCEL, TxnKind.COMPLETION,
                                TxnKind.TIP_ADJUST, TxnKind.CHECKOUT_QR, TxnKind.SALE,
                                TxnKind.VOID, TxnKind.REFUND}
    assert (plain.caps.completion_max_percent, generous.caps.completion_max_percent) == (
        100, 125)


async def test_preauth_cancel_releases_the_hold_for_good(
        provider: CodePayProvider, sim: CodePaySimulator) -> None:
    hold = card("PA3", TxnKind.PREAUTH, 5000)
    await approved(provider, hold)
    with pytest.raises(ProviderRejected) as partial:
        await provider.create(card("PA3X0", TxnKind.PREAUTH_CANCEL, 4000, orig=hold))
    assert partial.value.provider_code == "INVALID_PARAMETER"
    cancel = card("PA3X", TxnKind.PREAUTH_CANCEL, 5000, orig=hold)
    await approved(provider, cancel)
    assert (sim.creates[-1]["trans_type"], sim.creates[-1]["orig_merchant_order_no"]) == (
        5, "PA3")
    with pytest.raises(ProviderRejected) as completing:
        await provider.create(card("PA3C", TxnKind.COMPLETION, 1000, orig=hold))
    assert "cancelled" in completing.value.message


async def test_on_screen_tip_of_a_preauth_comes_back_and_is_held(
        provider: CodePayProvider, sim: CodePaySimulator) -> None:
    hold = card("PA4", TxnKind.PREAUTH, 2000, on_screen_tip=True)
    report = await approved(provider, hold)
    assert (report.amount, report.tip) == (2000, 300)  # 15 % entered by the customer
    assert sim.creates[-1]["on_screen_tip"] is True and "tip_amount" not in sim.creates[-1]
    held = replace(hold, tip=300)
    with pytest.raises(ProviderRejected):
        await provider.create(card("PA4C1", TxnKind.COMPLETION, 2301, orig=held))
    await approved(provider, card("PA4C2", TxnKind.COMPLETION, 2300, orig=held))


async def test_completion_void_and_completion_refund(
        provider: CodePayProvider, sim: CodePaySimulator) -> None:
    hold = card("PA5", TxnKind.PREAUTH, 6000)
    await approved(provider, hold)
    completion = card("PA5C", TxnKind.COMPLETION, 5000, tip=500, orig=hold)
    await approved(provider, completion)
    refund = card("PA5R", TxnKind.REFUND, 2000, orig=completion)
    done = await approved(provider, refund)
    assert done.amount == 2000 and sim.creates[-1]["trans_type"] == 8
    with pytest.raises(ProviderRejected) as over:
        await provider.create(card("PA5R2", TxnKind.REFUND, 3501, orig=completion))
    assert over.value.provider_code == "REFUND_AMOUNT_EXCEEDED"

    hold2 = card("PA6", TxnKind.PREAUTH, 6000)
    await approved(provider, hold2)
    completion2 = card("PA6C", TxnKind.COMPLETION, 5000, tip=500, orig=hold2)
    await approved(provider, completion2)
    with pytest.raises(ProviderRejected):  # a void is for the whole amount, tip included
        await provider.create(card("PA6V0", TxnKind.VOID, 5000, orig=completion2))
    await approved(provider, card("PA6V", TxnKind.VOID, 5500, orig=completion2))
    assert (sim.creates[-1]["trans_type"], sim.orders["PA6C"].voided) == (7, True)
    with pytest.raises(ProviderRejected):
        await provider.create(card("PA6R", TxnKind.REFUND, 100, orig=completion2))


# -- cashback and on-screen tips ---------------------------------------------------------------

async def test_cashback_sale_states_its_cash_back(
        provider: CodePayProvider, sim: CodePaySimulator, receiver: Receiver) -> None:
    sale = card("CB1", TxnKind.SALE, 2000, tip=300, cashback=4000)
    await provider.create(sale)
    await receiver.wait_for(lambda reports: any(r.order_no == "CB1" for r in reports))
    [note] = [r for r in receiver.reports if r.order_no == "CB1"]
    assert (note.outcome, note.amount, note.tip, note.cashback) == (
        Outcome.APPROVED, 2000, 300, 4000)
    queried = await until_outcome(provider, sale, Outcome.APPROVED)
    assert (queried.amount, queried.tip, queried.cashback) == (2000, 300, 4000)
    assert (sim.creates[-1]["trans_type"], sim.creates[-1]["cashback_amount"]) == (11, "40.00")
    # the open batch counts the whole charge: goods, tip and the cash handed out
    assert sim.open_batch_figures(TERMINAL) == {"USD": (1, 6300)}


async def test_on_screen_tip_of_a_sale_comes_back_by_query_and_notification(
        provider: CodePayProvider, receiver: Receiver) -> None:
    sale = card("OT1", TxnKind.SALE, 3333, on_screen_tip=True)
    await provider.create(sale)
    await receiver.wait_for(lambda reports: any(r.order_no == "OT1" for r in reports))
    assert receiver.reports[-1].tip == 500  # 15 % of 33.33 is 4.9995, half up: 5.00
    assert (await until_outcome(provider, sale, Outcome.APPROVED)).tip == 500


def test_check_refuses_what_codepay_would(provider: CodePayProvider) -> None:
    with pytest.raises(RequestError) as err:
        provider.check(card("X1", TxnKind.SALE, 100, cashback=100, on_screen_tip=True))
    assert (err.value.code, err.value.field) == (-32602, "on_screen_tip")
    provider.check(card("X2", TxnKind.SALE, 100, on_screen_tip=True))  # allowed


# -- every new operation: approved / declined / lost answer / notification only / polling only --

OPERATIONS = ["preauth", "preauth_cancel", "completion", "completion_void", "completion_refund",
              "cashback", "refund_no_card"]
BEHAVIOURS = [Behaviour.APPROVE, Behaviour.DECLINE, Behaviour.RESPONSE_LOST,
              Behaviour.NOTIFY_ONLY, Behaviour.POLL_ONLY]


async def prepare(op: str, cents: int, provider: CodePayProvider,
                  sim: CodePaySimulator) -> PaymentOrder:
    """The order of operation ``op`` that behaves as ``cents`` say: by its own amount where
    the register chooses it, by :meth:`CodePaySimulator.behave` where the original's amount
    decides (cancels, voids; refunds on the terminal approve whatever their cents)."""
    tag = f"{op[:6].upper()}{cents:02d}"
    if op == "preauth":
        return card(tag, TxnKind.PREAUTH, 5000 + cents)
    if op == "cashback":
        return card(tag, TxnKind.SALE, 2000 + cents, cashback=1000)
    if op == "refund_no_card":
        sale = card(tag + "S", TxnKind.SALE, 9000)
        await approved(provider, sale)
        return card(tag, TxnKind.REFUND, 1000 + cents, orig=sale, card_present=False)
    hold = card(tag + "P", TxnKind.PREAUTH, 9000)
    await approved(provider, hold)
    if op == "completion":
        return card(tag, TxnKind.COMPLETION, 7000 + cents, orig=hold)
    if op == "preauth_cancel":
        sim.behave(tag, Behaviour(cents))
        return card(tag, TxnKind.PREAUTH_CANCEL, 9000, orig=hold)
    completion = card(tag + "C", TxnKind.COMPLETION, 8000, orig=hold)
    await approved(provider, completion)
    sim.behave(tag, Behaviour(cents))
    if op == "completion_void":
        return card(tag, TxnKind.VOID, 8000, orig=completion)
    return card(tag, TxnKind.REFUND, 3000, orig=completion)


@pytest.mark.parametrize("behaviour", BEHAVIOURS, ids=lambda b: b.name.lower())
@pytest.mark.parametrize("op", OPERATIONS)
async def test_each_new_operation_under_each_behaviour(
        op: str, behaviour: Behaviour, make_provider: Make, provider: CodePayProvider,
        sim: CodePaySimulator, receiver: Receiver) -> None:
    order = await prepare(op, behaviour.value, provider, sim)
    expected = {m.Route.CREATE_ORDER: m.trans_type_for(order)}.get(m.route(order))
    if behaviour is Behaviour.RESPONSE_LOST:
        with pytest.raises(OutcomeUnknown):
            await provider.create(order)
        assert sim.create_count(order.order_no) == 1  # one create only, then queries
        report = await until_outcome(provider, order, Outcome.APPROVED)
        assert report.amount == order.amount
        assert sim.create_count(order.order_no) == 1
        return
    if behaviour is Behaviour.NOTIFY_ONLY:
        deaf = make_provider()  # sends no notify_url: nobody acknowledges the result
        await deaf.create(order)
        assert await final_at_sim(sim, order.order_no) is m.TransStatus.SUCCESS
        pending = await deaf.query(order)
        assert (pending.outcome, pending.closable) == (Outcome.PENDING, False)
        return
    first = await provider.create(order)
    assert first.outcome is Outcome.PENDING
    if expected is not None:
        assert sim.creates[-1]["trans_type"] == expected
    if behaviour is Behaviour.DECLINE:
        report = await until_outcome(provider, order, Outcome.DECLINED)
        assert report.provider_code in ("51", "REFUND_FAILED")
        return
    report = await until_outcome(provider, order, Outcome.APPROVED)
    assert report.amount == order.amount
    if behaviour is Behaviour.POLL_ONLY:
        await asyncio.sleep(4 * DELAY)
        assert [n for n in sim.notifications_sent if n.merchant_order_no == order.order_no] == []
        assert all(r.order_no != order.order_no for r in receiver.reports)
    else:
        await receiver.wait_for(lambda reports: any(
            r.order_no == order.order_no and r.outcome is Outcome.APPROVED for r in reports))


# -- refund without the card ---------------------------------------------------------------------

async def test_refund_without_the_card(provider: CodePayProvider, sim: CodePaySimulator,
                                       receiver: Receiver) -> None:
    sale = card("NC1", TxnKind.SALE, 5000, tip=500)
    await approved(provider, sale)
    refund = card("NC1R", TxnKind.REFUND, 5500, orig=sale, card_present=False,
                  description="x" * 80)
    first = await provider.create(refund)
    assert (first.outcome, first.closable) == (Outcome.PENDING, False)
    assert first.provider_ref == sim.orders["NC1R"].trans_no
    body = sim.creates[-1]
    assert body["method"] == "order.refund.submit" and "terminal_sn" not in body
    assert (body["orig_merchant_order_no"], body["order_amount"], len(body["description"])) == (
        "NC1", "55.00", 64)
    report = await until_outcome(provider, refund, Outcome.APPROVED)
    assert (report.amount, report.closable) == (5500, False)
    assert m.REFUND_QUERY in sim.method_log("NC1R") and m.QUERY not in sim.method_log("NC1R")
    await receiver.wait_for(lambda reports: any(r.order_no == "NC1R" for r in reports))
    with pytest.raises(ProviderRejected, match="cannot be closed"):
        await provider.close(refund)
    with pytest.raises(ProviderRejected) as more:
        await provider.create(card("NC1R2", TxnKind.REFUND, 1, orig=sale, card_present=False))
    assert more.value.provider_code == "REFUND_AMOUNT_EXCEEDED"
    # booked to the original's terminal: its open batch nets to zero
    assert sim.open_batch_figures(TERMINAL) == {"USD": (2, 0)}


async def test_query_of_an_unknown_refund_without_card_is_not_found(
        provider: CodePayProvider) -> None:
    report = await provider.query(card("NC9", TxnKind.REFUND, 100, card_present=False,
                                       orig_order_no="S9"))
    assert report.outcome is Outcome.NOT_FOUND


# -- tip adjustment ----------------------------------------------------------------------------

def tip_adjust(order_no: str, orig: PaymentOrder, new_total: int) -> PaymentOrder:
    return PaymentOrder(order_no=order_no, kind=TxnKind.TIP_ADJUST, amount=new_total - orig.tip,
                        currency=orig.currency, tip=new_total, orig_order_no=orig.order_no,
                        orig_kind=orig.kind, orig_tip=orig.tip, terminal_sn=orig.terminal_sn)


async def test_tip_adjustment_sets_the_new_total_tip(
        provider: CodePayProvider, sim: CodePaySimulator) -> None:
    sale = card("TA1", TxnKind.SALE, 4000, tip=400)
    await approved(provider, sale)
    report = await provider.create(tip_adjust("TA1T", sale, 800))
    assert (report.order_no, report.outcome, report.tip, report.amount, report.closable) == (
        "TA1T", Outcome.APPROVED, 800, None, False)
    assert sim.requests[-1]["tip_adjustment_amount"] == "8.00"
    assert sim.requests[-1]["merchant_order_no"] == "TA1"  # the original's number
    assert (await provider.query(sale)).tip == 800
    assert sim.open_batch_figures(TERMINAL) == {"USD": (1, 4800)}
    # and the lost-answer query of the adjustment agrees
    assert (await provider.query(tip_adjust("TA1T", sale, 800))).outcome is Outcome.APPROVED
    with pytest.raises(ProviderRejected, match="cannot be closed"):
        await provider.close(tip_adjust("TA1T", sale, 800))


async def test_tip_adjustment_of_a_completion(provider: CodePayProvider) -> None:
    hold = card("TA2", TxnKind.PREAUTH, 5000)
    await approved(provider, hold)
    completion = card("TA2C", TxnKind.COMPLETION, 4000, orig=hold)
    await approved(provider, completion)
    assert (await provider.create(tip_adjust("TA2T", completion, 600))).tip == 600
    assert (await provider.query(completion)).tip == 600


async def test_a_lost_tip_adjustment_answer_is_found_by_its_query(
        provider: CodePayProvider, sim: CodePaySimulator) -> None:
    sale = card("TA3", TxnKind.SALE, 4000)
    await approved(provider, sale)
    adjust = tip_adjust("TA3T", sale, 720)  # cents 20: applied, its answer lost
    with pytest.raises(OutcomeUnknown):
        await provider.create(adjust)
    assert sim.orders["TA3"].tip == 720
    report = await provider.query(adjust)
    assert (report.order_no, report.outcome, report.tip) == ("TA3T", Outcome.APPROVED, 720)


async def test_a_declined_tip_adjustment_is_not_found_by_its_query(
        provider: CodePayProvider, sim: CodePaySimulator) -> None:
    sale = card("TA4", TxnKind.SALE, 4000, tip=100)
    await approved(provider, sale)
    adjust = tip_adjust("TA4T", sale, 305)  # cents 05: declined
    with pytest.raises(ProviderRejected) as err:
        await provider.create(adjust)
    assert err.value.provider_code == "TIP_ADJUST_DECLINED"
    assert sim.orders["TA4"].tip == 100
    # "total": not applied, so sending it again is safe
    assert (await provider.query(adjust)).outcome is Outcome.NOT_FOUND


async def test_tip_adjustment_in_delta_mode(make_provider: Make,
                                            sim: CodePaySimulator) -> None:
    sim.tip_adjustment = "delta"
    provider = make_provider(tip_adjustment="delta")
    sale = card("TA5", TxnKind.SALE, 4000, tip=500)
    await approved(provider, sale)
    lower = tip_adjust("TA5T", sale, 300)
    assert (await provider.create(lower)).tip == 300
    assert sim.requests[-1]["tip_adjustment_amount"] == "-2.00"
    assert sim.orders["TA5"].tip == 300
    assert (await provider.query(lower)).outcome is Outcome.APPROVED
    # an adjustment that did not happen can not be told from one still to come: unknown
    with pytest.raises(OutcomeUnknown):
        await provider.query(tip_adjust("TA5U", replace(sale, tip=300), 900))


async def test_no_tip_adjustment_after_the_batch_close(provider: CodePayProvider) -> None:
    sale = card("TA6", TxnKind.SALE, 4000)
    await approved(provider, sale)
    await provider.batch_close(TERMINAL)
    with pytest.raises(ProviderRejected) as err:
        await provider.create(tip_adjust("TA6T", sale, 500))
    assert err.value.provider_code == "BATCH_CLOSED"


# -- hosted checkout (pay-by-link) and Cancel Order ----------------------------------------------

def checkout(order_no: str, amount: int, **fields: Any) -> PaymentOrder:
    fields.setdefault("expires_s", 30)
    return PaymentOrder(order_no=order_no, kind=TxnKind.CHECKOUT_QR, amount=amount,
                        currency="USD", subject="Two mugs", **fields)


async def test_checkout_pay_page_and_notification(sim: CodePaySimulator,
                                                  receiver: Receiver) -> None:
    provider = receiver.provider
    assert isinstance(provider, CodePayProvider)
    order = checkout("CK1", 1500)
    first = await provider.create(order)
    assert (first.outcome, first.closable) == (Outcome.PENDING, True)
    assert first.qr_text is not None and first.qr_text.startswith(sim.url + "/checkout/")
    body = sim.creates[-1]
    assert body["method"] == "pay.checkout" and body["description"] == "Two mugs"
    assert not {"card", "terminal_sn", "trans_type"} & set(body)
    waiting = await provider.query(order)
    assert (waiting.outcome, waiting.closable) == (Outcome.PENDING, True)

    async with aiohttp.ClientSession() as http:
        async with http.get(first.qr_text) as page:
            text = await page.text()
        assert page.status == 200 and "15.00 USD" in text and "<button" in text
        action = re.search(r'action="([^"]+)"', text)
        assert action is not None
        async with http.post(sim.url + action.group(1)) as paid:
            assert paid.status == 200
        async with http.post(sim.url + action.group(1)) as twice:
            assert twice.status == 409
    await receiver.wait_for(lambda reports: any(r.order_no == "CK1" for r in reports))
    [note] = [r for r in receiver.reports if r.order_no == "CK1"]
    assert (note.outcome, note.amount) == (Outcome.APPROVED, 1500)
    done = await provider.query(order)
    assert (done.outcome, done.provider_ref) == (Outcome.APPROVED, sim.orders["CK1"].trans_no)
    assert sim.open_batch_figures(TERMINAL) == {}  # online: in no terminal's batch


async def test_checkout_return_url_and_expiry_limit(make_provider: Make,
                                                    sim: CodePaySimulator) -> None:
    provider = make_provider(return_url="https://store-42.example/thanks")
    await provider.create(checkout("CK2", 700))
    assert sim.creates[-1]["return_url"] == "https://store-42.example/thanks"
    with pytest.raises(ProviderRejected, match="7 days"):
        await provider.create(checkout("CK3", 700, expires_s=7 * 24 * 3600 + 1))


async def test_scan_and_pay_pays_a_checkout_by_its_order_number(
        provider: CodePayProvider, sim: CodePaySimulator) -> None:
    order = checkout("CK4", 900)
    await provider.create(order)
    await sim.scan_and_pay("CK4")
    assert (await provider.query(order)).outcome is Outcome.APPROVED
    declined = checkout("CK5", 905)
    await provider.create(declined)
    await sim.scan_and_pay(sim.orders["CK5"].trans_no)
    assert (await provider.query(declined)).outcome is Outcome.DECLINED


async def test_a_lost_checkout_answer_is_found_unpaid_and_can_be_revoked(
        provider: CodePayProvider, sim: CodePaySimulator) -> None:
    order = checkout("CK6", 1220)
    with pytest.raises(OutcomeUnknown):
        await provider.create(order)
    assert sim.create_count("CK6") == 1
    found = await provider.query(order)
    assert (found.outcome, found.closable) == (Outcome.PENDING, True)
    await provider.close(order)
    assert sim.method_log("CK6")[-1] == m.REVOKE
    assert (await provider.query(order)).outcome is Outcome.CANCELLED
    assert sim.orders["CK6"].pay_token is not None


async def test_revoker_is_never_sent_for_a_paid_checkout(
        provider: CodePayProvider, sim: CodePaySimulator) -> None:
    order = checkout("CK7", 800)
    await provider.create(order)
    await sim.scan_and_pay("CK7")
    with pytest.raises(ProviderRejected, match="approved"):
        await provider.close(order)
    assert m.REVOKE not in sim.method_log("CK7")
    assert (await provider.query(order)).outcome is Outcome.APPROVED


async def test_checkout_notifications_by_cents(provider: CodePayProvider,
                                               sim: CodePaySimulator,
                                               receiver: Receiver) -> None:
    async def pay(order_no: str, amount: int) -> PaymentOrder:
        order = checkout(order_no, amount)
        await provider.create(order)
        await sim.scan_and_pay(order_no)
        return order

    polled = await pay("CK8", 840)  # polling only: no notification
    assert (await provider.query(polled)).outcome is Outcome.APPROVED
    notified = await pay("CK9", 835)  # notification only: answered by the receiver
    await receiver.wait_for(lambda reports: any(r.order_no == "CK9" for r in reports))
    assert (await provider.query(notified)).outcome is Outcome.APPROVED
    assert all(r.order_no != "CK8" for r in receiver.reports)
