"""``posbridge doctor``'s observations: the I/O behind :mod:`posbridge.doctor`.

:func:`run_doctor` loads the configuration and asks everything a first sale depends on:
each provider (its adapter, built through its plug-in, sends the signed status query of
``probe_order()``), the provider's clock (``Date`` answer header), each printer (``DLE EOT``
over its transport), each display (opened), the notification URL (``GET /healthz``), the
journal (SQLite's integrity check, read-only) and systemd (``systemctl show``). Every step is
bounded in time, and nothing is created or changed: doctor may run as root beside a running
daemon without leaving files the daemon's user cannot write.
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, TypeVar

import aiohttp

from hardware.escpos import PrinterStatus
from posbridge.checks import Check
from posbridge.config import Config, DisplayConfig, PrinterConfig, load_config
from posbridge.doctor import (
    ProbeResult,
    clock_check,
    config_check,
    config_file_check,
    config_summary,
    display_check,
    journal_check,
    notify_url_check,
    placeholder_check,
    printer_check,
    provider_check,
    systemd_check,
)
from posbridge.errors import (
    BadSignature,
    ConfigError,
    DeviceError,
    OutcomeUnknown,
    PosbridgeError,
    ProviderRejected,
    ProviderUnreachable,
)
from posbridge.init_plan import placeholders_in
from posbridge.install_files import daemon_account, file_facts
from posbridge.provider_keys import key_checks, read_raw
from posbridge.providers.base import Outcome, notify_path
from posbridge.providers.registry import PLUGINS

__all__ = ["run_doctor"]

T = TypeVar("T")

#: The longest any one question may take (a provider, a printer, an HTTP request).
STEP_TIMEOUT_S = 15.0


async def _bounded(step: Awaitable[T], timeout_s: float = STEP_TIMEOUT_S) -> T:
    async with asyncio.timeout(timeout_s):
        return await step


async def run_doctor(config_path: Path, *, service_user: str, unit: str) -> list[Check]:
    """Every check, in the order a person fixes things: configuration, keys, providers,
    devices, the HTTP side, the journal, systemd."""
    reader = daemon_account(service_user)
    checks: list[Check] = []
    config: Config | None = None
    facts = file_facts(config_path)
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        checks.append(config_check(str(config_path), exc, file_exists=facts.exists))
    else:
        checks.append(config_check(str(config_path), None, config_summary(config)))
    if facts.exists:
        checks.append(config_file_check(facts, reader))
        try:
            raw = read_raw(config_path)
        except ConfigError:
            raw = None  # the config check above already says why
        if raw is not None:
            placeholders = placeholder_check(placeholders_in(raw), str(config_path))
            checks += [placeholders] if placeholders is not None else []
            checks += key_checks(config_path, reader)
    if config is not None:
        results = await asyncio.gather(*(_provider(config, name) for name in config.providers))
        checks += [c for pair in results for c in pair]
        checks += await asyncio.gather(*(_printer(p) for p in config.printers))
        checks += await asyncio.gather(*(_display(d) for d in config.displays))
        checks.append(await _notify_url(config.bridge.public_url))
        checks.append(await asyncio.to_thread(_journal, config, service_user))
    checks.append(await asyncio.to_thread(_systemd, unit))
    return checks


# -- providers -------------------------------------------------------------------------------


async def _provider(config: Config, name: str) -> list[Check]:
    section = config.providers[name]
    base_url: str = getattr(section, "base_url", "")
    result = await _probe(config, name)
    checks = [provider_check(name, base_url, result)]
    if result.kind not in ("unreachable", "not_built") and base_url:
        date, local = await _date_header(base_url)
        clock = clock_check(name, local, date)
        checks += [clock] if clock is not None else []
    return checks


async def _probe(config: Config, name: str) -> ProbeResult:
    """Build the adapter through its plug-in and send the status query of its probe order."""
    notify = config.bridge.public_url.rstrip("/") + notify_path(name)
    try:
        provider = PLUGINS[name].build(config.providers[name], notify)
    except (PosbridgeError, OSError, ValueError) as exc:
        return ProbeResult("not_built", f"its adapter cannot be made: {exc}")
    try:
        report = await _bounded(provider.query(provider.probe_order()))
    except TimeoutError:
        result = ProbeResult("unreachable", f"no answer within {STEP_TIMEOUT_S:.0f} s")
    except ProviderUnreachable as exc:
        result = ProbeResult("unreachable", exc.message)
    except ProviderRejected as exc:
        result = ProbeResult("rejected", exc.message, exc.provider_code)
    except BadSignature as exc:
        result = ProbeResult("bad_signature", exc.message)
    except OutcomeUnknown as exc:
        result = ProbeResult("no_answer", exc.message)
    else:
        result = ProbeResult("not_found" if report.outcome == Outcome.NOT_FOUND else "found")
    finally:
        await provider.aclose()
    return result


async def _date_header(base_url: str) -> tuple[str | None, float]:
    """The ``Date`` header of any answer from ``base_url`` and this machine's time half-way
    through the request (None: no answer, or no header)."""
    timeout = aiohttp.ClientTimeout(total=STEP_TIMEOUT_S)
    try:
        async with aiohttp.ClientSession(timeout=timeout,
                                         cookie_jar=aiohttp.DummyCookieJar()) as http:
            before = time.time()
            async with http.get(base_url, allow_redirects=False) as resp:
                after = time.time()
                return resp.headers.get("Date"), (before + after) / 2
    except (aiohttp.ClientError, TimeoutError):
        return None, 0.0


# -- devices --------------------------------------------------------------------------------------


async def _printer(cfg: PrinterConfig) -> Check:
    from posbridge.devices import make_printer

    if cfg.kind == "file":  # opening one would create its folders as whoever runs doctor
        return printer_check(cfg, None, None)
    printer = make_printer(cfg)
    status: PrinterStatus | None = None
    try:
        await _bounded(printer.open())
        status = await _bounded(printer.status())
    except (DeviceError, TimeoutError) as exc:
        return printer_check(cfg, str(exc) or "no answer in time", None)
    finally:
        await printer.close()
    return printer_check(cfg, None, status)


async def _display(cfg: DisplayConfig) -> Check:
    from posbridge.devices import make_display

    if cfg.kind == "file":  # as for file printers: nothing to ask, nothing to create
        return display_check(cfg.name, cfg.kind, None)
    display: Any = make_display(cfg, sandbox=False)
    try:
        await _bounded(display.open())
    except (DeviceError, TimeoutError) as exc:
        return display_check(cfg.name, cfg.kind, str(exc) or "no answer in time")
    finally:
        await display.close()
    return display_check(cfg.name, cfg.kind, None)


# -- the HTTP side, the journal, systemd ---------------------------------------------------------


async def _notify_url(public_url: str) -> Check:
    if not public_url:
        return notify_url_check(public_url, None, False, None)
    timeout = aiohttp.ClientTimeout(total=STEP_TIMEOUT_S)
    try:
        async with aiohttp.ClientSession(timeout=timeout,
                                         cookie_jar=aiohttp.DummyCookieJar()) as http, \
                http.get(f"{public_url}/healthz", allow_redirects=False) as resp:
            try:
                body = await resp.json(content_type=None)
            except ValueError:
                body = None
            is_healthz = isinstance(body, dict) and "status" in body and "journal" in body
            return notify_url_check(public_url, resp.status, is_healthz, None)
    except (aiohttp.ClientError, TimeoutError) as exc:
        return notify_url_check(public_url, None, False, str(exc) or type(exc).__name__)


def _journal(config: Config, service_user: str) -> Check:
    from posbridge.daemon import journal_path

    path = journal_path(config.bridge.data_dir)
    journal = file_facts(path)
    wal = [f for f in (file_facts(Path(f"{path}-wal")), file_facts(Path(f"{path}-shm")))
           if f.exists]
    integrity = None
    if journal.exists:
        integrity = _integrity(path)
    return journal_check(file_facts(config.bridge.data_dir), journal, integrity,
                         daemon_account(service_user), wal)


def _integrity(path: Path) -> str:
    """The first line of SQLite's ``integrity_check`` on a read-only connection."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=STEP_TIMEOUT_S)
        try:
            row = conn.execute("PRAGMA integrity_check").fetchone()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return f"cannot be read: {exc}"
    return str(row[0]) if row else "no answer"


def _systemd(unit: str) -> Check:
    systemctl = shutil.which("systemctl")
    if systemctl is None:
        return systemd_check(unit, None, "systemctl is not installed")
    try:
        done = subprocess.run(  # noqa: S603 (a fixed program and arguments, no shell)
            [systemctl, "show", unit,
             "--property=LoadState,ActiveState,SubState,UnitFileState"],
            capture_output=True, text=True, timeout=STEP_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return systemd_check(unit, None, str(exc))
    if done.returncode != 0:
        first = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[0]
        return systemd_check(unit, None, first)
    props = dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
    return systemd_check(unit, props, None)
