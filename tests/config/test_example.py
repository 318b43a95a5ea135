"""config/posbridge.example.toml loads, and it and config/README.md cover every key."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

import pytest

from posbridge import config as cfg
from posbridge.config import load_config
from posbridge.providers.opay.config import OPayConfig

ROOT = Path(__file__).parents[2]
EXAMPLE = ROOT / "config" / "posbridge.example.toml"
README = ROOT / "config" / "README.md"

SECTIONS = {
    "bridge": cfg.BridgeConfig, "ecr_clients": cfg.ClientConfig, "manager": cfg.ManagerConfig,
    "codepay": cfg.CodePayConfig, "ucanpay": cfg.UCanPayConfig, "opay": OPayConfig,
    "terminals": cfg.TerminalConfig, "displays": cfg.DisplayConfig,
    "printers": cfg.PrinterConfig,
}


def keys_of(section: str) -> list[str]:
    return [f.name for f in dataclasses.fields(SECTIONS[section])]


def test_example_loads_with_its_key_files_present(tmp_path: Path) -> None:
    for name in ("codepay_private", "codepay_gateway_public", "ucanpay_private",
                 "ucanpay_public", "opay_merchant_key", "opay_platform_pub"):
        (tmp_path / f"{name}.pem").write_text("test key\n")
    path = tmp_path / "posbridge.toml"
    path.write_text(EXAMPLE.read_text().replace("/etc/posbridge/", f"{tmp_path}/"))
    config = load_config(path, env={})
    assert config.codepay is not None and config.codepay.private_key_file == (
        tmp_path / "codepay_private.pem")
    assert config.ucanpay is not None and config.ucanpay.public_key_file == (
        tmp_path / "ucanpay_public.pem")
    assert [t.printer for t in config.terminals] == ["lane-1"]
    assert config.manager.pin_hash is not None


@pytest.mark.parametrize("section", SECTIONS)
def test_example_sets_every_key(section: str) -> None:
    data = tomllib.loads(EXAMPLE.read_text())[section]
    entries = data if isinstance(data, list) else [data]
    present = {key for entry in entries for key in entry}
    assert set(keys_of(section)) <= present


@pytest.mark.parametrize("section", SECTIONS)
def test_readme_documents_every_key_with_its_env_variable(section: str) -> None:
    text = README.read_text()
    for key in keys_of(section):
        assert f"| `{key}` |" in text, key
        index = "__0" if section in ("ecr_clients", "terminals", "displays", "printers") else ""
        assert f"POSBRIDGE_{section.upper()}{index}__{key.upper()}" in text, key
