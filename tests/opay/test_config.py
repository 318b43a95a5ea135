"""The [opay] section: parsed through the registry like every provider, defaults, errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from posbridge.config import parse_config
from posbridge.config_table import Table
from posbridge.errors import ConfigError
from posbridge.providers.base import TxnKind
from posbridge.providers.opay.client import OPayProvider
from posbridge.providers.opay.config import OPayConfig, parse_section
from posbridge.providers.opay.envelope import Alphabet, SignInput
from posbridge.providers.opay.messages import AmountStyle, CallbackAnswer
from posbridge.providers.registry import PLUGINS
from posbridge.secrets import generate_token, hash_secret

from .conftest import VECTORS


def section(**over: object) -> dict[str, object]:
    data: dict[str, object] = {
        "base_url": "https://service.example.com/", "app_id": "lyotrade_5157",
        "private_key_file": str(VECTORS / "merchant.pk8.b64"),
        "platform_public_key_file": str(VECTORS / "platform.pub.b64url"),
        "coins": {"USDT": 6, "BTC": 8}}
    data.update(over)
    return {k: v for k, v in data.items() if v is not None}


def parse(data: dict[str, object], env: dict[str, str] | None = None) -> OPayConfig:
    origins = {f"opay.{k}": f"POSBRIDGE_OPAY__{k.upper()}" for k in env or {}}
    return parse_section(Table({**data, **(env or {})}, "opay", origins))


def test_defaults() -> None:
    cfg = parse(section())
    assert cfg.base_url == "https://service.example.com"
    assert cfg.pay_page_url == "https://service.example.com/platform/pay.html"
    assert cfg.coins == {"USDT": 6, "BTC": 8} and cfg.expires_s == 600
    assert (cfg.amount_style, cfg.base64_alphabet, cfg.sign_input, cfg.callback_answer) == (
        AmountStyle.PLAIN, Alphabet.URLSAFE, SignInput.MD5_HEX, CallbackAnswer.TEXT)
    assert cfg.detail_app_key and cfg.statement_page_size == 2000
    assert cfg.return_page is None and cfg.order_scene_type is None


def test_every_switch() -> None:
    cfg = parse(section(pay_page_url="https://pay.example/p.html", amount_style="fixed",
                        base64_alphabet="standard", sign_input="json", callback_answer="json",
                        detail_app_key=False, statement_page_size=500,
                        return_page="https://store.example/thanks", order_scene_type="1000011",
                        lost_order_settle_s=0, expires_s=120))
    assert (cfg.amount_style, cfg.base64_alphabet, cfg.sign_input, cfg.callback_answer) == (
        AmountStyle.FIXED, Alphabet.STANDARD, SignInput.JSON, CallbackAnswer.JSON)
    assert (cfg.pay_page_url, cfg.return_page, cfg.order_scene_type) == (
        "https://pay.example/p.html", "https://store.example/thanks", "1000011")
    assert (cfg.statement_page_size, cfg.lost_order_settle_s, cfg.expires_s) == (500, 0, 120)
    assert not cfg.detail_app_key


def test_coins_from_the_environment() -> None:
    cfg = parse(section(coins=None), env={"coins": "USDT=6, ETH=18"})
    assert cfg.coins == {"USDT": 6, "ETH": 18}


@pytest.mark.parametrize(("over", "key"), [
    ({"coins": None}, "opay.coins"),
    ({"coins": {}}, "opay.coins"),
    ({"coins": {"usdt": 6}}, "opay.coins"),
    ({"coins": {"USDT": 19}}, "opay.coins"),
    ({"coins": {"USDT": "6"}}, "opay.coins"),
    ({"coins": ["USDT"]}, "opay.coins"),
    ({"app_id": None}, "opay.app_id"),
    ({"base_url": "ftp://x"}, "opay.base_url"),
    ({"private_key_file": None}, "opay.private_key_file"),
    ({"platform_public_key_file": "/nonexistent/key"}, "opay.platform_public_key_file"),
    ({"order_scene_type": "scene"}, "opay.order_scene_type"),
    ({"amount_style": "float"}, "opay.amount_style"),
    ({"statement_page_size": 2001}, "opay.statement_page_size"),
    ({"expires_s": 5}, "opay.expires_s"),
    ({"refund": True}, "opay.refund"),
])
def test_errors_name_the_key(over: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse(section(**over))
    assert info.value.key == key


def test_the_plugin_builds_the_adapter_from_portal_key_forms() -> None:
    plugin = PLUGINS["opay"]
    cfg = plugin.parse_section(Table(section(), "opay", {}))
    adapter = plugin.build(cfg, "/notify/opay")
    assert isinstance(adapter, OPayProvider)
    assert adapter.caps.kinds == {TxnKind.CRYPTO_SALE}
    assert [k.config_key for k in plugin.keys] == ["private_key_file",
                                                   "platform_public_key_file"]
    assert plugin.sandbox == "posbridge.sandbox.opay_sim:SANDBOX" and not plugin.terminals


def test_a_whole_configuration_with_an_opay_section(tmp_path: Path) -> None:
    data: dict[str, Any] = {
        "bridge": {"data_dir": str(tmp_path), "public_url": "https://store.example"},
        "ecr_clients": [{"name": "lane-1", "role": "cashier",
                         "token_hash": hash_secret(generate_token(), log2_n=4)}],
        "opay": section()}
    config = parse_config(data, env={})
    assert isinstance(config.providers["opay"], OPayConfig)
