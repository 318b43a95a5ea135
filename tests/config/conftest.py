"""Shared pieces of the configuration tests: cheap hashes and a complete valid config."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from posbridge.secrets import hash_secret

# Tokens as `hash-secret --generate` makes them (43 characters); a 6-digit PIN.
TOKEN_1 = "tok1-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
TOKEN_2 = "tok2-BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"
PIN = "424242"

# The cost is part of the encoded hash; tests use a tiny one so hundreds of hashes are quick.
CHEAP = 4


def cheap_hash(secret: str, *, tagged: bool | None = None) -> str:
    return hash_secret(secret, tagged=tagged, log2_n=CHEAP)


@pytest.fixture
def key_files(tmp_path: Path) -> dict[str, Path]:
    """Four readable key files (config only checks they are readable files)."""
    files = {}
    for name in ("codepay_private", "codepay_gateway_public", "ucanpay_private",
                 "ucanpay_public"):
        path = tmp_path / f"{name}.pem"
        path.write_text(f"-----BEGIN TEST {name}-----\n")
        files[name] = path
    return files


@pytest.fixture
def valid(key_files: dict[str, Path], tmp_path: Path) -> dict[str, Any]:
    """A complete, valid TOML-shaped configuration; tests copy and break it."""
    data: dict[str, Any] = {
        "bridge": {"data_dir": str(tmp_path / "data"), "ecr_listen": "127.0.0.1:0",
                   "http_listen": "127.0.0.1:0", "public_url": "https://store.example",
                   "max_amount": "500.00"},
        "ecr_clients": [
            {"name": "lane-1", "role": "cashier", "token_hash": cheap_hash(TOKEN_1)},
            {"name": "office", "role": "manager", "token_hash": cheap_hash(TOKEN_2)},
        ],
        "manager": {"pin_hash": cheap_hash(PIN)},
        "codepay": {"base_url": "https://codepay-open.codepay.me", "app_id": "app",
                    "merchant_no": "M1", "private_key_file": str(key_files["codepay_private"]),
                    "gateway_public_key_file": str(key_files["codepay_gateway_public"])},
        "ucanpay": {"base_url": "https://api.ucanpay.ca", "merchant_id": "U1",
                    "private_key_file": str(key_files["ucanpay_private"]),
                    "public_key_file": str(key_files["ucanpay_public"])},
        "terminals": [{"sn": "WPYB002248000865", "name": "lane-1", "display": "d1",
                       "printer": "p1"}],
        "displays": [{"name": "d1", "kind": "web"},
                     {"name": "d2", "kind": "serial", "device": "/dev/ttyUSB1"}],
        "printers": [{"name": "p1", "kind": "file", "path": str(tmp_path / "p1.bin")},
                     {"name": "p2", "kind": "tcp", "host": "10.0.0.9"}],
    }
    return data


def changed(data: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    """A deep copy of ``data`` with ``dotted`` (``a.b`` or ``a[1].b``) set, or removed if
    ``value`` is the REMOVE marker."""
    out = copy.deepcopy(data)
    *parents, last = dotted.split(".")
    node: Any = out
    for part in parents:
        if "[" in part:
            name, index = part[:-1].split("[")
            node = node[name][int(index)]
        else:
            node = node.setdefault(part, {})
    if value is REMOVE:
        node.pop(last, None)
    else:
        node[last] = value
    return out


REMOVE = object()
