"""``posbridge doctor`` against the in-package simulators, a printer on a real pty and real
files: all well, then each failure with the message and fix a person needs."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from posbridge.cli import main
from posbridge.keyfiles import generate_rsa_pem, load_private_key, public_pem
from tests.hardware.printer_sim import PAPER_OUT, PtyPrinter

from .conftest import AS_RUNNER, write_config

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def pty(tmp_path: Path) -> Iterator[PtyPrinter]:
    printer = PtyPrinter(tmp_path / "ttyPRN")
    yield printer
    if printer.path.is_symlink():
        printer.unplug()


@pytest.fixture
def config(tmp_path: Path, sandbox_data: dict[str, Any], pty: PtyPrinter) -> dict[str, Any]:
    """The sandbox configuration with lane-1's printer on the pty and its data folder made."""
    sandbox_data["printers"][0] = {"name": "lane-1", "kind": "serial", "device": str(pty.path)}
    Path(sandbox_data["bridge"]["data_dir"]).mkdir(mode=0o750)
    return sandbox_data


def _posbridge(*args: str) -> list[str]:
    """The command line of ``posbridge ARGS`` as its own process (doctor sets up the process's
    logging for itself, which a test process must not inherit)."""
    return [sys.executable, "-m", "posbridge", *args]


async def _doctor(tmp_path: Path, data: dict[str, Any]) -> tuple[int, dict[str, dict[str, str]]]:
    path = write_config(tmp_path / "posbridge.toml", data)
    proc = await asyncio.create_subprocess_exec(
        *_posbridge("doctor", "--config", str(path), "--json", *AS_RUNNER),
        stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate()
    report = json.loads(out)
    assert report["ok"] == (proc.returncode == 0)
    return proc.returncode or 0, {c["name"]: c for c in report["checks"]}


async def test_all_well_before_the_first_sale(
        tmp_path: Path, config: dict[str, Any]) -> None:
    code, checks = await _doctor(tmp_path, config)
    assert code == 0, checks
    for name in ("config", "provider codepay", "provider ucanpay", "printer lane-1",
                 "display lane-1", "journal", "key codepay.private_key_file"):
        assert checks[name]["status"] == "ok", checks[name]
    assert "no such order" in checks["provider codepay"]["message"]
    assert checks["clock vs codepay"]["status"] == "ok"
    assert checks["printer lane-1"]["message"] == "online, answers status requests"
    # no public_url: a warning, which does not fail
    assert checks["notification URL"]["status"] == "warn"


async def test_wrong_keys_each_say_which_side_is_wrong(
        tmp_path: Path, config: dict[str, Any]) -> None:
    stranger = tmp_path / "stranger.pem"
    stranger.write_bytes(generate_rsa_pem(1024))
    stranger.chmod(0o600)
    config["codepay"]["private_key_file"] = str(stranger)  # the portal has another key
    other_platform = tmp_path / "other_platform.pem"
    other_platform.write_bytes(public_pem(load_private_key(generate_rsa_pem(1024))))
    config["ucanpay"]["public_key_file"] = str(other_platform)  # not the platform's key
    code, checks = await _doctor(tmp_path, config)
    assert code == 1
    refused = checks["provider codepay"]
    assert refused["status"] == "fail" and "refused the signed status query" in \
        refused["message"]
    assert "posbridge keys show-public codepay" in refused["fix"]
    unverified = checks["provider ucanpay"]
    assert unverified["status"] == "fail" and "does not verify" in unverified["message"]
    assert "download UCanPay's public key from its portal again" in unverified["fix"]


async def test_an_unreachable_provider(
        tmp_path: Path, config: dict[str, Any]) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    config["codepay"]["base_url"] = closed
    code, checks = await _doctor(tmp_path, config)
    assert code == 1
    found = checks["provider codepay"]
    assert found["message"].startswith(f"cannot reach {closed}")
    assert "codepay.base_url" in found["fix"] and "DNS" in found["fix"]
    assert "clock vs codepay" not in checks
    assert checks["provider ucanpay"]["status"] == "ok"


async def test_a_private_key_everybody_may_read(
        tmp_path: Path, config: dict[str, Any]) -> None:
    private = Path(config["codepay"]["private_key_file"])
    private.chmod(0o644)
    code, checks = await _doctor(tmp_path, config)
    assert code == 1
    found = checks["key codepay.private_key_file"]
    assert found["status"] == "fail" and "every user on this machine may use it" in \
        found["message"]
    assert found["fix"] == f"chmod 600 {private}"


async def test_the_printer_missing_from_its_pty_and_out_of_paper(
        tmp_path: Path, config: dict[str, Any], pty: PtyPrinter) -> None:
    pty.replies = dict(PAPER_OUT)
    code, checks = await _doctor(tmp_path, config)
    assert code == 1
    assert checks["printer lane-1"]["message"] == "answers, but reports: paper out"
    assert "load paper" in checks["printer lane-1"]["fix"]
    pty.unplug()
    code, checks = await _doctor(tmp_path, config)
    assert code == 1
    found = checks["printer lane-1"]
    assert found["status"] == "fail" and f"cannot open {pty.path}" in found["message"]
    assert f"ls -l {pty.path}" in found["fix"] and "dialout" in found["fix"]


def test_the_screen_says_how_to_fix_each_failure(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "posbridge.toml"
    assert main(["init", "--dir", str(tmp_path), "--non-interactive", "--provider",
                 "codepay"]) == 0
    done = subprocess.run(_posbridge("doctor", "--config", str(config), *AS_RUNNER),
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1, done.stderr
    screen = done.stdout
    lines = screen.splitlines()
    failing = [i for i, line in enumerate(lines) if line.startswith("FAIL")]
    assert failing and all(lines[i + 1].strip().startswith("->") for i in failing)
    placeholders = next(line for line in lines if line.startswith("FAIL  placeholders"))
    assert "codepay.base_url" in placeholders and "codepay.merchant_no" in placeholders
    assert "gateway_public_key_file" in screen
    assert lines[-1].endswith("failed") and "checks:" in lines[-1]
