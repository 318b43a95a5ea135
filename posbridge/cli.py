"""The ``posbridge`` command: ``main(argv)`` and its sub-commands.

Each sub-command is added by a *builder*: a function taking the parser's sub-parsers object,
adding its parser(s) and setting ``func`` (``args -> exit code``) with ``set_defaults``.
:data:`SUBCOMMANDS` lists the builders of this module; the other commands live in other modules
(``serve`` in :mod:`posbridge.cli_serve`; the register commands ``sale``, ``void``, ``refund``,
``cancel``, ``status``, ``batch``, ``transactions``, ``health`` and the rest in
:mod:`posbridge.cli_register`; ``init``, ``keys`` and ``doctor`` in :mod:`posbridge.cli_init`,
:mod:`posbridge.cli_keys` and :mod:`posbridge.cli_doctor`; ``audit`` in
:mod:`posbridge.cli_audit`; ``backup``, ``journal`` and ``reload`` in
:mod:`posbridge.cli_journal`), each adding its own with a ``register_commands`` builder. To add
a command, write its builder and list the command in :data:`COMMAND_MODULES`: a command runs
with only its own module imported.

Exit codes: 0 success, 1 failure reported by the command, 2 bad usage or bad configuration.
"""

from __future__ import annotations

import argparse
import getpass
import importlib
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from posbridge import __version__
from posbridge.cli_output import output_gone
from posbridge.config import DEFAULT_CONFIG_PATH, Config, load_config
from posbridge.errors import ConfigError
from posbridge.secrets import generate_token, hash_secret

SubParsers = argparse._SubParsersAction  # the type argparse gives add_subparsers() results
SubcommandBuilder = Callable[[Any], None]


# --------------------------------------------------------------------------------------------
# posbridge config check


def _add_config(sub: SubParsers[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("config", help="configuration tools")
    config_sub = p.add_subparsers(dest="config_command", metavar="{check}", required=True)
    check = config_sub.add_parser("check", help="validate a configuration file without starting")
    check.add_argument("--config", type=Path, default=DEFAULT_CONFIG_PATH,
                       help=f"configuration file (default {DEFAULT_CONFIG_PATH})")
    check.set_defaults(func=_cmd_config_check)


def _cmd_config_check(args: argparse.Namespace) -> int:
    """Print a one-line summary (exit 0) or the one error naming the key (stderr, exit 2)."""
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"posbridge: configuration error: {exc}", file=sys.stderr)
        return 2
    print(f"configuration OK: {summary(config)}")
    return 0


def summary(config: Config) -> str:
    """``"2 registers, 1 terminal, ..."``: what a configuration sets up, in one line."""

    def count(n: int, what: str) -> str:
        return f"{n} {what}{'' if n == 1 else 's'}"

    providers = list(config.providers)
    return ", ".join([
        count(len(config.ecr_clients), "register"), count(len(config.terminals), "terminal"),
        count(len(config.displays), "display"), count(len(config.printers), "printer"),
        f"providers: {', '.join(providers) or 'none'}",
        f"manager PIN {'set' if config.manager.pin_hash else 'not set'}",
    ])


# --------------------------------------------------------------------------------------------
# posbridge hash-secret


def _add_hash_secret(sub: SubParsers[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "hash-secret", help="hash a token or PIN for the configuration",
        description="Reads a secret on standard input (without echo on a terminal) and prints "
                    "its hash as the last line, for ecr_clients.token_hash or manager.pin_hash.")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--generate", action="store_true",
                      help="make a new random register token; print it, then its hash")
    mode.add_argument("--pin", action="store_true",
                      help="hash for manager.pin_hash (no token lookup tag, whatever the length)")
    p.set_defaults(func=_cmd_hash_secret)


def _cmd_hash_secret(args: argparse.Namespace) -> int:
    """Print the hash of a secret read from stdin (or of a new token) as the last line."""
    if args.generate:
        token = generate_token()
        print(token)
        print(hash_secret(token, tagged=True))
        return 0
    secret = _read_secret()
    if not secret:
        print("posbridge: no secret given on standard input", file=sys.stderr)
        return 2
    print(hash_secret(secret, tagged=False if args.pin else None))
    return 0


def _read_secret() -> str:
    """One line from stdin without its line ending; no echo when stdin is a terminal."""
    if sys.stdin.isatty():
        return getpass.getpass("secret: ")
    return sys.stdin.readline().rstrip("\r\n")


# --------------------------------------------------------------------------------------------
# The parser

SUBCOMMANDS: list[SubcommandBuilder] = [_add_config, _add_hash_secret]
OWN_COMMANDS: frozenset[str] = frozenset({"config", "hash-secret"})  # added by SUBCOMMANDS


# The module that adds each top-level command (its ``register_commands`` builder): ``main``
# imports only the module of the command it runs, so ``posbridge serve`` does not load the
# installer's, the auditor's or the register's tools. Help and unknown commands load them all.
COMMAND_MODULES: dict[str, str] = {
    "serve": "posbridge.cli_serve",
    **dict.fromkeys(("sale", "preauth", "preauth-cancel", "completion", "tip-adjust",
                     "checkout-qr", "qr-sale", "crypto-sale", "void", "refund", "cancel",
                     "status", "transactions", "batch", "health"), "posbridge.cli_register"),
    "simulate": "posbridge.sandbox.standalone",
    "init": "posbridge.cli_init",
    "keys": "posbridge.cli_keys",
    "doctor": "posbridge.cli_doctor",
    "audit": "posbridge.cli_audit",
    **dict.fromkeys(("backup", "journal", "reload"), "posbridge.cli_journal"),
}


def _other_builders(command: str | None = None) -> list[SubcommandBuilder]:
    """Builders of sub-commands living in other modules: only the one adding ``command``
    when it is known (none for this module's own), else all of them (for help and for the
    error naming a bad command)."""
    if command in OWN_COMMANDS:
        return []
    module = COMMAND_MODULES.get(command or "")
    names = [module] if module else list(dict.fromkeys(COMMAND_MODULES.values()))
    return [importlib.import_module(name).register_commands for name in names]


def _command_of(argv: list[str]) -> str | None:
    """The sub-command named by ``argv``: its first word that is not an option (the top level
    has only ``--help`` and ``--version``, which take no value)."""
    return next((arg for arg in argv if not arg.startswith("-")), None)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``posbridge`` parser: with every sub-command, or, given the ``command`` to run,
    with this module's and that command's only."""
    parser = argparse.ArgumentParser(prog="posbridge",
                                     description="Point-of-sale terminal bridge.")
    parser.add_argument("--version", action="version", version=f"posbridge {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for build in [*SUBCOMMANDS, *_other_builders(command)]:
        build(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    words = sys.argv[1:] if argv is None else argv
    parser = build_parser(_command_of(words))
    args = parser.parse_args(words)
    func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return func(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        if not output_gone():
            raise
        # Whoever read our output has gone (``posbridge transactions | head``): stop quietly,
        # as a tool killed by SIGPIPE would, and keep the interpreter's last flush quiet too.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
