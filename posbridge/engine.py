"""The payment engine: drives every transaction to exactly one final state.

Theory of operation
-------------------
0. **Plug-ins and rows.** The engine never names a provider nor an operation: a request's
   row of :data:`~posbridge.operations.OPERATIONS` says which original it needs, its guard,
   where its amount comes from and what its approval does to its original; the provider is
   the terminal's, the original's, or the configured one that declares the operation, and its
   :class:`~posbridge.providers.base.Capabilities` say what it can do (close, reverse, be
   asked about an order by ``order_no``, look for a lost one).
1. **Intent first.** A payment request becomes a ``pending`` row in the journal before any
   provider is called. The insert is idempotent by ``order_no``: the same parameters give
   back the existing transaction, different ones are a conflict (1004). The row's guard runs
   in the same journal unit (refundable totals, open holds, open batches), so concurrent
   requests cannot both pass it.
2. **One runner per live transaction.** A task creates the order at the provider and then
   reconciles: it polls with backoff, wakes up early on a notification or a cancel request,
   closes the order when it expires or is cancelled, and stops once the state is final.
   The runner never sends a second create for an order whose first create may have arrived:
   a lost answer (``OutcomeUnknown``) leads to a query, and only a provider that confirms it
   has no such order (and finds orders by ``order_no``) gets the create again. A provider
   that addresses orders only by its own reference cannot be asked about a lost order: it
   stays ``unknown`` and is looked for (:meth:`Provider.find_lost`), less and less often.
3. **One door for state.** Responses, query results and notifications are all turned into a
   :class:`~posbridge.lifecycle.Signal` (:func:`~posbridge.lifecycle.signal_for`: pure) and
   applied by :meth:`Engine._apply` in one journal unit: the transition table decides, the
   row, its event (outbox) and — for a final state — the batch assignment and the effect on
   the original (refunded or completed amount) are committed together. Duplicates and stale
   reports change nothing.
4. **Recovery.** On start every non-final transaction gets a runner again; those that may
   never have reached the provider start with a query, not a create.

Effects that do not move money (displays, printers, metrics) subscribe as listeners and are
called after each commit; they can never block or fail a payment.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import structlog

from posbridge.audit import AuditEntry
from posbridge.audit_log import append as append_audit
from posbridge.errors import (
    NotificationRejected,
    OutcomeUnknown,
    PaymentError,
    ProviderRejected,
    ProviderUnreachable,
    RequestError,
)
from posbridge.failpoints import failpoint
from posbridge.journal import Journal, JournalTx, now_ms
from posbridge.lifecycle import (
    FINAL_SIGNALS,
    Facts,
    Signal,
    State,
    Transition,
    signal_for,
    transition,
)
from posbridge.money import AmountError, format_amount, parse_amount
from posbridge.operations import OPERATIONS, AmountRule, Operation, row_for
from posbridge.providers.base import (
    Outcome,
    PaymentOrder,
    PreparedCreate,
    Provider,
    ProviderReport,
    TxnKind,
)
from posbridge.records import Attention, TxnRecord
from posbridge.views import txn_encoded

log = structlog.get_logger(__name__)

Listener = Callable[[TxnRecord, Transition | None], None]

# A create is sent again only when the provider confirms it has no such order; this bounds
# how often that may happen for one order.
MAX_CREATE_ATTEMPTS = 5
# How long a cancel waits past the order's expiry for the provider to confirm the close.
CANCEL_GRACE_S = 60.0


@dataclass(frozen=True, slots=True)
class ProviderHealth:
    """The last word from one provider: did a request get a (verified) answer?"""

    reachable: bool | None = None  # None: not asked yet
    at: int | None = None
    error: str | None = None


@dataclass(slots=True)
class _Watch:
    """Registers waiting on one transaction: the newest state recorded since they started
    waiting (so a waiter needs no journal read per change) and a wake-up signal."""

    waiters: int = 0
    rec: TxnRecord | None = None
    changed: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)


@dataclass(frozen=True, slots=True)
class TerminalInfo:
    sn: str
    name: str
    provider: str
    display: str | None = None
    printer: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PaymentRequest:
    """A register's request to start an operation, in the provider-neutral words of
    :mod:`posbridge.operations`.

    ``amount`` is in minor units when the register's currency was known when it was read
    (an ISO 4217 ``currency``); otherwise ``amount_text`` is the register's decimal string, read
    here with the decimals of the original (a refund) or of the provider's coin (a crypto
    sale). ``currency_field`` is the register's name for the currency (``coin`` for crypto).
    """

    method: str
    order_no: str
    amount: int | None = None
    amount_text: str | None = None
    currency: str | None = None
    currency_field: str = "currency"
    tip: int = 0
    terminal: str | None = None
    orig_order_no: str | None = None
    description: str = ""
    subject: str = ""
    body: str = ""
    display: str | None = None
    print_slip: bool = False
    extra: Mapping[str, str] = dataclasses.field(default_factory=dict)
    cashback: int = 0
    tip_text: str | None = None  # a tip in the original's currency (completion, tip.adjust)
    on_screen_tip: bool = False  # the customer enters the tip on the terminal
    card_present: bool = True  # a refund at the terminal; False: to the card, without it


class Engine:
    """Owns the live transactions. Keyword-only wiring; see the module docstring."""

    def __init__(
        self,
        *,
        journal: Journal,
        providers: Mapping[str, Provider],
        terminals: tuple[TerminalInfo, ...] = (),
        displays: frozenset[str] | None = None,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.journal = journal
        self.providers = dict(providers)
        self._preparable: dict[str, Provider] = {
            name: p for name, p in self.providers.items() if p.caps.sign_ahead}
        self.terminals = terminals
        self._by_key = {t.sn: t for t in terminals} | {t.name: t for t in terminals}
        self._displays = displays
        self._clock = clock
        self._live: dict[str, TxnRecord] = {}
        self._runners: dict[str, asyncio.Task[None]] = {}
        self._kicks: dict[str, asyncio.Event] = {}
        self._watches: dict[str, _Watch] = {}
        self._prepared: dict[str, PreparedCreate] = {}  # signed creates waiting for a runner
        self.listeners: list[Listener] = []
        self.terminal_online: dict[str, bool | None] = {t.sn: None for t in terminals}
        self.on_terminal_status: Callable[[str, bool], None] | None = None
        # (provider, what, seconds, error or None) after every provider call, for metrics
        self.on_provider_call: Callable[[str, str, float, PaymentError | None], None] | None = None
        self.provider_health: dict[str, ProviderHealth] = {p: ProviderHealth() for p in providers}
        self._closing = False

    # -- lookups -----------------------------------------------------------------------

    def terminal(self, key: str) -> TerminalInfo:
        """A configured terminal by serial number or name, else 1003."""
        term = self._by_key.get(key)
        if term is None:
            raise RequestError(1003, "unknown_terminal", f"no terminal {key!r} is configured",
                               field="terminal")
        return term

    async def get(self, order_no: str) -> TxnRecord | None:
        live = self._live.get(order_no)
        return live if live is not None else await self.journal.get(order_no)

    async def original(self, orig_order_no: str) -> TxnRecord:
        orig = await self.get(orig_order_no)
        if orig is None:
            raise RequestError(1005, "original_not_found",
                               f"no transaction {orig_order_no!r}", field="orig_order_no")
        return orig

    def supports(self, method: str) -> bool:
        """Whether a configured provider carries out an operation ``method`` can start."""
        kinds = {op.kind for op in OPERATIONS.values() if op.method == method}
        return any(kinds & p.caps.kinds for p in self.providers.values())

    # -- starting payments -------------------------------------------------------------

    async def start(self, identity: str, req: PaymentRequest, *,
                    audit: AuditEntry | None = None) -> TxnRecord:
        """Record a register's request (idempotently by ``order_no``) and drive it.

        The operation is the row of :data:`~posbridge.operations.OPERATIONS` that ``req.method``
        starts for the original's kind; its provider, amount and defining fields follow from
        that row. Bad input is refused before anything is recorded. ``audit`` (a privileged
        operation's record) is appended in the unit that records the intent."""
        orig = await self.original(req.orig_order_no) if req.orig_order_no is not None else None
        op = row_for(req.method, orig.kind if orig is not None else None)
        if op is None:
            raise self._no_row(req.method, orig)
        provider = self._provider_for(op, req, orig)
        currency, exp = self._currency(provider, req, orig)
        amount = self._amount(op, req, orig, currency, exp, provider)
        fields: dict[str, Any] = {"terminal_sn": self._lane(identity, op, req, orig),
                                  "extra": {**req.extra, **_flags(req)}}
        if op.is_new_payment:
            fields.update(tip=req.tip, description=req.description, subject=req.subject,
                          body=req.body, display=req.display, print_slip=req.print_slip,
                          cashback=req.cashback,
                          exponent=exp if provider.caps.coins else None)
        else:
            assert orig is not None
            fields.update(orig_order_no=orig.order_no, description=req.description,
                          exponent=orig.exponent, tip=self._tip(req, orig))
        rec = self._new(identity, op, provider, req.order_no, amount, currency, fields)
        provider.check(self._order_of(rec, orig))
        return await self._start(rec, op, audit)

    def _no_row(self, method: str, orig: TxnRecord | None) -> RequestError:
        if orig is None:
            return RequestError(-32601, "method_not_found", f"no method {method!r}",
                                field="method")
        reason = None
        provider = self.providers.get(orig.provider)
        if provider is not None:
            reason = provider.caps.no_refund_reason
        verbs = {op.verb for op in OPERATIONS.values() if op.method == method and op.verb}
        verb = next(iter(verbs), method)
        why = f": {reason}" if reason else ""
        return RequestError(1010, "not_allowed", f"a {orig.kind.value} cannot be {verb}{why}",
                            field="orig_order_no")

    def _provider_for(self, op: Operation, req: PaymentRequest,
                      orig: TxnRecord | None) -> Provider:
        """The provider that carries out ``op``: the original's, the terminal's, or the
        configured one that declares the operation (and takes the currency)."""
        if orig is not None:
            name = orig.provider
        elif op.needs_terminal:
            assert req.terminal is not None
            name = self.terminal(req.terminal).provider
        else:
            able = [n for n, p in self.providers.items() if op.kind in p.caps.kinds]
            if not able:
                raise RequestError(1010, "not_allowed",
                                   f"no provider for {op.method} is configured", field="method")
            takes = [n for n in able if req.currency is None
                     or _accepts(self.providers[n], req.currency)]
            name = (takes or able)[0]
        provider = self.providers.get(name)
        if provider is None:
            raise RequestError(1007, "provider_unreachable",
                               f"provider {name!r} is not configured")
        if op.kind not in provider.caps.kinds:
            raise RequestError(1010, "not_allowed",
                               f"{name} does not carry out {op.kind.value} transactions",
                               field="orig_order_no" if orig is not None else "terminal")
        return provider

    def _currency(self, provider: Provider, req: PaymentRequest,
                  orig: TxnRecord | None) -> tuple[str, int | None]:
        """The currency and, for a coin, its decimals."""
        if orig is not None:
            return orig.currency, orig.exponent
        assert req.currency is not None
        if not _accepts(provider, req.currency):
            taken = sorted(provider.caps.currencies or ())
            raise RequestError(
                -32602, "invalid_params",
                f"{req.currency_field}: {provider.name} takes {', '.join(taken)} here, "
                f"not {req.currency}", field=req.currency_field)
        accepted = provider.caps.currencies
        return req.currency, accepted[req.currency] if accepted is not None else None

    def _amount(self, op: Operation, req: PaymentRequest, orig: TxnRecord | None,
                currency: str, exp: int | None, provider: Provider) -> int:
        if op.amount is AmountRule.WHOLE_ORIGINAL:
            assert orig is not None  # the guard adds what the journal knows (tip changes)
            return orig.amount + orig.tip + orig.cashback
        if op.amount is AmountRule.TIP_DIFFERENCE:
            return 0  # worked out by the guard from the original's tip now
        if req.amount is not None:
            amount = req.amount
        else:
            amount = _decimal(req.amount_text, currency, exp, "amount")
            if amount <= 0:
                raise RequestError(-32602, "invalid_params", "amount must be positive",
                                   field="amount")
        if op.amount is AmountRule.UP_TO_AUTHORISED:
            assert orig is not None  # a completion's amount and tip together, at most the hold
            percent = provider.caps.completion_max_percent
            limit = (orig.amount + orig.tip) * percent // 100
            if amount + self._tip(req, orig) > limit:
                raise RequestError(
                    1006, "amount_exceeds_refundable",
                    f"at most {format_amount(limit, currency, exp)} {currency} (tip included) "
                    f"can be completed ({percent} % of the authorised amount)", field="amount")
        return amount

    def _tip(self, req: PaymentRequest, orig: TxnRecord) -> int:
        """A tip given in the original's currency (completion, tip.adjust); 0 when none."""
        if req.tip_text is None:
            return 0
        return _decimal(req.tip_text, orig.currency, orig.exponent, "tip")

    def _lane(self, identity: str, op: Operation, req: PaymentRequest,
              orig: TxnRecord | None) -> str | None:
        """The terminal whose batch the transaction counts in."""
        if op.needs_terminal or (orig is not None and req.terminal is not None):
            assert req.terminal is not None
            return self.terminal(req.terminal).sn
        if orig is not None:
            return orig.terminal_sn
        if (req.display is not None and self._displays is not None
                and req.display not in self._displays):
            raise RequestError(1003, "unknown_terminal",
                               f"no display {req.display!r} is configured", field="display")
        term = self.terminal(req.terminal) if req.terminal is not None else self._lane_of(
            identity, req.display)
        return term.sn if term is not None else None

    def _lane_of(self, identity: str, display: str | None) -> TerminalInfo | None:
        """The terminal a QR sale belongs to (for its batch): the one showing on ``display``,
        else the one named like the register."""
        for term in self.terminals:
            if display is not None and term.display == display:
                return term
        return self._by_key.get(identity)

    def _new(self, identity: str, op: Operation, provider: Provider, order_no: str,
             amount: int, currency: str, fields: dict[str, Any]) -> TxnRecord:
        now = self._clock()
        defining = {"kind": op.kind.value, "currency": currency,
                    **({"amount": amount} if op.amount_defines else {}),
                    **{name: fields.get(name) for name in op.defines},
                    **{name: fields[name] for name in op.defines_if_set if fields.get(name)}}
        fingerprint = json.dumps(defining, sort_keys=True, separators=(",", ":"))
        return TxnRecord(order_no=order_no, kind=op.kind, provider=provider.name,
                         identity=identity, amount=amount, currency=currency,
                         state=State.PENDING, fingerprint=fingerprint, created_at=now,
                         updated_at=now,
                         expires_at=now + provider.caps.pacing.expires_s * 1000,
                         create_attempts=1, **fields)

    async def _start(self, rec: TxnRecord, op: Operation,
                     audit: AuditEntry | None = None) -> TxnRecord:
        """Record the intent (idempotently) and make sure a runner drives it."""

        def unit(tx: JournalTx) -> tuple[TxnRecord, bool]:
            existing = tx.get(rec.order_no)
            if existing is not None:
                if existing.fingerprint != rec.fingerprint:
                    raise RequestError(
                        1004, "order_no_conflict",
                        f"order_no {rec.order_no!r} was already used with other parameters",
                        field="order_no")
                _audit(tx, audit, existing, at=rec.created_at, repeat=True)
                return existing, False
            stored = rec
            if op.guard is not None:
                orig = tx.get(rec.orig_order_no) if rec.orig_order_no is not None else None
                stored = op.guard(tx, rec, orig) or rec
            tx.insert(stored)
            tx.emit(stored.identity, "transaction.updated", *_updated(stored))
            _audit(tx, audit, stored, at=stored.created_at)
            return stored, True

        committing = self.journal.submit(unit)
        # Sign the create while the writer commits the intent: first one loop turn, in which
        # the journal runs the unit and hands its commit to the writer, then the signature.
        # It is sent only once the intent is durable (by the runner), and dropped if this
        # order_no was known (or a guard changed the record: then the runner signs what was
        # stored).
        await asyncio.sleep(0)
        prepared = self._prepare(rec)
        stored, created = await committing
        if created:
            log.info("txn_recorded", order_no=stored.order_no, kind=stored.kind.value,
                     provider=stored.provider)
            if prepared is not None and stored is rec:  # no guard replaced it
                self._prepared[stored.order_no] = prepared
            self._track(stored)
            self._notify(stored, None)
            self._spawn(stored, fresh=True)
        return stored

    def _prepare(self, rec: TxnRecord) -> PreparedCreate | None:
        """The signed create of a new sale, if its provider can sign ahead."""
        provider = self._preparable.get(rec.provider)
        if rec.orig_order_no is not None or provider is None:
            return None  # a void or refund needs its original's references: signed later
        try:
            return provider.prepare_create(self._order_of(rec, None))
        except Exception:  # the intent is committing: whatever happens, it gets its runner
            return None  # the runner signs again and meets the same error there

    # -- waiting, cancelling, status ---------------------------------------------------

    async def wait_final(self, order_no: str, timeout_s: float) -> TxnRecord:
        """The transaction once final (or stuck on an unreachable provider), or as it
        stands when ``timeout_s`` runs out."""
        return await self.wait_until(
            order_no,
            lambda r: r.is_final or (r.state == State.PENDING
                                     and r.error_code == "provider_unreachable"),
            timeout_s)

    async def wait_until(self, order_no: str, done: Callable[[TxnRecord], bool],
                         timeout_s: float) -> TxnRecord:
        """The transaction once ``done(record)`` holds, or when ``timeout_s`` runs out."""
        deadline = time.monotonic() + timeout_s
        watch = self._watches.setdefault(order_no, _Watch())
        watch.waiters += 1  # from here on, every recorded change lands in watch.rec
        try:
            rec = await self.get(order_no)
            while True:
                if watch.rec is not None:
                    rec = watch.rec
                if rec is None:
                    raise RequestError(1005, "original_not_found",
                                       f"no transaction {order_no!r}", field="order_no")
                left = deadline - time.monotonic()
                if done(rec) or left <= 0:
                    return rec
                watch.changed.clear()  # no await since watch.rec was read: no change is missed
                # asyncio.timeout, not wait_for: wait_for wraps the wait in a task of its own
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(left):
                        await watch.changed.wait()
        finally:
            watch.waiters -= 1
            if not watch.waiters:
                self._watches.pop(order_no, None)

    async def cancel(self, order_no: str, *, timeout_s: float | None = None,
                     audit: AuditEntry | None = None) -> TxnRecord:
        """Ask for the payment to stop; the transaction once final.

        An order the terminal has already picked up cannot be withdrawn (a card provider
        closes only orders still waiting for the card): then the answer comes when the payment
        ends, at the latest once the order has expired and the provider confirmed it. So the
        default wait runs to the order's expiry plus ``CANCEL_GRACE_S``. ``audit`` (a manager's
        close) is appended in the unit that records the cancel request.
        """
        rec = await self.get(order_no)
        if rec is None:
            raise RequestError(1005, "original_not_found", f"no transaction {order_no!r}",
                               field="order_no")
        if rec.is_final:
            return rec
        if not rec.cancel_requested or audit is not None:
            await self._update(order_no, audit=audit, cancel_requested=True)
        self._kick(order_no)
        if timeout_s is None:
            left_s = max(0.0, (rec.expires_at - self._clock()) / 1000)
            timeout_s = left_s + CANCEL_GRACE_S
        return await self.wait_final(order_no, timeout_s)

    async def status(self, order_no: str, *, refresh: bool = False) -> TxnRecord:
        rec = await self.get(order_no)
        if rec is None:
            raise RequestError(1005, "original_not_found", f"no transaction {order_no!r}",
                               field="order_no")
        if refresh:
            rec = await self._reconcile_once(rec)
        return rec

    async def acknowledge(self, order_no: str, *, audit: AuditEntry | None = None) -> TxnRecord:
        """A manager reviewed a late approval: it leaves the attention list (state unchanged);
        ``audit`` is appended in the same unit."""
        rec = await self.get(order_no)
        if rec is None:
            raise RequestError(1005, "original_not_found", f"no transaction {order_no!r}",
                               field="order_no")
        log.info("attention_acknowledged", order_no=order_no)
        return await self._update(order_no, audit=audit, attention=None)

    async def query_now(self, order_no: str) -> TxnRecord:
        """Ask the provider at once (manager's "query now"); also for final transactions."""
        return await self.status(order_no, refresh=True)

    async def open_holds(self) -> list[TxnRecord]:
        """Approved pre-authorisations neither completed nor cancelled (oldest first)."""
        ends = [op.kind.value for op in OPERATIONS.values()
                if op.originals == {TxnKind.PREAUTH}]
        return await self.journal.read(
            lambda r: r.approved_without(TxnKind.PREAUTH.value, ends))

    async def probe(self, provider: str) -> ProviderHealth:
        """Ask ``provider`` where an order that does not exist stands: proves the network,
        the credentials and the signatures both ways, and touches no payment."""
        order = self.providers[provider].probe_order()
        started = time.monotonic()
        try:
            await self.providers[provider].query(order)
        except ProviderRejected as exc:  # it answered, but refused: credentials or set-up
            self._called(provider, "probe", started, exc)
            self.provider_health[provider] = ProviderHealth(
                reachable=True, at=self._clock(),
                error=f"the provider refused a status query: {exc.message}")
        except PaymentError as exc:
            self._called(provider, "probe", started, exc)
            self._heard(provider, exc)
        else:
            self._called(provider, "probe", started, None)
            self._heard(provider)
        health = self.provider_health[provider]
        log.info("provider_probed", provider=provider, reachable=health.reachable,
                 error=health.error)
        return health

    # -- provider notifications ----------------------------------------------------------

    async def on_notification(self, provider: str, report: ProviderReport) -> TxnRecord:
        """Apply a verified notification. Raises NotificationRejected when it contradicts
        the journal (unknown order, other amount); returns once durably recorded."""
        rec = await self.get(report.order_no)
        if rec is None or rec.provider != provider:
            raise NotificationRejected(f"no {provider} transaction {report.order_no!r}")
        if not _amount_agrees(rec, report):
            raise NotificationRejected(
                f"amount {report.amount} does not match the journal for {rec.order_no!r}")
        new = await self._apply_report(rec, report, durable=True)
        self._kick(rec.order_no)
        return new

    # -- the runner --------------------------------------------------------------------

    def _spawn(self, rec: TxnRecord, *, fresh: bool) -> None:
        if self._closing or rec.is_final or rec.order_no in self._runners:
            return
        task = asyncio.create_task(self._run(rec.order_no, fresh=fresh),
                                   name=f"txn-{rec.order_no}")
        self._runners[rec.order_no] = task
        order_no = rec.order_no

        def forget(_task: asyncio.Task[None]) -> None:
            self._runners.pop(order_no, None)
            self._prepared.pop(order_no, None)

        task.add_done_callback(forget)

    async def _run(self, order_no: str, *, fresh: bool) -> None:
        try:
            await self._drive(order_no, fresh=fresh)
        except asyncio.CancelledError:
            raise
        except Exception:
            # Never lose a transaction to a bug: it stays non-final and is reconciled
            # at the next start (or by a manager's "query now").
            log.exception("runner_crashed", order_no=order_no)

    async def _drive(self, order_no: str, *, fresh: bool) -> None:
        rec = self._live[order_no]
        provider = self.providers.get(rec.provider)
        if provider is None:
            log.error("provider_not_configured", order_no=order_no, provider=rec.provider)
            return  # it stays as it is until the provider is configured again
        cfg = provider.caps.pacing
        if rec.state == State.PENDING and fresh:
            rec = await self._create(rec, counted=True)
        else:
            if rec.state == State.PENDING and self._lost(rec):
                # Recorded, but whether its create went out before the restart cannot be
                # asked: only the provider's own reference addresses an order, and there is
                # none. It is looked for instead.
                rec = await self._apply(rec, Signal.LOST)
            rec = await self._reconcile_once(rec)
        delay = cfg.poll_interval_s
        closed_after_expiry = False
        while not rec.is_final and not self._closing:
            rec = await self._withdraw_if_unshowable(rec)
            now = self._clock()
            if not self._closable(rec):
                pass  # a lost order without the provider's reference: looked for, not closed
            elif not rec.close_sent and (rec.cancel_requested or now >= rec.expires_at):
                rec = await self._close(rec)
                closed_after_expiry = now >= rec.expires_at
            elif rec.close_sent and now >= rec.expires_at and not closed_after_expiry:
                # A cancel's close was refused (the terminal had the card); once the order
                # has expired it is closed again, as PROVIDERS.md's result flow asks.
                rec = await self._close(rec)
                closed_after_expiry = True
            if rec.is_final:
                break
            wait = delay
            lost = self._lost(rec)
            if not lost and not closed_after_expiry:
                wait = max(0.0, min(wait, (rec.expires_at - now) / 1000))
            kicked = await self._sleep(order_no, wait)
            if not kicked:  # a lost order is looked for less and less often, up to lost_poll_s
                delay = min(delay * 1.5, cfg.lost_poll_s if lost else cfg.poll_max_s)
            live = self._live.get(order_no)
            if live is None:  # only a final state leaves _live (e.g. by a notification)
                break
            rec = live
            if rec.cancel_requested and not rec.close_sent:
                continue
            rec = await self._reconcile_once(rec)
            if rec.state is State.UNKNOWN:
                rec = await self._reverse_if_unclear(rec)

    async def _withdraw_if_unshowable(self, rec: TxnRecord) -> TxnRecord:
        """A QR payment the provider has, but whose QR never reached the bridge (the answer
        that carried it was lost, and the provider's status answer does not repeat it): no
        customer can pay it, so it is withdrawn like a cancel."""
        if (rec.state is not State.IN_PROGRESS or rec.qr_deeplink or rec.cancel_requested
                or not OPERATIONS[rec.kind].shows_qr):
            return rec
        log.warning("qr_lost_withdrawing", order_no=rec.order_no)
        return await self._update(rec.order_no, cancel_requested=True, error_code="qr_lost",
                                  error_message="the provider's answer with the QR was lost, "
                                                "so the order was withdrawn")

    def _lost(self, rec: TxnRecord) -> bool:
        """Whether ``rec`` can only be looked for, not asked about: its provider addresses
        orders by their own reference alone, and the answer that carried it was lost."""
        return rec.provider_ref is None and not self.providers[rec.provider].caps.query_by_order_no

    def _closable(self, rec: TxnRecord) -> bool:
        return self.providers[rec.provider].caps.closable and not self._lost(rec)

    async def _sleep(self, order_no: str, seconds: float) -> bool:
        kick = self._kicks.setdefault(order_no, asyncio.Event())
        try:
            async with asyncio.timeout(seconds):
                await kick.wait()
        except TimeoutError:
            return False
        kick.clear()
        return True

    def _kick(self, order_no: str) -> None:
        kick = self._kicks.get(order_no)
        if kick is not None:
            kick.set()

    async def _create(self, rec: TxnRecord, *, counted: bool = False) -> TxnRecord:
        """Send the create (again only when the provider confirmed it has no such order).

        ``counted``: the attempt is already recorded (the intent counts as the first)."""
        cfg = self.providers[rec.provider].caps.pacing
        bound = log.bind(order_no=rec.order_no)
        while True:
            if not counted:
                rec = await self._update(rec.order_no, create_attempts=rec.create_attempts + 1)
            counted = False
            try:
                report = await self._call(rec, "create")
            except ProviderRejected as exc:
                bound.info("create_rejected", provider_code=exc.provider_code)
                return await self._apply(rec, Signal.REJECTED, error_code="provider_rejected",
                                         error_message=exc.message,
                                         provider_code=exc.provider_code)
            except OutcomeUnknown as exc:
                bound.warning("create_outcome_unknown", error=exc.message)
                return await self._apply(rec, Signal.LOST)
            except ProviderUnreachable as exc:
                bound.warning("provider_unreachable", error=exc.message)
                if rec.error_code != "provider_unreachable":
                    rec = await self._update(rec.order_no, error_code="provider_unreachable",
                                             error_message=exc.message)
                if self._clock() >= rec.expires_at or rec.cancel_requested:
                    return await self._apply(rec, Signal.GAVE_UP, error_code="provider_unreachable",
                                             error_message="the provider could not be reached "
                                             "before the order expired")
                await self._sleep(rec.order_no, cfg.create_retry_s)
                rec = self._live.get(rec.order_no, rec)
                continue
            failpoint("create_answered", rec.kind.value)
            # debug: the txn_state line of the acceptance names the provider_ref (one log
            # line less per payment; logging was a tenth of the daemon's CPU per sale)
            bound.debug("create_accepted", provider_ref=report.provider_ref)
            changes: dict[str, Any] = {}
            if rec.error_code == "provider_unreachable":
                changes.update(error_code=None, error_message=None)
            return await self._apply_report(rec, report, accepted=True, **changes)

    async def _call(self, rec: TxnRecord, what: str) -> ProviderReport:
        """One provider call (create or query), remembering whether the provider answered."""
        provider = self.providers[rec.provider]
        order = await self._order(rec)
        failpoint(f"before_{what}", rec.kind.value)
        prepared = self._prepared.pop(rec.order_no, None)
        started = time.monotonic()
        try:
            if what == "find_lost":
                report = await provider.find_lost(order)
            elif what != "create":
                report = await provider.query(order)
            elif prepared is not None and rec.provider in self._preparable:
                report = await self._preparable[rec.provider].create(order, prepared)
            else:
                report = await provider.create(order)
        except PaymentError as exc:
            self._heard(rec.provider, exc)
            self._called(rec.provider, what, started, exc)
            raise
        self._heard(rec.provider)
        self._called(rec.provider, what, started, None)
        return report

    def _called(self, provider: str, what: str, started: float,
                error: PaymentError | None) -> None:
        if self.on_provider_call is not None:
            self.on_provider_call(provider, what, time.monotonic() - started, error)

    async def _reconcile_once(self, rec: TxnRecord) -> TxnRecord:
        """Query the provider once and apply what it says (look for a lost order instead, when
        the provider cannot be asked about it)."""
        what = "find_lost" if self._lost(rec) else "query"
        try:
            report = await self._call(rec, what)
        except (OutcomeUnknown, ProviderUnreachable) as exc:
            log.info("query_failed", order_no=rec.order_no, error=exc.message)
            return self._live.get(rec.order_no, rec)
        except ProviderRejected as exc:
            log.warning("query_rejected", order_no=rec.order_no, provider_code=exc.provider_code)
            return self._live.get(rec.order_no, rec)
        if report.outcome == Outcome.NOT_FOUND:
            return await self._not_found(rec)
        if not _amount_agrees(rec, report):
            log.error("query_amount_mismatch", order_no=rec.order_no, reported=report.amount)
            return rec
        if what == "find_lost" and report.outcome is Outcome.PENDING and not report.provider_ref:
            # Found, not paid, but still without the reference that would let the bridge ask
            # about it or close it: it stays unknown until the callback or a paid line.
            log.info("lost_order_pending", order_no=rec.order_no)
            return self._live.get(rec.order_no, rec)
        return await self._apply_report(rec, report)

    async def _not_found(self, rec: TxnRecord) -> TxnRecord:
        """The provider has no such order: the create never arrived. It is sent again only
        to a provider that finds orders by ``order_no``: elsewhere a second create could make
        a second order for the same payment."""
        if rec.state not in (State.PENDING, State.UNKNOWN):
            return rec
        if (self._clock() < rec.expires_at and not rec.cancel_requested
                and rec.create_attempts < MAX_CREATE_ATTEMPTS
                and self.providers[rec.provider].caps.query_by_order_no):
            log.info("create_not_found_resending", order_no=rec.order_no)
            return await self._create(rec)
        return await self._apply(rec, Signal.GAVE_UP, error_code="not_sent",
                                 error_message="the order never reached the provider")

    async def _close(self, rec: TxnRecord) -> TxnRecord:
        """Ask the provider to close the order (cancel or timeout), then query."""
        rec = await self._update(rec.order_no, close_sent=True)
        provider = self.providers[rec.provider]
        started = time.monotonic()
        try:
            await provider.close(await self._order(rec))
        except PaymentError as exc:
            # Not closable (being paid right now, or already final): the query decides.
            self._called(rec.provider, "close", started, exc)
            log.info("close_refused", order_no=rec.order_no, error=exc.message,
                     provider_code=exc.provider_code)
        else:
            self._called(rec.provider, "close", started, None)
            log.info("close_sent", order_no=rec.order_no)
        return await self._reconcile_once(self._live.get(rec.order_no, rec))

    async def _reverse_if_unclear(self, rec: TxnRecord) -> TxnRecord:
        """The answer to a new payment was lost and a query gave no clear result: reverse it,
        when its provider can (``caps.reversible``).

        A reverse closes an unpaid order and returns the money of a paid one. The adapter may
        refuse outside the provider's time window; the runner then tries again on its next
        round.
        """
        provider = self.providers[rec.provider]
        if not provider.caps.reversible or not OPERATIONS[rec.kind].is_new_payment:
            return rec
        started = time.monotonic()
        try:
            report = await provider.reverse(await self._order(rec))
        except PaymentError as exc:
            self._called(rec.provider, "reverse", started, exc)
            log.info("reverse_not_done", order_no=rec.order_no, error=exc.message)
            return self._live.get(rec.order_no, rec)
        self._called(rec.provider, "reverse", started, None)
        log.info("reverse_done", order_no=rec.order_no, outcome=report.outcome.value)
        if report.outcome is Outcome.NOT_FOUND:
            return await self._not_found(rec)
        if report.reversed:
            return await self._apply(
                rec, Signal.CANCELLED, error_code="reversed", provider_code=report.provider_code,
                error_message="the answer to the order was lost and the provider could not "
                              "confirm it, so it was reversed (any payment is returned)")
        return await self._apply_report(rec, report)

    async def _order(self, rec: TxnRecord) -> PaymentOrder:
        orig: TxnRecord | None = None
        if rec.orig_order_no is not None:
            orig = await self.get(rec.orig_order_no)
        return self._order_of(rec, orig)

    @staticmethod
    def _order_of(rec: TxnRecord, orig: TxnRecord | None) -> PaymentOrder:
        return PaymentOrder(
            order_no=rec.order_no, kind=rec.kind, amount=rec.amount, currency=rec.currency,
            tip=rec.tip, terminal_sn=rec.terminal_sn, description=rec.description,
            subject=rec.subject, body=rec.body, orig_order_no=rec.orig_order_no,
            orig_provider_ref=orig.provider_ref if orig else None,
            orig_amount=(orig.amount + orig.tip) if orig else None,
            orig_kind=orig.kind if orig else None,
            expires_s=max(1, (rec.expires_at - rec.created_at) // 1000),
            provider_ref=rec.provider_ref, exponent=rec.exponent,
            extra={k: v for k, v in rec.extra.items() if k not in _FLAGS},
            created_at_ms=rec.created_at, cashback=rec.cashback,
            on_screen_tip=rec.extra.get("on_screen_tip") == "true",
            card_present=rec.extra.get("card_present") != "false",
            orig_tip=orig.tip if orig else None)

    def _terminal_seen(self, sn: str, online: bool) -> None:
        if self.terminal_online.get(sn) is online:
            return
        self.terminal_online[sn] = online
        log.info("terminal_status", terminal=sn, online=online)
        if self.on_terminal_status is not None:
            self.on_terminal_status(sn, online)

    def _heard(self, provider: str, error: PaymentError | None = None) -> None:
        reachable = not isinstance(error, (OutcomeUnknown, ProviderUnreachable))
        self.provider_health[provider] = ProviderHealth(
            reachable=reachable, at=self._clock(),
            error=None if reachable else (error.message if error else None))

    # -- applying state ------------------------------------------------------------------

    async def _apply_report(self, rec: TxnRecord, report: ProviderReport, *,
                            accepted: bool = False, durable: bool = False,
                            **changes: Any) -> TxnRecord:
        if report.outcome == Outcome.NOT_FOUND:
            return rec
        if report.terminal_online is not None and rec.terminal_sn is not None:
            self._terminal_seen(rec.terminal_sn, report.terminal_online)
        current = self._live.get(rec.order_no, rec)
        facts = Facts(close_sent=current.close_sent, cancel_requested=current.cancel_requested,
                      expired=self._clock() >= current.expires_at,
                      reversed=current.error_code == "reversed")
        signal = signal_for(report.outcome, facts, provider_code=report.provider_code,
                            accepted=accepted)
        if signal is None:
            log.warning("stale_report_ignored", order_no=rec.order_no,
                        outcome=report.outcome.value)
            return current
        for name in ("provider_ref", "auth_no", "card_brand", "card_last4"):
            value = getattr(report, name)
            if value:
                changes.setdefault(name, value)
        if report.qr_text and not current.qr_deeplink:
            changes["qr_deeplink"] = report.qr_text
        if (signal is Signal.APPROVED and report.tip is not None
                and current.extra.get("on_screen_tip") == "true"):
            changes["tip"] = report.tip  # the final tip, entered on the terminal
        if report.provider_code and signal in (Signal.DECLINED, Signal.REJECTED):
            changes.setdefault("provider_code", report.provider_code)
            changes.setdefault("error_code", "declined")
            changes.setdefault("error_message", report.message)
        return await self._apply(rec, signal, durable=durable, **changes)

    async def _apply(self, rec: TxnRecord, signal: Signal, *, durable: bool = False,
                     **changes: Any) -> TxnRecord:
        """Apply one signal in one journal unit (row + event + batch + original).

        ``durable`` (a notification): returns only once the unit is on disk, so that
        ``success`` is answered for a durable result. A state on the way (in progress,
        unknown) from the runner is only committed: a power cut may take it back to the
        durable intent, which recovery reconciles by a query. A final state is committed,
        told to those waiting for it (the register's answer), and then made durable at once
        (a durability barrier, grouped with other units): a power cut in between takes it
        back to an earlier state, which recovery reconciles by a query to the same result.
        Its event is published once durable (the journal's docstring has the whole table)."""
        now = self._clock()
        final = signal in FINAL_SIGNALS
        commit_durably = durable and not final

        def unit(tx: JournalTx) -> tuple[TxnRecord, Transition | None]:
            cur = tx.get(rec.order_no)
            if cur is None:
                raise NotificationRejected(f"no transaction {rec.order_no!r}")
            step = transition(cur.state, signal)
            if step is None:
                # Fill in facts (card, references) that arrive with a duplicate, quietly.
                facts = {k: v for k, v in changes.items()
                         if k in ("provider_ref", "auth_no", "card_brand", "card_last4",
                                  "qr_deeplink") and getattr(cur, k) is None}
                if facts:
                    filled = dataclasses.replace(cur, **facts, updated_at=now)
                    tx.update(filled, old=cur)
                    cur = filled
                return cur, None
            new = dataclasses.replace(cur, **changes, state=step.new, updated_at=now)
            if step.late_approval:
                new = dataclasses.replace(new, attention=Attention.LATE_APPROVAL)
            if step.new.is_final and new.terminal_sn is not None and (
                    new.batch_no is None or step.late_approval):
                batch = tx.ensure_open_batch(new.terminal_sn, now)
                new = dataclasses.replace(new, batch_no=batch.batch_no)
            tx.update(new, old=cur)
            effect = OPERATIONS[new.kind].on_original
            if step.new is State.APPROVED and new.orig_order_no is not None and effect:
                orig = tx.get(new.orig_order_no)
                if orig is not None and effect == "refunded":
                    tx.update(dataclasses.replace(
                        orig, refunded_amount=orig.refunded_amount + new.amount,
                        updated_at=now), old=orig)
                elif orig is not None:
                    tx.update(dataclasses.replace(
                        orig, completed_amount=orig.completed_amount + new.amount,
                        updated_at=now), old=orig)
            tx.emit(new.identity, "transaction.updated", *_updated(new))
            return new, step

        new, step = await self.journal.run(unit, durable=commit_durably)
        if step is not None:
            log.info("txn_state", order_no=new.order_no, state=new.state.value,
                     previous=step.old.value, provider_ref=new.provider_ref,
                     late_approval=step.late_approval or None)
        self._track(new)
        if step is not None:
            self._notify(new, step)
            if not commit_durably:
                # Committed and told, not yet durable: a crash keeps this state, a power
                # cut may not.
                failpoint("committed", new.state.value)
                failpoint("power_cut", new.state.value, self.journal.simulate_power_cut)
        if final or durable:
            synced = self.journal.sync()  # a final state is made durable at once
            if durable:
                await synced
        return new

    async def _update(self, order_no: str, *, audit: AuditEntry | None = None,
                      **changes: Any) -> TxnRecord:
        """Record bookkeeping fields (no state change, no event), and ``audit`` with them."""
        now = self._clock()

        def unit(tx: JournalTx) -> TxnRecord:
            cur = tx.get(order_no)
            if cur is None:
                raise RequestError(1005, "original_not_found", f"no transaction {order_no!r}")
            new = dataclasses.replace(cur, **changes, updated_at=now)
            tx.update(new, old=cur)
            if audit is not None:
                append_audit(tx.conn, audit.about(order_no=order_no, terminal=cur.terminal_sn,
                                                  state=cur.state.value), now)
            return new

        new = await self.journal.run(unit)
        self._track(new)
        return new

    def _track(self, rec: TxnRecord) -> None:
        if rec.is_final:
            self._live.pop(rec.order_no, None)
        else:
            self._live[rec.order_no] = rec
        watch = self._watches.get(rec.order_no)
        if watch is not None:
            watch.rec = rec
            watch.changed.set()
        if rec.is_final:
            kick = self._kicks.pop(rec.order_no, None)
            if kick is not None:  # a sleeping runner wakes up, sees the end and stops
                kick.set()

    def _notify(self, rec: TxnRecord, step: Transition | None) -> None:
        for listener in self.listeners:
            try:
                listener(rec, step)
            except Exception:
                log.exception("listener_failed", order_no=rec.order_no)

    # -- life cycle ----------------------------------------------------------------------

    async def recover(self) -> int:
        """Give every non-final transaction a runner again; returns how many."""
        active = await self.journal.active()
        for rec in active:
            self._live[rec.order_no] = rec
            self._spawn(rec, fresh=False)
        if active:
            log.info("recovering", count=len(active))
        return len(active)

    async def stop(self, *, grace_s: float = 10.0) -> None:
        """Stop runners at a safe point: every state they reached is already committed.

        Runners are given ``grace_s`` to finish what is in flight (a create or query whose
        answer is on its way) so the next start has less to reconcile.
        """
        self._closing = True
        for kick in self._kicks.values():
            kick.set()
        tasks = list(self._runners.values())
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=grace_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    @property
    def live_count(self) -> int:
        return len(self._live)


#: Protocol flags kept in a record's ``extra`` (only when not their default).
_FLAGS: Final = ("on_screen_tip", "card_present")


def _flags(req: PaymentRequest) -> dict[str, str]:
    flags = {}
    if req.on_screen_tip:
        flags["on_screen_tip"] = "true"
    if not req.card_present:
        flags["card_present"] = "false"
    return flags


def _decimal(text: str | None, currency: str, exp: int | None, name: str) -> int:
    """A register's decimal string in ``currency`` (minor units), else -32602 naming it."""
    try:
        return parse_amount(text, currency, exp)
    except AmountError as exc:
        raise RequestError(-32602, "invalid_params", f"{name}: {exc}", field=name) from exc


def _accepts(provider: Provider, currency: str) -> bool:
    """Whether ``provider`` takes payments in ``currency`` (any ISO 4217 one when it lists
    none)."""
    accepted = provider.caps.currencies
    return currency in accepted if accepted is not None else not provider.caps.coins


def _amount_agrees(rec: TxnRecord, report: ProviderReport) -> bool:
    """Whether the provider's amount for ``rec`` matches the journal (None: not stated; an
    ``amount_text`` is read with the record's decimals).

    A sale may be reported with or without its tip. A void is sent for the original's whole
    captured amount; the seed does not say whether the gateway then reports it with or without
    the original's tip, so any positive amount up to that is taken (the signature already
    vouches for the sender)."""
    reported = report.amount
    if reported is None and report.amount_text is not None:
        try:
            reported = parse_amount(report.amount_text, rec.currency, rec.exponent)
        except AmountError:
            return False
    if reported is None:
        return True
    if rec.kind is TxnKind.VOID:
        return 0 < reported <= rec.amount
    return reported in (rec.amount, rec.amount + rec.tip)


def _audit(tx: JournalTx, entry: AuditEntry | None, rec: TxnRecord, *, at: int,
           repeat: bool = False) -> None:
    """Append a privileged operation's record, naming the transaction it recorded."""
    if entry is None:
        return
    append_audit(tx.conn, entry.about(
        order_no=rec.order_no, terminal=rec.terminal_sn, kind=rec.kind.value,
        orig_order_no=rec.orig_order_no, amount=rec.amount, tip=rec.tip or None,
        currency=rec.currency, repeat=repeat or None), at)


def _updated(rec: TxnRecord) -> tuple[dict[str, object], str]:
    """A ``transaction.updated`` event's params, and the same as JSON text (encoded once)."""
    view, text = txn_encoded(rec)
    return {"transaction": view}, f'{{"transaction":{text}}}'
