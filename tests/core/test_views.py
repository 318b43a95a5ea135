"""The Transaction object's JSON text, encoded once per record."""

from __future__ import annotations

import dataclasses
import json

from posbridge import views
from posbridge.lifecycle import State
from posbridge.providers.base import TxnKind
from posbridge.records import TxnRecord


def record(order_no: str = "V1", **kw: object) -> TxnRecord:
    base: dict[str, object] = dict(
        order_no=order_no, kind=TxnKind.SALE, provider="codepay", identity="lane-1",
        amount=1234, currency="USD", state=State.PENDING, fingerprint="f",
        created_at=1_700_000_000_000, updated_at=1_700_000_000_000,
        expires_at=1_700_000_180_000, terminal_sn="T1", description="Café ☕")
    base.update(kw)
    return TxnRecord(**base)  # type: ignore[arg-type]


def test_the_text_is_the_view_encoded_once_per_record() -> None:
    rec = record()
    view, text = views.txn_encoded(rec)
    assert view == views.txn_view(rec)
    assert json.loads(text) == view
    assert views.txn_encoded(rec)[1] is text  # the same record: not encoded again
    approved = dataclasses.replace(rec, state=State.APPROVED, card_brand="VISA")
    assert json.loads(views.txn_json(approved))["state"] == "approved"
    assert json.loads(views.txn_json(approved))["card"] == {"brand": "VISA", "last4": None}


def test_an_equal_but_other_record_object_is_encoded_anew() -> None:
    first, second = record("V2"), record("V2")
    assert first == second and first is not second
    assert views.txn_json(first) == views.txn_json(second)
    assert views.txn_encoded(second)[1] is views.txn_encoded(second)[1]


def test_only_the_newest_orders_are_kept() -> None:
    for i in range(views.JSON_KEPT + 10):
        views.txn_json(record(f"K{i}"))
    assert len(views._json_kept) == views.JSON_KEPT
    assert "K0" not in views._json_kept and f"K{views.JSON_KEPT + 9}" in views._json_kept


def test_times_are_rfc3339_utc_with_exact_milliseconds() -> None:
    assert views.rfc3339(None) is None
    assert views.rfc3339(0) == "1970-01-01T00:00:00.000Z"
    assert views.rfc3339(1_764_666_606_123) == "2025-12-02T09:10:06.123Z"
    assert views.rfc3339(1_764_666_606_999) == "2025-12-02T09:10:06.999Z"
    assert views.rfc3339(1_764_666_607_000) == "2025-12-02T09:10:07.000Z"
    # integer arithmetic: no float rounding takes a millisecond off late dates
    assert views.rfc3339(253_402_300_799_999) == "9999-12-31T23:59:59.999Z"
