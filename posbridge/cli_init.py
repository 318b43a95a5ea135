"""``posbridge init --dir DIR``: a working configuration folder from a few questions or flags.

Writes ``DIR/posbridge.toml`` (``0640``), each configured provider's merchant key pair
(``0600``; from the plug-ins' ``KeySpec`` declarations) and the data folder, all handed to the
service user when run as root and that user exists; generates a token per register and the
manager PIN, stores only their hashes, and prints them once with each merchant public key in
the form its provider's portal takes. The providers' own public keys come from their portals:
the file says where each goes, and ``config check`` / ``doctor`` say what is still missing.

Questions are read from standard input unless ``--non-interactive``; a value nobody gave is
then written as a placeholder (see :mod:`posbridge.init_plan`). Nothing existing is replaced
without ``--force``, and nothing at all is written when the answers do not make a valid
configuration. Exit codes: 0 written, 2 bad usage, bad answers or a refused overwrite.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from posbridge.cli_keys import KEY_SIZES, MerchantKey, new_merchant_key, service_user_option
from posbridge.cli_keys import portal_text as merchant_portal_text
from posbridge.config import DEFAULT_CONFIG_PATH, parse_config
from posbridge.errors import ConfigError, PosbridgeError
from posbridge.init_plan import (
    Answers,
    Printer,
    Register,
    Terminal,
    config_data,
    first_missing,
    key_path,
    parse_printer,
    parse_register,
    parse_setting,
    parse_terminal,
    placeholder_for,
    placeholders_in,
    render_toml,
    typed,
)
from posbridge.install_files import Account, account_exists, make_dir, service_account, write_file
from posbridge.provider_keys import KeyFile, provider_title, public_half_path
from posbridge.providers.registry import PLUGINS
from posbridge.secrets import generate_token, hash_secret

__all__ = ["register_commands"]

CONFIG_NAME = "posbridge.toml"
#: The data folder of a configuration in the standard place (config/README.md).
STANDARD_DATA_DIR = Path("/var/lib/posbridge")
#: How often one question is asked again after a reply that will not do.
MAX_TRIES = 5


class InitError(PosbridgeError):
    """Answers that do not make a configuration; the message says what to do."""


def register_commands(sub: Any) -> None:
    """Add ``init`` to the main parser's sub-parsers."""
    p = sub.add_parser(
        "init", help="write a configuration folder: config file, keys, data folder",
        description="Writes DIR/posbridge.toml, the merchant keys of each provider and the "
                    "data folder; prints the register tokens, the manager PIN and the public "
                    "keys for the providers' portals (once).")
    p.add_argument("--dir", type=Path, required=True,
                   help=f"the configuration folder (e.g. {DEFAULT_CONFIG_PATH.parent})")
    p.add_argument("--non-interactive", action="store_true",
                   help="ask nothing: use the flags, and placeholders for values not given")
    p.add_argument("--force", action="store_true", help="replace existing files")
    p.add_argument("--provider", action="append", choices=sorted(PLUGINS), default=None,
                   help="a provider to set up (repeat; default: every one)")
    p.add_argument("--set", dest="settings", action="append", default=[],
                   metavar="SECTION.KEY=VALUE",
                   help="a configuration value, e.g. codepay.app_id=123 (repeat)")
    p.add_argument("--register", action="append", default=None, metavar="NAME[:manager]",
                   help="a register to make a token for (repeat; default lane-1)")
    p.add_argument("--terminal", action="append", default=None, metavar="[NAME=]SERIAL",
                   help="a card terminal, e.g. lane-1=WPYB002248000865 (repeat)")
    p.add_argument("--printer", action="append", default=[], metavar="NAME=WHERE",
                   help="a receipt printer: NAME=/dev/ttyUSB0, NAME=tcp://HOST[:PORT] or "
                        "NAME=file:PATH; a terminal of the same name prints on it (repeat)")
    p.add_argument("--key-bits", action="append", default=[], metavar="PROVIDER=BITS",
                   help=f"RSA size of a provider's merchant key, one of "
                        f"{', '.join(map(str, KEY_SIZES))} (default: the provider's)")
    p.add_argument("--ecr-listen", default="0.0.0.0:8765")
    p.add_argument("--http-listen", default="0.0.0.0:8766")
    p.add_argument("--public-url", default=None,
                   help="base of the notification URLs the providers are given")
    p.add_argument("--data-dir", type=Path, default=None,
                   help=f"journal folder (default {STANDARD_DATA_DIR} for "
                        f"{DEFAULT_CONFIG_PATH.parent}, else DIR/data)")
    service_user_option(p, "gets the private keys and the data folder")
    p.set_defaults(func=_cmd_init)


# -- questions -----------------------------------------------------------------------------------


class Questions:
    """Questions on ``out``, replies read a line at a time from ``reader`` (end of input reads
    as an empty reply, which takes the default)."""

    def __init__(self, reader: TextIO, out: TextIO) -> None:
        self._reader = reader
        self._out = out

    def ask(self, prompt: str, default: str = "") -> str:
        shown = f" [{default}]" if default else ""
        print(f"{prompt}{shown}: ", end="", file=self._out, flush=True)
        reply = self._reader.readline()
        if not self._reader.isatty():  # the reply was not echoed: end the prompt's line
            print(file=self._out)
        return reply.strip() or default

    def tell(self, text: str) -> None:
        print(text, file=self._out)

    def list_of(self, prompt: str, default: str, parse: Callable[[str], Any]) -> list[Any]:
        """A comma-separated reply, each item parsed; asked again while one does not parse."""
        for _ in range(MAX_TRIES):
            reply = self.ask(prompt, default)
            try:
                return [parse(item) for item in reply.replace(" ", ",").split(",") if item]
            except ValueError as exc:
                self.tell(f"  {exc}")
        raise InitError(f"no usable answer to: {prompt}")


def _choose_provider(text: str) -> str:
    if text not in PLUGINS:
        raise ValueError(f"{text!r} is not one of {', '.join(PLUGINS)}")
    return text


# -- gathering the answers ---------------------------------------------------------------------


def _listed(values: list[str], parse: Callable[[str], Any]) -> list[Any]:
    try:
        return [parse(v) for v in values]
    except ValueError as exc:
        raise InitError(str(exc)) from exc


def _section(name: str, given: dict[str, str], ask: Questions | None,
             stand_in: Path) -> dict[str, object]:
    """Provider ``name``'s values: those given, those asked for, placeholders for the rest."""
    title = provider_title(name)
    values = {k: typed(v) for k, v in given.items()}
    for _ in range(64):  # bounded: a section has far fewer keys
        try:
            missing = first_missing(name, values, given, stand_in)
        except ConfigError as exc:
            raise InitError(f"{exc} (give it with --set {exc.key}=VALUE)") from exc
        if missing is None:
            return values
        key = missing.key.removeprefix(f"{name}.")
        if ask is not None:
            values.update(_asked(name, key, title, missing.problem, values, given, ask,
                                 stand_in))
            continue
        proposed = PLUGINS[name].setup_defaults.get(key)
        values[key] = placeholder_for(key) if proposed is None else proposed
        try:
            first_missing(name, values, given, stand_in)
        except ConfigError as exc:  # a value no placeholder can stand for
            if exc.key != missing.key:
                raise InitError(f"{exc} (give it with --set {exc.key}=VALUE)") from exc
            raise InitError(f"{missing} (give it with --set {missing.key}=VALUE, or choose "
                            "the providers to set up with --provider)") from exc
    raise InitError(f"[{name}] keeps asking for values")


def _asked(name: str, key: str, title: str, problem: str, values: dict[str, object],
           given: dict[str, str], ask: Questions, stand_in: Path) -> dict[str, object]:
    wants = problem.partition(":")[2].strip()
    if wants:  # the section says what it wants, e.g. "the accepted coins ... { USDT = 6 }"
        ask.tell(f"{name}.{key}: {wants}")
    for _ in range(MAX_TRIES):
        reply = ask.ask(f"{name}.{key} ({title})")
        if not reply:
            ask.tell("  a value is needed")
            continue
        trial = {**values, key: typed(reply)}
        try:
            first_missing(name, trial, {**given, key: reply}, stand_in)
            return trial
        except ConfigError as exc:
            if exc.key != f"{name}.{key}":
                raise
            ask.tell(f"  {exc.problem}")
    raise InitError(f"no usable value for {name}.{key}")


def _gather(args: argparse.Namespace, ask: Questions | None, stand_in: Path) -> Answers:
    config_dir = args.dir.absolute()
    providers: list[str] = args.provider or []
    if not providers:
        providers = (ask.list_of(f"Providers to set up ({', '.join(PLUGINS)})",
                                 ",".join(PLUGINS), _choose_provider)
                     if ask is not None else list(PLUGINS))
    settings: dict[str, dict[str, str]] = {}
    for text in args.settings:
        try:
            section, key, value = parse_setting(text)
        except ValueError as exc:
            raise InitError(str(exc)) from exc
        settings.setdefault(section, {})[key] = value
    strangers = sorted(set(settings) - {"bridge", *providers})
    if strangers:
        raise InitError(f"--set names {', '.join(strangers)}, which is not being set up "
                        "(add --provider)")
    sections: dict[str, dict[str, object]] = {
        "bridge": {k: typed(v) for k, v in settings.get("bridge", {}).items()}}
    for name in dict.fromkeys(providers):
        sections[name] = _section(name, settings.get(name, {}), ask, stand_in)
    registers: list[Register] = _listed(args.register or [], parse_register)
    if not registers:
        registers = (ask.list_of("Registers (NAME or NAME:manager)", "lane-1", parse_register)
                     if ask is not None else [Register("lane-1")])
    terminals: list[Terminal] = _listed(args.terminal or [], parse_terminal)
    if (args.terminal is None and ask is not None
            and any(PLUGINS[n].terminals for n in providers)):
        terminals = ask.list_of("Card terminals (NAME=SERIAL, empty: none yet)", "",
                                parse_terminal)
    public_url = args.public_url
    if public_url is None:
        public_url = (ask.ask("Public URL the providers send notifications to (empty: set "
                              "bridge.public_url later)") if ask is not None else "")
    data_dir = args.data_dir or (STANDARD_DATA_DIR if config_dir == DEFAULT_CONFIG_PATH.parent
                                 else config_dir / "data")
    printers: list[Printer] = _listed(args.printer, parse_printer)
    return Answers(config_dir=config_dir, data_dir=data_dir.absolute(),
                   providers=tuple(dict.fromkeys(providers)), settings=sections,
                   registers=tuple(registers), terminals=tuple(terminals),
                   printers=tuple(printers), ecr_listen=args.ecr_listen,
                   http_listen=args.http_listen, public_url=public_url)


def _key_bits(args: argparse.Namespace) -> dict[str, int]:
    out = {}
    for text in args.key_bits:
        name, _, bits = text.partition("=")
        if name not in PLUGINS or not bits.isdigit() or int(bits) not in KEY_SIZES:
            raise InitError(f"--key-bits {text!r}: PROVIDER=BITS with a provider of "
                            f"{', '.join(PLUGINS)} and BITS one of "
                            f"{', '.join(map(str, KEY_SIZES))}")
        out[name] = int(bits)
    return out


def _key_files(answers: Answers, role: str) -> list[KeyFile]:
    """The key files of the providers being set up whose KeySpec has ``role``."""
    return [KeyFile(provider=name, spec=spec, named=True,
                    path=key_path(answers, name, spec.config_key, spec.file_name))
            for name in answers.providers for spec in PLUGINS[name].keys if spec.role == role]


def _validate(answers: Answers, stand_in: Path) -> dict[str, object]:
    """The configuration mapping, checked like the daemon checks it (key files stood in for:
    they are written next); InitError naming the key if it is not valid."""
    # Cheap hashes of stand-in secrets: only their form is checked here; the real (slow)
    # hashes of the generated secrets are made once the answers are known to be good.
    cheap = {r.name: hash_secret(f"stand-in token of {r.name}", tagged=True, log2_n=1)
             for r in answers.registers}
    data = config_data(answers, token_hashes=cheap,
                       pin_hash=hash_secret("stand-in PIN", tagged=False, log2_n=1))
    trial = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
    for name in answers.providers:
        section = trial[name]
        assert isinstance(section, dict)
        for spec in PLUGINS[name].keys:
            section[spec.config_key] = str(stand_in)
    try:
        parse_config(trial, env={})
    except ConfigError as exc:
        raise InitError(f"configuration error: {exc}") from exc
    return data


# -- the command ---------------------------------------------------------------------------------


def _cmd_init(args: argparse.Namespace) -> int:
    ask = None if args.non_interactive else Questions(sys.stdin, sys.stdout)
    with tempfile.TemporaryDirectory() as tmp:
        stand_in = Path(tmp) / "key"
        stand_in.write_bytes(b"")
        try:
            answers = _gather(args, ask, stand_in)
            bits = _key_bits(args)
            _validate(answers, stand_in)
        except InitError as exc:
            print(f"posbridge init: {exc}", file=sys.stderr)
            return 2
    config_path = answers.config_dir / CONFIG_NAME
    merchant = _key_files(answers, "merchant")
    targets = [config_path, *(p for kf in merchant for p in (kf.path, public_half_path(kf.path)))]
    existing = [str(p) for p in targets if p.exists()]
    if existing and not args.force:
        print(f"posbridge init: already there: {', '.join(existing)}; nothing was written "
              "(--force replaces them; replaced merchant keys must go to the portals again)",
              file=sys.stderr)
        return 2
    account = service_account(args.service_user)
    tokens = {r.name: generate_token() for r in answers.registers}
    pin = f"{secrets.randbelow(10**6):06d}"
    data = config_data(answers, pin_hash=hash_secret(pin, tagged=False),
                       token_hashes={n: hash_secret(t, tagged=True) for n, t in tokens.items()})
    made = _write(answers, merchant, bits, data, config_path, account, force=args.force)
    print(_report(answers, config_path, made, data, tokens, pin, account, args.service_user))
    return 0


def _write(answers: Answers, merchant: list[KeyFile], bits: dict[str, int],
           data: dict[str, object], config_path: Path, account: Account | None, *,
           force: bool) -> list[MerchantKey]:
    group_owner = (0, account.gid) if account is not None else None
    make_dir(answers.config_dir, mode=0o750, owner=group_owner)
    make_dir(answers.data_dir, mode=0o750,
             owner=(account.uid, account.gid) if account is not None else None)
    made = [new_merchant_key(kf, bits=bits.get(kf.provider, kf.spec.bits),
                             owner=(account.uid, account.gid) if account is not None else None,
                             force=force)
            for kf in merchant]
    heading = ["posbridge configuration, written by `posbridge init`.",
               "Every key is described in config/README.md; check it with",
               f"`posbridge config check --config {config_path}`."]
    write_file(config_path, render_toml(data, heading=heading).encode("utf-8"), mode=0o640,
               owner=group_owner, force=force)
    return made


def _report(answers: Answers, config_path: Path, made: list[MerchantKey],
            data: dict[str, object], tokens: dict[str, str], pin: str,
            account: Account | None, service_user: str) -> str:
    owner = f", {account.name}" if account is not None else ""
    rows = [(str(config_path), "configuration (0640)")]
    rows += [(str(m.kf.path), f"{m.kf.provider} merchant key, RSA {m.bits}-bit (0600{owner})")
             for m in made]
    rows.append((str(answers.data_dir), f"data folder (0750{owner})"))
    width = max(len(r[0]) for r in rows)
    out = ["posbridge init: written", *(f"  {path:<{width}}  {what}" for path, what in rows)]
    if account is None and os.geteuid() == 0 and not account_exists(service_user):
        out.append(f"  note: there is no user {service_user!r} yet: the files are root's. "
                   f"Create it (see systemd/README.md) and give it {answers.data_dir} and "
                   "the private keys (chown).")
    for m in made:
        out += ["", merchant_portal_text(m.kf, m.public)]
    todo = [f"  {kf.provider}: download {kf.title}'s public key from its portal and save it "
            f"as {kf.path}" for kf in _key_files(answers, "provider")]
    todo += [f"  {key}: still a placeholder; set it in {config_path}"
             for key in placeholders_in(data)]
    if not answers.public_url:
        todo.append("  bridge.public_url: not set; the providers' notifications need it "
                    "(results still arrive by polling)")
    if todo:
        out += ["", "Still to do:", *todo]
    width = max(len(n) for n in tokens)
    out += ["", "Register tokens (shown only now; give each register its own):",
            *(f"  {name:<{width}}  {token}" for name, token in tokens.items()),
            "", f"Manager PIN (shown only now): {pin}",
            "", "Then:", f"  posbridge config check --config {config_path}",
            f"  posbridge doctor --config {config_path}"]
    return "\n".join(out)
