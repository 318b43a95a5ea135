"""The CodePay simulator refuses what the seed does not allow in the card lifecycle, and its
open-batch figures count what its docstring says."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from posbridge.errors import ProviderRejected
from posbridge.providers.base import Outcome, PaymentOrder, TxnKind
from posbridge.providers.codepay import messages as m
from posbridge.providers.codepay.client import CodePayProvider
from posbridge.sandbox import codepay_sim
from posbridge.sandbox.codepay_sim import CodePaySimulator

from .conftest import MERCHANT_NO, TERMINAL, call, create_fields, refused_code, until_outcome

pytestmark = pytest.mark.timeout(30)


async def approved_order(provider: CodePayProvider, order_no: str, kind: TxnKind, amount: int,
                         orig: str | None = None, orig_kind: TxnKind | None = None,
                         tip: int = 0) -> PaymentOrder:
    order = PaymentOrder(order_no=order_no, kind=kind, amount=amount, currency="USD", tip=tip,
                         terminal_sn=TERMINAL, orig_order_no=orig, orig_kind=orig_kind,
                         expires_s=30)
    await provider.create(order)
    await until_outcome(provider, order, Outcome.APPROVED)
    return order


@pytest.mark.parametrize("trans_type", [2, 3, 5, 6, 7, 8])
async def test_children_need_orig_merchant_order_no(
        session: aiohttp.ClientSession, sim: CodePaySimulator, gateway_key: RSAPrivateKey,
        trans_type: int) -> None:
    code = await refused_code(session, sim, m.CREATE, create_fields(trans_type=trans_type),
                              gateway_key)
    assert code == "INVALID_PARAMETER" and sim.orders == {}


@pytest.mark.parametrize(("trans_type", "orig_no"), [
    (6, "SALE1"), (5, "SALE1"), (2, "PRE1"), (3, "PRE1"), (7, "SALE1"), (8, "PRE1"),
    (6, "NOSUCH"),
])
async def test_the_original_must_be_of_the_right_type(
        session: aiohttp.ClientSession, sim: CodePaySimulator, gateway_key: RSAPrivateKey,
        provider: CodePayProvider, trans_type: int, orig_no: str) -> None:
    await approved_order(provider, "SALE1", TxnKind.SALE, 100)
    await approved_order(provider, "PRE1", TxnKind.PREAUTH, 100)
    code = await refused_code(session, sim, m.CREATE, create_fields(
        "CH1", trans_type=trans_type, orig_merchant_order_no=orig_no), gateway_key)
    assert code == "ORIG_ORDER_INVALID" and "CH1" not in sim.orders


@pytest.mark.parametrize("fields", [
    create_fields(cashback_amount="1.00"),  # cash back on a plain sale
    create_fields(trans_type=11),  # a cashback sale without its cash back
    create_fields(trans_type=11, cashback_amount="0.00"),
    create_fields(trans_type=11, cashback_amount="1.00", on_screen_tip=True),
    create_fields(on_screen_tip="true"),  # a string, not a boolean
    create_fields(description="d" * 129),
    create_fields(notify_url="https://x.example/" + "n" * 240),
])
async def test_cashback_on_screen_tip_and_lengths_are_checked(
        session: aiohttp.ClientSession, sim: CodePaySimulator, gateway_key: RSAPrivateKey,
        fields: dict[str, Any]) -> None:
    assert await refused_code(session, sim, m.CREATE, fields, gateway_key) == (
        "INVALID_PARAMETER")
    assert sim.orders == {}


async def test_on_screen_tip_only_on_1_3_4(
        session: aiohttp.ClientSession, sim: CodePaySimulator, gateway_key: RSAPrivateKey,
        provider: CodePayProvider) -> None:
    await approved_order(provider, "PRE2", TxnKind.PREAUTH, 1000)
    code = await refused_code(session, sim, m.CREATE, create_fields(
        "C2", trans_type=6, orig_merchant_order_no="PRE2", order_amount="5.00",
        on_screen_tip=True), gateway_key)
    assert code == "INVALID_PARAMETER"
    for trans_type in (1, 4):
        data = await call(session, sim, m.CREATE, create_fields(
            f"OST{trans_type}", trans_type=trans_type, on_screen_tip=True), gateway_key)
        assert data["trans_no"]


async def test_refund_submit_refusals(session: aiohttp.ClientSession, sim: CodePaySimulator,
                                      gateway_key: RSAPrivateKey,
                                      provider: CodePayProvider) -> None:
    await approved_order(provider, "S5", TxnKind.SALE, 1000)
    base = {"merchant_no": MERCHANT_NO, "merchant_order_no": "R5", "price_currency": "USD",
            "order_amount": "2.00", "description": "why"}
    for fields, code in (
            (base, "INVALID_PARAMETER"),  # neither orig_merchant_order_no nor orig_trans_no
            ({**base, "orig_merchant_order_no": "S5", "description": "w" * 65},
             "INVALID_PARAMETER"),
            ({**base, "orig_merchant_order_no": "S5", "order_amount": "10.01"},
             "REFUND_AMOUNT_EXCEEDED"),
            ({**base, "orig_merchant_order_no": "NOPE"}, "ORIG_ORDER_INVALID"),
            ({**base, "orig_merchant_order_no": "S5", "merchant_order_no": "S5"},
             "ORDER_DUPLICATE")):
        assert await refused_code(session, sim, m.REFUND_SUBMIT, fields, gateway_key) == code
    by_trans_no = {**base, "orig_trans_no": sim.orders["S5"].trans_no}
    data = await call(session, sim, m.REFUND_SUBMIT, by_trans_no, gateway_key)
    assert set(data) == {"trans_no", "trans_amount", "trans_fee_c", "vat_amount"}
    assert data["trans_amount"] == "2.00"
    # Query Refund knows refunds only
    assert await refused_code(session, sim, m.REFUND_QUERY, {
        "merchant_no": MERCHANT_NO, "merchant_order_no": "S5"}, gateway_key) == (
        "ORDER_NOT_EXIST")


@pytest.mark.parametrize(("changes", "words"), [
    ({"expires": 7 * 24 * 3600 + 1}, "at most 604800"),
    ({"card": {"pan": "4111111111111111"}}, "card"),
    ({"return_url": "https://x.example/" + "r" * 240}, "return_url"),
])
async def test_checkout_refusals(session: aiohttp.ClientSession, sim: CodePaySimulator,
                                 gateway_key: RSAPrivateKey, changes: dict[str, Any],
                                 words: str) -> None:
    fields = {"merchant_no": MERCHANT_NO, "merchant_order_no": "CKX", "price_currency": "USD",
              "order_amount": "1.00", "expires": 60, "description": "d", **changes}
    with pytest.raises(ProviderRejected) as err:
        await call(session, sim, m.CHECKOUT, fields, gateway_key)
    assert err.value.provider_code == "INVALID_PARAMETER"
    assert words in err.value.message and sim.orders == {}


async def test_cancel_order_is_for_online_orders_and_close_for_terminal_ones(
        session: aiohttp.ClientSession, sim: CodePaySimulator, gateway_key: RSAPrivateKey,
        provider: CodePayProvider) -> None:
    await provider.create(PaymentOrder(order_no="T9", kind=TxnKind.SALE, amount=1245,
                                       currency="USD", terminal_sn=TERMINAL))
    assert await refused_code(session, sim, m.REVOKE, {
        "merchant_no": MERCHANT_NO, "merchant_order_no": "T9"}, gateway_key) == (
        "REVOKE_NOT_SUPPORTED")
    await call(session, sim, m.CHECKOUT, {
        "merchant_no": MERCHANT_NO, "merchant_order_no": "CK9", "price_currency": "USD",
        "order_amount": "1.00", "expires": 60, "description": "d"}, gateway_key)
    assert await refused_code(session, sim, m.CLOSE, {
        "merchant_no": MERCHANT_NO, "merchant_order_no": "CK9", "terminal_sn": TERMINAL,
        "message_receiving_application": "CodePay Register"}, gateway_key) == (
        "ORDER_STATUS_ERROR")
    # Cancel Order of a paid checkout returns the money: the order ends at status 3
    await sim.scan_and_pay("CK9")
    await call(session, sim, m.REVOKE, {"merchant_no": MERCHANT_NO,
                                        "merchant_order_no": "CK9"}, gateway_key)
    assert sim.orders["CK9"].status is m.TransStatus.CANCELLED


async def test_tip_adjustment_refusals(session: aiohttp.ClientSession, sim: CodePaySimulator,
                                       gateway_key: RSAPrivateKey,
                                       provider: CodePayProvider) -> None:
    await approved_order(provider, "TS1", TxnKind.SALE, 1000)
    await approved_order(provider, "TP1", TxnKind.PREAUTH, 1000)

    async def refused(order_no: str, amount: str) -> str | None:
        return await refused_code(session, sim, m.TIP_ADJUST, {
            "merchant_no": MERCHANT_NO, "merchant_order_no": order_no,
            "tip_adjustment_amount": amount}, gateway_key)

    assert await refused("NOSUCH", "1.00") == "ORDER_NOT_EXIST"
    assert await refused("TP1", "1.00") == "ORIG_ORDER_INVALID"  # a pre-auth has no tip to adjust
    assert await refused("TS1", "-1.00") == "INVALID_PARAMETER"  # "total": never negative
    assert await refused("TS1", "1.001") == "INVALID_PARAMETER"
    await provider.batch_close(TERMINAL)
    assert await refused("TS1", "1.00") == "BATCH_CLOSED"
    assert sim.orders["TS1"].tip == 0 and sim.tip_adjustments == []


async def test_open_batch_counts_settling_transactions_only(
        provider: CodePayProvider, sim: CodePaySimulator, session: aiohttp.ClientSession,
        gateway_key: RSAPrivateKey) -> None:
    await approved_order(provider, "F1", TxnKind.PREAUTH, 5000)
    assert sim.open_batch_figures(TERMINAL) == {}  # a hold settles nothing
    await approved_order(provider, "F1C", TxnKind.COMPLETION, 4000, orig="F1",
                         orig_kind=TxnKind.PREAUTH, tip=500)
    assert sim.open_batch_figures(TERMINAL) == {"USD": (1, 4500)}
    await approved_order(provider, "F2", TxnKind.PREAUTH, 3000)
    await approved_order(provider, "F2X", TxnKind.PREAUTH_CANCEL, 3000, orig="F2",
                         orig_kind=TxnKind.PREAUTH)
    assert sim.open_batch_figures(TERMINAL) == {"USD": (1, 4500)}
    await call(session, sim, m.TIP_ADJUST, {"merchant_no": MERCHANT_NO,
                                            "merchant_order_no": "F1C",
                                            "tip_adjustment_amount": "8.00"}, gateway_key)
    assert sim.open_batch_figures(TERMINAL) == {"USD": (1, 4800)}
    await approved_order(provider, "F1CR", TxnKind.REFUND, 800, orig="F1C",
                         orig_kind=TxnKind.COMPLETION)
    assert sim.open_batch_figures(TERMINAL) == {"USD": (2, 4000)}
    closed = await provider.batch_close(TERMINAL)
    assert (closed["count"], closed["total_amount"]) == (2, "40.00")
    assert sim.totals()["tip_adjustments"] == 1


def test_the_banner_says_what_the_cents_apply_to() -> None:
    rules = dict(codepay_sim.SANDBOX.behaviours)
    assert rules[".05"].startswith("decline") and "pre-auths" in rules["cents"]
    assert "15%" in rules["tip"] and "declined" in rules["adj.05"]
    doc = codepay_sim.__doc__ or ""
    assert "Get Open Batch" in doc and "on_screen_tip" in doc
