"""Fixtures: the checked-in test keys, a UCanPay simulator and a provider talking to it.

The merchant signs with the RSA-1024 test key (the seed's samples are RSA-1024) and the
simulated gateway with the RSA-2048 one, so both sizes run through every exchange.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

from posbridge.providers.ucanpay.client import UCanPayProvider
from posbridge.sandbox.ucanpay_sim import UCanPaySimulator
from tests.notify_receiver import Receiver, listening

VECTORS = Path(__file__).resolve().parent.parent / "vectors" / "ucanpay"
MERCHANT_ID = "2000000010"


def private_key(name: str) -> RSAPrivateKey:
    key = serialization.load_pem_private_key((VECTORS / f"{name}.pem").read_bytes(), None)
    assert isinstance(key, RSAPrivateKey)
    return key


def public_key(name: str) -> RSAPublicKey:
    key = serialization.load_pem_public_key((VECTORS / f"{name}.pub.pem").read_bytes())
    assert isinstance(key, RSAPublicKey)
    return key


class Clock:
    """A settable clock shared by the simulator and the provider (seconds since the epoch)."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def sim(clock: Clock) -> AsyncIterator[UCanPaySimulator]:
    simulator = UCanPaySimulator(
        merchant_id=MERCHANT_ID, private_key=private_key("rsa2048"),
        merchant_public_key=public_key("rsa1024"), clock=clock,
        notify_interval_s=0.05, notify_attempts=40, refund_delay_s=0.05)
    await simulator.start()
    yield simulator
    await simulator.stop()


@pytest.fixture
async def provider(sim: UCanPaySimulator, clock: Clock) -> AsyncIterator[UCanPayProvider]:
    client = UCanPayProvider(
        base_url=sim.url, merchant_id=MERCHANT_ID, private_key=private_key("rsa1024"),
        public_key=public_key("rsa2048"), notify_url=None, refund_notify_url=None,
        timeout_s=1.0, retries=3, retry_delay_s=0.01, clock=clock)
    yield client
    await client.aclose()


@pytest.fixture
async def receiver(provider: UCanPayProvider) -> AsyncIterator[Receiver]:
    async with listening(provider, "/notify/ucanpay",
                         extra_paths=("/notify/ucanpay/{kind}",)) as rec:
        yield rec


def note_body(data: dict[str, object]) -> bytes:
    """A notification envelope around ``data`` as UCanPay sends it."""
    return json.dumps({"code": 0, "msg": "SUCCESS", "data": data,
                       "timestamp": "2021-01-29T03:56:21Z"}).encode()


class Vectors:
    """The checked-in known-answer vectors and test keys (tests/vectors/ucanpay)."""

    path = VECTORS

    @staticmethod
    def private(name: str) -> RSAPrivateKey:
        return private_key(name)

    @staticmethod
    def public(name: str) -> RSAPublicKey:
        return public_key(name)

    @staticmethod
    def text(name: str) -> str:
        return (VECTORS / name).read_text(encoding="utf-8")

    @staticmethod
    def note(data: dict[str, object]) -> bytes:
        return note_body(data)


@pytest.fixture
def vectors() -> type[Vectors]:
    return Vectors
