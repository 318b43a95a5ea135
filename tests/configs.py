"""The smallest configuration file a command working on a journal accepts (tests' helper)."""

from __future__ import annotations

from pathlib import Path

from posbridge.secrets import hash_secret

_TOKEN_HASH = hash_secret("a-register-token-of-some-length-0123", log2_n=4)  # cheap: never used


def journal_config(path: Path, data_dir: Path, *, retention_days: int = 0) -> Path:
    """Write a configuration whose ``data_dir`` is ``data_dir`` to ``path``; return ``path``."""
    path.write_text(f"""[bridge]
data_dir = "{data_dir}"
retention_days = {retention_days}

[[ecr_clients]]
name = "lane-1"
role = "cashier"
token_hash = "{_TOKEN_HASH}"
""")
    return path
