"""structlog set-up: JSON lines in production, readable lines on a terminal.

Secrets never reach a log line: besides never passing them, a last processor masks any value
under a key that names a secret (token, pin, key, sign, password, authorization) — a safety
net for a careless future ``log.info(..., **params)``.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

_SECRET_WORDS = ("token", "pin", "password", "secret", "sign", "private", "authorization",
                 "key")
_SAFE = frozenset({"order_no", "orig_order_no", "provider_ref", "event", "level", "timestamp",
                   "logger", "sign_type", "key_file"})


def _mask_secrets(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> Any:
    for key in list(event):
        lowered = key.lower()
        if key not in _SAFE and any(word in lowered for word in _SECRET_WORDS):
            event[key] = "***"
    return event


def configure(fmt: str = "auto", level: int = logging.INFO) -> None:
    """``fmt``: ``json``, ``console`` or ``auto`` (console on a tty, else JSON)."""
    if fmt == "auto":
        fmt = "console" if sys.stderr.isatty() else "json"
    renderer: Any = (structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
                     if fmt == "console" else structlog.processors.JSONRenderer())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            _mask_secrets,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
