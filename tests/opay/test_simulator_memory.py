"""The crypto platform simulator keeps a bounded number of orders and records: many orders
through it leave at most ``keep`` of each, the oldest settled ones forgotten first and never
one still pending payment."""

from __future__ import annotations

import pytest

from posbridge.providers.opay.client import OPayProvider
from posbridge.sandbox.opay_sim import OPaySimulator, SimulatorError

from .conftest import APP_ID, COINS, Clock, Receiver, private_key, public_key, sale

pytestmark = pytest.mark.timeout(60)

KEEP = 20
ORDERS = 80


async def test_many_orders_leave_at_most_keep(clock: Clock, receiver: Receiver) -> None:
    sim = OPaySimulator(app_id=APP_ID, platform_key=private_key("platform"),
                        merchant_public_key=public_key("merchant"), coins=COINS, clock=clock,
                        keep=KEEP, approve_delay_s=0.01)
    await sim.start()
    provider = OPayProvider(base_url=sim.url, app_id=APP_ID, merchant_key=private_key("merchant"),
                            platform_key=public_key("platform"), coins=COINS,
                            notify_url=receiver.url, expires_s=600, lost_order_settle_s=600,
                            timeout_s=5.0, clock=clock)
    try:
        held = await provider.create(sale("HOLD"))  # never paid: the customer may still pay
        for i in range(ORDERS):
            created = await provider.create(sale(f"N{i}"))
            await provider.close(sale(f"N{i}", ref=created.provider_ref))  # settled: closed
        assert len(sim.orders) == KEEP
        assert sim.order("HOLD").order_num == held.provider_ref
        assert sim.order(f"N{ORDERS - 1}").status == "0"
        with pytest.raises(SimulatorError, match="no such order"):
            sim.order("N0")  # forgotten, as past the platform's retention
        assert len(sim.requests) <= KEEP + KEEP // 4
        assert sim.totals() == {"requests": 1 + 2 * ORDERS, "orders": ORDERS + 1,
                                "forgotten": ORDERS + 1 - KEEP, "kept": KEEP, "callbacks": 0}
        assert sim.recent_orders()[0]["order_no"] == "HOLD"
    finally:
        await provider.aclose()
        await sim.stop()
