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

import math
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Final, Literal, TypeVar

from posbridge import money
from posbridge.errors import ConfigError
from posbridge.secrets import check_hash_format, token_tag_of

DEFAULT_CONFIG_PATH: Final = Path("/etc/posbridge/posbridge.toml")

ENV_PREFIX: Final = "POSBRIDGE_"

DEFAULT_DEEPLINK_TEMPLATE: Final = (
    "https://ucanpaydev.page.link/?link=https://ucanpaydev.page.link/pay?ucpOrderNo%3D"
    "${ucpOrderNo}%26amount%3D${amount}%26item%3D${item}&apn=ca.ucanpay.wapp"
)
DEEPLINK_PLACEHOLDERS: Final = ("${ucpOrderNo}", "${amount}", "${item}")

LogFormat = Literal["auto", "json", "console"]
SignType = Literal["RSA2", "NONE"]
SignScheme = Literal["double_hash", "rsa_sha256", "md5"]
DisplayKind = Literal["web", "serial", "file"]
PrinterKind = Literal["serial", "tcp", "file"]

LOG_FORMATS: Final[tuple[LogFormat, ...]] = ("auto", "json", "console")
SIGN_TYPES: Final[tuple[SignType, ...]] = ("RSA2", "NONE")
SIGN_SCHEMES: Final[tuple[SignScheme, ...]] = ("double_hash", "rsa_sha256", "md5")
DISPLAY_KINDS: Final[tuple[DisplayKind, ...]] = ("web", "serial", "file")
PRINTER_KINDS: Final[tuple[PrinterKind, ...]] = ("serial", "tcp", "file")


_T = TypeVar("_T", bound=str)


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
class CodePayConfig:
    """The ``[codepay]`` section (card terminals through the CodePay Cloud Open API)."""

    base_url: str
    app_id: str
    merchant_no: str
    store_no: str | None = None
    private_key_file: Path | None = None
    gateway_public_key_file: Path | None = None
    expires_s: int = 180
    sign_type: SignType = "RSA2"
    basic_auth_user: str | None = None
    basic_auth_password: str | None = field(default=None, repr=False)
    poll_interval_s: float = 2.0
    timeout_s: float = 10.0
    # Seed 003 describes "Get Open Batch" without naming its method: a switch (PROVIDERS.md).
    open_batch_method: str = "batch.open.query"


@dataclass(frozen=True, slots=True, kw_only=True)
class UCanPayConfig:
    """The ``[ucanpay]`` section (wallet payments by dynamic QR)."""

    base_url: str
    merchant_id: str
    private_key_file: Path | None = None
    public_key_file: Path | None = None
    currency: str = "CAD"
    deeplink_template: str = DEFAULT_DEEPLINK_TEMPLATE
    qr_timeout_s: int = 120
    sign_scheme: SignScheme = "double_hash"
    md5_key: str | None = field(default=None, repr=False)
    poll_interval_s: float = 2.0
    timeout_s: float = 10.0


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
    codepay: CodePayConfig | None
    ucanpay: UCanPayConfig | None
    terminals: tuple[TerminalConfig, ...]
    displays: tuple[DisplayConfig, ...]
    printers: tuple[PrinterConfig, ...]
    sandbox: bool = False


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
    top = _Table(merged, "", origins)
    sections = {"bridge", "ecr_clients", "manager", "codepay", "ucanpay", "terminals",
                "displays", "printers"}
    for key in merged:
        if key not in sections and key != "sandbox":
            raise ConfigError(key, "unknown section or key")
    sandbox = top.boolean("sandbox", default=False)
    bridge = _bridge(top.table("bridge"))
    clients = tuple(_client(t) for t in top.tables("ecr_clients"))
    manager = _manager(top.table("manager"))
    codepay = _codepay(top.table("codepay")) if "codepay" in merged else None
    ucanpay = _ucanpay(top.table("ucanpay")) if "ucanpay" in merged else None
    displays = tuple(_display(t) for t in top.tables("displays"))
    printers = tuple(_printer(t) for t in top.tables("printers"))
    terminals = tuple(_terminal(t) for t in top.tables("terminals"))
    config = Config(bridge=bridge, ecr_clients=clients, manager=manager, codepay=codepay,
                    ucanpay=ucanpay, terminals=terminals, displays=displays,
                    printers=printers, sandbox=sandbox)
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
# A reader that types values, names keys in errors, and refuses what it did not read


class _Table:
    """Typed access to one table; :meth:`done` refuses keys that were never read."""

    def __init__(self, data: Mapping[str, object], prefix: str, origins: Mapping[str, str]):
        self._data = data
        self._prefix = prefix
        self._origins = origins
        self._read: set[str] = set()

    def key(self, name: str) -> str:
        """The dotted name of ``name`` in this table."""
        return f"{self._prefix}.{name}" if self._prefix else name

    def fail(self, name: str, problem: str) -> ConfigError:
        """An error naming ``name`` (and the environment variable that set it, if one did)."""
        var = self._origins.get(self.key(name))
        return ConfigError(self.key(name), f"{problem} (from {var})" if var else problem)

    def _from_env(self, name: str) -> bool:
        return self.key(name) in self._origins

    def _get(self, name: str) -> object | None:
        self._read.add(name)
        return self._data.get(name)

    def done(self) -> None:
        """Raise for the first key nobody asked for (a typo or an unsupported setting)."""
        for name in self._data:
            if name not in self._read:
                raise self.fail(name, "unknown key")

    # Scalars ---------------------------------------------------------------------------

    def text(self, name: str, *, default: str | None = None) -> str:
        """A required non-empty string (``default`` when absent)."""
        value = self.optional_text(name)
        if value is None:
            if default is None:
                raise self.fail(name, "missing (required)")
            return default
        return value

    def optional_text(self, name: str) -> str | None:
        """A string; absent or empty means None."""
        value = self._get(name)
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise self.fail(name, f"must be a string, not {_kind(value)}")
        if value != value.strip() or any(ord(c) < 32 for c in value):
            raise self.fail(name, "must not have surrounding blanks or control characters")
        return value

    def choice(self, name: str, options: tuple[_T, ...], *, default: _T | None = None) -> _T:
        """One of ``options`` (case-sensitive, as documented)."""
        value = self.optional_text(name)
        if value is None:
            if default is None:
                raise self.fail(name, f"missing (one of {', '.join(options)})")
            return default
        for option in options:
            if value == option:
                return option
        raise self.fail(name, f"must be one of {', '.join(options)}, not {value[:40]!r}")

    def integer(self, name: str, *, default: int, low: int = 1, high: int | None = None) -> int:
        """A whole number in ``[low, high]``: a TOML integer, or plain digits from the env."""
        value = self._get(name)
        if value is None:
            return default
        if self._from_env(name) and isinstance(value, str):
            if not re.fullmatch(r"-?[0-9]{1,18}", value):
                raise self.fail(name, f"must be a whole number, not {value[:40]!r}")
            number = int(value)
        elif isinstance(value, int) and not isinstance(value, bool):
            number = value
        else:
            raise self.fail(name, f"must be a whole number, not {_kind(value)}")
        if number < low or (high is not None and number > high):
            span = f"from {low} to {high}" if high is not None else f"at least {low}"
            raise self.fail(name, f"must be a whole number {span}, not {number}")
        return number

    def seconds(self, name: str, *, default: float, high: float = 3600.0) -> float:
        """A positive finite duration in seconds (TOML integer or float)."""
        value = self._get(name)
        if value is None:
            return default
        if self._from_env(name) and isinstance(value, str):
            if not re.fullmatch(r"[0-9]{1,9}(\.[0-9]{1,9})?", value):
                raise self.fail(name, f"must be a number of seconds, not {value[:40]!r}")
            number = float(value)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            number = float(value)
        else:
            raise self.fail(name, f"must be a number of seconds, not {_kind(value)}")
        if not math.isfinite(number) or not 0 < number <= high:
            raise self.fail(name, f"must be more than 0 and at most {high:g} seconds")
        return number

    def boolean(self, name: str, *, default: bool) -> bool:
        """A TOML boolean, or ``true``/``false`` from the environment."""
        value = self._get(name)
        if value is None:
            return default
        if self._from_env(name) and value in ("true", "false"):
            return value == "true"
        if isinstance(value, bool):
            return value
        raise self.fail(name, f"must be true or false, not {_kind(value)}")

    def path(self, name: str, *, default: str | None = None) -> Path | None:
        """A filesystem path; absent or empty means ``default`` (None when no default)."""
        value = self.optional_text(name)
        if value is None:
            return Path(default) if default is not None else None
        return Path(value)

    def readable_file(self, name: str) -> Path | None:
        """A path that, when given, must be a readable file (the content is not looked at)."""
        path = self.path(name)
        if path is None:
            return None
        if not path.is_file():
            raise self.fail(name, f"{path} does not exist or is not a file")
        try:
            with path.open("rb"):
                pass
        except OSError as exc:
            raise self.fail(name, f"cannot read {path}: {exc.strerror}") from exc
        return path

    # Nesting -----------------------------------------------------------------------------

    def table(self, name: str) -> _Table:
        """A sub-table (an absent one reads as empty, so its own defaults apply)."""
        value = self._get(name)
        if value is None:
            value = {}
        if not isinstance(value, Mapping):
            raise self.fail(name, f"must be a table ([{name}]), not {_kind(value)}")
        return _Table(value, self.key(name), self._origins)

    def tables(self, name: str) -> list[_Table]:
        """An array of tables (``[[name]]``); absent means none."""
        value = self._get(name)
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.fail(name, f"must be an array of tables ([[{name}]]), not {_kind(value)}")
        out = []
        for i, entry in enumerate(value):
            key = f"{self.key(name)}[{i}]"
            if not isinstance(entry, Mapping):
                raise ConfigError(key, f"must be a table, not {_kind(entry)}")
            out.append(_Table(entry, key, self._origins))
        return out


def _kind(value: object) -> str:
    """A TOML-ish name for the type of ``value``, for error messages (never the value)."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return type(value).__name__


# --------------------------------------------------------------------------------------------
# Sections

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")
_SERIAL = re.compile(r"[A-Za-z0-9_\-]{1,64}")
_DECIMAL = re.compile(r"(0|[1-9][0-9]{0,17})(\.[0-9]{1,9})?")
_URL = re.compile(r"https?://[A-Za-z0-9.\-]+(:[0-9]{1,5})?(/[^\s?#]*)?")
_HOSTPORT = re.compile(
    r"(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9.\-]*)):(?P<port>[0-9]{1,5})")


def _name(t: _Table, key: str = "name") -> str:
    value = t.text(key)
    if not _NAME.fullmatch(value):
        raise t.fail(key, "must be 1-64 letters, digits, '.', '_' or '-' (starting with a "
                          "letter or digit)")
    return value


def _url(t: _Table, key: str, *, default: str | None = None, empty_ok: bool = False) -> str:
    value = t.optional_text(key)
    if value is None:
        if empty_ok:
            return ""
        if default is None:
            raise t.fail(key, "missing (required)")
        return default
    if not _URL.fullmatch(value):
        raise t.fail(key, "must be an http:// or https:// URL without query or fragment")
    return value.rstrip("/")


def _host_port(t: _Table, key: str, default: str) -> HostPort:
    text = t.text(key, default=default)
    match = _HOSTPORT.fullmatch(text)
    if match is None:
        raise t.fail(key, f"must be host:port (e.g. 0.0.0.0:8765 or [::1]:8765), not {text!r}")
    port = int(match["port"])
    if port > 65535:
        raise t.fail(key, f"port must be from 0 to 65535, not {port}")
    host = match["v6"] if match["v6"] is not None else match["host"]
    return HostPort(host=host or "0.0.0.0", port=port)  # noqa: S104 (documented bind-all)


def _bridge(t: _Table) -> BridgeConfig:
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
        public_url=_url(t, "public_url", empty_ok=True),
        max_amount=amount, tls_cert_file=cert, tls_key_file=key,
        log_format=t.choice("log_format", LOG_FORMATS, default="auto"))
    t.done()
    return config


def _client(t: _Table) -> ClientConfig:
    name = _name(t)
    role = Role(t.choice("role", ("cashier", "manager")))
    token_hash = t.text("token_hash")
    check_hash_format(token_hash, key=t.key("token_hash"), tagged=True)
    t.done()
    return ClientConfig(name=name, role=role, token_hash=token_hash)


def _manager(t: _Table) -> ManagerConfig:
    pin_hash = t.optional_text("pin_hash")
    if pin_hash is not None:
        check_hash_format(pin_hash, key=t.key("pin_hash"), tagged=False)
    t.done()
    return ManagerConfig(pin_hash=pin_hash)


def _codepay(t: _Table) -> CodePayConfig:
    sign_type = t.choice("sign_type", SIGN_TYPES, default="RSA2")
    private_key = t.readable_file("private_key_file")
    gateway_key = t.readable_file("gateway_public_key_file")
    user, password = t.optional_text("basic_auth_user"), t.optional_text("basic_auth_password")
    if sign_type == "RSA2":
        for key, value in (("private_key_file", private_key),
                           ("gateway_public_key_file", gateway_key)):
            if value is None:
                raise t.fail(key, 'missing: sign_type "RSA2" needs both key files')
    else:
        for key, text in (("basic_auth_user", user), ("basic_auth_password", password)):
            if text is None:
                raise t.fail(key, 'missing: sign_type "NONE" uses HTTP Basic auth')
    config = CodePayConfig(
        base_url=_url(t, "base_url"), app_id=t.text("app_id"),
        merchant_no=t.text("merchant_no"), store_no=t.optional_text("store_no"),
        private_key_file=private_key, gateway_public_key_file=gateway_key,
        expires_s=t.integer("expires_s", default=180), sign_type=sign_type,
        basic_auth_user=user, basic_auth_password=password,
        poll_interval_s=t.seconds("poll_interval_s", default=2.0),
        timeout_s=t.seconds("timeout_s", default=10.0),
        open_batch_method=_method_name(t, "open_batch_method", "batch.open.query"))
    t.done()
    return config


def _method_name(t: _Table, key: str, default: str) -> str:
    name = t.text(key, default=default)
    if not re.fullmatch(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*", name) or len(name) > 32:
        raise t.fail(key, f"must be a CodePay method name such as {default!r} "
                          "(dotted lower-case words, at most 32 characters)")
    return name


def _ucanpay(t: _Table) -> UCanPayConfig:
    scheme = t.choice("sign_scheme", SIGN_SCHEMES, default="double_hash")
    private_key = t.readable_file("private_key_file")
    public_key = t.readable_file("public_key_file")
    md5_key = t.optional_text("md5_key")
    if scheme == "md5":
        if md5_key is None:
            raise t.fail("md5_key", 'missing: sign_scheme "md5" needs the shared key')
    else:
        for key, value in (("private_key_file", private_key), ("public_key_file", public_key)):
            if value is None:
                raise t.fail(key, f'missing: sign_scheme "{scheme}" needs both key files')
    currency = t.text("currency", default="CAD")
    if currency not in money.CURRENCIES:
        raise t.fail("currency", f"must be an ISO 4217 code in upper case, not {currency!r}")
    template = t.text("deeplink_template", default=DEFAULT_DEEPLINK_TEMPLATE)
    absent = [p for p in DEEPLINK_PLACEHOLDERS if p not in template]
    if absent:
        raise t.fail("deeplink_template", f"must contain {', '.join(absent)}")
    config = UCanPayConfig(
        base_url=_url(t, "base_url"), merchant_id=t.text("merchant_id"),
        private_key_file=private_key, public_key_file=public_key, currency=currency,
        deeplink_template=template, qr_timeout_s=t.integer("qr_timeout_s", default=120),
        sign_scheme=scheme, md5_key=md5_key,
        poll_interval_s=t.seconds("poll_interval_s", default=2.0),
        timeout_s=t.seconds("timeout_s", default=10.0))
    t.done()
    return config


def _terminal(t: _Table) -> TerminalConfig:
    sn = t.text("sn")
    if not _SERIAL.fullmatch(sn):
        raise t.fail("sn", "must be 1-64 letters, digits, '_' or '-'")
    config = TerminalConfig(
        sn=sn, name=_name(t) if t.optional_text("name") is not None else sn,
        provider=t.choice("provider", ("codepay",), default="codepay"),
        display=t.optional_text("display"), printer=t.optional_text("printer"))
    t.done()
    return config


def _display(t: _Table) -> DisplayConfig:
    name = _name(t)
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


def _printer(t: _Table) -> PrinterConfig:
    name = _name(t)
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
    if config.terminals and config.codepay is None:
        raise ConfigError("codepay", "missing: [[terminals]] are CodePay terminals and need "
                                     "a [codepay] section")


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


# The longest notification URL each provider is given (public_url + this path), and the most
# it accepts: UCanPay's notifyUrl is String(64) (seed 001), CodePay's notify_url <= 256 (seed 003).
_NOTIFY_LIMITS: Final = (("ucanpay", "/notify/ucanpay/refund", 64),
                         ("codepay", "/notify/codepay", 256))


def _check_notify_url_lengths(config: Config) -> None:
    url = config.bridge.public_url
    if not url:
        return  # derived from http_listen: always short enough
    for section, path, limit in _NOTIFY_LIMITS:
        if getattr(config, section) is not None and len(url) + len(path) > limit:
            raise ConfigError(
                "bridge.public_url",
                f"too long for {section}: its notification URL ({url}{path}) may have at most "
                f"{limit} characters; use at most {limit - len(path)} here")
