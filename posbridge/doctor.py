"""``posbridge doctor``'s judgements: what each observation means and how to fix it.

Pure: every function here turns what :mod:`posbridge.doctor_probes` observed (a provider's
answer to a status query, a ``Date`` header, a printer's ``DLE EOT`` status, an HTTP answer,
``systemctl show`` output...) into one :class:`~posbridge.checks.Check` whose message says
what was found and whose fix says what a person does next. Nothing here does I/O.
"""

from __future__ import annotations

import email.utils
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from hardware.escpos import PrinterStatus
from posbridge.checks import Check, fail, ok, warn
from posbridge.config import Config, PrinterConfig
from posbridge.errors import ConfigError
from posbridge.install_files import Account, FileFacts, may_read, may_write
from posbridge.provider_keys import provider_title
from posbridge.providers.registry import PLUGINS

__all__ = ["SKEW_FAIL_S", "SKEW_WARN_S", "ProbeResult", "clock_check", "config_check",
           "config_file_check", "config_summary", "display_check", "journal_check",
           "notify_url_check", "placeholder_check", "printer_check", "provider_check",
           "systemd_check"]

#: Clock differences to the provider (seconds): beyond the first a warning, beyond the second
#: a failure (signed requests carry a timestamp; providers refuse old ones).
SKEW_WARN_S = 30.0
SKEW_FAIL_S = 300.0

ProbeKind = Literal["not_found", "found", "unreachable", "rejected", "bad_signature",
                    "no_answer", "not_built"]


# -- the configuration --------------------------------------------------------------------------


def config_summary(config: Config) -> str:
    """``"2 registers, 1 terminal, 2 displays, 1 printer, providers: codepay, ucanpay"``."""
    counts = {"register": len(config.ecr_clients), "terminal": len(config.terminals),
              "display": len(config.displays), "printer": len(config.printers)}
    parts = [f"{n} {what}{'' if n == 1 else 's'}" for what, n in counts.items()]
    return ", ".join([*parts, f"providers: {', '.join(config.providers) or 'none'}"])


def config_check(path: str, error: ConfigError | None, summary: str = "", *,
                 file_exists: bool = True) -> Check:
    """Whether the configuration is valid; for a missing file the fix is ``init``, for a key
    file of a provider it says where the key comes from."""
    if error is None:
        return ok("config", f"{path} is valid: {summary}")
    provider, _, key = error.key.partition(".")
    spec = next((s for s in PLUGINS[provider].keys if s.config_key == key), None) \
        if provider in PLUGINS else None
    if error.key == path and not file_exists:
        fix = f"posbridge init --dir {Path(path).parent} writes it (or give --config PATH)"
    elif spec is not None and spec.role == "provider":
        fix = (f"download {provider_title(provider)}'s public key from its portal and save it "
               f"where {error.key} says")
    elif spec is not None:
        fix = f"posbridge keys new {provider} --config {path}"
    else:
        fix = f"correct {error.key} in {path} (config/README.md describes every key)"
    return fail("config", str(error), fix + "; the checks that need a valid configuration "
                                            "are skipped until then")


def config_file_check(facts: FileFacts, reader: Account | None) -> Check:
    """The configuration file's own permissions: readable by the daemon, not by everyone."""
    path = facts.path
    if reader is not None and not may_read(facts, reader):
        return fail("config file", f"{path} cannot be read by {reader.name}, who runs the "
                                   "daemon", f"chgrp {reader.name} {path} && chmod 640 {path}")
    if facts.mode & 0o004:
        return warn("config file", f"{path} is readable by every user (mode "
                                   f"{facts.mode:04o}); it may hold secrets",
                    f"chmod 640 {path}")
    return ok("config file", f"mode {facts.mode:04o}")


def placeholder_check(keys: list[str], path: str) -> Check | None:
    """Values ``init`` left as placeholders (None: there are none)."""
    if not keys:
        return None
    return fail("placeholders", f"still placeholders from posbridge init: {', '.join(keys)}",
                f"set them in {path} to the values the providers' portals show")


# -- providers -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """How a provider took the signed status query of an order that does not exist."""

    kind: ProbeKind
    detail: str = ""
    provider_code: str | None = None


def provider_check(provider: str, base_url: str, result: ProbeResult) -> Check:
    """A verified "no such order" proves the network, the credentials and both signatures."""
    name, title = f"provider {provider}", provider_title(provider)
    keys = f"posbridge keys check; posbridge keys show-public {provider}"
    if result.kind == "not_found":
        return ok(name, f"{base_url} answered a signed status query with a verified "
                        "\"no such order\": network, credentials and signatures work")
    if result.kind == "found":
        return ok(name, f"{base_url} answered a signed status query, verified")
    if result.kind == "unreachable":
        return fail(name, f"cannot reach {base_url}: {result.detail}",
                    f"check {provider}.base_url, DNS and that this machine may open "
                    f"outgoing connections to it (curl -sI {base_url})")
    if result.kind == "rejected":
        code = f" ({result.provider_code})" if result.provider_code else ""
        return fail(name, f"{title} refused the signed status query{code}: {result.detail}",
                    f"{title}'s portal must hold the merchant public key that `posbridge keys "
                    f"show-public {provider}` prints, and the ids in [{provider}] must be the "
                    f"ones the portal shows ({keys})")
    if result.kind == "bad_signature":
        return fail(name, f"{title} answered, but the answer's signature does not verify "
                          f"with the configured {title} public key: {result.detail}",
                    f"download {title}'s public key from its portal again, into the file "
                    f"[{provider}] names ({keys})")
    if result.kind == "not_built":
        return fail(name, f"not asked: {result.detail}",
                    "fix the key files first (posbridge keys check)")
    return fail(name, f"no usable answer from {base_url}: {result.detail}",
                f"check that {provider}.base_url is {title}'s API address, then run doctor "
                "again")


def clock_check(provider: str, local_s: float, date_header: str | None) -> Check | None:
    """This machine's clock against the provider's ``Date`` answer header (None when there
    was none). ``local_s`` is this machine's time half-way through the request."""
    if not date_header:
        return None
    try:
        theirs = email.utils.parsedate_to_datetime(date_header).timestamp()
    except (TypeError, ValueError, IndexError):
        return None
    skew = local_s - theirs
    name = f"clock vs {provider}"
    title = provider_title(provider)
    ahead = f"{abs(skew):.0f} s {'ahead of' if skew > 0 else 'behind'} {title}"
    fix = "turn on time synchronisation: timedatectl set-ntp true (or run an NTP client)"
    # The Date header has whole seconds: up to a second off is no skew at all.
    if abs(skew) > SKEW_FAIL_S:
        return fail(name, f"this machine's clock is {ahead}; signed requests will be refused",
                    fix)
    if abs(skew) > SKEW_WARN_S:
        return warn(name, f"this machine's clock is {ahead}", fix)
    return ok(name, f"within {max(abs(skew), 1.0):.0f} s of {title}")


# -- devices ---------------------------------------------------------------------------------------


def printer_check(cfg: PrinterConfig, error: str | None, status: PrinterStatus | None) -> Check:
    """A printer that opened (``error`` None) and answered ``DLE EOT`` with ``status`` (None:
    no answer)."""
    name = f"printer {cfg.name}"
    if error is not None:
        if cfg.kind == "serial":
            fix = (f"check the cable and that {cfg.device} exists (ls -l {cfg.device}); the "
                   "daemon's user needs the dialout group")
        elif cfg.kind == "tcp":
            fix = f"check that the printer is on and {cfg.host}:{cfg.port} is reachable"
        else:
            fix = f"check that the folder of {cfg.path} exists and the daemon may write there"
        return fail(name, error, fix)
    if cfg.kind == "file":
        return ok(name, f"appends to {cfg.path} (nothing to ask)")
    if status is None:
        return warn(name, "opened, but it does not answer status requests (DLE EOT)",
                    "check that it is an ESC/POS printer" + (
                        f" and that its baud rate is {cfg.baudrate}" if cfg.kind == "serial"
                        else ""))
    if status.fault is not None:
        return fail(name, f"answers, but reports: {status.fault}",
                    "load paper, close the cover or clear the error on the printer")
    if status.paper_near_end:
        return warn(name, "online; paper near its end", "load a new roll soon")
    return ok(name, "online, answers status requests")


def display_check(display: str, kind: str, error: str | None) -> Check:
    """A display that opened, or why not."""
    name = f"display {display}"
    if error is None:
        where = {"web": f"a page at /display/{display}",
                 "file": "writes picture files (nothing to ask)"}.get(kind, "opened")
        return ok(name, where)
    return fail(name, error, "check the cable and the device path of [[displays]] "
                             f"{display!r}; the daemon's user needs the dialout group")


# -- the HTTP side, the journal, systemd ------------------------------------------------------


def notify_url_check(public_url: str, status: int | None, is_healthz: bool,
                     error: str | None) -> Check:
    """What ``GET {public_url}/healthz`` gave: the daemon's health report (``is_healthz``),
    another answer (``status``), or nothing (``error``)."""
    name = "notification URL"
    here = "checked from this machine only: the providers reach it from the internet"
    if not public_url:
        return warn(name, "bridge.public_url is not set: the providers cannot send "
                          "notifications; results arrive by polling only",
                    "set bridge.public_url to the https address that leads to http_listen")
    url = f"{public_url}/healthz"
    if error is not None:
        return warn(name, f"nothing answers at {url} ({error}); {here}",
                    "start the daemon (systemctl start posbridge) and run doctor again; "
                    "public_url must lead to http_listen")
    if not is_healthz:
        return fail(name, f"{url} answers HTTP {status}, but not as posbridge; {here}",
                    "public_url must lead (through any proxy) to the daemon's http_listen")
    return ok(name, f"{url} answers (HTTP {status}); {here}")


def journal_check(data_dir: FileFacts, journal: FileFacts, integrity: str | None,
                  writer: Account | None, wal_files: list[FileFacts]) -> Check:
    """The data folder and journal: there, writable by the daemon's user, and (when it
    exists) passing SQLite's integrity check (``integrity`` is its first line)."""
    name = "journal"
    if not data_dir.exists:
        return fail(name, f"the data folder {data_dir.path} does not exist",
                    f"install -d -m 0750 -o posbridge -g posbridge {data_dir.path}")
    if not data_dir.is_dir:
        return fail(name, f"{data_dir.path} is not a folder", "bridge.data_dir must name one")
    owner = writer.name if writer is not None else "the daemon's user"
    for facts in (data_dir, *([journal] if journal.exists else []), *wal_files):
        if writer is not None and not may_write(facts, writer):
            return fail(name, f"{facts.path} cannot be written by {owner}",
                        f"chown -R {owner}: {data_dir.path}")
    if not journal.exists:
        return ok(name, f"{data_dir.path} is writable; the journal is created at the first "
                        "start")
    if integrity != "ok":
        return fail(name, f"{journal.path} fails SQLite's integrity check: {integrity}",
                    "stop the daemon, keep a copy of the data folder, and restore the journal "
                    "from the last backup")
    return ok(name, f"{journal.path} is writable and passes the integrity check")


def systemd_check(unit: str, props: Mapping[str, str] | None, error: str | None) -> Check:
    """The unit's state from ``systemctl show`` (``props``), or why it could not be asked."""
    name = "systemd"
    if props is None:
        return warn(name, f"systemd cannot be asked here: {error}",
                    "on the store's machine, run doctor where systemd runs")
    if props.get("LoadState") == "not-found":
        return warn(name, f"the unit {unit} is not installed",
                    f"install -m 0644 systemd/posbridge.service /etc/systemd/system/{unit} "
                    "&& systemctl daemon-reload (the .deb package does this)")
    active, enabled = props.get("ActiveState", ""), props.get("UnitFileState", "")
    if active == "failed":
        return fail(name, f"{unit} failed ({props.get('SubState', '')})",
                    f"journalctl -u {unit} -n 50 says why; then systemctl restart {unit}")
    if active == "active":
        if enabled != "enabled":
            return warn(name, f"{unit} runs but is {enabled or 'not enabled'}: it will not "
                              "start at boot", f"systemctl enable {unit}")
        return ok(name, f"{unit} is running and enabled")
    return warn(name, f"{unit} is {active or 'unknown'} ({enabled or 'not enabled'})",
                f"once everything else is ok: systemctl enable --now {unit}")
