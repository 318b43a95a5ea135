"""The merchant daily statement, read to find orders by the merchant's own number (pure).

Only ``orderNum`` addresses an order at the platform, so a createThirdOrder whose answer was
lost can be neither queried nor cancelled. The daily statement (the crypto payment API,
"Merchant Daily Posting Statement", ``merchantBillingDay``) lists a day's orders with their
``appOrderId``: the bridge looks there instead, and never creates a second order.

What the documents leave open, and the readings taken here:

- The entries' fields are not in the documents; the platform's API reference lists
  ``appOrderId``, ``payCoinSymbol``, ``orderAmount`` (a number), ``orderType``, ``userId``,
  ``openId``, ``createTime`` and ``payTime`` ("actual payment completion time"), and the page
  as ``{count, list}``. An entry with a ``payTime`` is a paid order; one without is an order
  that exists and is not paid. ``orderNum`` is read when an entry has it (the reference does
  not list it).
- The statement's ``day`` is a calendar day in the platform's own time zone, which is not
  stated: the bridge reads every UTC day from 14 hours before to 14 hours after the order
  was recorded (:func:`days_around`), which covers every zone there is.
- Absence proves nothing while the order could still appear. Only once ``settle_s`` have
  passed since the order's payable time ended (:func:`absence_is_final`) does an order
  missing from every one of those days count as never created or never paid at the platform.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from posbridge.errors import OutcomeUnknown
from posbridge.providers.base import Outcome, ProviderReport
from posbridge.providers.opay.messages import coin_minor, text_value

__all__ = [
    "ZONE_SPAN_S",
    "Entry",
    "Page",
    "absence_is_final",
    "day_of",
    "days_around",
    "entry_report",
    "find",
    "read_page",
]

ZONE_SPAN_S: Final = 14 * 3600  # the farthest any time zone is from UTC (UTC+14, UTC-12)


@dataclass(frozen=True, slots=True)
class Entry:
    """One statement line: the merchant's number and what is known of the order."""

    order_no: str
    paid: bool
    order_num: str | None = None
    coin: str | None = None
    amount: object = None  # as the platform wrote it (str, int or Decimal): see entry_report


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a day's statement: its entries and the day's total count, if stated."""

    entries: tuple[Entry, ...]
    count: int | None


def day_of(epoch_ms: int) -> str:
    """The UTC calendar day of ``epoch_ms`` as ``yyyy-MM-dd``."""
    return dt.datetime.fromtimestamp(epoch_ms / 1000, dt.UTC).strftime("%Y-%m-%d")


def days_around(epoch_ms: int) -> list[str]:
    """Every UTC day within :data:`ZONE_SPAN_S` of ``epoch_ms`` (two or three), oldest
    first: the statement days that may hold an order made at that moment."""
    first = dt.datetime.fromtimestamp(epoch_ms / 1000 - ZONE_SPAN_S, dt.UTC).date()
    last = dt.datetime.fromtimestamp(epoch_ms / 1000 + ZONE_SPAN_S, dt.UTC).date()
    days = []
    while first <= last:
        days.append(first.strftime("%Y-%m-%d"))
        first += dt.timedelta(days=1)
    return days


def absence_is_final(*, created_ms: int, now_ms: int, expires_s: int, settle_s: int) -> bool:
    """Whether an order missing from its statement days is proven absent: its payable time
    (``expires_s``) and the settling time after it (``settle_s``) have both passed."""
    return now_ms >= created_ms + (expires_s + settle_s) * 1000


def _entry(item: Mapping[str, Any]) -> Entry | None:
    order_no = text_value(item.get("appOrderId"))
    if order_no is None:
        return None
    coin = text_value(item.get("payCoinSymbol"))
    return Entry(order_no=order_no, paid=text_value(item.get("payTime")) is not None,
                 order_num=text_value(item.get("orderNum")),
                 coin=coin.upper() if coin else None, amount=item.get("orderAmount"))


def read_page(data: Mapping[str, Any]) -> Page:
    """A verified merchantBillingDay answer as a :class:`Page`.

    Entries of other order types (``orderType`` other than 1) and lines without an
    ``appOrderId`` are left out. ``OutcomeUnknown`` when ``list`` is not a list.
    """
    items = data.get("list", [])
    if items is None:
        items = []
    if not isinstance(items, list):
        raise OutcomeUnknown("the crypto platform's statement has no list of orders")
    entries = []
    for item in items:
        if not isinstance(item, Mapping):
            continue
        order_type = text_value(item.get("orderType"))
        if order_type not in (None, "1"):
            continue
        entry = _entry(item)
        if entry is not None:
            entries.append(entry)
    count = text_value(data.get("count"))
    return Page(entries=tuple(entries),
                count=int(count) if count is not None and count.isdigit() else None)


def find(entries: Iterable[Entry], order_no: str) -> Entry | None:
    """The entry of ``order_no``: a paid one if there is one, else the first."""
    found = [e for e in entries if e.order_no == order_no]
    paid = [e for e in found if e.paid]
    return (paid or found)[0] if found else None


def entry_report(entry: Entry, *, coin: str, decimals: int) -> ProviderReport:
    """What a statement line says of an order: APPROVED when paid, else PENDING (it exists;
    closable once its ``orderNum`` is known).

    ``OutcomeUnknown`` when the line states another coin or an amount that cannot be one of
    ``decimals`` decimals.
    """
    if entry.coin is not None and entry.coin != coin:
        raise OutcomeUnknown(f"the statement shows order {entry.order_no} in {entry.coin}")
    amount = None
    if entry.amount is not None and entry.amount != "":
        try:
            amount = coin_minor(entry.amount, decimals)
        except ValueError as exc:
            raise OutcomeUnknown(f"statement amount: {exc}") from exc
    if entry.paid:
        return ProviderReport(order_no=entry.order_no, outcome=Outcome.APPROVED,
                              provider_ref=entry.order_num, amount=amount,
                              provider_code="statement:paid")
    return ProviderReport(order_no=entry.order_no, outcome=Outcome.PENDING,
                          provider_ref=entry.order_num, amount=amount,
                          closable=entry.order_num is not None,
                          provider_code="statement:unpaid")
