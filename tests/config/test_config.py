"""parse_config / load_config: the validated shape, and one named key per error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from posbridge.config import (
    DEFAULT_DEEPLINK_TEMPLATE,
    Config,
    HostPort,
    Role,
    load_config,
    parse_config,
)
from posbridge.errors import ConfigError
from posbridge.money import AmountError

from .conftest import PIN, REMOVE, TOKEN_1, changed, cheap_hash


def parse(data: dict[str, Any]) -> Config:
    return parse_config(data, env={})


def test_valid_config_has_the_documented_shape_and_defaults(valid: dict[str, Any]) -> None:
    config = parse(valid)
    assert config.bridge.ecr_listen == HostPort(host="127.0.0.1", port=0)
    assert config.bridge.max_amount == "500.00"
    assert config.bridge.log_format == "auto"
    assert config.bridge.tls_cert_file is None
    assert [(c.name, c.role) for c in config.ecr_clients] == [
        ("lane-1", Role.CASHIER), ("office", Role.MANAGER)]
    assert config.codepay is not None
    assert (config.codepay.expires_s, config.codepay.sign_type) == (180, "RSA2")
    assert (config.codepay.poll_interval_s, config.codepay.timeout_s) == (2.0, 10.0)
    assert config.codepay.store_no is None
    assert config.ucanpay is not None
    assert config.ucanpay.currency == "CAD"
    assert config.ucanpay.deeplink_template == DEFAULT_DEEPLINK_TEMPLATE
    assert (config.ucanpay.qr_timeout_s, config.ucanpay.sign_scheme) == (120, "double_hash")
    terminal = config.terminals[0]
    assert (terminal.provider, terminal.display, terminal.printer) == ("codepay", "d1", "p1")
    assert (config.displays[1].baudrate, config.displays[1].columns) == (9600, 20)
    assert config.printers[1].port == 9100
    assert config.printers[0].width_dots == 576 and config.printers[0].native_qr
    assert config.sandbox is False


def test_minimal_config_needs_only_one_register() -> None:
    config = parse({"ecr_clients": [{"name": "a", "role": "cashier",
                                     "token_hash": cheap_hash(TOKEN_1)}]})
    assert config.bridge.data_dir == Path("/var/lib/posbridge")
    assert config.bridge.ecr_listen == HostPort(host="0.0.0.0", port=8765)
    assert config.bridge.http_listen == HostPort(host="0.0.0.0", port=8766)
    assert config.bridge.public_url == ""
    assert config.bridge.max_amount == "10000.00"
    assert config.codepay is None and config.ucanpay is None and config.terminals == ()
    assert config.manager.pin_hash is None


def test_config_is_frozen(valid: dict[str, Any]) -> None:
    config = parse(valid)
    field = "max_amount"  # through setattr: mypy would (rightly) refuse the plain assignment
    with pytest.raises(AttributeError):
        setattr(config.bridge, field, "1.00")


def test_terminal_name_defaults_to_its_serial_number(valid: dict[str, Any]) -> None:
    config = parse(changed(valid, "terminals[0].name", REMOVE))
    assert config.terminals[0].name == "WPYB002248000865"


def test_ipv6_listen_address(valid: dict[str, Any]) -> None:
    config = parse(changed(valid, "bridge.http_listen", "[::1]:9000"))
    assert config.bridge.http_listen == HostPort(host="::1", port=9000)
    assert str(config.bridge.http_listen) == "[::1]:9000"


@pytest.mark.parametrize(("amount", "currency", "minor"), [
    ("500.00", "USD", 50000),
    ("10000.009", "USD", 1000000),   # truncated, never rounded up
    ("10000.999", "JPY", 10000),
    ("0.5", "KWD", 500),
    ("12", "CAD", 1200),
])
def test_max_amount_minor_truncates(
    valid: dict[str, Any], amount: str, currency: str, minor: int
) -> None:
    config = parse(changed(valid, "bridge.max_amount", amount))
    assert config.bridge.max_amount_minor(currency) == minor


def test_max_amount_minor_refuses_unknown_currency(valid: dict[str, Any]) -> None:
    with pytest.raises(AmountError):
        parse(valid).bridge.max_amount_minor("XYZ")


def test_secrets_are_absent_from_repr(valid: dict[str, Any]) -> None:
    data = changed(valid, "codepay.sign_type", "NONE")
    data = changed(data, "codepay.basic_auth_user", "user")
    data = changed(data, "codepay.basic_auth_password", "hunter2-password")
    data = changed(data, "ucanpay.sign_scheme", "md5")
    data = changed(data, "ucanpay.md5_key", "md5-shared-secret")
    config = parse(data)
    text = repr(config) + str(config)
    for secret in ("hunter2-password", "md5-shared-secret", config.ecr_clients[0].token_hash,
                   str(config.manager.pin_hash), "scrypt$"):
        assert secret not in text
    assert "basic_auth_user='user'" in text  # not a secret, still shown


# Each case: where to put which value, the key the error must name, a word of the problem.
ERRORS: list[tuple[str, Any, str, str]] = [
    ("bridge.ecr_listen", "8765", "bridge.ecr_listen", "host:port"),
    ("bridge.ecr_listen", "host:99999", "bridge.ecr_listen", "65535"),
    ("bridge.http_listen", 8766, "bridge.http_listen", "string"),
    ("bridge.public_url", "ftp://x", "bridge.public_url", "URL"),
    ("bridge.public_url", "https://x/?a=1", "bridge.public_url", "URL"),
    ("bridge.max_amount", 100, "bridge.max_amount", "string"),
    ("bridge.max_amount", "0.00", "bridge.max_amount", "positive"),
    ("bridge.max_amount", "-5", "bridge.max_amount", "positive"),
    ("bridge.max_amount", "1e3", "bridge.max_amount", "decimal"),
    ("bridge.max_amount", "12.", "bridge.max_amount", "decimal"),
    ("bridge.log_format", "text", "bridge.log_format", "one of"),
    ("bridge.tls_cert_file", "/nonexistent/cert.pem", "bridge.tls_cert_file", "does not exist"),
    ("bridge.data_dir", ["x"], "bridge.data_dir", "string"),
    ("bridge", "x", "bridge", "table"),
    ("ecr_clients[1].role", "admin", "ecr_clients[1].role", "cashier, manager"),
    ("ecr_clients[1].role", REMOVE, "ecr_clients[1].role", "missing"),
    ("ecr_clients[0].name", "lane 1", "ecr_clients[0].name", "letters"),
    ("ecr_clients[0].name", "", "ecr_clients[0].name", "missing"),
    ("ecr_clients[1].name", "lane-1", "ecr_clients[1].name", "same name"),
    ("ecr_clients[0].token_hash", "plain-token", "ecr_clients[0].token_hash", "hash-secret"),
    ("ecr_clients[0].token_hash", cheap_hash(PIN), "ecr_clients[0].token_hash", "tag"),
    ("manager.pin_hash", cheap_hash(TOKEN_1), "manager.pin_hash", "--pin"),
    ("manager.pin_hash", "scrypt$ln=40,r=8,p=1$AAAAAAAA$" + "A" * 43, "manager.pin_hash",
     "out of range"),
    ("codepay.expires_s", 0, "codepay.expires_s", "at least 1"),
    ("codepay.expires_s", -3, "codepay.expires_s", "at least 1"),
    ("codepay.expires_s", 1.5, "codepay.expires_s", "whole number"),
    ("codepay.expires_s", "180", "codepay.expires_s", "whole number"),
    ("codepay.expires_s", True, "codepay.expires_s", "whole number"),
    ("codepay.poll_interval_s", 0, "codepay.poll_interval_s", "more than 0"),
    ("codepay.timeout_s", "10", "codepay.timeout_s", "seconds"),
    ("codepay.sign_type", "RSA", "codepay.sign_type", "RSA2, NONE"),
    ("codepay.app_id", REMOVE, "codepay.app_id", "missing"),
    ("codepay.base_url", REMOVE, "codepay.base_url", "missing"),
    ("codepay.private_key_file", REMOVE, "codepay.private_key_file", "RSA2"),
    ("codepay.private_key_file", "/nonexistent/key.pem", "codepay.private_key_file",
     "/nonexistent/key.pem"),
    ("codepay.sign_type", "NONE", "codepay.basic_auth_user", "Basic"),
    ("codepay.open_batch_method", "Batch Open", "codepay.open_batch_method", "method name"),
    ("bridge.public_url", "https://" + "x" * 40 + ".example", "bridge.public_url",
     "at most 64 characters"),
    ("ucanpay.qr_timeout_s", 0, "ucanpay.qr_timeout_s", "at least 1"),
    ("ucanpay.qr_timeout_s", 120.0, "ucanpay.qr_timeout_s", "whole number"),
    ("ucanpay.currency", "cad", "ucanpay.currency", "ISO 4217"),
    ("ucanpay.currency", "XXX", "ucanpay.currency", "ISO 4217"),
    ("ucanpay.deeplink_template", "https://x/?o=${ucpOrderNo}", "ucanpay.deeplink_template",
     "${amount}"),
    ("ucanpay.sign_scheme", "sha1", "ucanpay.sign_scheme", "one of"),
    ("ucanpay.sign_scheme", "md5", "ucanpay.md5_key", "missing"),
    ("ucanpay.public_key_file", "", "ucanpay.public_key_file", "both key files"),
    ("ucanpay.merchant_id", REMOVE, "ucanpay.merchant_id", "missing"),
    ("terminals[0].sn", "SN 1", "terminals[0].sn", "letters"),
    ("terminals[0].provider", "ucanpay", "terminals[0].provider", "codepay"),
    ("terminals[0].printer", "p9", "terminals[0].printer", "p9"),
    ("terminals[0].display", "d9", "terminals[0].display", "d9"),
    ("displays[0].kind", "lcd", "displays[0].kind", "web, serial, file"),
    ("displays[1].device", REMOVE, "displays[1].device", "serial"),
    ("displays[1].columns", 0, "displays[1].columns", "from 1 to 80"),
    ("displays[1].name", "d1", "displays[1].name", "this name"),
    ("printers[0].path", REMOVE, "printers[0].path", "needs path"),
    ("printers[1].host", "", "printers[1].host", "needs host"),
    ("printers[1].port", 70000, "printers[1].port", "65535"),
    ("printers[0].width_dots", 580, "printers[0].width_dots", "multiple of 8"),
    ("printers[0].native_qr", "yes", "printers[0].native_qr", "true or false"),
    ("printers[1].name", "p1", "printers[1].name", "this name"),
    ("sandbox", "yes", "sandbox", "true or false"),
]


@pytest.mark.parametrize(("where", "value", "key", "problem"), ERRORS,
                         ids=[f"{c[0]}={c[1]!r:.20}" for c in ERRORS])
def test_every_error_names_the_key(
    valid: dict[str, Any], where: str, value: Any, key: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as info:
        parse(changed(valid, where, value))
    assert info.value.key == key
    assert problem in info.value.problem
    assert str(info.value).startswith(f"{key}: ")


@pytest.mark.parametrize(("where", "key"), [
    ("bridge.max_amont", "bridge.max_amont"),
    ("codepay.expire_s", "codepay.expire_s"),
    ("ecr_clients[1].tokenhash", "ecr_clients[1].tokenhash"),
    ("printers[0].widthdots", "printers[0].widthdots"),
    ("manager.pin", "manager.pin"),
])
def test_unknown_keys_are_refused(valid: dict[str, Any], where: str, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse(changed(valid, where, "1"))
    assert (info.value.key, info.value.problem) == (key, "unknown key")


def test_unknown_section_is_refused(valid: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as info:
        parse({**valid, "codepays": {}})
    assert info.value.key == "codepays"


def test_an_empty_top_level_key_is_named_as_toml_writes_it(valid: dict[str, Any]) -> None:
    # TOML allows `"" = 1`; the error named the key as nothing (": unknown section or key").
    with pytest.raises(ConfigError) as info:
        parse({**valid, "": 1})
    assert info.value.key == '""'
    assert str(info.value) == '"": unknown section or key'


def test_at_least_one_register_is_needed(valid: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as info:
        parse({**valid, "ecr_clients": []})
    assert info.value.key == "ecr_clients"


def test_array_entries_must_be_tables(valid: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as info:
        parse({**valid, "printers": [valid["printers"][0], "p2"]})
    assert info.value.key == "printers[1]"


def test_terminals_need_a_codepay_section(valid: dict[str, Any]) -> None:
    data = dict(valid)
    del data["codepay"]
    with pytest.raises(ConfigError) as info:
        parse(data)
    assert info.value.key == "codepay"


def test_terminal_serial_numbers_and_names_are_unique(valid: dict[str, Any]) -> None:
    second = {"sn": "WPYB002248000865", "name": "lane-2"}
    with pytest.raises(ConfigError) as info:
        parse({**valid, "terminals": [*valid["terminals"], second]})
    assert info.value.key == "terminals[1].sn"
    # A name equal to another terminal's serial number would make `terminal` ambiguous.
    second = {"sn": "SN2", "name": "WPYB002248000865"}
    with pytest.raises(ConfigError) as info:
        parse({**valid, "terminals": [*valid["terminals"], second]})
    assert info.value.key == "terminals[1].name"


def test_two_clients_with_one_token_are_refused(valid: dict[str, Any]) -> None:
    data = changed(valid, "ecr_clients[1].token_hash", cheap_hash(TOKEN_1))
    with pytest.raises(ConfigError) as info:
        parse(data)
    assert info.value.key == "ecr_clients[1].token_hash"
    assert "share a token" in info.value.problem


def test_key_file_that_is_a_directory_is_refused(valid: dict[str, Any], tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        parse(changed(valid, "ucanpay.private_key_file", str(tmp_path)))
    assert info.value.key == "ucanpay.private_key_file"
    assert str(tmp_path) in info.value.problem


def test_tls_needs_both_files(valid: dict[str, Any], key_files: dict[str, Path]) -> None:
    data = changed(valid, "bridge.tls_cert_file", str(key_files["codepay_private"]))
    with pytest.raises(ConfigError) as info:
        parse(data)
    assert info.value.key == "bridge.tls_key_file"
    data = changed(data, "bridge.tls_key_file", str(key_files["ucanpay_private"]))
    assert parse(data).bridge.tls_key_file == key_files["ucanpay_private"]


def test_rsa2_and_md5_combinations_that_are_complete_load(valid: dict[str, Any]) -> None:
    data = changed(valid, "codepay.sign_type", "NONE")
    data = changed(data, "codepay.basic_auth_user", "u")
    data = changed(data, "codepay.basic_auth_password", "p")
    data = changed(data, "codepay.private_key_file", REMOVE)
    data = changed(data, "codepay.gateway_public_key_file", REMOVE)
    data = changed(data, "ucanpay.sign_scheme", "md5")
    data = changed(data, "ucanpay.md5_key", "k")
    data = changed(data, "ucanpay.private_key_file", "")
    config = parse(data)
    assert config.codepay is not None and config.codepay.basic_auth_password == "p"
    assert config.ucanpay is not None and config.ucanpay.private_key_file is None


def test_load_config_reads_toml(tmp_path: Path) -> None:
    path = tmp_path / "posbridge.toml"
    path.write_text(f"""
[bridge]
ecr_listen = "127.0.0.1:0"
max_amount = "99.99"

[[ecr_clients]]
name = "lane-1"
role = "manager"
token_hash = "{cheap_hash(TOKEN_1)}"
""")
    config = load_config(path, env={})
    assert config.bridge.max_amount == "99.99"
    assert config.ecr_clients[0].role is Role.MANAGER


def test_load_config_names_the_file_on_bad_toml(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[bridge\nmax_amount = 1\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert info.value.key == str(path)
    assert "TOML" in info.value.problem


def test_load_config_names_a_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert info.value.key == str(path)


@pytest.mark.parametrize("path", ["a" * 5000, "/" + "b" * 300 + "/key.pem"])
def test_a_key_file_name_too_long_is_a_config_error(valid: dict[str, Any], path: str) -> None:
    # The operating system refuses such a name with an error Path.is_file() lets through.
    with pytest.raises(ConfigError) as info:
        parse(changed(valid, "codepay.private_key_file", path))
    assert info.value.key == "codepay.private_key_file"
