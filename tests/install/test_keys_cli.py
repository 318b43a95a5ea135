"""``posbridge keys new|show-public|check`` through main(), on real files."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from posbridge.cli import main
from posbridge.install_files import (
    Account,
    FileFacts,
    file_facts,
    may_read,
    may_write,
    secret_mode_problem,
)
from posbridge.keyfiles import generate_rsa_pem, load_private_key, load_public_key, public_pem
from posbridge.provider_keys import KeyFile, Observed, check_keys, public_half_path
from posbridge.providers.registry import PLUGINS

from .conftest import AS_RUNNER


def _config(tmp_path: Path) -> Path:
    """A configuration naming every key file of every provider under tmp_path."""
    lines = []
    for name, plugin in PLUGINS.items():
        lines.append(f"[{name}]")
        lines += [f'{spec.config_key} = "{tmp_path / spec.file_name}"' for spec in plugin.keys]
    path = tmp_path / "posbridge.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _put_gateway_keys(tmp_path: Path) -> None:
    for plugin in PLUGINS.values():
        for spec in plugin.keys:
            if spec.role == "provider":
                (tmp_path / spec.file_name).write_bytes(
                    public_pem(load_private_key(generate_rsa_pem(1024))))


def _merchant_spec(provider: str) -> tuple[str, str, int, str]:
    spec = next(s for s in PLUGINS[provider].keys if s.role == "merchant")
    return spec.file_name, spec.portal_format, spec.bits, spec.note


def test_new_writes_a_private_key_0600_and_prints_the_portal_form(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _config(tmp_path)
    for provider in PLUGINS:
        file_name, form, bits, note = _merchant_spec(provider)
        assert main(["keys", "new", provider, "--config", str(config)]) == 0
        out = capsys.readouterr().out
        private = tmp_path / file_name
        assert private.stat().st_mode & 0o777 == 0o600
        key = load_private_key(private.read_bytes())
        assert key.key_size == bits
        spki = key.public_key().public_bytes(serialization.Encoding.DER,
                                             serialization.PublicFormat.SubjectPublicKeyInfo)
        if form == "base64":
            assert base64.b64encode(spki).decode() in out.splitlines()
        else:
            assert public_pem(key).decode().strip() in out
        assert "BEGIN PRIVATE KEY" not in out
        if note:
            assert f"note: {note}" in out
        # the public half is kept beside it, as the portal takes it
        assert load_public_key((tmp_path / f"{file_name}.pub").read_bytes()).public_numbers() \
            == key.public_key().public_numbers()


def test_new_refuses_to_replace_a_key_without_force(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _config(tmp_path)
    provider = next(iter(PLUGINS))
    private = tmp_path / _merchant_spec(provider)[0]
    assert main(["keys", "new", provider, "--config", str(config)]) == 0
    before = private.read_bytes()
    capsys.readouterr()
    assert main(["keys", "new", provider, "--config", str(config)]) == 2
    assert "--force" in capsys.readouterr().err
    assert private.read_bytes() == before
    assert main(["keys", "new", provider, "--config", str(config), "--force"]) == 0
    assert private.read_bytes() != before


def test_bits_and_the_signature_length_note_for_a_provider_that_has_one(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _config(tmp_path)
    with_note = [name for name in PLUGINS if _merchant_spec(name)[3]]
    assert with_note, "a plug-in declares a note (UCanPay's 256-character sign)"
    provider = with_note[0]
    assert main(["keys", "new", provider, "--config", str(config), "--bits", "1024"]) == 0
    assert "256" in capsys.readouterr().out
    key = load_private_key((tmp_path / _merchant_spec(provider)[0]).read_bytes())
    assert key.key_size == 1024


def test_show_public_in_the_portal_form_or_the_one_asked_for(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _config(tmp_path)
    for provider in PLUGINS:
        file_name, form, _bits, _note = _merchant_spec(provider)
        assert main(["keys", "show-public", provider, "--config", str(config)]) == 1
        assert f"keys new {provider}" in capsys.readouterr().err
        main(["keys", "new", provider, "--config", str(config), "--bits", "1024"])
        capsys.readouterr()
        key = load_private_key((tmp_path / file_name).read_bytes())
        assert main(["keys", "show-public", provider, "--config", str(config)]) == 0
        shown = capsys.readouterr().out
        assert load_public_key(shown.encode()).public_numbers() == \
            key.public_key().public_numbers()
        assert ("BEGIN PUBLIC KEY" in shown) == (form == "pem")
        for other in ("pem", "base64"):
            assert main(["keys", "show-public", provider, "--config", str(config),
                         "--format", other]) == 0
            shown = capsys.readouterr().out
            assert ("BEGIN PUBLIC KEY" in shown) == (other == "pem")
            assert load_public_key(shown.encode()).public_numbers() == \
                key.public_key().public_numbers()


def _check(config: Path,
           capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, dict[str, str]]]:
    code = main(["keys", "check", "--config", str(config), "--json", *AS_RUNNER])
    report = json.loads(capsys.readouterr().out)
    return code, {c["name"]: c for c in report["checks"]}


def test_check_passes_a_complete_set_and_names_each_problem(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _config(tmp_path)
    for provider in PLUGINS:
        main(["keys", "new", provider, "--config", str(config), "--bits", "1024"])
    capsys.readouterr()
    code, checks = _check(config, capsys)
    missing = [n for n, c in checks.items() if c["status"] == "fail"]
    assert code == 1 and missing, "the gateway keys are not there yet"
    for name in missing:
        assert "does not exist" in checks[name]["message"]
        assert "portal" in checks[name]["fix"]
    _put_gateway_keys(tmp_path)
    code, checks = _check(config, capsys)
    assert code == 0, checks
    assert all(c["status"] == "ok" for c in checks.values())

    provider = next(iter(PLUGINS))
    merchant, gateway = (next(s for s in PLUGINS[provider].keys if s.role == role)
                         for role in ("merchant", "provider"))
    private = tmp_path / merchant.file_name
    # readable by every user
    private.chmod(0o644)
    code, checks = _check(config, capsys)
    found = checks[f"key {provider}.{merchant.config_key}"]
    assert code == 1 and found["status"] == "fail"
    assert "every user" in found["message"] and f"chmod 600 {private}" in found["fix"]
    private.chmod(0o600)
    # the merchant's own public key where the gateway's belongs
    (tmp_path / gateway.file_name).write_bytes(public_pem(load_private_key(private.read_bytes())))
    code, checks = _check(config, capsys)
    found = checks[f"key {provider}.{gateway.config_key}"]
    assert code == 1 and "merchant's own public key" in found["message"]
    # a private key where the gateway's public key belongs
    (tmp_path / gateway.file_name).write_bytes(generate_rsa_pem(1024))
    code, checks = _check(config, capsys)
    assert "holds a private key" in checks[f"key {provider}.{gateway.config_key}"]["message"]
    _put_gateway_keys(tmp_path)
    # the private key replaced behind the portal's back: its public half no longer matches
    private.write_bytes(generate_rsa_pem(1024))
    code, checks = _check(config, capsys)
    found = checks[f"key {provider}.{merchant.config_key}"]
    assert code == 1 and "is not the public half" in found["message"]
    assert "BEGIN" not in json.dumps(checks)  # never key material


def test_who_may_read_and_write() -> None:
    daemon = Account(name="posbridge", uid=990, gid=990, gids=frozenset({990, 20}))

    def facts(mode: int, uid: int, gid: int, *, is_dir: bool = False) -> FileFacts:
        return FileFacts(path=Path("/x"), exists=True, is_file=not is_dir, is_dir=is_dir,
                         mode=mode, uid=uid, gid=gid)

    assert may_read(facts(0o600, 990, 0), daemon)
    assert not may_read(facts(0o600, 0, 990), daemon)  # root's own key
    assert may_read(facts(0o640, 0, 990), daemon)  # 0640 root:posbridge
    assert not may_read(facts(0o640, 0, 0), daemon)
    assert may_write(facts(0o750, 990, 990, is_dir=True), daemon)
    assert not may_write(facts(0o750, 0, 990, is_dir=True), daemon)
    assert secret_mode_problem(0o600) is None and secret_mode_problem(0o640) is None
    assert "every user" in (secret_mode_problem(0o604) or "")
    assert secret_mode_problem(0o660) is not None


def test_a_key_the_daemons_user_cannot_read(tmp_path: Path) -> None:
    """Run as root, the check is for the service user: a key only root can read fails."""
    provider = next(iter(PLUGINS))
    spec = next(s for s in PLUGINS[provider].keys if s.role == "merchant")
    private = tmp_path / spec.file_name
    private.write_bytes(generate_rsa_pem(1024))
    private.chmod(0o600)
    facts = file_facts(private)
    daemon = Account(name="posbridge", uid=facts.uid + 4242, gid=facts.gid + 4242,
                     gids=frozenset({facts.gid + 4242}))
    kf = KeyFile(provider=provider, spec=spec, path=private, named=True)
    seen = Observed(facts=facts, content=private.read_bytes())
    [check] = check_keys([(kf, seen, None)], daemon)
    assert check.status == "fail" and "cannot be read by posbridge" in check.message
    assert check.fix == f"chown posbridge {private}"
    assert not public_half_path(private).exists()
