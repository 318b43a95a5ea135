"""The key files of each configured provider, and what is wrong with each of them.

Which files there are comes from the provider plug-ins' :class:`~posbridge.providers.base.KeySpec`
declarations: a ``merchant`` key is the merchant's private key (its public half goes to the
provider's portal), a ``provider`` key is the provider's public key (downloaded from the
portal). Where they are comes from the configuration file as written, not from the validated
configuration: a configuration whose keys do not exist yet (which validation refuses) still
says where they go. A key the file does not name goes beside the file, under the KeySpec's
default name. ``POSBRIDGE_<PROVIDER>__<KEY>`` environment variables override the file, as
for the daemon.

Beside each merchant private key, ``keys new`` and ``init`` keep its public half as the
portal takes it, in ``<private key file>.pub``; :func:`check_keys` checks that the two still
make a pair, and that a provider key is not the merchant's own public key (a common mix-up).

:func:`check_keys` is pure: it judges what :func:`observe` read. Nothing here ever shows key
material.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from posbridge.checks import Check, fail, ok, warn
from posbridge.config import ENV_PREFIX
from posbridge.errors import ConfigError
from posbridge.install_files import (
    Account,
    FileFacts,
    file_facts,
    may_read,
    secret_mode_problem,
)
from posbridge.keyfiles import KeyFormatError, load_private_key, load_public_key, same_key
from posbridge.providers.base import KeySpec
from posbridge.providers.registry import PLUGINS

__all__ = ["KeyFile", "Observed", "check_keys", "configured_providers", "key_checks",
           "key_files", "observe", "provider_title", "public_half_path", "read_raw"]

#: No key file is this large; a bigger file is not read.
MAX_KEY_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class KeyFile:
    """One key file of one provider: where it is and whether the configuration names it."""

    provider: str
    spec: KeySpec
    path: Path
    named: bool  # False: the configuration does not name it; ``path`` is the default place

    @property
    def key(self) -> str:
        """The dotted configuration key, e.g. ``codepay.private_key_file``."""
        return f"{self.provider}.{self.spec.config_key}"

    @property
    def title(self) -> str:
        return provider_title(self.provider)


def provider_title(name: str) -> str:
    """A provider's name for people: its plug-in's title without the explanation in brackets
    (``CodePay Cloud Open API``)."""
    return PLUGINS[name].title.split(" (")[0] if name in PLUGINS else name


@dataclass(frozen=True, slots=True)
class Observed:
    """What reading one file gave: its ``stat``, its bytes, or why it could not be read."""

    facts: FileFacts
    content: bytes | None = None
    error: str | None = None


def read_raw(path: Path) -> dict[str, object]:
    """The configuration file as TOML, unvalidated; ConfigError naming the file if it cannot
    be read or parsed."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(str(path), f"cannot read the configuration file: {exc.strerror}") \
            from exc
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(str(path), f"not valid TOML: {exc}") from exc


def _env_value(env: Mapping[str, str], section: str, key: str) -> str | None:
    wanted = f"{ENV_PREFIX}{section}__{key}".upper()
    for var, value in env.items():
        if var.upper() == wanted:
            return value
    return None


def configured_providers(raw: Mapping[str, object], env: Mapping[str, str]) -> list[str]:
    """The plug-ins whose section the configuration has (in the file or by environment)."""
    prefixes = tuple(f"{ENV_PREFIX}{name}__".upper() for name in PLUGINS)
    from_env = {name for name, prefix in zip(PLUGINS, prefixes, strict=True)
                if any(var.upper().startswith(prefix) for var in env)}
    return [name for name in PLUGINS if name in raw or name in from_env]


def key_files(raw: Mapping[str, object], env: Mapping[str, str], *, config_dir: Path,
              providers: Sequence[str]) -> list[KeyFile]:
    """Every key file of ``providers``, in plug-in and KeySpec order."""
    out = []
    for name in providers:
        section = raw.get(name)
        table = section if isinstance(section, Mapping) else {}
        for spec in PLUGINS[name].keys:
            value = _env_value(env, name, spec.config_key)
            if value is None:
                written = table.get(spec.config_key)
                value = written if isinstance(written, str) else None
            if value:
                out.append(KeyFile(provider=name, spec=spec, path=Path(value), named=True))
            else:
                out.append(KeyFile(provider=name, spec=spec, path=config_dir / spec.file_name,
                                   named=False))
    return out


def public_half_path(private_key_file: Path) -> Path:
    """Where the public half of a merchant key is kept: ``<private key file>.pub``."""
    return private_key_file.with_name(private_key_file.name + ".pub")


def observe(path: Path) -> Observed:
    """Read ``path`` for :func:`check_keys` (at most :data:`MAX_KEY_BYTES`)."""
    facts = file_facts(path)
    if not facts.exists or not facts.is_file:
        return Observed(facts=facts)
    try:
        with path.open("rb") as f:
            return Observed(facts=facts, content=f.read(MAX_KEY_BYTES + 1))
    except OSError as exc:
        return Observed(facts=facts, error=exc.strerror or str(exc))


def key_checks(config: Path, reader: Account | None) -> list[Check]:
    """Every key check of the configuration file at ``config`` (ConfigError if it cannot be
    read): the files read, then judged by :func:`check_keys`."""
    raw = read_raw(config)
    providers = configured_providers(raw, os.environ)
    files = key_files(raw, os.environ, config_dir=config.absolute().parent, providers=providers)
    seen = [(kf, observe(kf.path),
             observe(public_half_path(kf.path))
             if kf.spec.role == "merchant" and public_half_path(kf.path).exists() else None)
            for kf in files]
    return check_keys(seen, reader)


# -- the checks (pure) --------------------------------------------------------------------------


def check_keys(files: Sequence[tuple[KeyFile, Observed, Observed | None]],
               reader: Account | None) -> list[Check]:
    """One check per key file. ``files`` pairs each key file with what was read of it and,
    for a merchant key, of its public half (None: not looked for). ``reader`` is the account
    the daemon runs as (None: unknown; readability by it is then not judged)."""
    merchant_keys: dict[str, list[RSAPrivateKey]] = {}
    checks: dict[int, Check] = {i: _not_named(kf) for i, (kf, _seen, _half) in enumerate(files)
                                if not kf.named}
    for i, (kf, seen, half) in enumerate(files):
        if kf.named and kf.spec.role == "merchant":
            check, key = _merchant(kf, seen, half, reader)
            checks[i] = check
            if key is not None:
                merchant_keys.setdefault(kf.provider, []).append(key)
    for i, (kf, seen, _half) in enumerate(files):
        if kf.named and kf.spec.role == "provider":
            checks[i] = _provider(kf, seen, reader, merchant_keys.get(kf.provider, []))
    return [checks[i] for i in range(len(files))]


def _missing(kf: KeyFile, seen: Observed) -> Check | None:
    """The check when the file is not there or cannot be read, else None."""
    name = f"key {kf.key}"
    where = f"{kf.path}"
    if not seen.facts.exists:
        if kf.spec.role == "merchant":
            return fail(name, f"{where} does not exist",
                        f"posbridge keys new {kf.provider} --config <this file>, then give "
                        f"the public key it prints to {kf.title}'s portal")
        return fail(name, f"{where} does not exist",
                    f"download {kf.title}'s public key from its portal and save it as {where}")
    if not seen.facts.is_file:
        return fail(name, f"{where} is not a file", f"put the key file itself at {where}")
    if seen.error is not None or seen.content is None:
        return fail(name, f"cannot read {where}: {seen.error}",
                    "run this as root or as the service user, or fix the file's owner")
    if len(seen.content) > MAX_KEY_BYTES:
        return fail(name, f"{where} is too large to be a key file",
                    f"put the key itself (PEM or one line of Base64) in {where}")
    return None


def _unreadable_by(kf: KeyFile, facts: FileFacts, reader: Account | None) -> Check | None:
    if reader is None or may_read(facts, reader):
        return None
    # A private key is handed to the daemon's user; a provider's public key is no secret.
    fix = (f"chown {reader.name} {kf.path}" if kf.spec.role == "merchant"
           else f"chmod 644 {kf.path}")
    return fail(f"key {kf.key}", f"{kf.path} cannot be read by {reader.name}, who runs "
                                 "the daemon", fix)


def _merchant(kf: KeyFile, seen: Observed, half: Observed | None,
              reader: Account | None) -> tuple[Check, RSAPrivateKey | None]:
    name = f"key {kf.key}"
    missing = _missing(kf, seen)
    if missing is not None:
        return missing, None
    assert seen.content is not None
    try:
        key = load_private_key(seen.content, full_check=True)
    except KeyFormatError as exc:
        return fail(name, f"{kf.path}: {exc}",
                    f"the merchant's RSA private key goes here (posbridge keys new "
                    f"{kf.provider} makes one)"), None
    problem = secret_mode_problem(seen.facts.mode)
    if problem is not None:
        return fail(name, f"{kf.path}: {problem}", f"chmod 600 {kf.path}"), key
    unreadable = _unreadable_by(kf, seen.facts, reader)
    if unreadable is not None:
        return unreadable, key
    detail = f"RSA {key.key_size}-bit private key, mode {seen.facts.mode:04o}"
    if half is not None and half.content is not None:
        try:
            matches = same_key(key, load_public_key(half.content))
        except KeyFormatError:
            matches = False
        if not matches:
            return fail(name, f"{half.facts.path} is not the public half of {kf.path}",
                        f"if {kf.title}'s portal has the key in {half.facts.path}, put its "
                        f"private key back; else give the portal the key from `posbridge "
                        f"keys show-public {kf.provider}` and delete {half.facts.path}"), key
        detail += f"; {half.facts.path.name} is its public half"
    return ok(name, detail), key


def _provider(kf: KeyFile, seen: Observed, reader: Account | None,
              merchant_keys: list[RSAPrivateKey]) -> Check:
    name = f"key {kf.key}"
    missing = _missing(kf, seen)
    if missing is not None:
        return missing
    assert seen.content is not None
    try:
        public = load_public_key(seen.content)
    except KeyFormatError as exc:
        try:
            load_private_key(seen.content)
        except KeyFormatError:
            return fail(name, f"{kf.path}: {exc}",
                        f"download {kf.title}'s public key from its portal into {kf.path}")
        return fail(name, f"{kf.path} holds a private key, where {kf.title}'s public key "
                          "belongs",
                    f"download {kf.title}'s public key from its portal into {kf.path}; "
                    "keep private keys out of it")
    if any(same_key(mine, public) for mine in merchant_keys):
        return fail(name, f"{kf.path} is the merchant's own public key, not {kf.title}'s",
                    f"download {kf.title}'s public key (the gateway's or platform's) from its "
                    f"portal into {kf.path}")
    unreadable = _unreadable_by(kf, seen.facts, reader)
    if unreadable is not None:
        return unreadable
    return ok(name, f"RSA {public.key_size}-bit public key of {kf.title}")


def _not_named(kf: KeyFile) -> Check:
    return warn(f"key {kf.key}", "not set in the configuration",
                f"set {kf.spec.config_key} in [{kf.provider}] if {kf.title} signs with RSA "
                f"(default place: {kf.path})")
