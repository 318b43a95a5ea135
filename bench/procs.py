"""What the benchmarks share: waiting for a helper process's ready file, and stopping the
helpers and removing their scratch folder at the end."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any


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
