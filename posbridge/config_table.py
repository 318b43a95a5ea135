"""Typed reading of one TOML table, for the configuration and each provider's section.

A :class:`Table` reads values by name, types them strictly, names the dotted key (and the
environment variable that set it) in every :class:`~posbridge.errors.ConfigError`, and with
:meth:`Table.done` refuses keys nobody read: a typo never falls back to a default silently.
Provider packages parse their own sections with it (see
:class:`posbridge.providers.base.ProviderPlugin`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TypeVar

from posbridge.errors import ConfigError

_T = TypeVar("_T", bound=str)


class Table:
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
            raise self.fail(name, f"must be a string, not {kind_of(value)}")
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
            raise self.fail(name, f"must be a whole number, not {kind_of(value)}")
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
            raise self.fail(name, f"must be a number of seconds, not {kind_of(value)}")
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
        raise self.fail(name, f"must be true or false, not {kind_of(value)}")

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
        try:
            # is_file() lets some errors through (a name too long, a folder not searchable)
            if not path.is_file():
                raise self.fail(name, f"{path} does not exist or is not a file")
            with path.open("rb"):
                pass
        except OSError as exc:
            raise self.fail(name, f"cannot read {path}: {exc.strerror}") from exc
        return path

    def integer_map(self, name: str, *, key_re: re.Pattern[str], low: int = 0,
                    high: int | None = None) -> dict[str, int] | None:
        """A table of whole numbers whose keys are data (``{ USDT = 6, BTC = 8 }``), or from
        the environment the text ``USDT=6,BTC=8``; absent means None. Every key must match
        ``key_re`` and every number lie in ``[low, high]``."""
        value = self._get(name)
        if value is None:
            return None
        pairs: list[tuple[object, object]] = []
        if self._from_env(name) and isinstance(value, str):
            for item in value.split(","):
                text_key, sep, digits = item.strip().partition("=")
                if not sep or not re.fullmatch(r"-?[0-9]{1,18}", digits.strip()):
                    raise self.fail(name, "must be KEY=NUMBER pairs separated by commas")
                pairs.append((text_key.strip(), int(digits.strip())))
        elif isinstance(value, Mapping):
            pairs = list(value.items())
        else:
            raise self.fail(name, f"must be a table ({{ KEY = NUMBER, … }}), not {kind_of(value)}")
        if not pairs:
            raise self.fail(name, "must not be empty")
        out: dict[str, int] = {}
        for key, number in pairs:
            if not isinstance(key, str) or not key_re.fullmatch(key):
                raise self.fail(name, f"{str(key)[:40]!r} is not an accepted key here")
            if not isinstance(number, int) or isinstance(number, bool) or number < low or (
                    high is not None and number > high):
                span = f"from {low} to {high}" if high is not None else f"at least {low}"
                raise self.fail(name, f"{key}: must be a whole number {span}")
            out[key] = number
        return out

    # Nesting -----------------------------------------------------------------------------

    def table(self, name: str) -> Table:
        """A sub-table (an absent one reads as empty, so its own defaults apply)."""
        value = self._get(name)
        if value is None:
            value = {}
        if not isinstance(value, Mapping):
            raise self.fail(name, f"must be a table ([{name}]), not {kind_of(value)}")
        return Table(value, self.key(name), self._origins)

    def tables(self, name: str) -> list[Table]:
        """An array of tables (``[[name]]``); absent means none."""
        value = self._get(name)
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.fail(name, f"must be an array of tables ([[{name}]]), not {kind_of(value)}")
        out = []
        for i, entry in enumerate(value):
            key = f"{self.key(name)}[{i}]"
            if not isinstance(entry, Mapping):
                raise ConfigError(key, f"must be a table, not {kind_of(entry)}")
            out.append(Table(entry, key, self._origins))
        return out


def kind_of(value: object) -> str:
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
# Common shapes

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")
URL_RE = re.compile(r"https?://[A-Za-z0-9.\-]+(:[0-9]{1,5})?(/[^\s?#]*)?")


def name_of(t: Table, key: str = "name") -> str:
    """A name: 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit."""
    value = t.text(key)
    if not NAME_RE.fullmatch(value):
        raise t.fail(key, "must be 1-64 letters, digits, '.', '_' or '-' (starting with a "
                          "letter or digit)")
    return value


def url_of(t: Table, key: str, *, default: str | None = None, empty_ok: bool = False) -> str:
    """An http(s) URL without query or fragment, trailing slash removed."""
    value = t.optional_text(key)
    if value is None:
        if empty_ok:
            return ""
        if default is None:
            raise t.fail(key, "missing (required)")
        return default
    if not URL_RE.fullmatch(value):
        raise t.fail(key, "must be an http:// or https:// URL without query or fragment")
    return value.rstrip("/")
