"""`posbridge config check` and `posbridge hash-secret`, called through main()."""

from __future__ import annotations

import argparse
import importlib
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from posbridge.cli import COMMAND_MODULES, OWN_COMMANDS, SUBCOMMANDS, build_parser, main
from posbridge.secrets import check_hash_format, verify_secret

EXAMPLE = Path(__file__).parents[2] / "config" / "posbridge.example.toml"


@pytest.fixture(autouse=True)
def no_config_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """main() reads os.environ: keep stray POSBRIDGE_*__* variables out of these tests."""
    for var in list(os.environ):
        if var.upper().startswith("POSBRIDGE_") and "__" in var:
            monkeypatch.delenv(var)


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    """The example configuration with its key files pointing into tmp_path."""
    for name in ("codepay_private", "codepay_gateway_public", "ucanpay_private",
                 "ucanpay_public", "opay_merchant_key", "opay_platform_pub"):
        (tmp_path / f"{name}.pem").write_text("test key\n")
    path = tmp_path / "posbridge.toml"
    path.write_text(EXAMPLE.read_text().replace("/etc/posbridge/", f"{tmp_path}/"))
    return path


def test_config_check_ok(config_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "check", "--config", str(config_file)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("configuration OK: 2 registers, 1 terminal, 2 displays, 1 printer")
    assert "providers: codepay, ucanpay" in out


def test_config_check_names_the_wrong_key(
    config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = config_file.read_text()
    config_file.write_text(text.replace("expires_s               = 180",
                                        "expires_s               = 0"))
    assert main(["config", "check", "--config", str(config_file)]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("posbridge: configuration error: codepay.expires_s: ")
    assert captured.out == ""


def test_config_check_uses_the_environment(
    config_file: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POSBRIDGE_ECR_CLIENTS__1__ROLE", "boss")
    assert main(["config", "check", "--config", str(config_file)]) == 2
    assert "ecr_clients[1].role" in capsys.readouterr().err


def test_config_check_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "check", "--config", str(tmp_path / "none.toml")]) == 2
    assert "none.toml" in capsys.readouterr().err


def test_hash_secret_reads_stdin_and_prints_a_verifiable_hash_last(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    token = "register-token-" + "t" * 30
    monkeypatch.setattr("sys.stdin", io.StringIO(token + "\n"))
    assert main(["hash-secret"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert verify_secret(token, last)
    assert check_hash_format(last, key="k", tagged=True).tag is not None
    assert token not in last


def test_hash_secret_pin_has_no_tag(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("0000-1111-2222-3333-4444\r\n"))
    assert main(["hash-secret", "--pin"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert verify_secret("0000-1111-2222-3333-4444", last)
    assert check_hash_format(last, key="k", tagged=False).tag is None


def test_hash_secret_generate_prints_a_token_and_its_hash(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["hash-secret", "--generate"]) == 0
    token, encoded = capsys.readouterr().out.strip().splitlines()
    assert re.fullmatch(r"[A-Za-z0-9_\-]{43}", token)
    assert verify_secret(token, encoded)


def test_hash_secret_refuses_empty_input(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert main(["hash-secret"]) == 2
    assert capsys.readouterr().out == ""


def test_no_command_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "config" in capsys.readouterr().err


def test_parser_has_this_modules_and_other_modules_commands() -> None:
    assert len(SUBCOMMANDS) == 2
    parser = build_parser()
    args = parser.parse_args(["config", "check"])
    assert args.config == Path("/etc/posbridge/posbridge.toml")
    for command in ("serve", "sale", "hash-secret"):
        assert callable(parser.parse_args([command, *(
            ["--terminal", "t", "--order-no", "o", "--amount", "1", "--currency", "USD"]
            if command == "sale" else [])]).func)


def test_each_command_is_listed_with_the_module_that_adds_it() -> None:
    """``main`` imports only the module :data:`COMMAND_MODULES` names for the command it runs:
    each module must add exactly the commands listed for it."""
    for module in set(COMMAND_MODULES.values()):
        sub = argparse.ArgumentParser().add_subparsers()
        importlib.import_module(module).register_commands(sub)
        listed = {command for command, owner in COMMAND_MODULES.items() if owner == module}
        assert set(sub.choices) == listed, module


def test_this_modules_commands_are_the_ones_listed_as_its_own() -> None:
    sub = argparse.ArgumentParser().add_subparsers()
    for build in SUBCOMMANDS:
        build(sub)
    assert set(sub.choices) == OWN_COMMANDS
    assert not OWN_COMMANDS & set(COMMAND_MODULES)


def test_a_command_is_parsed_with_its_own_module_only() -> None:
    parser = build_parser("refund")
    args = parser.parse_args(["refund", "--order-no", "o2", "--orig-order-no", "o1",
                              "--amount", "1.00"])
    assert callable(args.func)
    with pytest.raises(SystemExit):
        parser.parse_args(["serve"])  # another module's command is not there


def test_an_unknown_command_is_refused_naming_every_command(
        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["frobnicate"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "frobnicate" in err
    assert all(command in err for command in [*COMMAND_MODULES, "config", "hash-secret"])


def test_serve_loads_none_of_the_other_commands_modules(tmp_path: Path) -> None:
    """In a fresh interpreter, ``posbridge serve`` with a bad configuration (exit 2) has
    imported the command line's own module and ``serve``'s, and no other command's."""
    script = ("import sys\n"
              "from posbridge.cli import main\n"
              f"code = main(['serve', '--config', {str(tmp_path / 'missing.toml')!r}])\n"
              "print(code, *sorted(m for m in sys.modules if m.startswith('posbridge.cli')))\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True, timeout=60).stdout.split()
    assert out == ["2", "posbridge.cli", "posbridge.cli_output", "posbridge.cli_serve"]
