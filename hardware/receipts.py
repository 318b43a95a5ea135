"""The slips the bridge prints, as ESC/POS bytes (pure: plain values in, bytes out).

- :func:`qr_slip`: the wallet QR for the customer to scan, with amount and order number;
- :func:`card_receipt` / :func:`refund_receipt`: the result of a card sale, void or refund;
- :func:`batch_report`: the end-of-day totals of one terminal's batch.

Amounts arrive already formatted (``"12.50"``): money formatting belongs to
:mod:`posbridge.money`, not to the printer. A receipt never carries more of a card than its
brand and last four digits.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from hardware.escpos import EscPosJob, PrinterProfile

__all__ = ["BatchTotals", "batch_report", "batch_report_from_view", "card_receipt",
           "qr_slip", "refund_receipt"]

SUBJECT_LINES = 3  # a long subject is cut, the slip stays short
FEED_BEFORE_CUT = 4  # the cutter sits ~4 lines above the print head
TITLES = {"sale": "SALE", "void": "VOID", "refund": "REFUND", "qr_sale": "QR SALE",
          "qr_refund": "QR REFUND"}


def _pair(label: str, value: str, columns: int) -> str:
    """``label`` left and ``value`` right on one line of ``columns`` characters."""
    space = columns - len(label) - len(value)
    if space >= 1:
        return label + " " * space + value
    return f"{label} {value}"[:columns]


def _wrap(text: str, columns: int, max_lines: int) -> list[str]:
    lines = textwrap.wrap(text, columns) or [""]
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1][: columns - 3] + "..."
    return lines


def _finish(job: EscPosJob) -> bytes:
    return job.feed(FEED_BEFORE_CUT).cut(partial=True).bytes()


def qr_slip(
    *,
    deeplink: str,
    amount_text: str,
    currency: str,
    subject: str,
    order_no: str,
    expires_text: str,
    profile: PrinterProfile,
) -> bytes:
    """The wallet QR slip: amount, subject, the QR of ``deeplink``, order number and expiry.

    The QR is native (``GS ( k``) when ``profile.native_qr``, else a raster image sized to
    ``profile.width_dots``; it is centred with blank lines around it so the paper itself keeps
    the quiet zone. With native QR a slip is a few hundred bytes (under 1 KB).
    """
    cols = profile.columns
    job = EscPosJob(profile).init().align("center")
    job.bold().size(2, 2).line(f"{amount_text} {currency}").size().bold(False)
    for text in _wrap(subject, cols, SUBJECT_LINES):
        job.line(text)
    job.feed(1).qr(deeplink).feed(1)
    job.bold().line("Scan to pay with your wallet app").bold(False)
    job.align("left").line(_pair("Order", order_no, cols))
    if expires_text:
        job.line(_pair("Valid until", expires_text, cols))
    return _finish(job)


def card_receipt(
    *,
    kind: str,
    state: str,
    amount_text: str,
    currency: str,
    card_brand: str | None,
    card_last4: str | None,
    auth_no: str | None,
    order_no: str,
    time_text: str,
    profile: PrinterProfile,
    orig_order_no: str | None = None,
) -> bytes:
    """A transaction receipt: kind (``sale``, ``void``, ``refund``, ...), amount, card
    brand and last four digits, authorisation code, order number, time, and the result in
    large letters (``APPROVED``, ``DECLINED``, ...; ``state`` is the transaction state).
    """
    cols = profile.columns
    job = EscPosJob(profile).init().align("center")
    job.bold().size(2, 2).line(TITLES.get(kind, kind.upper())).size().bold(False)
    job.line(time_text).feed(1).align("left")
    if card_brand or card_last4:
        card = " ".join(p for p in (card_brand or "", f"**** {card_last4}" if card_last4 else "")
                        if p)
        job.line(_pair("Card", card, cols))
    if auth_no:
        job.line(_pair("Auth code", auth_no, cols))
    job.line(_pair("Order", order_no, cols))
    if orig_order_no:
        job.line(_pair("Original order", orig_order_no, cols))
    job.bold().line(_pair("AMOUNT", f"{amount_text} {currency}", cols)).bold(False)
    job.feed(1).align("center").bold().size(2, 2).line(state.upper()).size().bold(False)
    return _finish(job)


def refund_receipt(
    *,
    amount_text: str,
    currency: str,
    card_brand: str | None,
    card_last4: str | None,
    auth_no: str | None,
    order_no: str,
    time_text: str,
    state: str,
    profile: PrinterProfile,
    orig_order_no: str | None = None,
    kind: str = "refund",
) -> bytes:
    """A refund receipt: :func:`card_receipt` with the original order number when known."""
    return card_receipt(kind=kind, state=state, amount_text=amount_text, currency=currency,
                        card_brand=card_brand, card_last4=card_last4, auth_no=auth_no,
                        order_no=order_no, time_text=time_text, profile=profile,
                        orig_order_no=orig_order_no)


@dataclass(frozen=True, slots=True)
class BatchTotals:
    """One currency's figures of a batch, amounts already formatted."""

    currency: str
    sales: str
    tips: str
    refunds: str
    voids: str
    net: str
    count: int


def batch_report(
    *,
    terminal: str,
    batch_no: int | str,
    totals: Sequence[BatchTotals],
    discrepancies: Sequence[str] = (),
    opened_text: str = "",
    closed_text: str = "",
    profile: PrinterProfile,
) -> bytes:
    """The batch report: terminal, batch number, per-currency totals, and the discrepancy
    lines (bridge against provider) when they disagree.
    """
    cols = profile.columns
    job = EscPosJob(profile).init().align("center")
    job.bold().size(2, 2).line("BATCH REPORT").size().bold(False)
    job.align("left").line(_pair("Terminal", terminal, cols)).line(
        _pair("Batch", str(batch_no), cols))
    if opened_text:
        job.line(_pair("Opened", opened_text, cols))
    if closed_text:
        job.line(_pair("Closed", closed_text, cols))
    if not totals:
        job.feed(1).line("No transactions")
    for t in totals:
        job.feed(1).bold().line(t.currency).bold(False)
        for label, value in (("Sales", t.sales), ("Tips", t.tips), ("Refunds", t.refunds),
                             ("Voids", t.voids)):
            job.line(_pair(label, value, cols))
        job.bold().line(_pair("Net", t.net, cols)).bold(False)
        job.line(_pair("Count", str(t.count), cols))
    if discrepancies:
        job.feed(1).bold().line("DISCREPANCY").bold(False)
        for text in discrepancies:
            for line in _wrap(text, cols, SUBJECT_LINES):
                job.line(line)
    else:
        job.feed(1).line("Bridge and provider agree")
    return _finish(job)


def _discrepancy_lines(diff: Mapping[str, object]) -> list[str]:
    lines = []
    for key, value in diff.items():
        if isinstance(value, Mapping):
            parts = [f"{k} {v}" for k, v in value.items()]
            lines.append(f"{key}: {', '.join(parts)}")
        else:
            lines.append(f"{key}: {value}")
    return lines


def batch_report_from_view(batch: Mapping[str, object], *, profile: PrinterProfile) -> bytes:
    """:func:`batch_report` of a Batch object as ECR-PROTOCOL.md defines it (``terminal``,
    ``batch_no``, ``opened_at``, ``closed_at``, ``totals`` per currency with ``sales``,
    ``refunds``, ``voids``, ``tips``, ``net``, ``count``, and ``discrepancy``).
    Missing figures print as empty.
    """
    raw_totals = batch.get("totals")
    totals = []
    if isinstance(raw_totals, Mapping):
        for currency, fig in raw_totals.items():
            f = fig if isinstance(fig, Mapping) else {}
            count = f.get("count", 0)
            totals.append(BatchTotals(
                currency=str(currency), sales=str(f.get("sales", "")),
                tips=str(f.get("tips", "")), refunds=str(f.get("refunds", "")),
                voids=str(f.get("voids", "")), net=str(f.get("net", "")),
                count=count if isinstance(count, int) else 0))
    diff = batch.get("discrepancy")
    return batch_report(
        terminal=str(batch.get("terminal", "")), batch_no=str(batch.get("batch_no", "")),
        totals=totals,
        discrepancies=_discrepancy_lines(diff) if isinstance(diff, Mapping) else [],
        opened_text=str(batch.get("opened_at") or ""),
        closed_text=str(batch.get("closed_at") or ""), profile=profile)
