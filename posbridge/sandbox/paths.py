"""Where the sandbox keeps its state, so the CLI client finds the sandbox token by itself."""

from __future__ import annotations

import os
from pathlib import Path

TOKEN_FILE = "sandbox-token"  # noqa: S105 (a file name, not a secret)


def default_sandbox_dir() -> Path:
    """``$POSBRIDGE_SANDBOX_DIR``, else ``$XDG_STATE_HOME/posbridge-sandbox``
    (``~/.local/state/posbridge-sandbox``)."""
    explicit = os.environ.get("POSBRIDGE_SANDBOX_DIR")
    if explicit:
        return Path(explicit)
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "posbridge-sandbox"


def read_sandbox_token(data_dir: Path) -> str | None:
    try:
        return (data_dir / TOKEN_FILE).read_text().strip() or None
    except OSError:
        return None
