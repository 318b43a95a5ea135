"""What a daemon loads: the code of device kinds, commands and features it is not configured
for stays on disk (memory and start-up time; see bench/README.md, bench_footprint)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.configs import journal_config

# Run in a fresh interpreter: the test process has imported everything already.
_SCRIPT = """
import asyncio, json, sys
from pathlib import Path
from posbridge.config import load_config
from posbridge.daemon import Daemon

async def run() -> None:
    daemon = Daemon(load_config(Path(sys.argv[1])))
    await daemon.start()
    await daemon.stop()

asyncio.run(run())
print(json.dumps(sorted(sys.modules)))
"""

NOT_NEEDED = {
    "PIL": "Pillow: display pictures and raster slips",
    "zxingcpp": "the QR encoder",
    "serial": "pyserial: serial printers and pole displays",
    "posbridge.sandbox.runtime": "the embedded simulators (serve --sandbox)",
    "posbridge.journal_care": "pruning (retention_days) and backups",
    "posbridge.cli_init": "the installer's commands",
    "posbridge.cli_audit": "the auditor's commands",
    "posbridge.client": "the register's client",
    "hardware.qr_pool": "the render pool (QR pictures and slips for displays and printers)",
    "multiprocessing": "the render pool's worker process",
}


def _modules_of_a_daemon(tmp_path: Path, extra: str = "") -> set[str]:
    """The modules a daemon of this configuration (plus ``extra``) had loaded once it had
    started and stopped."""
    config = journal_config(tmp_path / "posbridge.toml", tmp_path / "data")
    config.write_text(config.read_text().replace(
        "[bridge]\n", '[bridge]\necr_listen = "127.0.0.1:0"\nhttp_listen = "127.0.0.1:0"\n')
        + extra)
    done = subprocess.run([sys.executable, "-c", _SCRIPT, str(config)], capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout.splitlines()[-1]))


def test_a_daemon_without_devices_loads_no_device_or_tool_code(tmp_path: Path) -> None:
    loaded = _modules_of_a_daemon(tmp_path)
    assert "posbridge.daemon" in loaded
    wrongly = sorted(name for name in NOT_NEEDED
                     if name in loaded or any(m.startswith(name + ".") for m in loaded))
    assert wrongly == [], [NOT_NEEDED[name] for name in wrongly]


def test_a_configured_file_display_loads_its_drawing_code(tmp_path: Path) -> None:
    display = f'\n[[displays]]\nname = "lane-1"\nkind = "file"\ndir = "{tmp_path / "frames"}"\n'
    loaded = _modules_of_a_daemon(tmp_path, display)
    assert {"hardware.displays.file", "PIL.ImageDraw"} <= loaded  # QR symbols: in the pool
    assert "serial" not in loaded
