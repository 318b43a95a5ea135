"""End of day: per-terminal batches, their totals, and closing them at the provider.

Theory of operation
-------------------
A transaction joins its terminal's open batch in the same journal unit that makes it final
(:meth:`posbridge.engine.Engine._apply`). Closing batch *B* of a terminal is a small saga
whose every step is recorded before the next one starts, so a crash anywhere resumes it:

1. one unit: *B* becomes ``closing`` and batch *B+1* opens — from here on, transactions that
   become final join *B+1*, and *B*'s totals are frozen;
2. each provider that can state figures (``caps.batch_figures``) is asked for them and they
   are compared with the bridge's own totals of that provider's transactions in *B*: the
   terminal's own provider (its open batch), and every other provider with approved
   transactions in *B* (e.g. the crypto sales of the lane, checked against the platform's daily
   statement). A ``discrepancy`` is recorded when they differ: the terminal provider's at the
   top level, each other provider's under its name;
3. one unit: ``close_sent`` is recorded, then the terminal provider's batch close is called
   (``caps.batch_close``);
4. one unit: *B* becomes ``closed`` with the provider's answer; ``batch.closed`` is emitted.

On resume, a batch still ``closing`` with ``close_sent`` may or may not have been closed at
the provider. The provider's open-batch count tells: if it still holds *B*'s transactions the
close did not happen and is sent; otherwise — or when the figures cannot be read — it is
recorded as closed without a second close. A batch is never closed twice; if the figures
cannot be read before the first send, the close goes ahead and its ``discrepancy`` says the
totals could not be checked.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Sequence

import structlog

from posbridge import batch_totals
from posbridge.audit import BATCH_CLOSE, LOCAL, SYSTEM, AuditEntry
from posbridge.audit_log import append as append_audit
from posbridge.engine import Engine
from posbridge.errors import PaymentError, RequestError
from posbridge.failpoints import failpoint
from posbridge.journal import Journal, JournalTx, Reads, now_ms
from posbridge.money import format_amount
from posbridge.operations import fold_totals
from posbridge.providers.base import BatchFigures, Capabilities, PaymentOrder, Provider, TxnKind
from posbridge.records import BatchRecord, BatchState, Totals, TxnRecord
from posbridge.views import batch_view

log = structlog.get_logger(__name__)

#: (count, net) of the bridge's own totals, by currency
Figures = dict[str, tuple[int, int]]


Row = tuple[str, int | None, str, int, int, int, int]


def own_figures(rows: list[Row], caps: Capabilities) -> Figures:
    """(count, net) per currency of a provider's transactions in a batch, as that provider
    counts them (minor units): only the kinds its figures add up, and a count without those
    that move the total only."""
    kinds = caps.batch_kinds
    kept = [r for r in rows if kinds is None or TxnKind(r[2]) in kinds]
    counted = {cur: t.count for cur, t in fold_totals(
        [r for r in kept if TxnKind(r[2]) not in caps.batch_uncounted]).items()}
    return {cur: (counted.get(cur, 0), t.net) for cur, t in fold_totals(kept).items()}


def discrepancy(bridge: Figures, provider: list[BatchFigures] | None,
                *, why: str = "no figures in its answer") -> dict[str, object]:
    """Empty when the figures agree; else both sides of every figure that differs.

    Without the provider's figures nothing can be compared: that is reported (``why``), never
    taken as agreement. A currency only one side has counts as zero on the other."""
    if provider is None:
        return {"provider": why}
    stated = {f.currency: f for f in provider}
    out: dict[str, object] = {}
    for cur in sorted(set(bridge) | set(stated)):
        count, net = bridge.get(cur, (0, 0))
        theirs = stated.get(cur)
        if theirs is None:
            theirs = BatchFigures(currency=cur, count=0, total=0)
        if theirs.count is None or theirs.total is None:
            return {"provider": why}
        exp = theirs.exponent
        if count != theirs.count:
            out["count"] = {"bridge": count, "provider": theirs.count}
        if net != theirs.total:
            out["total_amount"] = {"bridge": format_amount(net, cur, exp),
                                   "provider": format_amount(theirs.total, cur, exp),
                                   "currency": cur}
    return out


class Batches:
    def __init__(
        self,
        *,
        engine: Engine,
        identities: Sequence[str],
        on_closed: Callable[[dict[str, object]], None] | None = None,
    ) -> None:
        self.engine = engine
        self.journal: Journal = engine.journal
        self.identities = tuple(identities)
        self.on_closed = on_closed
        self._locks: dict[str, asyncio.Lock] = {}

    async def status(self, terminal: str | None) -> list[dict[str, object]]:
        terms = [self.engine.terminal(terminal)] if terminal else list(self.engine.terminals)
        out = []
        for term in terms:
            batch = await self.journal.run(_ensure_open(term.sn))
            out.append(await self.view(batch))
        return out

    async def totals(self, terminal_sn: str, batch_no: int) -> dict[str, Totals]:
        """A batch's totals: those kept with it at its close, else from its rows."""
        return await self.journal.read(lambda r: _totals_of(r, terminal_sn, batch_no))

    async def _rows(self, terminal_sn: str, batch_no: int,
                    provider: str | None = None) -> list[Row]:
        return await self.journal.read(lambda r: r.batch_rows(terminal_sn, batch_no, provider))

    async def view(self, batch: BatchRecord) -> dict[str, object]:
        return batch_view(batch, await self.totals(batch.terminal_sn, batch.batch_no))

    async def history(self, terminal: str, limit: int = 20) -> list[dict[str, object]]:
        sn = self.engine.terminal(terminal).sn
        batches = await self.journal.read(lambda r: r.batches(sn, limit))
        return [await self.view(b) for b in batches]

    def _closer(self, sn: str) -> Provider:
        """The provider that closes terminal ``sn``'s batch, else 1010."""
        term = self.engine.terminal(sn)
        provider = self.engine.providers.get(term.provider)
        if provider is None or not provider.caps.batch_close:
            raise RequestError(1010, "not_allowed",
                               f"no provider that closes batches is configured for {term.name}")
        return provider

    async def close(self, terminal: str, *, identity: str = "manager",
                    audit: AuditEntry | None = None) -> dict[str, object]:
        """Close the terminal's open batch (or finish its interrupted close); ``audit`` is
        recorded in the unit that records it closed."""
        term = self.engine.terminal(terminal)
        closer = self._closer(term.sn)
        lock = self._locks.setdefault(term.sn, asyncio.Lock())
        async with lock:
            batch = await self.journal.run(
                lambda tx: _begin_close(tx, term.sn, now_ms(), closer.name))
            failpoint("batch_close", "begun")
            return await self._finish(batch, audit)

    async def resume(self) -> int:
        """Finish every close that a crash interrupted; returns how many."""
        closing = await self.journal.read(lambda r: r.batches_in_state(BatchState.CLOSING))
        for batch in closing:
            lock = self._locks.setdefault(batch.terminal_sn, asyncio.Lock())
            async with lock:
                try:
                    await self._finish(batch, AuditEntry(
                        actor=SYSTEM, peer=LOCAL, action=BATCH_CLOSE,
                        detail={"resumed": True}))
                except RequestError as exc:
                    log.warning("batch_resume_failed", terminal=batch.terminal_sn,
                                batch_no=batch.batch_no, error=exc.message)
        return len(closing)

    async def _figures(self, provider: Provider, batch: BatchRecord,
                       members: list[TxnRecord]) -> tuple[list[BatchFigures] | None, str, object]:
        """The provider's figures for its transactions in ``batch`` (None when it cannot say,
        with why), and its answer for the report."""
        orders = [PaymentOrder(order_no=r.order_no, kind=r.kind, amount=r.amount,
                               currency=r.currency, tip=r.tip, terminal_sn=r.terminal_sn,
                               provider_ref=r.provider_ref, exponent=r.exponent,
                               created_at_ms=r.created_at) for r in members]
        try:
            figures = await provider.batch_figures(batch.terminal_sn, orders)
        except PaymentError as exc:
            # The figures only check the bridge's totals: without them the close still goes
            # ahead (the end of day must not hang on a check), and the report says so.
            log.warning("batch_figures_unavailable", terminal=batch.terminal_sn,
                        batch_no=batch.batch_no, provider=provider.name, error=exc.message)
            return None, f"open-batch figures unavailable: {exc.message}", {"error": exc.message}
        detail: object = figures[0].detail if len(figures) == 1 else [
            dict(f.detail) for f in figures]
        if any(f.count is None or f.total is None for f in figures):
            return None, "no figures in its answer", detail
        return figures, "no figures in its answer", detail

    async def _finish(self, batch: BatchRecord,
                      audit: AuditEntry | None = None) -> dict[str, object]:
        sn, no = batch.terminal_sn, batch.batch_no
        closer = self._closer(sn)
        bound = log.bind(terminal=sn, batch_no=no)
        totals = await self.totals(sn, no)
        bridge = own_figures(await self._rows(sn, no, closer.name), closer.caps)
        figures, why, open_data = await self._figures(
            closer, batch, await self.journal.read(_members(sn, no, closer.name)))
        own_count = sum(count for count, _net in bridge.values())
        stated_count = sum(f.count or 0 for f in figures) if figures is not None else None
        if batch.close_sent and (own_count == 0 or stated_count is None
                                 or stated_count < own_count):
            # The provider no longer holds this batch's transactions: it was closed.
            bound.info("batch_close_already_done")
            result: dict[str, object] = {"resumed": True, "open_batch_after": open_data}
            diff = batch.discrepancy or {}
        else:
            if batch.close_sent:
                diff = batch.discrepancy or {}
            else:
                diff = discrepancy(bridge, figures, why=why)
                diff.update(await self._reconcile_others(batch, closer))
            batch = await self.journal.run(lambda tx: _mark_sent(tx, batch, diff))
            try:
                answer = await closer.batch_close(sn)
            except PaymentError as exc:
                bound.warning("batch_close_failed", error=exc.message)
                raise RequestError(1008 if exc.provider_code else 1007,
                                   "provider_rejected" if exc.provider_code
                                   else "provider_unreachable",
                                   f"batch.close failed: {exc.message}; it will be retried",
                                   provider_code=exc.provider_code) from exc
            failpoint("batch_close", "answered")
            result = {"batch_close": answer, "open_batch_before": open_data}
        closed = await self.journal.run(
            lambda tx: _mark_closed(tx, batch, result, diff, totals, self.identities, audit))
        view = batch_view(closed, totals)
        bound.info("batch_closed", discrepancy=bool(diff))
        if self.on_closed is not None:
            self.on_closed(view)
        return view

    async def _reconcile_others(self, batch: BatchRecord,
                                closer: Provider) -> dict[str, object]:
        """Each other provider with approved transactions in ``batch`` that can state figures
        (e.g. a crypto platform's daily statement), compared with the bridge's: the
        differences, under each provider's name."""
        sn, no = batch.terminal_sn, batch.batch_no
        out: dict[str, object] = {}
        for name, provider in self.engine.providers.items():
            if provider is closer or not provider.caps.batch_figures:
                continue
            members = await self.journal.read(_members(sn, no, name))
            if not members:
                continue
            bridge = own_figures(await self._rows(sn, no, name), provider.caps)
            figures, why, _detail = await self._figures(provider, batch, members)
            diff = discrepancy(bridge, figures, why=why)
            if diff:
                out[name] = diff
        return out


def _totals_of(reads: Reads, sn: str, no: int) -> dict[str, Totals]:
    kept = batch_totals.stored(reads.conn, sn, no)
    return kept if kept is not None else fold_totals(reads.batch_rows(sn, no))


def _members(sn: str, no: int, provider: str) -> Callable[[Reads], list[TxnRecord]]:
    return lambda r: r.batch_members(sn, no, provider)


def _ensure_open(sn: str) -> Callable[[JournalTx], BatchRecord]:
    return lambda tx: tx.ensure_open_batch(sn, now_ms())


def _begin_close(tx: JournalTx, sn: str, at: int, provider: str) -> BatchRecord:
    """Step 1: freeze the open batch (or pick up an interrupted close) and open the next.

    Refused (1010) while a payment of the terminal's provider is still in flight on it (a
    sale, a completion, a tip adjustment...): its result belongs in this batch, at the
    provider as in the bridge."""
    for batch in tx.batches(sn, limit=5):
        if batch.state is BatchState.CLOSING:
            return batch
    live = tx.live_on(sn, provider)
    if live:
        names = ", ".join(r.order_no for r in live[:5]) + (" ..." if len(live) > 5 else "")
        raise RequestError(1010, "not_allowed",
                           f"{len(live)} payment(s) still in flight on this terminal ({names}):"
                           " close the batch once they have ended", field="terminal")
    batch = tx.ensure_open_batch(sn, at)
    closing = dataclasses.replace(batch, state=BatchState.CLOSING)
    tx.put_batch(closing)
    tx.put_batch(BatchRecord(sn, batch.batch_no + 1, BatchState.OPEN, at))
    return closing


def _mark_sent(tx: JournalTx, batch: BatchRecord, diff: dict[str, object]) -> BatchRecord:
    sent = dataclasses.replace(batch, close_sent=True, discrepancy=diff)
    tx.put_batch(sent)
    return sent


def _mark_closed(tx: JournalTx, batch: BatchRecord, result: dict[str, object],
                 diff: dict[str, object], totals: dict[str, Totals],
                 identities: Sequence[str], audit: AuditEntry | None = None) -> BatchRecord:
    """Step 4: the batch is closed, its totals kept with it, its audit record appended."""
    closed = dataclasses.replace(batch, state=BatchState.CLOSED, closed_at=now_ms(),
                                 provider_result=result, discrepancy=diff)
    tx.put_batch(closed)
    batch_totals.store(tx.conn, batch.terminal_sn, batch.batch_no, totals)
    if audit is not None:
        assert closed.closed_at is not None
        append_audit(tx.conn, audit.about(
            terminal=batch.terminal_sn, batch_no=batch.batch_no, discrepancy=bool(diff),
            net={cur: t.net for cur, t in totals.items()}), closed.closed_at)
    view = batch_view(closed, totals)
    for identity in identities:
        tx.emit(identity, "batch.closed", {"batch": view})
    return closed
