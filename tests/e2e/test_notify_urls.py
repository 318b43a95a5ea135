"""The notification URLs the providers are given are absolute and reach the bridge."""

from __future__ import annotations

import asyncio
import re

from .conftest import Bridge

URL = re.compile(r"http://127\.0\.0\.1:\d+/notify/ucanpay(/refund)?")


async def test_ucanpay_gets_absolute_payment_and_refund_notify_urls(bridge: Bridge) -> None:
    sim = bridge.sims.ucanpay
    async with await bridge.manager() as ecr:
        txn = await ecr.call("qr_sale", {"order_no": "NU1", "amount": "5.00", "currency": "CAD",
                                         "subject": "Tea", "wait": False})
        await sim.scan_and_pay(txn["provider_ref"])
        for _ in range(100):
            if (await ecr.call("status", {"order_no": "NU1"}))["state"] == "approved":
                break
            await asyncio.sleep(0.05)
        refund = await ecr.call("refund", {"order_no": "NU1R", "orig_order_no": "NU1",
                                           "amount": "1.00"})
    assert refund["state"] == "approved"
    urls = {name: body["notifyUrl"] for name, body in sim.requests
            if name in ("unifiedorder", "refund")}
    assert URL.fullmatch(urls["unifiedorder"]) and not urls["unifiedorder"].endswith("/refund")
    assert URL.fullmatch(urls["refund"]) and urls["refund"].endswith("/notify/ucanpay/refund")
