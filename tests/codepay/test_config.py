"""The ``[codepay]`` keys of the card lifecycle: defaults, validation naming the key, and the
adapter built from them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from posbridge.config_table import Table
from posbridge.errors import ConfigError
from posbridge.providers.codepay.config import CodePayConfig, parse_section
from posbridge.providers.codepay.plugin import build

from .conftest import VECTORS


def section(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "base_url": "https://codepay-open.codepay.me", "app_id": "app", "merchant_no": "M1",
        "private_key_file": str(VECTORS / "rsa2048.pem"),
        "gateway_public_key_file": str(VECTORS / "rsa2048.pub.pem")}
    data.update(changes)
    return data


def parsed(**changes: Any) -> CodePayConfig:
    return parse_section(Table(section(**changes), "codepay", {}))


def test_defaults_read_the_tip_adjustment_as_the_total_and_cap_completions_at_the_hold() -> None:
    config = parsed()
    assert (config.tip_adjustment_amount, config.completion_max_percent, config.return_url) == (
        "total", 100, None)


def test_the_keys_reach_the_adapter() -> None:
    config = parsed(tip_adjustment_amount="delta", completion_max_percent=120,
                    return_url="https://store-42.example/thanks")
    provider = build(config, "https://store-42.example/notify/codepay")
    assert provider.caps.completion_max_percent == 120
    assert config.tip_adjustment_amount == "delta"
    assert config.return_url == "https://store-42.example/thanks"


@pytest.mark.parametrize(("key", "value", "words"), [
    ("tip_adjustment_amount", "new", "total, delta"),
    ("tip_adjustment_amount", 5, "string"),
    ("completion_max_percent", 99, "from 100 to 1000"),
    ("completion_max_percent", 1001, "from 100 to 1000"),
    ("completion_max_percent", "120", "whole number"),
    ("return_url", "ftp://x.example/back", "http"),
    ("return_url", "https://x.example/" + "a" * 250, "256"),
])
def test_wrong_values_name_the_key(key: str, value: object, words: str) -> None:
    with pytest.raises(ConfigError) as err:
        parsed(**{key: value})
    assert err.value.key == f"codepay.{key}"
    assert words in str(err.value)


def test_the_example_file_names_the_new_keys() -> None:
    example = (Path(__file__).resolve().parents[2] / "config" / "posbridge.example.toml")
    text = example.read_text(encoding="utf-8")
    readme = (example.parent / "README.md").read_text(encoding="utf-8")
    for key in ("tip_adjustment_amount", "completion_max_percent", "return_url"):
        assert f"\n{key} " in text and f"| `{key}` |" in readme
