"""What each ECR method does: validated parameters in, a JSON-able result out.

The WebSocket server (:mod:`posbridge.ecr.server`) parses frames and authenticates; this
module maps a call onto the engine and renders the answer with :mod:`posbridge.views`.
Role checks happen here, so every transport gets the same rules.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, Protocol, TypeVar

from posbridge.audit import BATCH_CLOSE, AuditEntry, target
from posbridge.audit_log import AuditTrail, outcome_of
from posbridge.ecr import protocol as proto
from posbridge.ecr.params import parse_params
from posbridge.engine import Engine, PaymentRequest
from posbridge.errors import RequestError
from posbridge.journal import CursorError, TxnQuery
from posbridge.lifecycle import State
from posbridge.operations import OPERATIONS, QR_KINDS
from posbridge.records import TxnRecord
from posbridge.views import event_view, rfc3339, txn_json, txn_view

# The protocol's role table and the operations table agree on every operation's role.
assert all(proto.METHOD_ROLES[op.method] == op.role for op in OPERATIONS.values())

#: The register methods that are privileged actions, each leaving one audit record: the
#: operations whose row needs the manager role, and closing a batch.
AUDITED: Final = frozenset(
    {op.method for op in OPERATIONS.values() if op.role == "manager"} | {BATCH_CLOSE})

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated register connection."""

    name: str
    role: str
    peer: str


class PinCheck(Protocol):
    """Anything that can check a manager PIN (see posbridge.secrets.PinChecker)."""

    async def check(self, pin: str, *, peer: str) -> bool: ...


Handler = Callable[[Caller, Any], Awaitable[object]]

# How long a payment call waits by default before answering with the current state.
DEFAULT_WAIT_S = 300.0
# How long a QR payment with ``wait: false`` waits for the provider's order (and so the QR).
QR_SHOWN_WAIT_S = 15.0


class Methods:
    """The ECR methods other than ``auth`` (which the server handles itself)."""

    def __init__(
        self,
        *,
        engine: Engine,
        max_amount: str,
        pin_checker: PinCheck | None,
        batches: Any | None = None,
        terminal_views: Callable[[], Awaitable[list[dict[str, Any]]]] | None = None,
        audit: AuditTrail | None = None,
    ) -> None:
        self.engine = engine
        self.audit = audit
        self.max_amount = max_amount
        self.pin_checker = pin_checker
        self.batches = batches
        self._terminal_views = terminal_views
        self._handlers: dict[str, Handler] = {
            "ping": self.ping,
            "sale": self.sale,
            "void": self.void,
            "refund": self.refund,
            "qr_sale": self.qr_sale,
            "crypto_sale": self.crypto_sale,
            "preauth": self.preauth,
            "preauth.cancel": self.preauth_cancel,
            "completion": self.completion,
            "tip.adjust": self.tip_adjust,
            "checkout_qr": self.checkout_qr,
            "cancel": self.cancel,
            "status": self.status,
            "transactions.list": self.transactions_list,
            "terminals.list": self.terminals_list,
            "events.replay": self.events_replay,
            "batch.status": self.batch_status,
            "batch.close": self.batch_close,
        }

    async def call(self, caller: Caller, method: str, params: object) -> object:
        handler = self._handlers.get(method)
        if handler is None:
            raise RequestError(-32601, "method_not_found", f"no method {method!r}",
                               field="method")
        try:
            parsed = parse_params(method, params, max_amount=self.max_amount)
            await self._authorize(caller, method, parsed)
        except RequestError as exc:
            # A privileged request refused before its handler ran (unreadable, no role, a wrong
            # PIN) is recorded here; the handlers record the rest.
            if self.audit is not None and method in AUDITED:
                named = params if isinstance(params, dict) else {}
                entry = _entry(caller, method, named, pin_given="manager_pin" in named)
                await self.audit.record(entry.ended(outcome_of(exc)))
            raise
        return await handler(caller, parsed)

    async def _authorize(self, caller: Caller, method: str, parsed: Any) -> None:
        needed = proto.METHOD_ROLES.get(method, "cashier")
        if needed != "manager" or caller.role == "manager":
            return
        pin = getattr(parsed, "manager_pin", None)
        if pin is None:
            raise RequestError(1002, "forbidden",
                               f"{method} needs the manager role or a manager_pin",
                               field="manager_pin")
        if self.pin_checker is None or not await self.pin_checker.check(pin, peer=caller.peer):
            raise RequestError(1002, "forbidden", "wrong manager PIN", field="manager_pin")

    # -- methods -----------------------------------------------------------------------

    async def ping(self, caller: Caller, p: Any) -> object:
        return {"time": _now_rfc3339()}

    async def sale(self, caller: Caller, p: Any) -> object:
        return await self._pay(caller, p, PaymentRequest(
            method="sale", order_no=p.order_no, terminal=p.terminal, amount=p.amount,
            currency=p.currency, tip=p.tip, description=p.description, cashback=p.cashback,
            on_screen_tip=p.on_screen_tip))

    async def preauth(self, caller: Caller, p: Any) -> object:
        return await self._pay(caller, p, PaymentRequest(
            method="preauth", order_no=p.order_no, terminal=p.terminal, amount=p.amount,
            currency=p.currency, description=p.description, on_screen_tip=p.on_screen_tip))

    async def preauth_cancel(self, caller: Caller, p: Any) -> object:
        return await self._pay(caller, p, PaymentRequest(
            method="preauth.cancel", order_no=p.order_no, orig_order_no=p.orig_order_no))

    async def completion(self, caller: Caller, p: Any) -> object:
        return await self._pay(caller, p, PaymentRequest(
            method="completion", order_no=p.order_no, orig_order_no=p.orig_order_no,
            amount_text=p.amount, tip_text=p.tip))

    async def tip_adjust(self, caller: Caller, p: Any) -> object:
        return await self._pay(caller, p, PaymentRequest(
            method="tip.adjust", order_no=p.order_no, orig_order_no=p.orig_order_no,
            tip_text=p.tip))

    async def checkout_qr(self, caller: Caller, p: Any) -> object:
        return await self._pay(caller, p, PaymentRequest(
            method="checkout_qr", order_no=p.order_no, amount=p.amount, currency=p.currency,
            subject=p.subject, display=p.display, print_slip=p.print_slip,
            terminal=p.terminal))

    async def void(self, caller: Caller, p: Any) -> object:
        return await self._pay(caller, p, PaymentRequest(
            method="void", order_no=p.order_no, orig_order_no=p.orig_order_no,
            terminal=p.terminal))

    async def refund(self, caller: Caller, p: Any) -> object:
        return await self._pay(caller, p, PaymentRequest(
            method="refund", order_no=p.order_no, orig_order_no=p.orig_order_no,
            amount_text=p.amount, description=p.description, card_present=p.card_present))

    async def qr_sale(self, caller: Caller, p: Any) -> object:
        return await self._pay(caller, p, PaymentRequest(
            method="qr_sale", order_no=p.order_no, amount=p.amount, currency=p.currency,
            subject=p.subject, body=p.body, display=p.display, print_slip=p.print_slip,
            terminal=p.terminal))

    async def crypto_sale(self, caller: Caller, p: Any) -> object:
        payer_key, payer_id = p.payer
        return await self._pay(caller, p, PaymentRequest(
            method="crypto_sale", order_no=p.order_no, amount_text=p.amount, currency=p.coin,
            currency_field="coin", subject=p.subject, display=p.display,
            print_slip=p.print_slip, terminal=p.terminal, extra={payer_key: payer_id}))

    async def _pay(self, caller: Caller, p: Any, req: PaymentRequest) -> object:
        """Start an operation; answer as its ``wait`` asks (a QR payment with ``wait: false``
        answers once its QR exists)."""
        rec = await self._audited(
            caller, req.method, p, {"order_no": req.order_no, "orig_order_no": req.orig_order_no},
            lambda entry: self.engine.start(caller.name, req, audit=entry))
        if not p.wait and rec.kind in QR_KINDS:
            return proto.Raw(txn_json(await self._until_shown(rec)))
        return await self._answer(rec, p.wait, p.timeout_s)

    async def cancel(self, caller: Caller, p: Any) -> object:
        rec = await self.engine.cancel(p.order_no)
        if _unreachable(rec):
            raise RequestError(1007, "provider_unreachable",
                               f"the provider cannot be reached to cancel; the bridge keeps "
                               f"trying (order_no {rec.order_no})")
        return proto.Raw(txn_json(rec))

    async def status(self, caller: Caller, p: Any) -> object:
        return proto.Raw(txn_json(await self.engine.status(p.order_no, refresh=p.refresh)))

    async def transactions_list(self, caller: Caller, p: Any) -> object:
        sn = self.engine.terminal(p.terminal).sn if p.terminal is not None else None
        since_ms = int(p.since.timestamp() * 1000) if p.since is not None else None
        query = TxnQuery(terminal_sn=sn, state=p.state, since_ms=since_ms, limit=p.limit,
                         cursor=p.cursor)
        try:
            items, cursor = await self.engine.journal.list_transactions(query)
        except CursorError as exc:
            raise RequestError(-32602, "invalid_params", str(exc), field="cursor") from exc
        return {"items": [txn_view(r) for r in items], "next_cursor": cursor}

    async def terminals_list(self, caller: Caller, p: Any) -> object:
        if self._terminal_views is not None:
            return await self._terminal_views()
        return [{"sn": t.sn, "name": t.name, "provider": t.provider, "online": None,
                 "open_batch": None} for t in self.engine.terminals]

    async def events_replay(self, caller: Caller, p: Any) -> object:
        events = await self.engine.journal.events_since(caller.name, p.since_seq)
        return fit_in_frame([event_view(e) for e in events])

    async def batch_status(self, caller: Caller, p: Any) -> object:
        if self.batches is None:
            raise RequestError(1010, "not_allowed", "batches are not enabled")
        result: object = await self.batches.status(p.terminal)
        return result

    async def batch_close(self, caller: Caller, p: Any) -> object:
        if self.batches is None:
            raise RequestError(1010, "not_allowed", "batches are not enabled")
        batches = self.batches
        result: object = await self._audited(
            caller, BATCH_CLOSE, p, {"terminal": p.terminal},
            lambda entry: batches.close(p.terminal, identity=caller.name, audit=entry))
        return result

    async def _audited(self, caller: Caller, method: str, p: Any, named: dict[str, Any],
                       action: Callable[[AuditEntry | None], Awaitable[T]]) -> T:
        """Run ``action``, which records a privileged method's audit entry in its own unit;
        a refusal or failure before that is recorded on its own."""
        if self.audit is None or method not in AUDITED:
            return await action(None)
        pin_given = getattr(p, "manager_pin", None) is not None
        return await self.audit.around(_entry(caller, method, named, pin_given=pin_given), action)

    # -- helpers -----------------------------------------------------------------------

    async def _answer(self, rec: TxnRecord, wait: bool, timeout_s: float | None) -> object:
        if wait:
            rec = await self.engine.wait_final(rec.order_no, timeout_s or DEFAULT_WAIT_S)
        if _unreachable(rec):
            raise RequestError(1007, "provider_unreachable",
                               f"the provider cannot be reached; the bridge keeps trying "
                               f"(order_no {rec.order_no})")
        if rec.state == State.FAILED and rec.error_code == "provider_rejected":
            raise RequestError(1008, "provider_rejected",
                               rec.error_message or "the provider rejected the request",
                               provider_code=rec.provider_code)
        # The same record as the event just published: its text is encoded already.
        return proto.Raw(txn_json(rec))

    async def _until_shown(self, rec: TxnRecord) -> TxnRecord:
        """For a QR payment with ``wait: false``: answer once the QR exists (or it failed)."""
        # An order whose answer was lost (unknown) has no QR to show yet: it answers at once.
        return await self.engine.wait_until(
            rec.order_no, lambda r: bool(r.qr_deeplink) or r.is_final or _unreachable(r)
            or r.state is State.UNKNOWN, QR_SHOWN_WAIT_S)


def _entry(caller: Caller, method: str, named: dict[Any, Any], *,
           pin_given: bool) -> AuditEntry:
    """The audit entry of a privileged request: who, from where, what it names, and how it
    claims its right (the register's role, or a manager PIN, which is never recorded)."""
    authorised_by = "role" if caller.role == "manager" else (
        "manager_pin" if pin_given else "none")
    return AuditEntry(
        actor=caller.name, peer=caller.peer, action=method,
        order_no=target(named.get("order_no")), terminal=target(named.get("terminal")),
        detail={"authorised_by": authorised_by}).about(
            orig_order_no=target(named.get("orig_order_no")))


def _now_rfc3339() -> str:
    return rfc3339(time.time_ns() // 1_000_000) or ""


def _unreachable(rec: TxnRecord) -> bool:
    return rec.state == State.PENDING and rec.error_code == "provider_unreachable"


#: Room left in a 64 KiB frame for the response envelope and the request's id.
ENVELOPE_RESERVE = 4 * 1024


def fit_in_frame(views: list[dict[str, object]]) -> list[dict[str, object]]:
    """The oldest events that fit in one frame (ECR-PROTOCOL: frames over 64 KiB are refused).

    A register that was away long enough has more: it asks again from the last ``seq`` it got
    until the answer is empty (docs/ecr-protocol.md, "After a disconnect or a crash")."""
    budget = proto.MAX_FRAME_BYTES - ENVELOPE_RESERVE
    used = 0
    for i, view in enumerate(views):
        used += len(proto.dumps(view).encode("utf-8")) + 1  # + the comma
        if used > budget:
            return views[:max(i, 1)]
    return views
