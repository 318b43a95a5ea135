"""A running daemon under fuzzed input on every surface it listens on, over real sockets:
every answer is a clear refusal (never -32603, never a 5xx, never an unexplained close), the
journal stays whole, and another register completes a sale afterwards.

Seeded: the same input every run. ``bench/fuzz.py`` runs the same drivers for longer.
"""

from __future__ import annotations

import random

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from posbridge.journal_audit import audit_journal
from posbridge.sandbox.codepay_sim import MERCHANT_NO
from posbridge.sandbox.runtime import SandboxKeys
from posbridge.sandbox.ucanpay_sim import MERCHANT_ID as UCANPAY_MERCHANT

from ..e2e.conftest import PIN, TOKEN, Bridge
from .surfaces import ECR_FRAMES, GatewayKeys, provider_surfaces
from .wire import fuzz_auth, fuzz_ecr, fuzz_manager, fuzz_notify

pytestmark = pytest.mark.timeout(180)

SALE = {"terminal": "lane-1", "currency": "USD"}


async def internal_errors(bridge: Bridge) -> float:
    """Requests the daemon answered with -32603 (a caught exception), from /metrics."""
    async with aiohttp.ClientSession() as http, http.get(bridge.http + "/metrics") as resp:
        text = await resp.text()
    return sum(sample.value for family in text_string_to_metric_families(text)
               for sample in family.samples
               if sample.name == "posbridge_ecr_requests_total"
               and sample.labels.get("outcome") == "internal_error")


async def test_fuzzed_input_on_every_surface_is_refused_clearly(bridge: Bridge,
                                                               keys: SandboxKeys) -> None:
    rng = random.Random(20261202)
    async with await bridge.register() as ecr:
        done = [await ecr.call("sale", {**SALE, "order_no": f"FZ{i}", "amount": amount})
                for i, amount in enumerate(("1.00", "1.05", "2.00"))]
        await ecr.call("qr_sale", {"order_no": "FZQ1", "amount": "3.00", "currency": "CAD",
                                   "subject": "Tea", "wait": False})
    order_nos = [t["order_no"] for t in done] + ["FZQ1"]
    gateways = GatewayKeys(keys.private_key("codepay_gateway"),
                           keys.private_key("ucanpay_gateway"),
                           keys.private_key("opay_platform"), keys.private_key("opay_merchant"))
    codepay_notes, _, ucanpay_notes, _, opay_notes, _ = provider_surfaces(
        gateways, merchant_no=MERCHANT_NO, ucanpay_merchant=UCANPAY_MERCHANT, order_nos=order_nos)

    # The manager page first: wrong manager_pin values in fuzzed frames lock PIN checks out.
    findings = [
        await fuzz_manager(bridge.http, PIN, order_nos, ["lane-1", "SANDBOX0000000002"], rng,
                           60, wrong_pins=2),
        await fuzz_ecr(bridge.url, TOKEN, ECR_FRAMES, rng, 120),
        await fuzz_auth("127.0.0.1", bridge.daemon.ecr_port, TOKEN, rng, 40, wrong_tokens=3),
        await fuzz_notify(bridge.http, "codepay", codepay_notes, rng, 80),
        await fuzz_notify(bridge.http, "ucanpay", ucanpay_notes, rng, 80),
        await fuzz_notify(bridge.http, "opay", opay_notes, rng, 60),
    ]

    problems = [f"{f.surface}: {p}" for f in findings for p in f.problems]
    assert problems == [], "\n".join(problems)
    assert all(f.sent for f in findings)
    assert await internal_errors(bridge) == 0
    assert audit_journal(bridge.data_dir / "journal.sqlite") == []
    async with await bridge.register() as other:  # the daemon still serves everyone else
        txn = await other.call("sale", {**SALE, "order_no": "FZAFTER", "amount": "4.00"})
    assert txn["state"] == "approved"
