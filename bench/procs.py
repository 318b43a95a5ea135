"""What the benchmarks share: waiting for a helper process's ready file, a daemon process
configured against ``posbridge simulate``, and stopping the helpers and removing their scratch
folder at the end."""

from __future__ import annotations

import dataclasses
import datetime
import importlib.metadata
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

import posbridge
from posbridge.keyfiles import generate_rsa_pem, load_private_key
from posbridge.sandbox.codepay_sim import APP_ID, MERCHANT_NO
from posbridge.sandbox.opay_sim import APP_ID as OPAY_APP_ID
from posbridge.sandbox.ucanpay_sim import MERCHANT_ID as UCANPAY_MERCHANT
from posbridge.secrets import hash_secret


def rsa_yardstick() -> float:
    """Median seconds of one RSA-2048 PKCS#1 v1.5 SHA-256 signature (200 runs): how fast
    this machine was during the run, so that figures of other runs and machines compare."""
    key = load_private_key(generate_rsa_pem(2048))
    times = []
    for i in range(200):
        message = f"yardstick {i}".encode()
        t0 = time.perf_counter()
        key.sign(message, padding.PKCS1v15(), hashes.SHA256())
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def python_yardstick() -> float:
    """Median seconds of encoding a 36-field record with the json module's pure-Python
    encoder (200 runs): the interpreter's speed, which the bridge's own work (beside the RSA
    that the direct clients spend most of theirs on) follows."""
    record = {f"field_{i}": [i, f"value {i}", i * 1.5, None, {"k": i}] for i in range(36)}
    encoder = json.JSONEncoder(check_circular=False)
    times = []
    for _ in range(200):
        t0 = time.perf_counter()
        "".join(encoder.iterencode(record, _one_shot=False))  # _one_shot=False: no C encoder
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def fsync_yardstick(folder: str | None = None) -> float:
    """Median seconds of one fsync after a 4 KiB write (50 runs) in ``folder`` (the temporary
    folder the benchmarks put their journals in): a sale's durable writes wait on this, where
    the direct clients wait on none, so it moves the bridge/direct ratios as the RSA one does."""
    fd, path = tempfile.mkstemp(prefix="posbridge-yardstick-", dir=folder)
    times = []
    try:
        for _ in range(50):
            os.write(fd, b"\0" * 4096)
            t0 = time.perf_counter()
            os.fsync(fd)
            times.append(time.perf_counter() - t0)
    finally:
        os.close(fd)
        os.unlink(path)
    return statistics.median(times)


#: The libraries whose speed the figures depend on, named with their versions in each report.
MEASURED_LIBRARIES = ("aiohttp", "websockets", "uvloop", "cryptography", "structlog",
                      "zxing-cpp", "pillow")


def library_versions() -> str:
    """``name version`` of each of :data:`MEASURED_LIBRARIES` installed, comma-separated."""
    found = []
    for name in MEASURED_LIBRARIES:
        try:
            found.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            found.append(f"{name} missing")
    return ", ".join(found)


@dataclasses.dataclass(frozen=True)
class Yardsticks:
    """The machine's speed during a run, in seconds: one RSA-2048 signature, the Python
    workload of :func:`python_yardstick`, one fsync."""

    rsa_s: float
    python_s: float
    fsync_s: float

    @classmethod
    def measure(cls) -> Yardsticks:
        return cls(rsa_yardstick(), python_yardstick(), fsync_yardstick())


def run_header(name: str, settings: str = "", yardsticks: Yardsticks | None = None) -> str:
    """The first lines of a benchmark's report: when, which commit, on what, how busy, how
    fast its signatures, its interpreter and its fsyncs were (``yardsticks``, measured here
    if not given), and the libraries' versions; ``settings`` (the benchmark's own) close the
    first line."""
    y = yardsticks or Yardsticks.measure()
    source = Path(posbridge.__file__).parent  # the code measured (the daemon runs it too)
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, check=True, cwd=source).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True,
                               cwd=source).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit, dirty = "unknown", ""
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (f"{name}: {now}; commit {commit}{' (modified)' if dirty else ''}; "
            f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f}; python "
            f"{sys.version.split()[0]}; yardstick: one RSA-2048 signature "
            f"{y.rsa_s * 1000:.3f} ms, Python {y.python_s * 1e6:.0f} µs, one fsync "
            f"{y.fsync_s * 1000:.3f} ms"
            f"{'; ' + settings if settings else ''}\n"
            f"libraries: {library_versions()}")


def compile_bytecode() -> None:
    """Compile the bridge's modules to bytecode (``__pycache__``, ignored by git), as pip and
    the .deb do at install time: a timed start then reads them, as an installed daemon's
    does, instead of compiling every module first (which a working tree run with
    PYTHONDONTWRITEBYTECODE set would do at every start)."""
    import compileall

    import hardware

    for package in (posbridge, hardware):
        compileall.compile_dir(Path(package.__file__).parent, quiet=1)


def target(label: str, figure: str, goal: str, met: bool) -> str:
    """One target line: the figure, the target, and ``met`` / ``MISSED``."""
    return f"  {label}: {figure}   (target {goal}: {'met' if met else 'MISSED'})"


def wait_file(path: Path, proc: subprocess.Popen[bytes], timeout: float = 60) -> Any:
    """The JSON a helper process writes once it listens; exits if the process dies first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            return json.loads(path.read_text())
        if proc.poll() is not None:
            raise SystemExit(f"a helper process exited with {proc.returncode}")
        time.sleep(0.05)
    raise SystemExit(f"{path} did not appear")


def stop_all(procs: list[subprocess.Popen[bytes] | None], scratch: Path) -> None:
    """Stop the helper processes (SIGTERM: a clean stop, so a profiler writes its file), then
    remove their scratch folder (journals of thousands of sales, keys, ready files)."""
    running = [p for p in procs if p is not None]
    for proc in running:
        proc.terminate()
    for proc in running:
        proc.wait(30)
    shutil.rmtree(scratch, ignore_errors=True)


def rss_kib(pid: int) -> int:
    """The resident set size of process ``pid`` in KiB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def free_port() -> int:
    """A port no one listens on now (for a daemon that must keep its ports across a restart)."""
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def write_bridge_config(tmp: Path, sim: dict[str, Any], *, clients: list[tuple[str, str, str]],
                        terminals: list[tuple[str, str]], pin: str | None = None,
                        expires_s: int = 60, qr_timeout_s: int = 60,
                        poll_interval_s: float = 2.0) -> Path:
    """``tmp/bridge.toml``: the three providers at the simulators of ``sim`` (keys from
    ``tmp/sim/keys``), ``clients`` as (name, role, token), ``terminals`` as (sn, name), fixed
    ports (the notify URLs the gateways hold outlive a restart), the product's default poll
    interval unless told otherwise. Secrets are hashed with a
    cheap scrypt cost, so hundreds of registers configure in a second."""
    keys = tmp / "sim" / "keys"
    pin_line = f'pin_hash = "{hash_secret(pin, log2_n=4)}"' if pin else ""
    lines = [f"""
[bridge]
data_dir = "{tmp / 'data'}"
ecr_listen = "127.0.0.1:{free_port()}"
http_listen = "127.0.0.1:{free_port()}"
public_url = ""
max_amount = "10000.00"
log_format = "json"

[manager]
{pin_line}

[codepay]
base_url = "{sim['codepay']}"
app_id = "{APP_ID}"
merchant_no = "{MERCHANT_NO}"
private_key_file = "{keys / 'merchant_private.pem'}"
gateway_public_key_file = "{keys / 'codepay_gateway_public.pem'}"
expires_s = {expires_s}
poll_interval_s = {poll_interval_s}

[ucanpay]
base_url = "{sim['ucanpay']}"
merchant_id = "{UCANPAY_MERCHANT}"
private_key_file = "{keys / 'ucanpay_merchant_private.pem'}"
public_key_file = "{keys / 'ucanpay_gateway_public.pem'}"
currency = "CAD"
qr_timeout_s = {qr_timeout_s}
poll_interval_s = {poll_interval_s}

[opay]
base_url = "{sim['opay']}"
pay_page_url = "{sim['opay']}/platform/pay.html"
app_id = "{OPAY_APP_ID}"
private_key_file = "{keys / 'opay_merchant_private.pem'}"
platform_public_key_file = "{keys / 'opay_platform_public.pem'}"
coins = {{ USDT = 6, BTC = 8 }}
poll_interval_s = {poll_interval_s}
"""]
    for name, role, token in clients:
        lines.append(f'[[ecr_clients]]\nname = "{name}"\nrole = "{role}"\n'
                     f'token_hash = "{hash_secret(token, log2_n=4)}"\n')
    for sn, name in terminals:
        lines.append(f'[[terminals]]\nsn = "{sn}"\nname = "{name}"\n')
    path = tmp / "bridge.toml"
    path.write_text("\n".join(lines))
    return path


def start_simulators(tmp: Path, approve_delay: float, *, notify_interval: float = 0.2,
                     notify_retry: str | None = None) -> tuple[subprocess.Popen[bytes], Any]:
    """``posbridge simulate`` (keys in ``tmp/sim``) and its ready file's content."""
    retry = ["--notify-retry", notify_retry] if notify_retry else []
    proc = subprocess.Popen(
        [sys.executable, "-m", "posbridge", "simulate", "--data-dir", str(tmp / "sim"),
         "--ready-file", str(tmp / "sim.json"), "--approve-delay", str(approve_delay),
         "--notify-interval", str(notify_interval), *retry],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return proc, wait_file(tmp / "sim.json", proc)


class DaemonProc:
    """``posbridge serve --config`` as a process that can be stopped and started again."""

    def __init__(self, tmp: Path, config: Path) -> None:
        self.tmp, self.config = tmp, config
        self.proc: subprocess.Popen[bytes] | None = None
        self.ports: dict[str, Any] = {}

    def start(self) -> None:
        ready = self.tmp / "bridge.json"
        ready.unlink(missing_ok=True)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "posbridge", "serve", "--config", str(self.config),
             "--ready-file", str(ready)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.ports = wait_file(ready, self.proc)

    def stop(self) -> int:
        """SIGTERM (a graceful stop) and its exit code."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(60)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.ports['ecr_port']}/ecr"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.ports['http_port']}"
