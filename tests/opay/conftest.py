"""Fixtures: the checked-in test keys, a simulated crypto platform and an adapter talking to it
over real sockets on 127.0.0.1, and the merchant's callback endpoint."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

from posbridge.keyfiles import load_private_key, load_public_key
from posbridge.providers.base import PaymentOrder, TxnKind
from posbridge.providers.opay.client import OPayProvider
from posbridge.sandbox.opay_sim import OPaySimulator
from tests.notify_receiver import Receiver, listening

__all__ = ["Receiver"]

VECTORS = Path(__file__).resolve().parent.parent / "vectors" / "opay"
APP_ID = "test_app_5157"
COINS = {"USDT": 6, "BTC": 8}
START_S = 1_700_000_000.0  # 2023-11-14T22:13:20Z


def private_key(name: str) -> RSAPrivateKey:
    return load_private_key((VECTORS / f"{name}.pem").read_bytes())


def public_key(name: str) -> RSAPublicKey:
    return load_public_key((VECTORS / f"{name}.pub.pem").read_bytes())


def text(name: str) -> str:
    return (VECTORS / name).read_text(encoding="utf-8")


class Clock:
    """A settable clock shared by the simulator and the adapter (seconds since the epoch)."""

    def __init__(self, now: float = START_S) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def sale(order_no: str, amount: int = 12_500_000, coin: str = "USDT", *, ref: str | None = None,
         created_s: float | None = START_S, **extra: str) -> PaymentOrder:
    """A crypto sale paid by platform user ``open_id=U1`` unless ``extra`` says otherwise;
    ``ref`` is the platform's ``orderNum`` once known."""
    return PaymentOrder(order_no=order_no, kind=TxnKind.CRYPTO_SALE, amount=amount,
                        currency=coin, exponent=COINS[coin], subject="Coffee", provider_ref=ref,
                        extra=extra or {"open_id": "U1"},
                        created_at_ms=None if created_s is None else int(created_s * 1000))


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def sim(clock: Clock) -> AsyncIterator[OPaySimulator]:
    simulator = OPaySimulator(app_id=APP_ID, platform_key=private_key("platform"),
                              merchant_public_key=public_key("merchant"), coins=COINS,
                              clock=clock, notify_interval_s=0.02, notify_attempts=50)
    await simulator.start()
    yield simulator
    await simulator.stop()


@pytest.fixture
async def provider(sim: OPaySimulator, clock: Clock) -> AsyncIterator[OPayProvider]:
    adapter = OPayProvider(base_url=sim.url, app_id=APP_ID, merchant_key=private_key("merchant"),
                           platform_key=public_key("platform"), coins=COINS,
                           notify_url="/notify/opay", expires_s=600, lost_order_settle_s=600,
                           timeout_s=2.0, clock=clock)
    yield adapter
    await adapter.aclose()


@pytest.fixture
async def receiver(provider: OPayProvider) -> AsyncIterator[Receiver]:
    async with listening(provider, "/notify/opay") as rec:
        yield rec
