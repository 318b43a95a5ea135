"""The shipped unit file: `systemd-analyze verify` is clean; the settings are the intended ones."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(30)

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "systemd" / "posbridge.service"
README = REPO / "systemd" / "README.md"
SYSTEM_UNITS = Path("/usr/lib/systemd/system")


def directives(text: str) -> dict[str, dict[str, list[str]]]:
    """``{section: {key: [values in order]}}`` of a unit file (no line continuations used)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"directive outside a section: {line}"
        key, _, val = line.partition("=")
        current.setdefault(key.strip(), []).append(val.strip())
    return sections


@pytest.fixture(scope="module")
def service() -> dict[str, list[str]]:
    return directives(UNIT.read_text(encoding="utf-8"))["Service"]


def one(service: dict[str, list[str]], key: str) -> str:
    values = service[key]
    assert len(values) == 1, (key, values)
    return values[0]


def verify(root: Path, unit_text: str) -> subprocess.CompletedProcess[str]:
    """``systemd-analyze verify`` of ``unit_text`` under ``--root``: an image holding this
    system's units and a real executable at ``/usr/bin/posbridge`` (this machine has no packaged
    install), so verify checks ExecStart= exactly as written instead of failing on the missing
    binary, and the unit is verified unchanged."""
    analyze = shutil.which("systemd-analyze")
    assert analyze is not None, "systemd-analyze must be installed to test the unit"
    (root / "usr/bin").mkdir(parents=True)
    (root / "etc/systemd/system").mkdir(parents=True)
    shutil.copytree(SYSTEM_UNITS, root / "usr/lib/systemd/system", symlinks=True)
    program = root / "usr/bin/posbridge"
    program.write_text("#!/bin/sh\nexit 0\n")
    program.chmod(0o755)
    (root / "etc/systemd/system/posbridge.service").write_text(unit_text)
    return subprocess.run(
        [analyze, "verify", f"--root={root}", "--man=no", "posbridge.service"],
        capture_output=True, text=True, timeout=25, check=False)


def test_systemd_analyze_verify_is_clean(tmp_path: Path) -> None:
    done = verify(tmp_path, UNIT.read_text(encoding="utf-8"))
    assert done.returncode == 0, done.stderr
    about_unit = [line for line in (done.stdout + done.stderr).splitlines()
                  if "posbridge" in line]
    assert about_unit == []


def test_verify_would_report_a_broken_directive(tmp_path: Path) -> None:
    """The check above can fail: the same run on a damaged copy names the bad line."""
    broken = UNIT.read_text(encoding="utf-8").replace("ProtectHome=yes", "ProtectHome=maybe")
    done = verify(tmp_path, broken)
    assert any("posbridge.service" in line and "protect home" in line.lower()
               for line in done.stderr.splitlines()), done.stderr


def test_notify_type_with_watchdog_and_restart(service: dict[str, list[str]]) -> None:
    assert one(service, "Type") == "notify"
    assert one(service, "NotifyAccess") == "main"
    assert one(service, "WatchdogSec") == "30"
    assert one(service, "Restart") == "on-failure"
    assert one(service, "KillSignal") == "SIGTERM"
    assert one(service, "TimeoutStopSec") == "45"
    assert one(service, "ExecStart") == (
        "/usr/bin/posbridge serve --config /etc/posbridge/posbridge.toml")
    assert one(service, "ExecReload") == (
        "/usr/bin/posbridge reload --config /etc/posbridge/posbridge.toml")


def test_dedicated_user_with_serial_access(service: dict[str, list[str]]) -> None:
    assert one(service, "User") == "posbridge"
    assert one(service, "Group") == "posbridge"
    assert one(service, "SupplementaryGroups") == "dialout"
    assert "DynamicUser" not in service
    assert one(service, "PrivateDevices") == "no"
    assert one(service, "DevicePolicy") == "closed"
    assert service["DeviceAllow"] == ["char-ttyUSB rw", "char-ttyACM rw", "char-ttyS rw"]


def test_directories_and_file_modes(service: dict[str, list[str]]) -> None:
    assert one(service, "StateDirectory") == "posbridge"
    assert one(service, "ConfigurationDirectory") == "posbridge"
    assert one(service, "UMask") == "0077"
    assert one(service, "ProtectSystem") == "strict"
    assert service["ReadWritePaths"] == ["/var/lib/posbridge"]


def test_hardening(service: dict[str, list[str]]) -> None:
    for key in ("NoNewPrivileges", "ProtectHome", "PrivateTmp", "ProtectKernelTunables",
                "ProtectKernelModules", "ProtectControlGroups", "RestrictNamespaces",
                "LockPersonality", "MemoryDenyWriteExecute"):
        assert one(service, key) == "yes", key
    assert one(service, "RestrictAddressFamilies") == "AF_UNIX AF_INET AF_INET6"
    assert one(service, "SystemCallFilter") == "@system-service"
    assert one(service, "CapabilityBoundingSet") == ""
    assert one(service, "AmbientCapabilities") == ""


def test_readme_install_notes_match_the_unit() -> None:
    text = README.read_text(encoding="utf-8")
    assert ("useradd --system --home /var/lib/posbridge --shell /usr/sbin/nologin "
            "--groups dialout posbridge") in text
    assert "/opt/posbridge" in text
    assert "0640" in text
    assert "systemctl enable --now posbridge" in text
    assert "journalctl -u posbridge" in text


MDWE_PROBE = textwrap.dedent("""
    import asyncio, ctypes, io, mmap, sqlite3, ssl, sys

    PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 1
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0:
        sys.exit(f"prctl failed: errno {ctypes.get_errno()}")
    try:
        mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    except PermissionError:
        pass
    else:
        sys.exit("W+X memory was allowed: the restriction is not in force")

    import PIL.Image, prometheus_client, serial, structlog, websockets, zxingcpp
    from aiohttp import ClientSession, web
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa
    import hardware.qr, posbridge.errors, posbridge.metrics, posbridge.money, posbridge.sdnotify

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    sig = key.sign(b"order", padding.PKCS1v15(), hashes.SHA256())
    key.public_key().verify(sig, b"order", padding.PKCS1v15(), hashes.SHA256())
    png = hardware.qr.render_qr_png("https://example.invalid/pay")  # zxing-cpp, zlib
    assert png.startswith(b"\\x89PNG")
    slip_picture = io.BytesIO()  # pillow draws and encodes (slips, picture displays)
    hardware.qr.qr_image("https://example.invalid/pay").save(slip_picture, format="PNG")
    assert slip_picture.getvalue().startswith(b"\\x89PNG")
    db = sqlite3.connect(":memory:")
    db.execute("create table t (x)")
    ssl.create_default_context()

    async def main():
        async def hello(request):
            return web.Response(text="ok")
        app = web.Application()
        app.router.add_get("/", hello)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        port = runner.addresses[0][1]
        async with ClientSession() as session, session.get(f"http://127.0.0.1:{port}/") as r:
            assert await r.text() == "ok"
        await runner.cleanup()

        async def echo(ws):
            async for message in ws:
                await ws.send(message)
        async with websockets.serve(echo, "127.0.0.1", 0) as server:
            wport = server.sockets[0].getsockname()[1]
            async with websockets.connect(f"ws://127.0.0.1:{wport}") as ws:
                await ws.send("x" * 5000)
                assert await ws.recv() == "x" * 5000

    asyncio.run(main())
    print("mdwe-ok")
""")


def test_daemon_stack_runs_without_writable_executable_memory() -> None:
    """Why MemoryDenyWriteExecute=yes is safe: the libraries run under the kernel's own
    W^X refusal (PR_SET_MDWE, Linux >= 6.3; what systemd's seccomp filter enforces too)."""
    done = subprocess.run([sys.executable, "-c", MDWE_PROBE], capture_output=True, text=True,
                          timeout=25, cwd=REPO, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "mdwe-ok"
