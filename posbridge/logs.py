"""structlog set-up: JSON lines in production, readable lines on a terminal.

Secrets never reach a log line: besides never passing them, a last processor masks any value
under a key that names a secret (token, pin, key, sign, password, authorization) — a safety
net for a careless future ``log.info(..., **params)``.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import MutableMapping
from typing import Any

import structlog

_SECRET_WORDS = ("token", "pin", "password", "secret", "sign", "private", "authorization",
                 "key")
_SAFE = frozenset({"order_no", "orig_order_no", "provider_ref", "event", "level", "timestamp",
                   "logger", "sign_type", "key_file"})


#: Whether a key names a secret, per key seen (keys are names in the code: a small set).
_secret_keys: dict[str, bool] = {}


def _is_secret(key: str) -> bool:
    secret = _secret_keys.get(key)
    if secret is None:
        lowered = key.lower()
        secret = key not in _SAFE and any(word in lowered for word in _SECRET_WORDS)
        if len(_secret_keys) < 4096:  # a bound, should keys ever come from data
            _secret_keys[key] = secret
    return secret


def _mask_secrets(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> Any:
    for key in event:  # values only are replaced: the dict keeps its size
        if _is_secret(key):
            event[key] = "***"
    return event


_second: list[Any] = [None, ""]  # the UTC second last formatted, and its text


def _timestamp(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> Any:
    """ISO 8601 UTC with microseconds (``2026-12-02T03:21:05.123456Z``), like structlog's
    ``TimeStamper(fmt="iso", utc=True)``; the date and time of day are formatted once a
    second."""
    now = time.time()
    second = int(now)
    if second != _second[0]:
        _second[:] = [second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))]
    event["timestamp"] = f"{_second[1]}.{int((now - second) * 1_000_000):06d}Z"
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
            _timestamp,
            structlog.processors.format_exc_info,
            _mask_secrets,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        # one write per line (print writes the line and its newline apart)
        logger_factory=structlog.WriteLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
