"""``posbridge keys new|show-public|check``: the merchant key pairs and the providers' keys.

- ``keys new PROVIDER`` makes the merchant key pair(s) of a provider (from its plug-in's
  ``KeySpec``), where the configuration says (else beside it), and prints the public key as
  the provider's portal takes it.
- ``keys show-public PROVIDER`` prints that public key again (``--format`` pem or base64;
  default the form the portal takes).
- ``keys check`` judges every key file of every configured provider (see
  :func:`posbridge.provider_keys.check_keys`); exit 0 when none failed, 1 otherwise.

No provider is named here: the commands loop over the plug-ins' declarations. Exit codes: 0
success, 1 a check failed, 2 bad usage, configuration or refused overwrite.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from posbridge.checks import exit_code, render_json, render_text
from posbridge.config import DEFAULT_CONFIG_PATH
from posbridge.errors import ConfigError
from posbridge.install_files import daemon_account, service_account, write_file
from posbridge.keyfiles import KeyFormatError, generate_rsa_pem, load_private_key, public_text
from posbridge.provider_keys import KeyFile, key_checks, key_files, public_half_path, read_raw
from posbridge.providers.registry import PLUGINS

__all__ = ["KEY_SIZES", "MerchantKey", "config_option", "new_merchant_key", "portal_text",
           "register_commands", "service_user_option"]

KEY_SIZES = (1024, 2048, 3072, 4096)
DEFAULT_SERVICE_USER = "posbridge"


def register_commands(sub: Any) -> None:
    """Add ``keys`` and its sub-commands to the main parser's sub-parsers."""
    p = sub.add_parser("keys", help="merchant key pairs and the providers' public keys")
    keys = p.add_subparsers(dest="keys_command", metavar="{new,show-public,check}",
                            required=True)

    q = keys.add_parser("new", help="make a provider's merchant key pair")
    q.add_argument("provider", choices=sorted(PLUGINS))
    config_option(q)
    q.add_argument("--bits", type=int, choices=KEY_SIZES,
                   help="RSA key size (default: what the provider's plug-in declares)")
    q.add_argument("--force", action="store_true", help="replace an existing key")
    service_user_option(q, "gets the key")
    q.set_defaults(func=_cmd_new)

    q = keys.add_parser("show-public", help="the merchant public key as the portal takes it")
    q.add_argument("provider", choices=sorted(PLUGINS))
    config_option(q)
    q.add_argument("--format", choices=("pem", "base64"),
                   help="PEM, or one line of Base64 DER (default: what the portal takes)")
    q.set_defaults(func=_cmd_show_public)

    q = keys.add_parser("check", help="check every key file of the configured providers")
    config_option(q)
    q.add_argument("--json", action="store_true", help="one JSON object")
    service_user_option(q, "must be able to read the keys")
    q.set_defaults(func=_cmd_check)


def config_option(p: argparse.ArgumentParser) -> None:
    """``--config PATH``, as every command that reads the configuration takes it."""
    p.add_argument("--config", type=Path, default=DEFAULT_CONFIG_PATH,
                   help=f"configuration file (default {DEFAULT_CONFIG_PATH})")


def service_user_option(p: argparse.ArgumentParser, what: str) -> None:
    """``--service-user NAME``: who runs the daemon and, when this runs as root, ``what``."""
    p.add_argument("--service-user", default=DEFAULT_SERVICE_USER,
                   help=f"the user the daemon runs as, who {what} when this runs as root "
                        f"(default {DEFAULT_SERVICE_USER})")


# -- shared with init -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MerchantKey:
    """A merchant key just written: where, how big, and its public half as text."""

    kf: KeyFile
    bits: int
    public: str


def portal_text(kf: KeyFile, public: str) -> str:
    """What to tell the installer about a merchant public key: where it goes, in which form,
    the key itself, and the plug-in's note."""
    form = "one line of Base64" if kf.spec.portal_format == "base64" else "PEM"
    lines = [f"{kf.provider}: give this public key to {kf.title}'s portal ({form}):",
             public.rstrip("\n")]
    if kf.spec.note:
        lines.append(f"note: {kf.spec.note}")
    return "\n".join(lines)


def new_merchant_key(kf: KeyFile, *, bits: int, owner: tuple[int, int] | None,
                     force: bool) -> MerchantKey:
    """Generate and write a merchant key pair: the private key (``0600``, handed to
    ``owner``) and its public half in ``<file>.pub`` in the portal's form (``0644``).
    FileExistsError (nothing written) if either exists and not ``force``."""
    half = public_half_path(kf.path)
    if not force:
        for path in (kf.path, half):
            if path.exists():
                raise FileExistsError(str(path))
    pem = generate_rsa_pem(bits)
    public = public_text(load_private_key(pem), kf.spec.portal_format)
    write_file(kf.path, pem, mode=0o600, owner=owner, force=force)
    write_file(half, (public.rstrip("\n") + "\n").encode("ascii"), mode=0o644, force=True)
    return MerchantKey(kf, bits, public)


# -- the commands -------------------------------------------------------------------------------


def _merchant_files(args: argparse.Namespace) -> list[KeyFile] | None:
    """The provider's merchant key files, or None after saying why there are none."""
    try:
        raw = read_raw(args.config)
    except ConfigError as exc:
        print(f"posbridge: configuration error: {exc}", file=sys.stderr)
        return None
    files = key_files(raw, os.environ, config_dir=args.config.absolute().parent,
                      providers=[args.provider])
    merchant = [kf for kf in files if kf.spec.role == "merchant"]
    if not merchant:
        print(f"posbridge: {args.provider} has no merchant key", file=sys.stderr)
        return None
    return merchant


def _cmd_new(args: argparse.Namespace) -> int:
    merchant = _merchant_files(args)
    if merchant is None:
        return 2
    account = service_account(args.service_user)
    owner = (account.uid, account.gid) if account is not None else None
    for kf in merchant:
        try:
            made = new_merchant_key(kf, bits=args.bits or kf.spec.bits, owner=owner,
                                    force=args.force)
        except FileExistsError as exc:
            print(f"posbridge: {exc} exists; --force replaces it (then give {kf.title}'s "
                  "portal the new public key)", file=sys.stderr)
            return 2
        owned = f", owned by {account.name}" if account is not None else ""
        print(f"wrote {kf.path} (RSA {made.bits}-bit private key, mode 0600{owned}) and "
              f"{public_half_path(kf.path)}")
        if not kf.named:
            print(f'add to [{kf.provider}] in {args.config}: {kf.spec.config_key} = '
                  f'"{kf.path}"')
        print(portal_text(kf, made.public))
    return 0


def _cmd_show_public(args: argparse.Namespace) -> int:
    merchant = _merchant_files(args)
    if merchant is None:
        return 2
    for kf in merchant:
        try:
            key = load_private_key(kf.path.read_bytes())
        except FileNotFoundError:
            print(f"posbridge: {kf.path} does not exist: make it with "
                  f"`posbridge keys new {kf.provider} --config {args.config}`", file=sys.stderr)
            return 1
        except (OSError, KeyFormatError) as exc:
            problem = exc.strerror if isinstance(exc, OSError) else str(exc)
            print(f"posbridge: {kf.path}: {problem}", file=sys.stderr)
            return 1
        if len(merchant) > 1:
            print(f"# {kf.key}")
        print(public_text(key, args.format or kf.spec.portal_format).rstrip("\n"))
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    try:
        checks = key_checks(args.config, daemon_account(args.service_user))
    except ConfigError as exc:
        print(f"posbridge: configuration error: {exc}", file=sys.stderr)
        return 2
    if not checks:
        print("no provider with key files is configured")
        return 0
    print(render_json(checks) if args.json else render_text(checks))
    return exit_code(checks)
