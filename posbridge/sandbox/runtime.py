"""``posbridge serve --sandbox``: the daemon with embedded simulators, no account, no hardware.

The sandbox keeps its state in one folder (default
:func:`~posbridge.sandbox.paths.default_sandbox_dir`): generated RSA keys for the merchant and
every simulated gateway, the register token and the manager PIN (so they stay the same across
restarts), the journal, the file printer's output with a PNG of each slip, and the file
display's frames. The simulators run in the daemon's process on 127.0.0.1 with ports of their
own; each simulated terminal's lane has a web customer display at ``/display/<lane>``.

Every provider plug-in that names a simulator (:class:`~posbridge.sandbox.base.SandboxSpec`)
gets one; what each does by amount is printed at start.
"""

from __future__ import annotations

import importlib
import os
import secrets as pysecrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization

from posbridge.keyfiles import generate_rsa_pem, load_private_key
from posbridge.providers.registry import PLUGINS
from posbridge.sandbox.base import (
    BridgePacing,
    SandboxKeys,
    SandboxSpec,
    SimPacing,
    Simulator,
)
from posbridge.secrets import hash_secret

__all__ = ["SandboxKeys", "Simulators", "ensure_keys", "ensure_secret", "new_pin",
           "new_token", "sandbox_config_data", "sandbox_specs", "start_simulators"]


def sandbox_specs() -> dict[str, SandboxSpec]:
    """The simulator of every provider plug-in that has one, by provider name."""
    specs: dict[str, SandboxSpec] = {}
    for name, plugin in PLUGINS.items():
        if plugin.sandbox is None:
            continue
        module, _, attribute = plugin.sandbox.partition(":")
        spec = getattr(importlib.import_module(module), attribute)
        if not isinstance(spec, SandboxSpec) or spec.provider != name:
            raise TypeError(f"{plugin.sandbox} is not the SandboxSpec of {name}")
        specs[name] = spec
    return specs


def ensure_keys(data_dir: Path, *, bits: int = 2048) -> SandboxKeys:
    """Generate the sandbox key pairs once (files readable by the owner only)."""
    keys = SandboxKeys(data_dir / "keys")
    keys.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    names = dict.fromkeys(n for spec in sandbox_specs().values() for n in spec.key_names)
    for name in names:
        if keys.private(name).exists():
            continue
        pem = generate_rsa_pem(bits)
        _write_private(keys.private(name), pem)
        public = load_private_key(pem).public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        keys.public(name).write_bytes(public)
    return keys


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def ensure_secret(path: Path, make: Any) -> str:
    """A secret kept in a file (created on first use, owner-only)."""
    try:
        value = path.read_text().strip()
    except FileNotFoundError:
        value = ""
    if not value:
        value = str(make())
        _write_private(path, (value + "\n").encode())
    return value


@dataclass
class Simulators:
    """The running simulators by provider name (``sims.by_name[name]``, or as attributes:
    ``sims.<name>``)."""

    by_name: dict[str, Simulator]
    specs: dict[str, SandboxSpec]

    def __getattr__(self, name: str) -> Any:
        by_name = self.__dict__.get("by_name", {})
        if name in by_name:
            return by_name[name]
        raise AttributeError(name)

    async def pay(self, provider: str, provider_ref: str) -> None:
        """The customer pays ``provider_ref`` at ``provider``'s simulator."""
        sim = self.by_name.get(provider)
        if sim is not None:
            await sim.scan_and_pay(provider_ref)

    @property
    def terminals(self) -> tuple[tuple[str, str, str], ...]:
        """Every simulated terminal: (provider, serial number, lane name)."""
        return tuple((name, sn, lane) for name, spec in self.specs.items()
                     for sn, lane in spec.terminals)

    async def stop(self) -> None:
        for sim in self.by_name.values():
            await sim.stop()


async def start_simulators(keys: SandboxKeys, *, approve_delay_s: float,
                           notify_interval_s: float = 1.0) -> Simulators:
    """Start the simulator of every provider plug-in that has one."""
    pacing = SimPacing(approve_delay_s=approve_delay_s, notify_interval_s=notify_interval_s)
    specs = sandbox_specs()
    started: dict[str, Simulator] = {}
    try:
        for name, spec in specs.items():
            started[name] = await spec.start(keys, pacing)
    except BaseException:
        for sim in started.values():
            await sim.stop()
        raise
    return Simulators(started, specs)


def sandbox_config_data(
    data_dir: Path,
    keys: SandboxKeys,
    sims: Simulators,
    *,
    token: str,
    pin: str,
    ecr_listen: str = "127.0.0.1:8765",
    http_listen: str = "127.0.0.1:8766",
    public_url: str = "",
    poll_interval_s: float = 2.0,
    expires_s: int = 180,
    qr_timeout_s: int = 120,
    hashed: Callable[[str], str] = hash_secret,
) -> dict[str, Any]:
    """The configuration of a sandbox daemon, as a TOML-shaped mapping."""
    out = data_dir / "out"
    pacing = BridgePacing(poll_interval_s=poll_interval_s, expires_s=expires_s,
                          qr_timeout_s=qr_timeout_s)
    sections: dict[str, Mapping[str, Any]] = {
        name: spec.section(sims.by_name[name], keys, pacing)
        for name, spec in sims.specs.items()}
    lanes = sims.terminals
    return {
        "bridge": {"data_dir": str(data_dir), "ecr_listen": ecr_listen,
                   "http_listen": http_listen, "public_url": public_url,
                   "max_amount": "10000.00"},
        "ecr_clients": [
            {"name": "lane-1", "role": "cashier", "token_hash": hashed(token)},
        ],
        "manager": {"pin_hash": hashed(pin)},
        **{name: dict(section) for name, section in sections.items()},
        "terminals": [
            {"sn": sn, "name": lane, "provider": provider, "display": lane, "printer": lane}
            for provider, sn, lane in lanes
        ],
        "displays": [{"name": lane, "kind": "web"} for _p, _sn, lane in lanes],
        "printers": [
            {"name": lane, "kind": "file", "path": str(out / f"printer-{lane}.bin"),
             "png_dir": str(out / f"printer-{lane}"), "width_dots": 576}
            for _p, _sn, lane in lanes
        ],
    }


def new_token() -> str:
    return pysecrets.token_urlsafe(24)


def new_pin() -> str:
    return f"{pysecrets.randbelow(10**6):06d}"
