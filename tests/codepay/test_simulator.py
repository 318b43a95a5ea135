"""The CodePay simulator checks requests like the gateway, and its behaviour table is honest."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from posbridge.errors import ProviderRejected
from posbridge.providers.codepay import messages as m
from posbridge.sandbox import codepay_sim
from posbridge.sandbox.codepay_sim import (
    BEHAVIOURS,
    Behaviour,
    CodePaySimulator,
    behaviour_for,
)

from .conftest import MERCHANT_NO, TERMINAL, call, create_fields, refused_code

pytestmark = pytest.mark.timeout(20)


@pytest.mark.parametrize(("field", "value"), [
    ("format", "XML"), ("charset", "GBK"), ("version", "2.0"), ("sign_type", "RSA"),
    ("timestamp", 1709106082), ("timestamp", "abc"), ("app_id", "someone-else"),
])
async def test_envelope_fields_are_checked(session: aiohttp.ClientSession,
                                           sim: CodePaySimulator, gateway_key: RSAPrivateKey,
                                           field: str, value: object) -> None:
    code = await refused_code(session, sim, m.QUERY, {"merchant_no": MERCHANT_NO,
                                                      "merchant_order_no": "X"},
                              gateway_key, **{field: value})
    assert code in ("INVALID_PARAMETER", "AUTH_FAILED")
    assert sim.requests == []


@pytest.mark.parametrize("missing", ["terminal_sn", "price_currency", "order_amount",
                                     "trans_type", "merchant_order_no", "description",
                                     "expires", "api_version", "message_receiving_application"])
async def test_required_create_fields_are_checked(
        session: aiohttp.ClientSession, sim: CodePaySimulator, gateway_key: RSAPrivateKey,
        missing: str) -> None:
    fields = create_fields()
    del fields[missing]
    assert await refused_code(session, sim, m.CREATE, fields, gateway_key) == (
        "INVALID_PARAMETER")
    assert sim.orders == {}


@pytest.mark.parametrize("fields", [
    create_fields("bad no"), create_fields(api_version="1.0"),
    create_fields(order_amount="1.001"), create_fields(order_amount="0.00"),
    create_fields(price_currency="XYZ"), create_fields(trans_type=12),
    create_fields(message_receiving_application="Other"), create_fields(expires=0),
    create_fields(merchant_no="000"), create_fields(trans_type=3),
])
async def test_bad_create_fields_are_refused(session: aiohttp.ClientSession,
                                             sim: CodePaySimulator, gateway_key: RSAPrivateKey,
                                             fields: dict[str, Any]) -> None:
    with pytest.raises(ProviderRejected):
        await call(session, sim, m.CREATE, fields, gateway_key)
    assert sim.orders == {}


async def test_second_create_with_the_same_number_is_refused_as_duplicate(
        session: aiohttp.ClientSession, sim: CodePaySimulator,
        gateway_key: RSAPrivateKey) -> None:
    data = await call(session, sim, m.CREATE, create_fields("SAME"), gateway_key)
    assert set(data) == {"message_id", "trans_no", "terminal_online_status"}
    code = await refused_code(session, sim, m.CREATE, create_fields("SAME", order_amount="2.00"),
                              gateway_key)
    assert code == "ORDER_DUPLICATE"
    assert sim.create_count("SAME") == 2 and len(sim.orders) == 1
    assert sim.method_log("SAME") == [m.CREATE, m.CREATE]


async def test_offline_terminal_may_be_asked_to_reject(
        session: aiohttp.ClientSession, sim: CodePaySimulator,
        gateway_key: RSAPrivateKey) -> None:
    sim.set_terminal_online(TERMINAL, False)
    code = await refused_code(session, sim, m.CREATE,
                              create_fields(reject_trade_when_terminal_offline=True), gateway_key)
    assert code == "TERMINAL_OFFLINE"
    data = await call(session, sim, m.CREATE, create_fields("OFF2"), gateway_key)
    assert data["terminal_online_status"] == "offline"


async def test_unknown_method_is_refused(session: aiohttp.ClientSession, sim: CodePaySimulator,
                                         gateway_key: RSAPrivateKey) -> None:
    # The checkout that takes the card is not simulated: the bridge never sends card data.
    assert await refused_code(session, sim, "pay.merchant.checkout",
                              {"merchant_no": MERCHANT_NO}, gateway_key) == "METHOD_NOT_SUPPORTED"


async def test_open_batch_of_several_terminals_lists_each_currency(
        session: aiohttp.ClientSession, sim: CodePaySimulator,
        gateway_key: RSAPrivateKey) -> None:
    sim.adjust_open_batch("T1", "USD", 150)
    sim.adjust_open_batch("T2", "JPY", 300)
    data = await call(session, sim, m.DEFAULT_OPEN_BATCH_METHOD,
                      {"merchant_no": MERCHANT_NO, "terminal_sn_list": ["T1", "T2"]},
                      gateway_key)
    assert data["totals"] == [
        {"price_currency": "JPY", "count": 0, "total_amount": "300"},
        {"price_currency": "USD", "count": 0, "total_amount": "1.50"}]


def test_behaviour_table_covers_the_documented_cents() -> None:
    assert set(BEHAVIOURS) == {b.value for b in Behaviour}
    assert {c: behaviour_for(1200 + c) for c in (0, 5, 10, 15, 20, 25, 30, 35, 40, 45)} == {
        b.value: b for b in Behaviour}
    assert behaviour_for(1299) is Behaviour.APPROVE
    assert behaviour_for(7) is Behaviour.APPROVE
    table = codepay_sim.__doc__ or ""
    for cents in BEHAVIOURS:
        assert f"\n{cents:02d}     " in table  # each row of the documented table
