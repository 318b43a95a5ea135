"""Fan-out of committed events to the live connections of each register identity.

The journal calls :meth:`EventHub.publish` after each commit, in commit order. Each live
connection has a bounded outbox; a register too slow to keep up is disconnected rather than
allowed to grow memory without bound — it reconnects and asks ``events.replay``, so nothing
is lost.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import structlog

from posbridge.failpoints import failpoint
from posbridge.records import EventRecord

log = structlog.get_logger(__name__)


class Subscriber(Protocol):
    identity: str

    def deliver(self, method: str, params: dict[str, object]) -> bool:
        """Queue a notification; False when the subscriber cannot take more."""


class EventHub:
    def __init__(self) -> None:
        self._subs: dict[str, set[Subscriber]] = {}

    def add(self, sub: Subscriber) -> None:
        self._subs.setdefault(sub.identity, set()).add(sub)

    def remove(self, sub: Subscriber) -> None:
        subs = self._subs.get(sub.identity)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subs[sub.identity]

    def publish(self, events: Sequence[EventRecord]) -> None:
        for event in events:
            txn = event.params.get("transaction")
            if isinstance(txn, dict):
                failpoint("publish", str(txn.get("state")))
            for sub in list(self._subs.get(event.identity, ())):
                params = {"seq": event.seq, **event.params}
                if not sub.deliver(event.method, params):
                    log.warning("subscriber_overflow", identity=event.identity)

    @property
    def connections(self) -> int:
        return sum(len(s) for s in self._subs.values())
