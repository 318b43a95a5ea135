"""The ECR protocol's JSON objects, built from journal records (pure).

Amounts become decimal strings in major units, times RFC 3339 UTC.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime

from posbridge.ecr.protocol import dumps
from posbridge.money import format_amount
from posbridge.operations import OPERATIONS, QR_KINDS
from posbridge.providers.base import TxnKind
from posbridge.records import BatchRecord, EventRecord, Totals, TxnRecord

#: Kinds whose Transaction shows its ``subject``: the QR payments and their refunds.
SUBJECT_KINDS = QR_KINDS | {op.kind for op in OPERATIONS.values() if op.originals & QR_KINDS}


def rfc3339(ms: int | None) -> str | None:
    """Epoch milliseconds as RFC 3339 UTC with milliseconds: ``2026-12-02T09:10:06.123Z``."""
    if ms is None:
        return None
    second, milli = divmod(ms, 1000)
    return f"{_utc_second(second)}.{milli:03d}Z"


@functools.lru_cache(maxsize=256)
def _utc_second(second: int) -> str:
    """``2026-12-02T09:10:06``: a second's date and time, formatted once (a transaction's
    times repeat the same few seconds)."""
    return datetime.fromtimestamp(second, tz=UTC).replace(tzinfo=None).isoformat()


def txn_view(rec: TxnRecord) -> dict[str, object]:
    """The Transaction object of ECR-PROTOCOL.md."""
    cur, exp = rec.currency, rec.exponent
    view: dict[str, object] = {
        "order_no": rec.order_no,
        "kind": rec.kind.value,
        "provider": rec.provider,
        "terminal": rec.terminal_sn,
        "amount": format_amount(rec.amount, cur, exp),
        "tip": format_amount(rec.tip, cur, exp),
        "currency": cur,
        "state": rec.state.value,
        "provider_ref": rec.provider_ref,
        "auth_no": rec.auth_no,
        "card": (
            {"brand": rec.card_brand, "last4": rec.card_last4}
            if rec.card_brand or rec.card_last4
            else None
        ),
        "qr": (
            {"deeplink": rec.qr_deeplink, "expires_at": rfc3339(rec.expires_at)}
            if rec.qr_deeplink
            else None
        ),
        "orig_order_no": rec.orig_order_no,
        "refunded_amount": format_amount(rec.refunded_amount, cur, exp),
        "cashback": format_amount(rec.cashback, cur, exp),
        "batch_no": rec.batch_no,
        "error": _error_view(rec),
        "created_at": rfc3339(rec.created_at),
        "updated_at": rfc3339(rec.updated_at),
    }
    if rec.kind is TxnKind.PREAUTH:
        view["completed_amount"] = format_amount(rec.completed_amount, cur, exp)
    if rec.description:
        view["description"] = rec.description
    if rec.kind in SUBJECT_KINDS and rec.subject:
        view["subject"] = rec.subject
    return view


#: How many orders' newest Transaction :func:`txn_encoded` keeps.
JSON_KEPT = 1024
_json_kept: dict[str, tuple[TxnRecord, dict[str, object], str]] = {}


def txn_encoded(rec: TxnRecord) -> tuple[dict[str, object], str]:
    """:func:`txn_view` and its compact JSON text (as in a frame).

    A record never changes, so both are kept for the newest record of each recent order (the
    last ``JSON_KEPT`` orders): the event that reports a state and the register's answer with
    that same record are built and encoded once. The dict is shared: read it, never change
    it."""
    kept = _json_kept.get(rec.order_no)
    if kept is not None and kept[0] is rec:
        return kept[1], kept[2]
    view = txn_view(rec)
    text = dumps(view)
    _json_kept.pop(rec.order_no, None)  # re-inserted last: the oldest order goes first
    _json_kept[rec.order_no] = (rec, view, text)
    if len(_json_kept) > JSON_KEPT:
        del _json_kept[next(iter(_json_kept))]
    return view, text


def txn_json(rec: TxnRecord) -> str:
    """:func:`txn_view` as the compact JSON text of a frame (see :func:`txn_encoded`)."""
    return txn_encoded(rec)[1]


def _error_view(rec: TxnRecord) -> dict[str, object] | None:
    if rec.attention is not None:
        return {
            "code": rec.attention.value,
            "message": "the provider approved this transaction after the bridge had finalised it;"
            " a manager must review it",
            "provider_code": rec.provider_code,
        }
    if rec.error_code is None:
        return None
    return {"code": rec.error_code, "message": rec.error_message,
            "provider_code": rec.provider_code}


def totals_view(totals: dict[str, Totals]) -> dict[str, dict[str, object]]:
    return {
        cur: {
            "count": t.count,
            "sales": format_amount(t.sales, cur, t.exponent),
            "refunds": format_amount(t.refunds, cur, t.exponent),
            "voids": format_amount(t.voids, cur, t.exponent),
            "tips": format_amount(t.tips, cur, t.exponent),
            "preauths": format_amount(t.preauths, cur, t.exponent),
            "completions": format_amount(t.completions, cur, t.exponent),
            "cashback": format_amount(t.cashback, cur, t.exponent),
            "tip_adjustments": format_amount(t.tip_adjustments, cur, t.exponent),
            "net": format_amount(t.net, cur, t.exponent),
        }
        for cur, t in totals.items()
    }


def batch_view(batch: BatchRecord, totals: dict[str, Totals]) -> dict[str, object]:
    """The Batch object of ECR-PROTOCOL.md."""
    return {
        "terminal": batch.terminal_sn,
        "batch_no": batch.batch_no,
        "state": batch.state.value,
        "opened_at": rfc3339(batch.opened_at),
        "closed_at": rfc3339(batch.closed_at),
        "count": sum(t.count for t in totals.values()),
        "totals": totals_view(totals),
        "provider_result": batch.provider_result,
        "discrepancy": batch.discrepancy or {},
    }


def event_view(event: EventRecord) -> dict[str, object]:
    return {
        "seq": event.seq,
        "type": event.method,
        "method": event.method,  # the same, named like the live notification
        "params": {"seq": event.seq, **event.params},  # exactly the live notification's params
        "at": rfc3339(event.at),
    }
