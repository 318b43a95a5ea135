"""The result of one installation check, and how a list of them is shown and judged.

``posbridge keys check`` and ``posbridge doctor`` both produce :class:`Check` values: what was
checked, whether it is ``ok``, a ``warn`` (worth knowing, never a failure) or a ``fail``,
what was found, and for anything not ``ok`` how to fix it. Pure: nothing here does I/O.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = ["Check", "Status", "exit_code", "render_json", "render_text"]

Status = Literal["ok", "warn", "fail"]

_MARK: dict[Status, str] = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL"}


@dataclass(frozen=True, slots=True)
class Check:
    """One finding. ``name`` says what was checked (``config``, ``key codepay.private_key_file``,
    ``provider codepay``...); ``message`` what was found; ``fix`` what a person does about it
    (empty when ``ok``). Neither ever holds key material, a token or a PIN."""

    name: str
    status: Status
    message: str
    fix: str = ""


def ok(name: str, message: str) -> Check:
    return Check(name, "ok", message)


def warn(name: str, message: str, fix: str = "") -> Check:
    return Check(name, "warn", message, fix)


def fail(name: str, message: str, fix: str) -> Check:
    return Check(name, "fail", message, fix)


def exit_code(checks: Iterable[Check]) -> int:
    """0 when nothing failed (warnings do not fail), else 1."""
    return 1 if any(c.status == "fail" for c in checks) else 0


def render_text(checks: Sequence[Check]) -> str:
    """One line per check, its fix indented below, and a closing count."""
    width = max((len(c.name) for c in checks), default=0)
    lines = []
    for c in checks:
        lines.append(f"{_MARK[c.status]}  {c.name:<{width}}  {c.message}")
        if c.fix:
            lines.extend(f"      {' ' * width}  -> {line}" for line in c.fix.splitlines())
    failed = sum(c.status == "fail" for c in checks)
    warned = sum(c.status == "warn" for c in checks)
    lines.append(f"{len(checks)} checks: {len(checks) - failed - warned} ok, {warned} "
                 f"warning{'' if warned == 1 else 's'}, {failed} failed")
    return "\n".join(lines)


def render_json(checks: Sequence[Check]) -> str:
    """One JSON object for monitoring: ``{"ok": bool, "failed": n, "warnings": n, "checks":
    [{"name", "status", "message", "fix"}, ...]}``."""
    return json.dumps({
        "ok": exit_code(checks) == 0,
        "failed": sum(c.status == "fail" for c in checks),
        "warnings": sum(c.status == "warn" for c in checks),
        "checks": [{"name": c.name, "status": c.status, "message": c.message, "fix": c.fix}
                   for c in checks],
    }, ensure_ascii=False)
