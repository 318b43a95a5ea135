"""Operations over the daemon's real HTTP listener: /metrics, /healthz, and the CodePay
notification endpoint facing forged, altered and wrongly signed traffic."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from prometheus_client.parser import text_string_to_metric_families

from posbridge.keyfiles import load_private_key
from posbridge.providers.codepay import messages as m
from posbridge.providers.codepay import signing

from .conftest import Bridge

SALE = {"terminal": "lane-1", "currency": "USD"}


async def get_text(url: str) -> tuple[int, str, str]:
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        return resp.status, resp.headers["Content-Type"], await resp.text()


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str,
          **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


async def post_note(bridge: Bridge, note: dict[str, Any]) -> str:
    async with aiohttp.ClientSession() as http, http.post(
            f"{bridge.http}/notify/codepay", data=m.dumps(note).encode(),
            headers={"Content-Type": "application/json"}) as resp:
        return await resp.text()


def signed_note(key: Any, order_no: str, trans_no: str, amount: str, status: int = 2
                ) -> dict[str, Any]:
    note: dict[str, Any] = {
        "merchant_no": "SANDBOX000001", "app_id": "sandbox-app", "trans_no": trans_no,
        "merchant_order_no": order_no, "terminal_sn": "SANDBOX0000000001", "trans_type": 1,
        "trans_status": status, "price_currency": "USD", "order_amount": amount,
        "auth_no": "999999", "sign_type": "RSA2"}
    note["sign"] = signing.sign(note, key)
    return note


async def test_metrics_parse_and_count_what_happened(bridge: Bridge) -> None:
    async with await bridge.register() as ecr:
        assert (await ecr.call("sale", {**SALE, "order_no": "M1", "amount": "3.00"}))[
            "state"] == "approved"
        assert (await ecr.call("sale", {**SALE, "order_no": "M2", "amount": "3.05"}))[
            "state"] == "declined"
        assert await post_note(bridge, {"merchant_no": "x", "sign": "AAAA"}) == "fail"
        status, ctype, text = await get_text(f"{bridge.http}/metrics")
    assert status == 200 and ctype.startswith("text/plain")
    found = samples(text)  # raises if the exposition format is broken
    assert value(found, "posbridge_transactions_total", provider="codepay", kind="sale",
                 state="approved") == 1
    assert value(found, "posbridge_transactions_total", provider="codepay", kind="sale",
                 state="declined") == 1
    assert value(found, "posbridge_transaction_seconds_count", provider="codepay",
                 kind="sale") == 2
    assert value(found, "posbridge_provider_request_seconds_count", provider="codepay",
                 method="create") == 2
    assert sum(v for (n, _), v in found.items()
               if n == "posbridge_notifications_rejected_total") == 1
    assert value(found, "posbridge_ecr_connections") == 1
    assert value(found, "posbridge_journal_commit_seconds_count") > 0
    # two sales: at least their intents and final states were fsynced
    assert value(found, "posbridge_journal_fsyncs_total") >= 4


async def test_provider_errors_are_counted(make_bridge: Any) -> None:
    b: Bridge = await make_bridge(codepay={"base_url": "http://127.0.0.1:9"}, expires_s=1)
    async with await b.register() as ecr:
        await ecr.call("sale", {**SALE, "order_no": "PE1", "amount": "1.00", "wait": False})
        await asyncio.sleep(0.5)
    found = samples((await get_text(f"{b.http}/metrics"))[2])
    assert value(found, "posbridge_provider_errors_total", provider="codepay",
                 reason="unreachable") >= 1


async def healthz(bridge: Bridge, done: Any = lambda r: True) -> tuple[int, dict[str, Any]]:
    """/healthz, polled (bounded) until ``done(report)``: the start-up probe runs in the
    background."""
    for _ in range(100):
        async with aiohttp.ClientSession() as http, http.get(f"{bridge.http}/healthz") as resp:
            assert resp.headers["Content-Type"].startswith("application/json")
            status, report = resp.status, await resp.json()
        if done(report):
            break
        await asyncio.sleep(0.05)
    return status, report


def probed(name: str) -> Any:
    return lambda r: r["providers"][name]["reachable"] is not None


async def test_healthz_probes_the_providers_at_start(bridge: Bridge) -> None:
    status, report = await healthz(bridge, lambda r: probed("codepay")(r) and probed("ucanpay")(r))
    assert status == 200 and report["status"] == "ok" and report["journal"] == "ok"
    assert report["providers"]["codepay"] == {
        "reachable": True, "error": None, "checked_at": report["providers"]["codepay"][
            "checked_at"]}
    assert report["providers"]["ucanpay"]["reachable"] is True
    assert report["devices"]["printers"] == {"lane-1": "ok", "lane-2": "ok"}
    # the probe asked about an order that does not exist; no payment was touched
    assert bridge.sims.codepay.create_count("PBHEALTHPROBE") == 0
    async with await bridge.register() as ecr:
        listed = await ecr.call("transactions.list", {})
    assert listed["items"] == []


async def test_healthz_degraded_when_the_provider_is_unreachable(make_bridge: Any) -> None:
    down: Bridge = await make_bridge(codepay={"base_url": "http://127.0.0.1:9"})
    status, report = await healthz(down, probed("codepay"))
    assert status == 503 and report["status"] == "degraded"
    assert report["providers"]["codepay"]["reachable"] is False
    assert report["providers"]["codepay"]["error"]


async def test_forged_and_wrong_amount_codepay_notifications_are_rejected(
        bridge: Bridge) -> None:
    stranger = signing_key_pair()
    gateway = bridge_gateway_key(bridge)
    async with await bridge.register() as ecr:
        # .10: the terminal stays silent, so only our notifications could finish the sale
        txn = await ecr.call("sale", {**SALE, "order_no": "F1", "amount": "5.10",
                                      "wait": False})
        for _ in range(50):
            txn = await ecr.call("status", {"order_no": "F1"})
            if txn["provider_ref"]:
                break
            await asyncio.sleep(0.05)
        ref = txn["provider_ref"]
        assert await post_note(bridge, signed_note(stranger, "F1", ref, "5.10")) == "fail"
        assert await post_note(bridge, signed_note(gateway, "F1", ref, "0.01")) == "fail"
        unsigned = signed_note(gateway, "F1", ref, "5.10")
        unsigned["order_amount"] = "5.11"  # altered after signing
        assert await post_note(bridge, unsigned) == "fail"
        assert await post_note(bridge, signed_note(gateway, "NOPE1", ref, "5.10")) == "fail"
        assert (await ecr.call("status", {"order_no": "F1"}))["state"] == "in_progress"
        # the genuine article is taken
        assert await post_note(bridge, signed_note(gateway, "F1", ref, "5.10")) == "success"
        assert (await ecr.call("status", {"order_no": "F1"}))["state"] == "approved"
    found = samples((await get_text(f"{bridge.http}/metrics"))[2])
    assert sum(v for (n, _), v in found.items()
               if n == "posbridge_notifications_rejected_total") == 4


async def test_responses_signed_with_another_key_are_never_success(
        make_bridge: Any, tmp_path: Any) -> None:
    """The bridge trusts a gateway key the simulator does not sign with: every answer fails
    verification, so nothing can be approved — and the create is never sent twice."""
    wrong = tmp_path / "wrong_gateway_public.pem"
    wrong.write_bytes(public_pem(signing_key_pair()))
    b: Bridge = await make_bridge(codepay={"gateway_public_key_file": str(wrong)},
                                  expires_s=2)
    async with await b.register() as ecr:
        txn = await ecr.call("sale", {**SALE, "order_no": "W1", "amount": "4.00",
                                      "timeout_s": 3})
        assert txn["state"] != "approved"
        await asyncio.sleep(1.0)
        later = await ecr.call("status", {"order_no": "W1"})
        assert later["state"] in ("pending", "unknown"), later
    assert b.sims.codepay.create_count("W1") == 1
    # ... and /healthz says the provider's answers cannot be trusted
    status, report = await healthz(b, lambda r: r["providers"]["codepay"]["reachable"]
                                   is not None)
    assert status == 503 and report["providers"]["codepay"]["error"]


def signing_key_pair() -> Any:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_pem(key: Any) -> bytes:
    pem: bytes = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return pem


def bridge_gateway_key(bridge: Bridge) -> Any:
    codepay = bridge.daemon.config.codepay
    assert codepay is not None and codepay.gateway_public_key_file is not None
    path = codepay.gateway_public_key_file
    return load_private_key(path.parent.joinpath("codepay_gateway_private.pem").read_bytes())
