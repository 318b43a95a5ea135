"""A real bridge on 127.0.0.1 (port 0) against the in-package simulators, per test."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from posbridge.client import EcrClient
from posbridge.config import parse_config
from posbridge.daemon import Daemon
from posbridge.sandbox.runtime import (
    SandboxKeys,
    Simulators,
    ensure_keys,
    sandbox_config_data,
    start_simulators,
)
from posbridge.secrets import hash_secret

TOKEN = "test-register-token-0123456789abcdef"
MANAGER_TOKEN = "test-manager-token-0123456789abcdef"
PIN = "424242"

# One slow hash per secret per test session, not per test.
_HASHES: dict[str, str] = {}


def hashed(secret: str) -> str:
    if secret not in _HASHES:
        _HASHES[secret] = hash_secret(secret)
    return _HASHES[secret]


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> SandboxKeys:
    return ensure_keys(tmp_path_factory.mktemp("keys"))


@pytest.fixture
async def sims(keys: SandboxKeys) -> AsyncIterator[Simulators]:
    s = await start_simulators(keys, approve_delay_s=0.05, notify_interval_s=0.05)
    yield s
    await s.stop()


@dataclasses.dataclass
class Bridge:
    daemon: Daemon
    sims: Simulators
    data_dir: Path

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.daemon.ecr_port}/ecr"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.daemon.http_port}"

    async def register(self, token: str = TOKEN, **kw: Any) -> EcrClient:
        return await EcrClient.connect(self.url, token, **kw)

    async def manager(self) -> EcrClient:
        return await EcrClient.connect(self.url, MANAGER_TOKEN)


def bridge_config(data_dir: Path, keys: SandboxKeys, sims: Simulators, **over: Any) -> Any:
    data = sandbox_config_data(
        data_dir, keys, sims, token=TOKEN, pin=PIN, ecr_listen="127.0.0.1:0",
        http_listen="127.0.0.1:0", public_url="", poll_interval_s=0.2,
        expires_s=over.pop("expires_s", 30), qr_timeout_s=over.pop("qr_timeout_s", 30),
        hashed=hashed)
    data["ecr_clients"].append(
        {"name": "backoffice", "role": "manager", "token_hash": hashed(MANAGER_TOKEN)})
    for section, values in over.items():
        data[section].update(values)
    return parse_config(data, env={})


@pytest.fixture
async def make_bridge(
    tmp_path: Path, keys: SandboxKeys, sims: Simulators
) -> AsyncIterator[Callable[..., Any]]:
    started: list[Daemon] = []

    async def make(**over: Any) -> Bridge:
        data_dir = tmp_path / f"bridge{len(started)}"
        daemon = Daemon(bridge_config(data_dir, keys, sims, **over))
        await daemon.start()
        started.append(daemon)
        return Bridge(daemon, sims, data_dir)

    yield make
    for daemon in reversed(started):
        if not daemon.stopped.is_set():
            await daemon.stop(grace_s=1)


@pytest.fixture
async def bridge(make_bridge: Callable[..., Any]) -> Bridge:
    b: Bridge = await make_bridge()
    return b


@pytest.fixture
def simulator(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """The simulators in their own process (for tests that run the daemon as a process)."""
    from .procs import run_simulator

    with run_simulator(tmp_path) as info:
        yield info
