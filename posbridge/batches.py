"""End of day: per-terminal batches, their totals, and closing them at the provider.

Theory of operation
-------------------
A transaction joins its terminal's open batch in the same journal unit that makes it final
(:meth:`posbridge.engine.Engine._apply`). Closing batch *B* of a terminal is a small saga
whose every step is recorded before the next one starts, so a crash anywhere resumes it:

1. one unit: *B* becomes ``closing`` and batch *B+1* opens — from here on, transactions that
   become final join *B+1*, and *B*'s totals are frozen;
2. the provider's open-batch figures are read and compared with *B*'s card totals
   (a ``discrepancy`` is recorded when they differ);
3. one unit: ``close_sent`` is recorded, then the provider's ``batch.close`` is called;
4. one unit: *B* becomes ``closed`` with the provider's answer; ``batch.closed`` is emitted.

On resume, a batch still ``closing`` with ``close_sent`` may or may not have been closed at
the provider. The provider's open-batch count tells: if it still holds *B*'s card
transactions the close did not happen and is sent; otherwise — or when the figures cannot be
read — it is recorded as closed without a second ``batch.close``. A batch is never closed
twice; if the open-batch figures cannot be read before the first send, the close goes ahead
and its ``discrepancy`` says the totals could not be checked.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Sequence
from decimal import Decimal, InvalidOperation
from typing import Protocol

import structlog

from posbridge.engine import Engine
from posbridge.errors import PaymentError, RequestError
from posbridge.failpoints import failpoint
from posbridge.journal import Journal, JournalTx, now_ms
from posbridge.money import exponent, format_amount
from posbridge.records import BatchRecord, BatchState, Totals
from posbridge.views import batch_view

log = structlog.get_logger(__name__)


class BatchProvider(Protocol):
    async def batch_close(self, terminal_sn: str) -> dict[str, object]: ...

    async def open_batch(self, terminal_sn: str) -> dict[str, object]: ...


def card_figures(totals: dict[str, Totals]) -> tuple[int, int]:
    """(count, net) of a batch as the card provider counts them (minor units)."""
    return sum(t.count for t in totals.values()), sum(t.net for t in totals.values())


def provider_figures(data: dict[str, object], currency: str) -> tuple[int, int] | None:
    """(count, total in minor units) from the provider's open-batch answer, or None."""
    try:
        count = int(str(data["count"]))
        total = Decimal(str(data["total_amount"])) * 10 ** exponent(currency)
    except (KeyError, ValueError, InvalidOperation):
        return None
    if total != total.to_integral_value():
        return None
    return count, int(total)


def discrepancy(bridge: tuple[int, int], provider: tuple[int, int] | None,
                currency: str, *, why: str = "no figures in its answer") -> dict[str, object]:
    """Empty when the figures agree; else both sides of every figure that differs.

    Without the provider's figures nothing can be compared: that is reported (``why``), never
    taken as agreement."""
    if provider is None:
        return {"provider": why}
    out: dict[str, object] = {}
    if bridge[0] != provider[0]:
        out["count"] = {"bridge": bridge[0], "provider": provider[0]}
    if bridge[1] != provider[1]:
        out["total_amount"] = {"bridge": format_amount(bridge[1], currency),
                               "provider": format_amount(provider[1], currency),
                               "currency": currency}
    return out


class Batches:
    def __init__(
        self,
        *,
        engine: Engine,
        provider: BatchProvider | None,
        identities: Sequence[str],
        on_closed: Callable[[dict[str, object]], None] | None = None,
    ) -> None:
        self.engine = engine
        self.journal: Journal = engine.journal
        self.provider = provider
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

    async def view(self, batch: BatchRecord) -> dict[str, object]:
        totals = await self.journal.read(
            lambda r: r.batch_totals(batch.terminal_sn, batch.batch_no))
        return batch_view(batch, totals)

    async def history(self, terminal: str, limit: int = 20) -> list[dict[str, object]]:
        sn = self.engine.terminal(terminal).sn
        batches = await self.journal.read(lambda r: r.batches(sn, limit))
        return [await self.view(b) for b in batches]

    async def close(self, terminal: str, *, identity: str = "manager") -> dict[str, object]:
        term = self.engine.terminal(terminal)
        if self.provider is None:
            raise RequestError(1010, "not_allowed", "no card provider is configured")
        lock = self._locks.setdefault(term.sn, asyncio.Lock())
        async with lock:
            batch = await self.journal.run(lambda tx: _begin_close(tx, term.sn, now_ms()))
            failpoint("batch_close", "begun")
            return await self._finish(batch)

    async def resume(self) -> int:
        """Finish every close that a crash interrupted; returns how many."""
        closing = await self.journal.read(lambda r: r.batches_in_state(BatchState.CLOSING))
        for batch in closing:
            lock = self._locks.setdefault(batch.terminal_sn, asyncio.Lock())
            async with lock:
                try:
                    await self._finish(batch)
                except RequestError as exc:
                    log.warning("batch_resume_failed", terminal=batch.terminal_sn,
                                batch_no=batch.batch_no, error=exc.message)
        return len(closing)

    async def _finish(self, batch: BatchRecord) -> dict[str, object]:
        assert self.provider is not None
        sn, no = batch.terminal_sn, batch.batch_no
        bound = log.bind(terminal=sn, batch_no=no)
        totals = await self.journal.read(lambda r: r.batch_totals(sn, no))
        card_totals = await self.journal.read(lambda r: r.batch_totals(sn, no, "codepay"))
        currency = next(iter(card_totals), None) or next(iter(totals), None) or "USD"
        bridge = card_figures(card_totals)
        why = "no figures in its answer"
        try:
            open_data = await self.provider.open_batch(sn)
        except PaymentError as exc:
            # The figures only check the bridge's totals: without them the close still goes
            # ahead (the end of day must not hang on a check), and the report says so.
            bound.warning("open_batch_unavailable", error=exc.message)
            open_data = {"error": exc.message}
            why = f"open-batch figures unavailable: {exc.message}"
        figures = provider_figures(open_data, currency)
        if batch.close_sent and (bridge[0] == 0 or figures is None or figures[0] < bridge[0]):
            # The provider no longer holds this batch's transactions: it was closed.
            bound.info("batch_close_already_done")
            result: dict[str, object] = {"resumed": True, "open_batch_after": open_data}
            diff = batch.discrepancy or {}
        else:
            diff = discrepancy(bridge, figures, currency, why=why) if not batch.close_sent else (
                batch.discrepancy or {})
            batch = await self.journal.run(lambda tx: _mark_sent(tx, batch, diff))
            try:
                answer = await self.provider.batch_close(sn)
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
            lambda tx: _mark_closed(tx, batch, result, diff, totals, self.identities))
        view = batch_view(closed, totals)
        bound.info("batch_closed", discrepancy=bool(diff))
        if self.on_closed is not None:
            self.on_closed(view)
        return view


def _ensure_open(sn: str) -> Callable[[JournalTx], BatchRecord]:
    return lambda tx: tx.ensure_open_batch(sn, now_ms())


def _begin_close(tx: JournalTx, sn: str, at: int) -> BatchRecord:
    """Step 1: freeze the open batch (or pick up an interrupted close) and open the next."""
    for batch in tx.batches(sn, limit=5):
        if batch.state is BatchState.CLOSING:
            return batch
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
                 identities: Sequence[str]) -> BatchRecord:
    closed = dataclasses.replace(batch, state=BatchState.CLOSED, closed_at=now_ms(),
                                 provider_result=result, discrepancy=diff)
    tx.put_batch(closed)
    view = batch_view(closed, totals)
    for identity in identities:
        tx.emit(identity, "batch.closed", {"batch": view})
    return closed
