"""The configuration: one TOML file plus environment overrides, validated once.

Theory of operation
-------------------
:func:`load_config` reads the TOML file (``tomllib``), :func:`parse_config` merges the
environment overrides into that mapping and validates the result exactly once into frozen,
slotted, keyword-only dataclasses. Nothing else in posbridge reads the file or the environment
for settings; components receive the dataclass they need.

Every problem becomes :class:`posbridge.errors.ConfigError` whose ``key`` is the dotted name of
the offending value (``codepay.expires_s``, ``ecr_clients[2].role``, ``terminals[0].printer``);
the first problem found stops validation, so the operator sees one line naming one key. Unknown
keys and sections are errors as well: a typo must not silently fall back to a default.

Environment overrides
---------------------
``POSBRIDGE_<SECTION>__<KEY>`` sets ``<section>.<key>`` (names are case-insensitive and
lower-cased), e.g. ``POSBRIDGE_CODEPAY__APP_ID`` or ``POSBRIDGE_BRIDGE__MAX_AMOUNT``. Arrays of
tables take an index: ``POSBRIDGE_ECR_CLIENTS__0__TOKEN_HASH`` sets ``ecr_clients[0].token_hash``;
an index one past the file's last entry appends a new entry (indices must stay contiguous).
Only variable names containing ``__`` are overrides, so ``POSBRIDGE_URL`` or ``POSBRIDGE_TOKEN``
(used by the command-line client) are left alone. Environment values are text, parsed strictly:
whole numbers are plain digits, booleans are ``true``/``false``; an override of a missing section
creates it. Errors in such values name the variable as well as the key.

Secrets (``token_hash``, ``pin_hash``, ``md5_key``, ``basic_auth_password``) are kept out of
``repr`` so that a logged or printed configuration never shows them.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Final, Literal, TypeVar

from posbridge import money
from posbridge.config_table import Table, name_of, url_of
from posbridge.errors import ConfigError
from posbridge.providers.base import notify_path
from posbridge.providers.codepay.config import CodePayConfig
from posbridge.providers.registry import PLUGINS
from posbridge.providers.ucanpay.config import DEFAULT_DEEPLINK_TEMPLATE, UCanPayConfig
from posbridge.secrets import check_hash_format, token_tag_of

DEFAULT_CONFIG_PATH: Final = Path("/etc/posbridge/posbridge.toml")
#: The longest retention that can be set (about 100 years; 0, the default, keeps everything).
MAX_RETENTION_DAYS: Final = 36_500

ENV_PREFIX: Final = "POSBRIDGE_"

LogFormat = Literal["auto", "json", "console"]
DisplayKind = Literal["web", "serial", "file"]
PrinterKind = Literal["serial", "tcp", "file"]

LOG_FORMATS: Final[tuple[LogFormat, ...]] = ("auto", "json", "console")
DISPLAY_KINDS: Final[tuple[DisplayKind, ...]] = ("web", "serial", "file")
PRINTER_KINDS: Final[tuple[PrinterKind, ...]] = ("serial", "tcp", "file")


_T = TypeVar("_T", bound=str)

#: The providers whose terminals ``[[terminals]]`` entries may name, and the default one.
TERMINAL_PROVIDERS: Final = tuple(name for name, p in PLUGINS.items() if p.terminals)
DEFAULT_TERMINAL_PROVIDER: Final = "codepay"


class Role(StrEnum):
    """What an ECR client may do: ``manager`` adds void/refund/batch.close without a PIN."""

    CASHIER = "cashier"
    MANAGER = "manager"


@dataclass(frozen=True, slots=True, kw_only=True)
class HostPort:
    """A listen address; ``port`` 0 lets the OS choose (tests use it)."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True, kw_only=True)
class BridgeConfig:
    """The ``[bridge]`` section: where the daemon keeps state and listens."""

    data_dir: Path
    ecr_listen: HostPort
    http_listen: HostPort
    public_url: str
    max_amount: str
    tls_cert_file: Path | None
    tls_key_file: Path | None
    log_format: LogFormat = "auto"
    #: days a final transaction of a closed batch (and an event) is kept; 0 keeps everything
    retention_days: int = 0

    def max_amount_minor(self, currency: str) -> int:
        """``max_amount`` in minor units of ``currency``, truncated (never rounded up).

        ``"10000.005"`` is 1000000 cents in USD and 10000 yen in JPY. An unknown currency
        raises :class:`posbridge.money.AmountError`, as everywhere else money is parsed.
        """
        exp = money.exponent(currency)
        whole, _, frac = self.max_amount.partition(".")
        scale: int = 10**exp
        return int(whole) * scale + (int(frac[:exp].ljust(exp, "0")) if exp else 0)


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientConfig:
    """One ``[[ecr_clients]]`` entry: a register (or integration) and its hashed token."""

    name: str
    role: Role
    token_hash: str = field(repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class ManagerConfig:
    """The ``[manager]`` section; without ``pin_hash`` cashiers cannot unlock manager methods."""

    pin_hash: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class TerminalConfig:
    """One ``[[terminals]]`` entry: a card terminal and the devices at its lane."""

    sn: str
    name: str
    provider: str = "codepay"
    display: str | None = None
    printer: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DisplayConfig:
    """One ``[[displays]]`` entry; ``kind`` picks the driver and which other keys matter."""

    name: str
    kind: DisplayKind
    device: str | None = None
    baudrate: int = 9600
    columns: int = 20
    rows: int = 2
    dir: Path | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PrinterConfig:
    """One ``[[printers]]`` entry; ``kind`` picks the driver and which other keys matter."""

    name: str
    kind: PrinterKind
    device: str | None = None
    baudrate: int = 19200
    host: str | None = None
    port: int = 9100
    path: Path | None = None
    width_dots: int = 576
    native_qr: bool = True
    png_dir: Path | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    """The whole validated configuration."""

    bridge: BridgeConfig
    ecr_clients: tuple[ClientConfig, ...]
    manager: ManagerConfig
    terminals: tuple[TerminalConfig, ...]
    displays: tuple[DisplayConfig, ...]
    printers: tuple[PrinterConfig, ...]
    #: each configured provider's validated section, by plug-in name (see providers/registry)
    providers: Mapping[str, Any] = field(default_factory=dict)
    sandbox: bool = False

    @property
    def codepay(self) -> CodePayConfig | None:
        section: CodePayConfig | None = self.providers.get("codepay")
        return section

    @property
    def ucanpay(self) -> UCanPayConfig | None:
        section: UCanPayConfig | None = self.providers.get("ucanpay")
        return section


# --------------------------------------------------------------------------------------------
# Entry points


def load_config(path: Path, env: Mapping[str, str] = os.environ) -> Config:
    """Read and validate the TOML file at ``path`` with ``env`` overrides.

    Raises ConfigError only; an unreadable or malformed file names the file as the key.
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(str(path), f"cannot read the configuration file: {exc.strerror}") from exc
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(str(path), "not UTF-8 text") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), f"not valid TOML: {exc}") from exc
    return parse_config(data, env=env)


def parse_config(data: Mapping[str, object], env: Mapping[str, str] = os.environ) -> Config:
    """Validate a TOML-shaped mapping (plus ``env`` overrides) into a :class:`Config`."""
    merged, origins = _merge_env(data, env)
    top = Table(merged, "", origins)
    sections = {"bridge", "ecr_clients", "manager", "terminals", "displays", "printers",
                *PLUGINS}
    for key in merged:
        if key not in sections and key != "sandbox":
            # TOML allows the empty key ("" = 1); say it as TOML writes it, not as nothing.
            raise ConfigError(key or '""', "unknown section or key")
    sandbox = top.boolean("sandbox", default=False)
    bridge = _bridge(top.table("bridge"))
    clients = tuple(_client(t) for t in top.tables("ecr_clients"))
    manager = _manager(top.table("manager"))
    providers = {name: plugin.parse_section(top.table(name))
                 for name, plugin in PLUGINS.items() if name in merged}
    displays = tuple(_display(t) for t in top.tables("displays"))
    printers = tuple(_printer(t) for t in top.tables("printers"))
    terminals = tuple(_terminal(t) for t in top.tables("terminals"))
    config = Config(bridge=bridge, ecr_clients=clients, manager=manager, terminals=terminals,
                    displays=displays, printers=printers, providers=providers,
                    sandbox=sandbox)
    _cross_check(config)
    return config


# --------------------------------------------------------------------------------------------
# Environment overrides

_ARRAYS: Final = frozenset({"ecr_clients", "terminals", "displays", "printers"})
_INDEX = re.compile(r"0|[1-9][0-9]{0,5}")


def _merge_env(
    data: Mapping[str, object], env: Mapping[str, str]
) -> tuple[dict[str, object], dict[str, str]]:
    """Copy ``data`` with the overrides applied; also return dotted key -> variable name."""
    merged: dict[str, object] = {}
    for name, value in data.items():
        if isinstance(value, Mapping):
            merged[name] = dict(value)
        elif isinstance(value, list) and name in _ARRAYS:
            merged[name] = [dict(v) if isinstance(v, Mapping) else v for v in value]
        else:
            merged[name] = value
    origins: dict[str, str] = {}
    overrides = []
    for var, value in env.items():
        if not var.upper().startswith(ENV_PREFIX) or "__" not in var:
            continue
        parts = var[len(ENV_PREFIX):].lower().split("__")
        overrides.append((_override_sort_key(parts), var, parts, value))
    for _order, var, parts, value in sorted(overrides):
        dotted = _apply_override(merged, var, parts, value)
        origins[dotted] = var
    return merged, origins


def _override_sort_key(parts: list[str]) -> tuple[str, int, str]:
    # Numeric index order, so that appending entries 2 then 3 works regardless of env order.
    if len(parts) == 3 and _INDEX.fullmatch(parts[1]):
        return (parts[0], int(parts[1]), parts[2])
    return (parts[0], -1, "__".join(parts[1:]))


def _apply_override(merged: dict[str, object], var: str, parts: list[str], value: str) -> str:
    section = parts[0]
    if section in _ARRAYS:
        if len(parts) != 3 or not _INDEX.fullmatch(parts[1]) or not parts[2]:
            raise ConfigError(section, f"environment variable {var} must look like "
                                       f"{ENV_PREFIX}{section.upper()}__<index>__<KEY>")
        entries = merged.setdefault(section, [])
        if not isinstance(entries, list):
            raise ConfigError(section, "must be an array of tables ([[...]])")
        index = int(parts[1])
        if index > len(entries):
            raise ConfigError(f"{section}[{index}]", f"set by {var}, but there are only "
                              f"{len(entries)} entries (indices must be contiguous)")
        if index == len(entries):
            entries.append({})
        entry = entries[index]
        if not isinstance(entry, dict):
            raise ConfigError(f"{section}[{index}]", "must be a table")
        entry[parts[2]] = value
        return f"{section}[{index}].{parts[2]}"
    if len(parts) != 2 or not section or not parts[1]:
        raise ConfigError(section or var, f"environment variable {var} must look like "
                                          f"{ENV_PREFIX}<SECTION>__<KEY>")
    table = merged.setdefault(section, {})
    if not isinstance(table, dict):
        raise ConfigError(section, "must be a table")
    table[parts[1]] = value
    return f"{section}.{parts[1]}"


# --------------------------------------------------------------------------------------------
# Sections

_SERIAL = re.compile(r"[A-Za-z0-9_\-]{1,64}")
_DECIMAL = re.compile(r"(0|[1-9][0-9]{0,17})(\.[0-9]{1,9})?")
_HOSTPORT = re.compile(
    r"(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9.\-]*)):(?P<port>[0-9]{1,5})")


def _host_port(t: Table, key: str, default: str) -> HostPort:
    text = t.text(key, default=default)
    match = _HOSTPORT.fullmatch(text)
    if match is None:
        raise t.fail(key, f"must be host:port (e.g. 0.0.0.0:8765 or [::1]:8765), not {text!r}")
    port = int(match["port"])
    if port > 65535:
        raise t.fail(key, f"port must be from 0 to 65535, not {port}")
    host = match["v6"] if match["v6"] is not None else match["host"]
    return HostPort(host=host or "0.0.0.0", port=port)  # noqa: S104 (documented bind-all)


def _bridge(t: Table) -> BridgeConfig:
    amount = t.text("max_amount", default="10000.00")
    if not _DECIMAL.fullmatch(amount) or set(amount) <= {"0", "."}:
        raise t.fail("max_amount", f'must be a positive decimal string such as "10000.00", '
                                   f"not {amount[:40]!r}")
    cert, key = t.readable_file("tls_cert_file"), t.readable_file("tls_key_file")
    if (cert is None) != (key is None):
        missing = "tls_key_file" if key is None else "tls_cert_file"
        raise t.fail(missing, "TLS needs both tls_cert_file and tls_key_file")
    data_dir = t.path("data_dir", default="/var/lib/posbridge")
    assert data_dir is not None  # a default is given
    config = BridgeConfig(
        data_dir=data_dir,
        ecr_listen=_host_port(t, "ecr_listen", "0.0.0.0:8765"),
        http_listen=_host_port(t, "http_listen", "0.0.0.0:8766"),
        public_url=url_of(t, "public_url", empty_ok=True),
        max_amount=amount, tls_cert_file=cert, tls_key_file=key,
        log_format=t.choice("log_format", LOG_FORMATS, default="auto"),
        retention_days=t.integer("retention_days", default=0, low=0, high=MAX_RETENTION_DAYS))
    t.done()
    return config


def _client(t: Table) -> ClientConfig:
    name = name_of(t)
    role = Role(t.choice("role", ("cashier", "manager")))
    token_hash = t.text("token_hash")
    check_hash_format(token_hash, key=t.key("token_hash"), tagged=True)
    t.done()
    return ClientConfig(name=name, role=role, token_hash=token_hash)


def _manager(t: Table) -> ManagerConfig:
    pin_hash = t.optional_text("pin_hash")
    if pin_hash is not None:
        check_hash_format(pin_hash, key=t.key("pin_hash"), tagged=False)
    t.done()
    return ManagerConfig(pin_hash=pin_hash)


def _terminal(t: Table) -> TerminalConfig:
    sn = t.text("sn")
    if not _SERIAL.fullmatch(sn):
        raise t.fail("sn", "must be 1-64 letters, digits, '_' or '-'")
    config = TerminalConfig(
        sn=sn, name=name_of(t) if t.optional_text("name") is not None else sn,
        provider=t.choice("provider", TERMINAL_PROVIDERS, default=DEFAULT_TERMINAL_PROVIDER),
        display=t.optional_text("display"), printer=t.optional_text("printer"))
    t.done()
    return config


def _display(t: Table) -> DisplayConfig:
    name = name_of(t)
    kind = t.choice("kind", DISPLAY_KINDS)
    device = t.optional_text("device")
    if kind == "serial" and device is None:
        raise t.fail("device", 'missing: kind "serial" needs the serial device')
    folder = t.path("dir")
    if kind == "file" and folder is None:
        raise t.fail("dir", 'missing: kind "file" needs the folder for frame files')
    config = DisplayConfig(
        name=name, kind=kind, device=device,
        baudrate=t.integer("baudrate", default=9600, high=921600),
        columns=t.integer("columns", default=20, high=80),
        rows=t.integer("rows", default=2, high=8), dir=folder)
    t.done()
    return config


def _printer(t: Table) -> PrinterConfig:
    name = name_of(t)
    kind = t.choice("kind", PRINTER_KINDS)
    device, host, path = t.optional_text("device"), t.optional_text("host"), t.path("path")
    needed = {"serial": ("device", device), "tcp": ("host", host), "file": ("path", path)}[kind]
    if needed[1] is None:
        raise t.fail(needed[0], f'missing: kind "{kind}" needs {needed[0]}')
    width = t.integer("width_dots", default=576, low=8, high=4096)
    if width % 8:
        raise t.fail("width_dots", f"must be a multiple of 8 (e.g. 384 or 576), not {width}")
    config = PrinterConfig(
        name=name, kind=kind, device=device,
        baudrate=t.integer("baudrate", default=19200, high=921600), host=host,
        port=t.integer("port", default=9100, high=65535), path=path, width_dots=width,
        native_qr=t.boolean("native_qr", default=True), png_dir=t.path("png_dir"))
    t.done()
    return config


# --------------------------------------------------------------------------------------------
# Whole-file checks


def _first_duplicate(values: list[str]) -> int | None:
    seen: set[str] = set()
    for i, value in enumerate(values):
        if value in seen:
            return i
        seen.add(value)
    return None


def _cross_check(config: Config) -> None:
    """Checks that need more than one section; raise the first problem found."""
    if not config.ecr_clients:
        raise ConfigError("ecr_clients", "at least one [[ecr_clients]] entry is needed "
                                         "(no register could connect)")
    i = _first_duplicate([c.name for c in config.ecr_clients])
    if i is not None:
        raise ConfigError(f"ecr_clients[{i}].name", "another client has the same name")
    i = _first_duplicate([token_tag_of(c.token_hash) or "" for c in config.ecr_clients])
    if i is not None:
        raise ConfigError(f"ecr_clients[{i}].token_hash",
                          "has the same lookup tag as another client's: the two share a token "
                          "(or, once in billions, a tag); give each its own generated token")
    for what, entries in (("displays", config.displays), ("printers", config.printers)):
        i = _first_duplicate([e.name for e in entries])
        if i is not None:
            raise ConfigError(f"{what}[{i}].name", f"another entry of [[{what}]] has this name")
    i = _first_duplicate([t.sn for t in config.terminals])
    if i is not None:
        raise ConfigError(f"terminals[{i}].sn", "another terminal has this serial number")
    # A terminal is addressed by sn or name, so no name may equal another terminal's sn either.
    owners: dict[str, int] = {t.sn: n for n, t in enumerate(config.terminals)}
    for n, term in enumerate(config.terminals):
        if term.name != term.sn and owners.setdefault(term.name, n) != n:
            raise ConfigError(f"terminals[{n}].name",
                              "another terminal already has this name or serial number")
    _check_notify_url_lengths(config)
    displays = {d.name for d in config.displays}
    printers = {p.name for p in config.printers}
    for n, term in enumerate(config.terminals):
        if term.display is not None and term.display not in displays:
            raise ConfigError(f"terminals[{n}].display",
                              f"names no configured [[displays]] entry: {term.display!r}")
        if term.printer is not None and term.printer not in printers:
            raise ConfigError(f"terminals[{n}].printer",
                              f"names no configured [[printers]] entry: {term.printer!r}")
    for n, term in enumerate(config.terminals):
        if term.provider not in config.providers:
            title = PLUGINS[term.provider].title
            raise ConfigError(term.provider, f"missing: [[terminals]] entry {n} is a terminal of "
                                             f"{title} and needs a [{term.provider}] section")


__all__ = [
    "DEFAULT_CONFIG_PATH",
    "DEFAULT_DEEPLINK_TEMPLATE",
    "BridgeConfig",
    "ClientConfig",
    "CodePayConfig",
    "Config",
    "DisplayConfig",
    "HostPort",
    "ManagerConfig",
    "PrinterConfig",
    "Role",
    "TerminalConfig",
    "UCanPayConfig",
    "load_config",
    "parse_config",
]


def _check_notify_url_lengths(config: Config) -> None:
    url = config.bridge.public_url
    if not url:
        return  # derived from http_listen: always short enough
    for name in config.providers:
        plugin = PLUGINS[name]
        limit = plugin.notify_url_max
        if limit is None:
            continue
        path = notify_path(name) + max(plugin.notify_suffixes, key=len)
        if len(url) + len(path) > limit:
            raise ConfigError(
                "bridge.public_url",
                f"too long for {name}: its notification URL ({url}{path}) may have at most "
                f"{limit} characters; use at most {limit - len(path)} here")
