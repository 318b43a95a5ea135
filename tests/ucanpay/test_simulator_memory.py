"""The UCanPay simulator keeps a bounded number of orders and records: many orders through it
leave at most ``keep`` of each, the oldest settled ones forgotten first."""

from __future__ import annotations

import pytest

from posbridge.providers.base import PaymentOrder, TxnKind
from posbridge.providers.ucanpay.client import UCanPayProvider
from posbridge.sandbox.ucanpay_sim import SimulatorError, UCanPaySimulator

from .conftest import MERCHANT_ID, Clock, Receiver, private_key, public_key

pytestmark = pytest.mark.timeout(60)

KEEP = 30
ORDERS = 150


def qr(order_no: str) -> PaymentOrder:
    return PaymentOrder(order_no=order_no, kind=TxnKind.QR_SALE, amount=250, currency="CAD",
                        subject="Coffee")


async def test_many_orders_leave_at_most_keep(clock: Clock, receiver: Receiver) -> None:
    sim = UCanPaySimulator(merchant_id=MERCHANT_ID, private_key=private_key("rsa2048"),
                           merchant_public_key=public_key("rsa1024"), clock=clock,
                           notify_interval_s=0.05, keep=KEEP)
    await sim.start()
    provider = UCanPayProvider(base_url=sim.url, merchant_id=MERCHANT_ID,
                               private_key=private_key("rsa1024"),
                               public_key=public_key("rsa2048"), notify_url=receiver.url,
                               refund_notify_url=None, timeout_s=5.0, clock=clock)
    try:
        await provider.create(qr("HOLD"))  # never paid nor closed: the customer may still pay
        for i in range(ORDERS):
            placed = qr(f"Q{i}")
            await provider.create(placed)
            await provider.close(placed)  # settled: CLOSED

        assert len(sim.orders) == KEEP
        assert "HOLD" in sim.orders and "Q0" not in sim.orders
        assert f"Q{ORDERS - 1}" in sim.orders
        assert len(sim.requests) <= KEEP + KEEP // 4
        stats = sim.totals()
        assert (stats["orders"], stats["forgotten"], stats["kept"]) == (
            ORDERS + 1, ORDERS + 1 - KEEP, KEEP)
        assert stats["requests"] == 1 + 2 * ORDERS
        last = f"Q{ORDERS - 1}"
        assert sim.count("unifiedorder", last) == 1 and sim.count("closeorder", last) == 1
        assert sim.order(last).status == "CLOSED"
        assert sim.recent_orders()[0]["order_no"] == "HOLD"

        # A forgotten order is unknown, as past the gateway's retention.
        with pytest.raises(SimulatorError, match="no such order"):
            sim.order("Q0")
    finally:
        await provider.aclose()
        await sim.stop()
