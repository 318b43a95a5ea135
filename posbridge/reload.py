"""What a configuration reload may change while the daemon runs (pure).

``posbridge reload`` (or SIGHUP, e.g. ``systemctl reload posbridge``) makes the daemon read its
configuration file again. Two things change safely while it serves: the registers' tokens
(``ecr_clients[].token_hash``: a register's new token works at once, and its connections made
with the old one are closed) and the manager PIN (``manager.pin_hash``). Everything else
(listeners, terminals, providers, devices, limits, registers added, removed or given another
role) is built once at start: :func:`plan_reload` names each such change as needing a restart,
and it is not applied. The reload is audited (``config.reload``): ``ok`` when the file is now
wholly in force, ``refused`` naming what needs a restart, ``failed`` for a file that does not
load.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from posbridge.config import Config


@dataclass(frozen=True, slots=True)
class ReloadPlan:
    """The configuration to run with now, and what changed."""

    config: Config
    applied: tuple[str, ...]  # the keys now in force ("ecr_clients.lane-1.token_hash", ...)
    restart_needed: tuple[str, ...]  # the changed keys that only a restart applies
    new_tokens: frozenset[str]  # the registers whose token changed


def plan_reload(running: Config, loaded: Config) -> ReloadPlan:
    """Compare the running configuration with the file's; see the module docstring."""
    applied: list[str] = []
    restart: list[str] = []
    loaded_clients = {c.name: c for c in loaded.ecr_clients}
    clients = []
    new_tokens = set()
    for client in running.ecr_clients:
        other = loaded_clients.get(client.name)
        if other is not None and other.role == client.role \
                and other.token_hash != client.token_hash:
            clients.append(other)
            new_tokens.add(client.name)
            applied.append(f"ecr_clients.{client.name}.token_hash")
        else:
            clients.append(client)
    if [(c.name, c.role) for c in running.ecr_clients] != \
            [(c.name, c.role) for c in loaded.ecr_clients]:
        restart.append("ecr_clients (a register added, removed, moved or given another role)")
    if loaded.manager != running.manager:
        applied.append("manager.pin_hash")
    for f in dataclasses.fields(Config):
        if f.name in ("ecr_clients", "manager"):
            continue
        old, new = getattr(running, f.name), getattr(loaded, f.name)
        if old == new:
            continue
        if dataclasses.is_dataclass(old):
            restart += [f"{f.name}.{g.name}" for g in dataclasses.fields(old)
                        if getattr(old, g.name) != getattr(new, g.name)]
        elif f.name == "providers":
            restart += sorted(n for n in {*old, *new} if old.get(n) != new.get(n))
        else:
            restart.append(f.name)
    config = dataclasses.replace(running, ecr_clients=tuple(clients), manager=loaded.manager)
    return ReloadPlan(config, tuple(applied), tuple(restart), frozenset(new_tokens))
