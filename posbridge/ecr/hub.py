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

from posbridge.ecr import protocol as proto
from posbridge.failpoints import failpoint
from posbridge.records import EventRecord

log = structlog.get_logger(__name__)


class Subscriber(Protocol):
    identity: str

    def deliver(self, frame: str) -> bool:
        """Queue a notification frame; False when the subscriber cannot take more."""


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
        """Send each event to the live connections of its identity: one frame, encoded once
        for all of them."""
        for event in events:
            txn = event.params.get("transaction")
            if isinstance(txn, dict):
                failpoint("publish", str(txn.get("state")))
            subs = self._subs.get(event.identity)
            if not subs:
                continue
            if event.params_json is not None:
                frame = proto.event_frame(event.method, event.seq, event.params_json)
            else:
                frame = proto.notification_frame(event.method,
                                                 {"seq": event.seq, **event.params})
            for sub in list(subs):
                if not sub.deliver(frame):
                    log.warning("subscriber_overflow", identity=event.identity)

    @property
    def connections(self) -> int:
        return sum(len(s) for s in self._subs.values())
