"""The daily statement: which days hold an order, when absence is final, reading lines."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from posbridge.errors import OutcomeUnknown
from posbridge.providers.base import Outcome
from posbridge.providers.opay import statement as st
from posbridge.providers.opay.envelope import load_json


def ms(text: str) -> int:
    return int(dt.datetime.fromisoformat(text).timestamp() * 1000)


@pytest.mark.parametrize(("when", "days"), [
    ("2024-03-10T12:00:00+00:00", ["2024-03-09", "2024-03-10", "2024-03-11"]),
    ("2024-03-10T00:30:00+00:00", ["2024-03-09", "2024-03-10"]),
    ("2024-03-10T23:30:00+00:00", ["2024-03-10", "2024-03-11"]),
    ("2024-12-31T13:00:00+00:00", ["2024-12-30", "2024-12-31", "2025-01-01"]),
])
def test_days_around_cover_every_time_zone(when: str, days: list[str]) -> None:
    assert st.days_around(ms(when)) == days
    instant = dt.datetime.fromisoformat(when)
    for hours in range(-12, 15):  # every zone's calendar day of that instant is searched
        local = instant.astimezone(dt.timezone(dt.timedelta(hours=hours)))
        assert local.strftime("%Y-%m-%d") in days


def test_absence_is_final_only_after_expiry_and_settling() -> None:
    created = ms("2024-03-10T12:00:00+00:00")
    kw = {"created_ms": created, "expires_s": 600, "settle_s": 300}
    assert not st.absence_is_final(now_ms=created + 899_999, **kw)
    assert st.absence_is_final(now_ms=created + 900_000, **kw)


STATEMENT = """{"count": 4, "list": [
 {"merchantUserId": 20001, "appOrderId": "A1", "payCoinSymbol": "USDT", "orderAmount": 12.5,
  "orderType": 1, "userId": 22033390, "createTime": "1710072000000", "payTime": "1710072060000"},
 {"appOrderId": "A2", "payCoinSymbol": "USDT", "orderAmount": "3", "orderType": 1,
  "createTime": "1710072000000", "payTime": ""},
 {"appOrderId": "A3", "orderType": 11, "orderAmount": 1},
 {"appOrderId": "A4", "orderNum": 1000000009, "payCoinSymbol": "btc", "orderAmount": 0.00000001}
]}"""


def test_read_page_keeps_payment_lines_and_reads_numbers_exactly() -> None:
    page = st.read_page(load_json(STATEMENT))
    assert page.count == 4
    assert [(e.order_no, e.paid, e.order_num, e.coin) for e in page.entries] == [
        ("A1", True, None, "USDT"), ("A2", False, None, "USDT"), ("A4", False, "1000000009", "BTC")]
    assert page.entries[0].amount == Decimal("12.5")
    assert st.entry_report(page.entries[2], coin="BTC", decimals=8).amount == 1


def test_entry_reports() -> None:
    page = st.read_page(load_json(STATEMENT))
    paid = st.entry_report(st.find(page.entries, "A1") or page.entries[0], coin="USDT",
                           decimals=6)
    assert (paid.outcome, paid.amount, paid.closable) == (Outcome.APPROVED, 12_500_000, False)
    unpaid = st.entry_report(page.entries[1], coin="USDT", decimals=6)
    assert (unpaid.outcome, unpaid.closable, unpaid.provider_ref) == (Outcome.PENDING, False, None)
    known = st.entry_report(page.entries[2], coin="BTC", decimals=8)
    assert (known.outcome, known.closable, known.provider_ref) == (
        Outcome.PENDING, True, "1000000009")
    with pytest.raises(OutcomeUnknown):
        st.entry_report(page.entries[0], coin="BTC", decimals=8)
    with pytest.raises(OutcomeUnknown):
        st.entry_report(page.entries[0], coin="USDT", decimals=0)


def test_find_prefers_the_paid_line() -> None:
    lines = [st.Entry(order_no="A", paid=False), st.Entry(order_no="A", paid=True),
             st.Entry(order_no="B", paid=True)]
    assert st.find(lines, "A") == lines[1]
    assert st.find(lines, "C") is None


@pytest.mark.parametrize("data", [{}, {"list": None}, {"count": "x", "list": []}])
def test_empty_pages(data: dict[str, object]) -> None:
    assert st.read_page(data).entries == ()


def test_a_list_that_is_not_a_list_is_unknown() -> None:
    with pytest.raises(OutcomeUnknown):
        st.read_page({"list": "A1"})
