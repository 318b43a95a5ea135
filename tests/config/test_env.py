"""Environment overrides: POSBRIDGE_SECTION__KEY and POSBRIDGE_ARRAY__INDEX__KEY."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from posbridge.config import HostPort, Role, parse_config
from posbridge.errors import ConfigError

from .conftest import TOKEN_2, cheap_hash


def test_section_key_override_wins_over_the_file(valid: dict[str, Any]) -> None:
    config = parse_config(valid, env={"POSBRIDGE_CODEPAY__APP_ID": "from-env",
                                      "POSBRIDGE_BRIDGE__MAX_AMOUNT": "12.50",
                                      "POSBRIDGE_BRIDGE__HTTP_LISTEN": "127.0.0.1:9999"})
    assert config.codepay is not None and config.codepay.app_id == "from-env"
    assert config.bridge.max_amount == "12.50"
    assert config.bridge.http_listen == HostPort(host="127.0.0.1", port=9999)


def test_names_are_case_insensitive(valid: dict[str, Any]) -> None:
    config = parse_config(valid, env={"posbridge_codepay__app_id": "lower"})
    assert config.codepay is not None and config.codepay.app_id == "lower"


def test_whole_numbers_floats_and_booleans_are_parsed_from_text(valid: dict[str, Any]) -> None:
    config = parse_config(valid, env={"POSBRIDGE_CODEPAY__EXPIRES_S": "240",
                                      "POSBRIDGE_UCANPAY__POLL_INTERVAL_S": "0.5",
                                      "POSBRIDGE_PRINTERS__0__NATIVE_QR": "false",
                                      "POSBRIDGE_PRINTERS__1__PORT": "9101"})
    assert config.codepay is not None and config.codepay.expires_s == 240
    assert config.ucanpay is not None and config.ucanpay.poll_interval_s == 0.5
    assert config.printers[0].native_qr is False
    assert config.printers[1].port == 9101


@pytest.mark.parametrize(("var", "value", "key"), [
    ("POSBRIDGE_CODEPAY__EXPIRES_S", "180s", "codepay.expires_s"),
    ("POSBRIDGE_CODEPAY__EXPIRES_S", " 180", "codepay.expires_s"),
    ("POSBRIDGE_CODEPAY__EXPIRES_S", "1.0", "codepay.expires_s"),
    ("POSBRIDGE_CODEPAY__EXPIRES_S", "0", "codepay.expires_s"),
    ("POSBRIDGE_UCANPAY__QR_TIMEOUT_S", "+120", "ucanpay.qr_timeout_s"),
    ("POSBRIDGE_CODEPAY__TIMEOUT_S", "inf", "codepay.timeout_s"),
    ("POSBRIDGE_PRINTERS__0__NATIVE_QR", "yes", "printers[0].native_qr"),
    ("POSBRIDGE_ECR_CLIENTS__1__ROLE", "boss", "ecr_clients[1].role"),
])
def test_env_values_are_parsed_strictly_and_errors_name_the_variable(
    valid: dict[str, Any], var: str, value: str, key: str
) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(valid, env={var: value})
    assert info.value.key == key
    assert f"(from {var})" in info.value.problem


def test_array_index_overrides_one_entry(valid: dict[str, Any]) -> None:
    new_hash = cheap_hash("tok3-CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC")
    config = parse_config(valid, env={"POSBRIDGE_ECR_CLIENTS__0__TOKEN_HASH": new_hash,
                                      "POSBRIDGE_ECR_CLIENTS__1__ROLE": "cashier"})
    assert config.ecr_clients[0].token_hash == new_hash
    assert config.ecr_clients[1].token_hash == valid["ecr_clients"][1]["token_hash"]
    assert config.ecr_clients[1].role is Role.CASHIER


def test_array_index_one_past_the_end_appends_entries_in_index_order(
    valid: dict[str, Any],
) -> None:
    env = {}
    # Entries 3 and 2 given in reverse order: appending follows the numeric index.
    for i, name in ((3, "lane-4"), (2, "lane-3")):
        env[f"POSBRIDGE_ECR_CLIENTS__{i}__NAME"] = name
        env[f"POSBRIDGE_ECR_CLIENTS__{i}__ROLE"] = "cashier"
        env[f"POSBRIDGE_ECR_CLIENTS__{i}__TOKEN_HASH"] = cheap_hash(f"{name}-{'x' * 30}")
    config = parse_config(valid, env=env)
    assert [c.name for c in config.ecr_clients] == ["lane-1", "office", "lane-3", "lane-4"]


def test_array_indices_must_be_contiguous(valid: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(valid, env={"POSBRIDGE_ECR_CLIENTS__5__NAME": "x"})
    assert info.value.key == "ecr_clients[5]"
    assert "contiguous" in info.value.problem


def test_array_override_needs_an_index(valid: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(valid, env={"POSBRIDGE_ECR_CLIENTS__NAME": "x"})
    assert info.value.key == "ecr_clients"


def test_an_override_can_create_a_whole_section() -> None:
    config = parse_config({}, env={
        "POSBRIDGE_ECR_CLIENTS__0__NAME": "lane-1",
        "POSBRIDGE_ECR_CLIENTS__0__ROLE": "manager",
        "POSBRIDGE_ECR_CLIENTS__0__TOKEN_HASH": cheap_hash(TOKEN_2),
        "POSBRIDGE_MANAGER__PIN_HASH": cheap_hash("1234"),
        "POSBRIDGE_BRIDGE__DATA_DIR": "/srv/pb",
    })
    assert config.bridge.data_dir == Path("/srv/pb")
    assert config.ecr_clients[0].name == "lane-1"
    assert config.manager.pin_hash is not None


def test_unknown_key_from_env_is_refused_naming_the_variable(valid: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(valid, env={"POSBRIDGE_CODEPAY__APPID": "typo"})
    assert info.value.key == "codepay.appid"
    assert "POSBRIDGE_CODEPAY__APPID" in str(info.value)


def test_variables_without_double_underscore_are_not_configuration(
    valid: dict[str, Any],
) -> None:
    config = parse_config(valid, env={"POSBRIDGE_URL": "ws://x", "POSBRIDGE_TOKEN": "t",
                                      "OTHER__THING": "1"})
    assert config == parse_config(valid, env={})


def test_the_callers_mapping_is_not_modified(valid: dict[str, Any]) -> None:
    before = repr(valid)
    parse_config(valid, env={"POSBRIDGE_ECR_CLIENTS__0__NAME": "renamed",
                             "POSBRIDGE_BRIDGE__MAX_AMOUNT": "1.00"})
    assert repr(valid) == before
