"""Fixtures: the checked-in test key, fresh gateway keys, a CodePay simulator and a provider.

The merchant signs with the checked-in RSA-2048 test key of ``tests/vectors/codepay``; the
simulated gateway signs with a key made once per test session (a different key, so a mix-up
of the two would fail verification).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

from posbridge.keyfiles import generate_rsa_pem, load_private_key, load_public_key
from posbridge.providers.base import Outcome, PaymentOrder, ProviderReport, TxnKind
from posbridge.providers.codepay.client import CodePayProvider
from posbridge.sandbox.codepay_sim import CodePaySimulator
from tests.notify_receiver import Receiver, listening

__all__ = ["Receiver"]

VECTORS = Path(__file__).resolve().parent.parent / "vectors" / "codepay"
APP_ID = "test-app"
MERCHANT_NO = "302300000926"
STORE_NO = "4123000005"
TERMINAL = "WPYB002248000865"
DELAY = 0.05  # the simulated card holder's time; every wait in these tests is a multiple


def merchant_private() -> RSAPrivateKey:
    return load_private_key((VECTORS / "rsa2048.pem").read_bytes())


def merchant_public() -> RSAPublicKey:
    return load_public_key((VECTORS / "rsa2048.pub.pem").read_bytes())


@pytest.fixture(scope="session")
def gateway_key() -> RSAPrivateKey:
    return load_private_key(generate_rsa_pem(2048))


@pytest.fixture(scope="session")
def stranger_key() -> RSAPrivateKey:
    """A key nobody trusts (forgeries)."""
    return load_private_key(generate_rsa_pem(2048))


def order(order_no: str, amount: int = 1200, *, kind: TxnKind = TxnKind.SALE,
          currency: str = "USD", tip: int = 0, orig: str | None = None,
          expires_s: int = 30) -> PaymentOrder:
    return PaymentOrder(order_no=order_no, kind=kind, amount=amount, currency=currency,
                        tip=tip, terminal_sn=TERMINAL, description="test " + order_no,
                        orig_order_no=orig, expires_s=expires_s)


@pytest.fixture
async def sim(gateway_key: RSAPrivateKey) -> AsyncIterator[CodePaySimulator]:
    simulator = CodePaySimulator(
        app_id=APP_ID, merchant_no=MERCHANT_NO, gateway_private_key=gateway_key,
        merchant_public_key=merchant_public(), basic_auth=("merchant", "s3cret"),
        approve_delay_s=DELAY, notify_retry_s=(0.02, 0.05, 0.1))
    await simulator.start()
    yield simulator
    await simulator.stop()


@pytest.fixture
async def make_provider(
    sim: CodePaySimulator, gateway_key: RSAPrivateKey,
) -> AsyncIterator[Callable[..., CodePayProvider]]:
    made: list[CodePayProvider] = []

    def make(**overrides: Any) -> CodePayProvider:
        kwargs: dict[str, Any] = dict(
            base_url=sim.url, app_id=APP_ID, merchant_no=MERCHANT_NO, store_no=STORE_NO,
            private_key=merchant_private(), gateway_public_key=gateway_key.public_key(),
            notify_url=None, timeout_s=1.0)
        kwargs.update(overrides)
        provider = CodePayProvider(**kwargs)
        made.append(provider)
        return provider

    yield make
    for provider in made:
        await provider.aclose()


@pytest.fixture
def provider(make_provider: Callable[..., CodePayProvider]) -> CodePayProvider:
    return make_provider()


@pytest.fixture
async def receiver(provider: CodePayProvider) -> AsyncIterator[Receiver]:
    async with listening(provider, "/notify/codepay", wait_s=40 * DELAY) as rec:
        yield rec


async def until_outcome(provider: CodePayProvider, po: PaymentOrder, outcome: Outcome,
                        timeout: float = 40 * DELAY) -> ProviderReport:
    """Poll ``order.query`` until it reports ``outcome`` (bounded by ``timeout``)."""
    async with asyncio.timeout(timeout):
        while True:
            report = await provider.query(po)
            if report.outcome is outcome:
                return report
            await asyncio.sleep(DELAY / 5)
