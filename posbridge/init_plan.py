"""What ``posbridge init`` writes, decided without touching the disk.

The installer's answers (flags or replies to questions) become a TOML-shaped mapping of the
configuration (:func:`config_data`) and then its text (:func:`render_toml`). Nothing here
names a provider: a provider's section gets the values the installer gave, its key files
from the plug-in's ``KeySpec`` declarations, and the plug-in's own ``parse_section`` says which
values it still needs (:func:`first_missing`): whatever it reports as missing is asked for,
or, without questions, written as a placeholder that ``posbridge doctor`` points out.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from posbridge.config_table import Table
from posbridge.errors import ConfigError
from posbridge.provider_keys import provider_title
from posbridge.providers.registry import PLUGINS

__all__ = ["PLACEHOLDER", "PLACEHOLDER_URL", "Answers", "Printer", "Register", "Terminal",
           "config_data", "first_missing", "key_path", "parse_printer", "parse_register",
           "parse_setting", "parse_terminal", "placeholder_for", "placeholders_in",
           "render_toml", "typed"]

#: What init writes for a value it was not given (``doctor`` reports any left).
PLACEHOLDER = "CHANGE-ME"
PLACEHOLDER_URL = "https://change-me.invalid"

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")


@dataclass(frozen=True, slots=True)
class Register:
    """An ``[[ecr_clients]]`` entry to make (its token is generated)."""

    name: str
    role: Literal["cashier", "manager"] = "cashier"


@dataclass(frozen=True, slots=True)
class Terminal:
    """A ``[[terminals]]`` entry; ``provider`` None: the only terminal provider configured."""

    sn: str
    name: str
    provider: str | None = None


@dataclass(frozen=True, slots=True)
class Printer:
    """A ``[[printers]]`` entry: its name and the keys of its kind."""

    name: str
    settings: Mapping[str, object]


@dataclass(frozen=True, slots=True, kw_only=True)
class Answers:
    """Everything init was told or asked. ``settings`` maps a section (``bridge`` or a
    provider) to the values given for its keys."""

    config_dir: Path
    data_dir: Path
    providers: tuple[str, ...]
    settings: Mapping[str, Mapping[str, object]] = field(default_factory=dict)
    registers: tuple[Register, ...] = (Register("lane-1"),)
    terminals: tuple[Terminal, ...] = ()
    printers: tuple[Printer, ...] = ()
    ecr_listen: str = "0.0.0.0:8765"
    http_listen: str = "0.0.0.0:8766"
    public_url: str = ""


# -- reading flags and replies (pure) -----------------------------------------------------------


def typed(text: str) -> object:
    """A value as TOML would read it when it is a number, a boolean, an inline table or an
    array (``180``, ``2.5``, ``true``, ``{ USDT = 6 }``), else the text itself."""
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text
    return value if isinstance(value, bool | int | float | dict | list) else text


def parse_setting(text: str) -> tuple[str, str, str]:
    """``SECTION.KEY=VALUE`` -> (section, key, value); ValueError saying what is wrong."""
    target, sep, value = text.partition("=")
    section, dot, key = target.partition(".")
    if not sep or not dot or not section or not key or "." in key:
        raise ValueError(f"{text!r} is not SECTION.KEY=VALUE (e.g. codepay.app_id=123)")
    if section != "bridge" and section not in PLUGINS:
        raise ValueError(f"{section!r} is not bridge or a provider "
                         f"({', '.join(PLUGINS)})")
    return section, key, value


def parse_register(text: str) -> Register:
    """``NAME`` (a cashier) or ``NAME:manager`` / ``NAME:cashier``."""
    name, _, role = text.partition(":")
    if not _NAME.fullmatch(name):
        raise ValueError(f"register name {name!r}: 1-64 letters, digits, '.', '_' or '-'")
    if role in ("", "cashier"):
        return Register(name)
    if role == "manager":
        return Register(name, "manager")
    raise ValueError(f"register role {role!r}: cashier or manager")


def parse_terminal(text: str) -> Terminal:
    """``SN``, ``NAME=SN`` or either with ``@PROVIDER``."""
    body, _, provider = text.partition("@")
    name, sep, sn = body.partition("=")
    if not sep:
        name, sn = body, body
    if not re.fullmatch(r"[A-Za-z0-9_\-]{1,64}", sn) or not _NAME.fullmatch(name):
        raise ValueError(f"terminal {text!r}: NAME=SERIAL (e.g. lane-1=WPYB002248000865)")
    if provider and (provider not in PLUGINS or not PLUGINS[provider].terminals):
        terminal_providers = [n for n, p in PLUGINS.items() if p.terminals]
        raise ValueError(f"terminal {text!r}: @{provider} drives no terminals "
                         f"(those that do: {', '.join(terminal_providers)})")
    return Terminal(sn=sn, name=name, provider=provider or None)


def parse_printer(text: str) -> Printer:
    """``NAME=/dev/ttyUSB0`` (serial), ``NAME=tcp://HOST[:PORT]`` or ``NAME=file:PATH``."""
    name, sep, where = text.partition("=")
    if not sep or not _NAME.fullmatch(name) or not where:
        raise ValueError(f"printer {text!r}: NAME=/dev/ttyUSB0, NAME=tcp://HOST[:PORT] or "
                         "NAME=file:PATH")
    if where.startswith("tcp://"):
        host, _, port = where.removeprefix("tcp://").partition(":")
        if not host or (port and not port.isdigit()):
            raise ValueError(f"printer {text!r}: tcp://HOST[:PORT]")
        settings: dict[str, object] = {"kind": "tcp", "host": host}
        if port:
            settings["port"] = int(port)
        return Printer(name, settings)
    if where.startswith("file:"):
        return Printer(name, {"kind": "file", "path": where.removeprefix("file:")})
    return Printer(name, {"kind": "serial", "device": where})


# -- provider sections ----------------------------------------------------------------------


def placeholder_for(key: str) -> str:
    """The placeholder init writes for a value it was not given."""
    return PLACEHOLDER_URL if key.endswith("url") else PLACEHOLDER


def _trial_section(name: str, values: Mapping[str, object], stand_in: Path) -> dict[str, object]:
    trial = dict(values)
    for spec in PLUGINS[name].keys:
        trial[spec.config_key] = str(stand_in)
    return trial


def first_missing(name: str, values: dict[str, object], given: Mapping[str, str],
                  stand_in: Path) -> ConfigError | None:
    """The error naming the first key that provider ``name``'s section still needs (its
    ``problem`` starts with "missing" and may say what it wants), or None when ``values``
    make a valid section. ``stand_in`` is any readable file: key files are checked for
    existence only, and are written later. A value given as ``given[key]`` text that was read
    as a number or boolean (:func:`typed`) but must be text is turned back into its text in
    ``values`` (an ``app_id`` of ``123`` is a string). A wrong value raises its ConfigError."""
    for _ in range(len(given) + 1):
        try:
            PLUGINS[name].parse_section(Table(_trial_section(name, values, stand_in), name, {}))
        except ConfigError as exc:
            key = exc.key.removeprefix(f"{name}.")
            if exc.problem.startswith("missing") and exc.key == f"{name}.{key}":
                return exc
            if key in given and not isinstance(values.get(key), str):
                values[key] = given[key]
                continue
            raise
        return None
    raise ConfigError(name, "the section's values do not settle")


# -- the configuration ---------------------------------------------------------------------------


def key_path(answers: Answers, provider: str, config_key: str, file_name: str) -> Path:
    """Where a provider's key file goes: as given, else in the configuration folder."""
    given = answers.settings.get(provider, {}).get(config_key)
    return Path(given) if isinstance(given, str) and given else answers.config_dir / file_name


def config_data(answers: Answers, *, token_hashes: Mapping[str, str],
                pin_hash: str) -> dict[str, object]:
    """The configuration as a TOML-shaped mapping. ``token_hashes`` maps register names to
    their token hashes."""
    bridge: dict[str, object] = {
        "data_dir": str(answers.data_dir), "ecr_listen": answers.ecr_listen,
        "http_listen": answers.http_listen, "public_url": answers.public_url,
        **answers.settings.get("bridge", {})}
    data: dict[str, object] = {
        "bridge": bridge,
        "ecr_clients": [{"name": r.name, "role": r.role, "token_hash": token_hashes[r.name]}
                        for r in answers.registers],
        "manager": {"pin_hash": pin_hash},
    }
    for name in answers.providers:
        section = dict(answers.settings.get(name, {}))
        for spec in PLUGINS[name].keys:
            section[spec.config_key] = str(key_path(answers, name, spec.config_key,
                                                    spec.file_name))
        data[name] = section
    terminal_providers = [n for n in answers.providers if PLUGINS[n].terminals]
    printers = {p.name for p in answers.printers}
    if answers.terminals:
        # Without a provider that drives terminals, validation says which section is needed.
        default = terminal_providers[:1]
        data["terminals"] = [
            {"sn": t.sn, "name": t.name,
             **({"provider": t.provider or default[0]} if t.provider or default else {}),
             "display": t.name, **({"printer": t.name} if t.name in printers else {})}
            for t in answers.terminals]
        data["displays"] = [{"name": t.name, "kind": "web"} for t in answers.terminals]
    if answers.printers:
        data["printers"] = [{"name": p.name, **p.settings} for p in answers.printers]
    return data


def placeholders_in(data: Mapping[str, object]) -> list[str]:
    """Dotted keys of the provider sections that still hold init's placeholders."""
    found = []
    for name in PLUGINS:
        section = data.get(name)
        if isinstance(section, Mapping):
            found += [f"{name}.{key}" for key, value in section.items()
                      if value in (PLACEHOLDER, PLACEHOLDER_URL)]
    return found


def _value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, Mapping):
        items = [f"{k if re.fullmatch(r'[A-Za-z0-9_-]+', str(k)) else _value(str(k))} = "
                 f"{_value(v)}" for k, v in value.items()]
        return "{ " + ", ".join(items) + " }" if items else "{}"
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    # A JSON string is a TOML basic string: the same quotes and escapes.
    return json.dumps(str(value), ensure_ascii=False)


def _table(lines: list[str], header: str, values: Mapping[str, object],
           comments: Mapping[str, str]) -> None:
    lines.append("")
    lines.append(header)
    for key, value in values.items():
        if key in comments:
            lines.append(f"# {comments[key]}")
        lines.append(f"{key} = {_value(value)}")


def render_toml(data: Mapping[str, object], *, heading: Sequence[str] = ()) -> str:
    """The configuration file's text: ``heading`` as comments, then each section, with a
    comment above each provider key file and each placeholder saying what to put there."""
    lines = [f"# {line}" if line else "#" for line in heading]
    for section, content in data.items():
        if isinstance(content, list):
            for entry in content:
                _table(lines, f"[[{section}]]", entry, {})
            continue
        assert isinstance(content, Mapping)
        comments: dict[str, str] = {}
        if section in PLUGINS:
            title = provider_title(section)
            for spec in PLUGINS[section].keys:
                comments[spec.config_key] = (
                    f"the merchant private key; `posbridge keys show-public {section}` prints "
                    "its public half for the portal" if spec.role == "merchant" else
                    f"{title}'s public key: download it from its portal and save it here")
            for key, value in content.items():
                if value in (PLACEHOLDER, PLACEHOLDER_URL):
                    comments[key] = f"set this to the {key} {title} gave you"
        _table(lines, f"[{section}]", content, comments)
    return "\n".join(lines).lstrip("\n") + "\n"
