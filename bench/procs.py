"""What the benchmarks share: waiting for a helper process's ready file."""

from __future__ import annotations

import json
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
