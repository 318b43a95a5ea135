"""``posbridge serve --sandbox``: the daemon with embedded simulators, no account, no hardware.

The sandbox keeps its state in one folder (default
:func:`~posbridge.sandbox.paths.default_sandbox_dir`):
generated RSA keys for the merchant and both simulated gateways, the register token and the
manager PIN (so they stay the same across restarts), the journal, the file printer's output
with a PNG of each slip, and the file display's frames. The simulators run in the daemon's
process on 127.0.0.1 with ports of their own; the customer display is the web page at
``/display/lane-1``.

Simulated terminals decide by the amount's cents; see
:data:`posbridge.sandbox.codepay_sim.BEHAVIOURS` (printed at start).
"""

from __future__ import annotations

import os
import secrets as pysecrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization

from posbridge.keyfiles import generate_rsa_pem, load_private_key
from posbridge.sandbox.codepay_sim import CodePaySimulator
from posbridge.sandbox.ucanpay_sim import UCanPaySimulator
from posbridge.secrets import hash_secret

APP_ID = "sandbox-app"
MERCHANT_NO = "SANDBOX000001"
STORE_NO = "SANDBOXSTORE1"
UCANPAY_MERCHANT = "SANDBOXUCP01"
TERMINALS = (("SANDBOX0000000001", "lane-1"), ("SANDBOX0000000002", "lane-2"))
KEY_NAMES = ("merchant", "codepay_gateway", "ucanpay_merchant", "ucanpay_gateway")


@dataclass(frozen=True)
class SandboxKeys:
    """PEM files in ``<dir>/keys``: ``<name>_private.pem`` and ``<name>_public.pem``."""

    dir: Path

    def private(self, name: str) -> Path:
        return self.dir / f"{name}_private.pem"

    def public(self, name: str) -> Path:
        return self.dir / f"{name}_public.pem"

    def private_key(self, name: str) -> Any:
        return load_private_key(self.private(name).read_bytes())

    def public_key(self, name: str) -> Any:
        return self.private_key(name).public_key()


def ensure_keys(data_dir: Path, *, bits: int = 2048) -> SandboxKeys:
    """Generate the sandbox key pairs once (files readable by the owner only)."""
    keys = SandboxKeys(data_dir / "keys")
    keys.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    for name in KEY_NAMES:
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
    codepay: CodePaySimulator
    ucanpay: UCanPaySimulator

    async def stop(self) -> None:
        await self.codepay.stop()
        await self.ucanpay.stop()


async def start_simulators(keys: SandboxKeys, *, approve_delay_s: float,
                           notify_interval_s: float = 1.0) -> Simulators:
    codepay = CodePaySimulator(
        app_id=APP_ID, merchant_no=MERCHANT_NO,
        gateway_private_key=keys.private_key("codepay_gateway"),
        merchant_public_key=keys.public_key("merchant"),
        approve_delay_s=approve_delay_s)
    await codepay.start()
    ucanpay = UCanPaySimulator(
        merchant_id=UCANPAY_MERCHANT,
        private_key=keys.private_key("ucanpay_gateway"),
        merchant_public_key=keys.public_key("ucanpay_merchant"),
        notify_interval_s=notify_interval_s)
    await ucanpay.start()
    return Simulators(codepay, ucanpay)


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
    return {
        "bridge": {"data_dir": str(data_dir), "ecr_listen": ecr_listen,
                   "http_listen": http_listen, "public_url": public_url,
                   "max_amount": "10000.00"},
        "ecr_clients": [
            {"name": "lane-1", "role": "cashier", "token_hash": hashed(token)},
        ],
        "manager": {"pin_hash": hashed(pin)},
        "codepay": {"base_url": sims.codepay.url, "app_id": APP_ID, "merchant_no": MERCHANT_NO,
                    "store_no": STORE_NO,
                    "private_key_file": str(keys.private("merchant")),
                    "gateway_public_key_file": str(keys.public("codepay_gateway")),
                    "expires_s": expires_s, "poll_interval_s": poll_interval_s},
        "ucanpay": {"base_url": sims.ucanpay.url, "merchant_id": UCANPAY_MERCHANT,
                    "private_key_file": str(keys.private("ucanpay_merchant")),
                    "public_key_file": str(keys.public("ucanpay_gateway")),
                    "currency": "CAD", "qr_timeout_s": qr_timeout_s,
                    "poll_interval_s": poll_interval_s},
        "terminals": [
            {"sn": sn, "name": name, "display": name, "printer": name}
            for sn, name in TERMINALS
        ],
        "displays": [{"name": name, "kind": "web"} for _sn, name in TERMINALS],
        "printers": [
            {"name": name, "kind": "file", "path": str(out / f"printer-{name}.bin"),
             "png_dir": str(out / f"printer-{name}"), "width_dots": 576}
            for _sn, name in TERMINALS
        ],
    }


def new_token() -> str:
    return pysecrets.token_urlsafe(24)


def new_pin() -> str:
    return f"{pysecrets.randbelow(10**6):06d}"

