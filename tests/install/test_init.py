"""``posbridge init``: from an empty folder to a daemon that takes a card sale and a QR sale.

The installer's path for real: ``init --dir DIR --non-interactive`` writes the folder and prints
the tokens and the merchant public keys; the "portals" (the in-package simulators) are given the
printed public keys; then only stable keys of config/README.md change (what each portal gave:
``base_url``, the merchant's ids, the gateway key files; and a lane's ``[[terminals]]``), and
``serve --config`` runs as its own process.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from posbridge.cli import main
from posbridge.client import EcrClient
from posbridge.keyfiles import generate_rsa_pem, load_private_key, load_public_key, public_pem
from posbridge.sandbox.codepay_sim import CodePaySimulator
from posbridge.sandbox.opay_sim import OPaySimulator
from posbridge.sandbox.ucanpay_sim import UCanPaySimulator

pytestmark = pytest.mark.timeout(120)

TERMINAL_SN = "INITTEST0000001"


@pytest.fixture(autouse=True)
def no_config_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in list(os.environ):
        if var.upper().startswith("POSBRIDGE_") and "__" in var:
            monkeypatch.delenv(var)


def _init(folder: Path, *extra: str) -> int:
    return main(["init", "--dir", str(folder), "--non-interactive",
                 "--ecr-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0", *extra])


def _printed_public_key(out: str, provider: str) -> Any:
    """The public key init printed for ``provider``'s portal, read back as a portal would."""
    match = re.search(rf"^{provider}: give this public key to .*?:\n(.+?)\n(?:note:|\n|$)", out,
                      re.MULTILINE | re.DOTALL)
    assert match, out
    return load_public_key(match.group(1).encode())


def _set_in_section(text: str, section: str, key: str, value: str) -> str:
    """``text`` with ``key`` of ``[section]`` set to the string ``value``."""
    head = text.index(f"\n[{section}]\n")
    end = text.find("\n[", head + 1)
    end = len(text) if end < 0 else end
    body, n = re.subn(rf"^{key} = .*$", f"{key} = {json.dumps(value)}", text[head:end],
                      flags=re.MULTILINE)
    assert n == 1, f"{section}.{key} is not in the file once"
    return text[:head] + body + text[end:]


async def _wait_ready(path: Path, proc: subprocess.Popen[bytes]) -> dict[str, Any]:
    for _ in range(1200):  # bounded: about a minute on a slow machine
        if path.exists():
            return dict(json.loads(path.read_text()))
        assert proc.poll() is None, f"serve exited with {proc.returncode}"
        await asyncio.sleep(0.05)
    raise AssertionError("serve did not start")


async def _until_final(ecr: EcrClient, order_no: str) -> dict[str, Any]:
    for _ in range(300):  # bounded: the sale ends within seconds
        txn: dict[str, Any] = await ecr.call("status", {"order_no": order_no})
        if txn["state"] not in ("pending", "in_progress", "unknown"):
            return txn
        await asyncio.sleep(0.1)
    raise AssertionError(f"{order_no} did not end")


@pytest.fixture
def daemon_log(tmp_path: Path) -> Iterator[Path]:
    log = tmp_path / "daemon.log"
    yield log
    if log.exists():  # shown only when the test fails
        sys.stderr.write(log.read_text()[-4000:])


async def test_init_then_serve_takes_a_card_sale_and_a_qr_sale(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], daemon_log: Path) -> None:
    folder = tmp_path / "etc"
    # The bare command an installer's script runs (the listen addresses only keep this test
    # off the real ports).
    assert _init(folder) == 0
    out = capsys.readouterr().out
    token = re.search(r"^  lane-1  (\S+)$", out, re.MULTILINE)
    assert token, out
    config_path = folder / "posbridge.toml"
    assert config_path.stat().st_mode & 0o777 == 0o640
    config = tomllib.loads(config_path.read_text())
    for section in ("codepay", "ucanpay", "opay"):
        assert Path(config[section]["private_key_file"]).stat().st_mode & 0o777 == 0o600
    assert main(["config", "check", "--config", str(config_path)]) == 2  # no gateway keys yet
    assert "gateway_public_key_file" in capsys.readouterr().err

    # The portals learn the printed public keys; their own keys are what gets downloaded.
    codepay_gateway = load_private_key(generate_rsa_pem(2048))
    ucanpay_platform = load_private_key(generate_rsa_pem(2048))
    opay_platform = load_private_key(generate_rsa_pem(2048))
    codepay = CodePaySimulator(app_id="4711", merchant_no="M-INIT-1",
                               gateway_private_key=codepay_gateway,
                               merchant_public_key=_printed_public_key(out, "codepay"),
                               approve_delay_s=0.05)
    ucanpay = UCanPaySimulator(merchant_id="UCPINIT01", private_key=ucanpay_platform,
                               merchant_public_key=_printed_public_key(out, "ucanpay"),
                               notify_interval_s=0.05)
    opay = OPaySimulator(app_id="opay-init-1", platform_key=opay_platform,
                         merchant_public_key=_printed_public_key(out, "opay"),
                         coins={"USDT": 6}, approve_delay_s=0.05)
    for sim in (codepay, ucanpay, opay):
        await sim.start()
    proc = None
    try:
        # Only the stable keys of config/README.md change: what the portals gave, and a lane.
        text = config_path.read_text()
        for section, key, value in (
                ("codepay", "base_url", codepay.url), ("codepay", "app_id", "4711"),
                ("codepay", "merchant_no", "M-INIT-1"), ("ucanpay", "base_url", ucanpay.url),
                ("ucanpay", "merchant_id", "UCPINIT01"), ("opay", "base_url", opay.url),
                ("opay", "app_id", "opay-init-1")):
            text = _set_in_section(text, section, key, value)
        text += f'\n[[terminals]]\nsn = "{TERMINAL_SN}"\nname = "lane-1"\n'
        config_path.write_text(text)
        Path(config["codepay"]["gateway_public_key_file"]).write_bytes(
            public_pem(codepay_gateway))
        Path(config["ucanpay"]["public_key_file"]).write_bytes(public_pem(ucanpay_platform))
        Path(config["opay"]["platform_public_key_file"]).write_bytes(public_pem(opay_platform))
        assert main(["config", "check", "--config", str(config_path)]) == 0

        ready = tmp_path / "ready.json"
        with daemon_log.open("wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "posbridge", "serve", "--config", str(config_path),
                 "--ready-file", str(ready), "--log-format", "json"], stderr=log)
        ports = await _wait_ready(ready, proc)
        url = f"ws://127.0.0.1:{ports['ecr_port']}/ecr"
        async with await EcrClient.connect(url, token.group(1)) as ecr:
            sale = await ecr.call("sale", {"terminal": "lane-1", "order_no": "I1",
                                           "amount": "12.00", "currency": "USD"}, timeout=60)
            assert sale["state"] == "approved" and sale["terminal"] == TERMINAL_SN
            qr = await ecr.call("qr_sale", {"order_no": "Q1", "amount": "8.50",
                                            "currency": "CAD", "subject": "Coffee",
                                            "wait": False}, timeout=60)
            assert qr["qr"]["deeplink"]
            await ucanpay.scan_and_pay(qr["provider_ref"])
            assert (await _until_final(ecr, "Q1"))["state"] == "approved"
            crypto = await ecr.call("crypto_sale", {
                "order_no": "C1", "amount": "3.45", "coin": "USDT",
                "payer": {"user_id": "22033390"}}, timeout=60)  # .45: paid at once
            assert crypto["state"] == "approved"
    finally:
        if proc is not None:
            proc.terminate()
            assert proc.wait(30) == 0
        for sim in (codepay, ucanpay, opay):
            await sim.stop()
    daemon_log.unlink()


def test_init_refuses_to_overwrite_without_force(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "etc"
    assert _init(folder, "--provider", "codepay") == 0
    written = {p: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    capsys.readouterr()
    assert _init(folder, "--provider", "codepay") == 2
    err = capsys.readouterr().err
    assert "--force" in err and "posbridge.toml" in err
    assert {p: p.read_bytes() for p in folder.iterdir() if p.is_file()} == written
    assert _init(folder, "--provider", "codepay", "--force") == 0
    rewritten = {p: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    assert rewritten.keys() == written.keys()
    assert all(rewritten[p] != written[p] for p in written), "new keys, new token hashes"


class _Console(io.StringIO):
    """Standard input that answers the last question written to ``screen``."""

    def __init__(self, screen: io.StringIO, answers: dict[str, list[str]]) -> None:
        super().__init__()
        self.screen = screen
        self.answers = answers

    def readline(self, size: int | None = -1) -> str:  # type: ignore[override]  # typeshed's int
        prompt = self.screen.getvalue().rsplit("\n", 1)[-1]
        for start, replies in self.answers.items():
            if prompt.startswith(start):
                return replies.pop(0) + "\n"
        raise AssertionError(f"unexpected question: {prompt!r}")


def test_interactive_init_asks_for_what_the_flags_did_not_say(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    screen = io.StringIO()
    console = _Console(screen, {
        "Providers": ["codepay"],
        "codepay.base_url": ["not a url", "https://codepay-open.codepay.me"],
        "codepay.app_id": ["4711"],
        "codepay.merchant_no": ["M-1"],
        "Registers": ["lane-1, office:manager"],
        "Card terminals": ["lane-1=T0001"],
        "Public URL": ["https://store-42.example"],
    })
    monkeypatch.setattr("sys.stdin", console)
    monkeypatch.setattr("sys.stdout", screen)
    assert main(["init", "--dir", str(tmp_path / "etc")]) == 0
    assert "must be an http:// or https:// URL" in screen.getvalue()  # asked again
    config = tomllib.loads((tmp_path / "etc" / "posbridge.toml").read_text())
    assert config["codepay"]["app_id"] == "4711"  # a string, as the section wants
    assert config["codepay"]["base_url"] == "https://codepay-open.codepay.me"
    assert "ucanpay" not in config
    assert [(c["name"], c["role"]) for c in config["ecr_clients"]] == \
        [("lane-1", "cashier"), ("office", "manager")]
    assert config["terminals"] == [{"sn": "T0001", "name": "lane-1", "provider": "codepay",
                                    "display": "lane-1"}]
    assert config["bridge"]["public_url"] == "https://store-42.example"
    assert all(not v for v in console.answers.values()), "every answer was used"
