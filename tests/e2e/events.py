"""Helpers over ``events.replay`` results (which mix transaction and terminal events)."""

from __future__ import annotations

from typing import Any


def txn_events(events: list[dict[str, Any]], order_no: str) -> list[dict[str, Any]]:
    """The ``transaction.updated`` events of one order, in ``seq`` order."""
    return [e for e in events if e["type"] == "transaction.updated"
            and e["params"]["transaction"]["order_no"] == order_no]


def txn_states(events: list[dict[str, Any]], order_no: str) -> list[str]:
    return [e["params"]["transaction"]["state"] for e in txn_events(events, order_no)]
