"""Fixtures: the checked-in test keys, a simulated crypto platform and an adapter talking to it
over real sockets on 127.0.0.1, and the merchant's callback endpoint."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

from posbridge.errors import NotificationRejected
from posbridge.keyfiles import load_private_key, load_public_key
from posbridge.providers.base import PaymentOrder, ProviderReport, TxnKind
from posbridge.providers.opay.client import OPayProvider
from posbridge.sandbox.opay_sim import OPaySimulator

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


@dataclass
class Receiver:
    """The merchant's callback endpoint: verifies with the adapter, records, answers."""

    provider: OPayProvider
    url: str = ""
    reports: list[ProviderReport] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    refuse_first: int = 0  # answer "fail" to this many valid callbacks (as if not recorded)

    async def handle(self, request: web.Request) -> web.Response:
        try:
            report = self.provider.parse_notification(await request.read(), request.headers)
        except NotificationRejected as exc:
            self.rejected.append(exc.message)
            answer = self.provider.notification_answer(False, "rejected")
        else:
            if self.refuse_first > 0:
                self.refuse_first -= 1
                answer = self.provider.notification_answer(False, "not recorded")
            else:
                self.reports.append(report)
                answer = self.provider.notification_answer(True)
        return web.Response(status=answer.status, body=answer.body,
                            headers={"Content-Type": answer.content_type})


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
    rec = Receiver(provider)
    app = web.Application()
    app.router.add_post("/notify/opay", rec.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    rec.url = f"http://{host}:{port}/notify/opay"
    provider.set_notify_url(rec.url)
    yield rec
    await runner.cleanup()
