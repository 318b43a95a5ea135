"""The event hub: one frame per event, the same text for every live connection."""

from __future__ import annotations

import json

from posbridge.ecr import protocol as proto
from posbridge.ecr.hub import EventHub
from posbridge.records import EventRecord


class Sub:
    def __init__(self, identity: str) -> None:
        self.identity = identity
        self.frames: list[str] = []

    def deliver(self, frame: str) -> bool:
        self.frames.append(frame)
        return True


def test_an_event_reaches_each_connection_of_its_identity_as_the_notification() -> None:
    hub = EventHub()
    a1, a2, b = Sub("lane-1"), Sub("lane-1"), Sub("lane-2")
    for sub in (a1, a2, b):
        hub.add(sub)
    params: dict[str, object] = {"transaction": {"order_no": "A1", "description": "Café ☕"}}
    encoded = EventRecord("lane-1", 7, "transaction.updated", params, 1, proto.dumps(params))
    plain = EventRecord("lane-1", 8, "terminal.status", {"terminal": "T1", "online": True}, 2)
    hub.publish([encoded, plain])
    assert a1.frames == a2.frames == [
        proto.notification_frame("transaction.updated", {"seq": 7, **params}),
        proto.notification_frame("terminal.status", {"seq": 8, "terminal": "T1",
                                                     "online": True})]
    assert a1.frames[0] is a2.frames[0]  # encoded once for both
    assert json.loads(a1.frames[0])["params"]["seq"] == 7
    assert b.frames == []
