"""The in-package simulators and a configuration file that points at them, for doctor."""

from __future__ import annotations

import getpass
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from posbridge.init_plan import render_toml
from posbridge.sandbox.runtime import (
    SandboxKeys,
    Simulators,
    ensure_keys,
    sandbox_config_data,
    start_simulators,
)
from posbridge.secrets import hash_secret

#: The daemons of these tests run as whoever runs the tests: that is the user who must be able
#: to read the keys and write the journal (a real install's ``posbridge`` user may exist here).
AS_RUNNER = ["--service-user", getpass.getuser()]


@pytest.fixture(autouse=True)
def no_config_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """main() reads os.environ: keep stray POSBRIDGE_*__* variables out of these tests."""
    for var in list(os.environ):
        if var.upper().startswith("POSBRIDGE_") and "__" in var:
            monkeypatch.delenv(var)


@pytest.fixture(scope="session")
def session_keys(tmp_path_factory: pytest.TempPathFactory) -> SandboxKeys:
    return ensure_keys(tmp_path_factory.mktemp("keys"))


@pytest.fixture
def keys(session_keys: SandboxKeys, tmp_path: Path) -> SandboxKeys:
    """The session's keys copied for one test (which may spoil its copy)."""
    mine = SandboxKeys(tmp_path / "keys")
    shutil.copytree(session_keys.dir, mine.dir)
    return mine


@pytest.fixture
async def sims(keys: SandboxKeys) -> AsyncIterator[Simulators]:
    s = await start_simulators(keys, approve_delay_s=0.05, notify_interval_s=0.05)
    yield s
    await s.stop()


def _cheap(secret: str) -> str:
    return hash_secret(secret, log2_n=1)


def write_config(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(render_toml(data))
    path.chmod(0o640)
    return path


@pytest.fixture
def sandbox_data(tmp_path: Path, keys: SandboxKeys, sims: Simulators) -> dict[str, Any]:
    """The sandbox's configuration (TOML-shaped) on free ports, for a test to change."""
    return sandbox_config_data(tmp_path / "data", keys, sims, token="t" * 32, pin="4711",
                               ecr_listen="127.0.0.1:0", http_listen="127.0.0.1:0",
                               hashed=_cheap)
