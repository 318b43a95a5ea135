"""What a reload applies (tokens, the manager PIN) and what it names as needing a restart."""

from __future__ import annotations

import copy
from typing import Any

from posbridge.config import parse_config
from posbridge.reload import plan_reload
from posbridge.secrets import hash_secret


def cheap(secret: str, *, tagged: bool = True) -> str:
    return hash_secret(secret, tagged=tagged, log2_n=4)


BASE: dict[str, Any] = {
    "bridge": {"data_dir": "/tmp/unused", "max_amount": "100.00"},
    "ecr_clients": [
        {"name": "lane-1", "role": "cashier", "token_hash": cheap("lane-1-token-0123456789ab")},
        {"name": "office", "role": "manager", "token_hash": cheap("office-token-0123456789ab")},
    ],
    "manager": {"pin_hash": cheap("1234", tagged=False)},
}


def changed(**edits: Any) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    for path, value in edits.items():
        *where, key = path.split("__")
        node: Any = data
        for part in where:
            node = node[int(part)] if part.isdigit() else node[part]
        node[key] = value
    return data


def test_tokens_and_the_pin_are_applied_and_nothing_else_changes() -> None:
    running = parse_config(BASE, env={})
    new_token, new_pin = cheap("lane-1-new-token-0123456789"), cheap("9876", tagged=False)
    plan = plan_reload(running, parse_config(changed(
        ecr_clients__0__token_hash=new_token, manager__pin_hash=new_pin), env={}))
    assert plan.applied == ("ecr_clients.lane-1.token_hash", "manager.pin_hash")
    assert plan.restart_needed == () and plan.new_tokens == {"lane-1"}
    assert plan.config.ecr_clients[0].token_hash == new_token
    assert plan.config.manager.pin_hash == new_pin
    assert plan.config.bridge == running.bridge
    unchanged = plan_reload(running, parse_config(BASE, env={}))
    assert (unchanged.applied, unchanged.restart_needed) == ((), ())


def test_other_changes_are_named_and_not_applied() -> None:
    running = parse_config(BASE, env={})
    data = changed(bridge__max_amount="50.00", bridge__retention_days=30,
                   ecr_clients__1__role="cashier",
                   ecr_clients__0__token_hash=cheap("lane-1-new-token-0123456789"))
    plan = plan_reload(running, parse_config(data, env={}))
    assert plan.restart_needed == (
        "ecr_clients (a register added, removed, moved or given another role)",
        "bridge.max_amount", "bridge.retention_days")
    assert plan.applied == ("ecr_clients.lane-1.token_hash",)  # the register kept its role
    assert plan.config.bridge == running.bridge
    assert [c.role for c in plan.config.ecr_clients] == [c.role for c in running.ecr_clients]
    added = copy.deepcopy(BASE)
    added["ecr_clients"].append({"name": "lane-2", "role": "cashier",
                                 "token_hash": cheap("lane-2-token-0123456789ab")})
    plan = plan_reload(running, parse_config(added, env={}))
    assert plan.restart_needed[0].startswith("ecr_clients") and plan.new_tokens == set()
