"""The CodePay simulator keeps a bounded number of orders and records: many orders through it
leave at most ``keep`` of each, the oldest final ones forgotten first, while its counters,
batch figures and refund limits stay right."""

from __future__ import annotations

import asyncio

import pytest
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from posbridge.errors import ProviderRejected
from posbridge.providers.base import TxnKind
from posbridge.providers.codepay import messages as m
from posbridge.providers.codepay.client import CodePayProvider
from posbridge.sandbox.codepay_sim import CodePaySimulator

from .conftest import APP_ID, MERCHANT_NO, TERMINAL, merchant_private, merchant_public, order

pytestmark = pytest.mark.timeout(60)

KEEP = 40
ORDERS = 200


async def settle(sim: CodePaySimulator, order_no: str) -> None:
    """Until the order is final and its simulated terminal has finished (bounded)."""
    for _ in range(2000):
        found = sim.orders.get(order_no)
        if found is not None and found.status in (m.TransStatus.SUCCESS, m.TransStatus.FAILED,
                                                  m.TransStatus.CANCELLED):
            await asyncio.sleep(0)  # the terminal task ends right after its final status
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"{order_no} did not become final")


async def test_many_orders_leave_at_most_keep(gateway_key: RSAPrivateKey) -> None:
    sim = CodePaySimulator(app_id=APP_ID, merchant_no=MERCHANT_NO,
                           gateway_private_key=gateway_key, merchant_public_key=merchant_public(),
                           approve_delay_s=0.0, keep=KEEP)
    await sim.start()
    provider = CodePayProvider(base_url=sim.url, app_id=APP_ID, merchant_no=MERCHANT_NO,
                               store_no=None, private_key=merchant_private(),
                               gateway_public_key=gateway_key.public_key(), notify_url=None,
                               timeout_s=5.0)
    try:
        # An order on an offline terminal (cents .15) stays open all along: never forgotten.
        await provider.create(order("HOLD", 1215, expires_s=600))
        for i in range(ORDERS):
            await provider.create(order(f"M{i}", 100))
            await settle(sim, f"M{i}")

        assert len(sim.orders) == KEEP
        assert "HOLD" in sim.orders and "M0" not in sim.orders
        assert f"M{ORDERS - 1}" in sim.orders
        for recorded in (sim.requests, sim.creates):
            assert len(recorded) <= KEEP + KEEP // 4
        assert sim.totals() == {"creates": ORDERS + 1, "orders": ORDERS + 1,
                               "forgotten": ORDERS + 1 - KEEP, "kept": KEEP,
                               "requests": ORDERS + 1, "notifications": 0}
        # The inspection helpers answer for recent orders.
        last = f"M{ORDERS - 1}"
        assert sim.create_count(last) == 1 and sim.method_log(last) == [m.CREATE]
        assert {o["order_no"] for o in sim.recent_orders()} == set(sim.orders)
        # Batch figures are running totals: forgetting orders loses none of them.
        assert sim.open_batch_figures(TERMINAL) == {"USD": (ORDERS, ORDERS * 100)}

        # A recent sale's refund limit still holds (kept on the sale, not found by a scan).
        await provider.create(order("R1", 60, kind=TxnKind.REFUND, orig=last))
        await settle(sim, "R1")
        with pytest.raises(ProviderRejected) as refused:
            await provider.create(order("R2", 60, kind=TxnKind.REFUND, orig=last))
        assert refused.value.provider_code == "REFUND_AMOUNT_EXCEEDED"
        assert len(sim.orders) == KEEP
    finally:
        await provider.aclose()
        await sim.stop()
