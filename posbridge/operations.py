"""Every operation the bridge performs, one row each: the one table the engine, the ECR methods,
the displays and the batch totals read.

==============  =================  =======  ===================  =================  ===========
kind            ECR method         role     original             amount             batch line
==============  =================  =======  ===================  =================  ===========
sale            ``sale``           cashier  -                    its own            sales
void            ``void``           manager  sale or completion   the whole          voids
                                            (open batch)         original
refund          ``refund``         manager  sale or completion   up to refundable   refunds
qr_sale         ``qr_sale``        cashier  -                    its own            sales
qr_refund       ``refund``         manager  QR sale              up to refundable   refunds
crypto_sale     ``crypto_sale``    cashier  -                    its own (coin)     sales
preauth         ``preauth``        cashier  -                    its own            preauths
preauth_cancel  ``preauth.cancel`` manager  open pre-auth        the whole hold     -
completion      ``completion``     cashier  open pre-auth        up to authorised   completions
tip_adjust      ``tip.adjust``     manager  sale or completion   the new tip less   tip_adjust-
                                            (open batch)         the current one    ments
checkout_qr     ``checkout_qr``    cashier  -                    its own            sales
==============  =================  =======  ===================  =================  ===========

Originals must be approved; an open pre-auth is one neither cancelled nor completed. Tips count
on their own line (sales, QR sales, completions), cash back too; pre-auths (holds) stay out of
the net. The QR kinds (``qr_sale``, ``crypto_sale``, ``checkout_qr``) show a QR on the lane.

A new payment goes to the provider of its terminal (``needs_terminal``) or else to the
configured provider that declares its kind in :class:`~posbridge.providers.base.Capabilities`;
an operation on an original goes to the original's provider, which must declare its kind.
``void`` and ``refund`` name the same row for a sale and a completion (the provider tells a
completion void from a sale void by the original's kind) and ``refund`` a row of its own for a
QR sale; the original's kind picks the row. A method with no row for the original's kind is
refused with 1010, naming the provider's own reason when it has one (the crypto platform has
no refund).

The guards run inside the journal unit that records the intent, so that two concurrent
requests can never both pass a check (see :mod:`posbridge.journal`); a guard may return the
record to insert instead (a tip adjustment's difference is read there, under the same lock).
When an operation is approved, ``on_original`` says what it does to its original: a refund or
void adds to ``refunded_amount``, a completion to ``completed_amount``.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

from posbridge.errors import RequestError
from posbridge.journal import JournalTx
from posbridge.lifecycle import ACTIVE_STATES, State
from posbridge.money import format_amount
from posbridge.providers.base import TxnKind
from posbridge.records import BatchState, Totals, TxnRecord

Role = Literal["cashier", "manager"]
#: A check made inside the intent's journal unit: (tx, the new record, its original or None);
#: it raises a RequestError, or returns the record to insert instead (None: ``rec`` as is).
Guard = Callable[[JournalTx, TxnRecord, "TxnRecord | None"], "TxnRecord | None"]


class AmountRule(enum.StrEnum):
    """Where an operation's amount comes from."""

    OWN = "own"  # the register's amount (a new payment)
    WHOLE_ORIGINAL = "whole_original"  # the original's captured amount, all of it (a void)
    UP_TO_REFUNDABLE = "up_to_refundable"  # the register's, at most what is left to return
    UP_TO_AUTHORISED = "up_to_authorised"  # the register's, at most the hold (a completion)
    TIP_DIFFERENCE = "tip_difference"  # the new total tip less the current one (in the guard)


class Line(enum.StrEnum):
    """The batch total an approved transaction's amount adds to (see :class:`Totals`)."""

    SALES = "sales"
    REFUNDS = "refunds"
    VOIDS = "voids"
    PREAUTHS = "preauths"
    COMPLETIONS = "completions"
    TIP_ADJUSTMENTS = "tip_adjustments"


@dataclass(frozen=True, slots=True)
class Operation:
    """One row of :data:`OPERATIONS`."""

    kind: TxnKind
    method: str  # the ECR method that starts it
    role: Role
    amount: AmountRule
    totals: Line | None
    #: the kinds of original it applies to (empty: a new payment)
    originals: frozenset[TxnKind] = frozenset()
    guard: Guard | None = None
    tips: bool = False  # its tip counts on the batch's tips line
    needs_terminal: bool = False  # it runs on a card terminal, which picks the provider
    shows_qr: bool = False  # the customer pays by scanning a QR the bridge shows
    receipt: bool = False  # a receipt prints when it ends
    verb: str = ""  # "voided", "refunded": for messages about its original
    #: what its approval adds to on the original: refunded_amount or completed_amount
    on_original: Literal["refunded", "completed"] | None = None
    #: the record's fields that, with kind and currency (and amount, unless it is worked out
    #: from the journal), define it: a retry with the same ``order_no`` must agree on all of
    #: them (idempotency), else it is a conflict
    defines: tuple[str, ...] = ()
    #: fields that define it only when they are set (not their default): added after the
    #: first release, so that its records' fingerprints stay as they were
    defines_if_set: tuple[str, ...] = ()
    amount_defines: bool = True

    @property
    def is_new_payment(self) -> bool:
        return not self.originals


# -- what an original holds ------------------------------------------------------------------


def _live_or_approved(rec: TxnRecord) -> bool:
    return rec.state is State.APPROVED or rec.state in ACTIVE_STATES


def children(tx: JournalTx, orig: TxnRecord, kinds: frozenset[TxnKind], *,
             approved: bool = False) -> list[TxnRecord]:
    """The original's operations of ``kinds`` that are approved, or (unless ``approved``)
    may still be."""
    return [c for c in tx.children(orig.order_no) if c.kind in kinds
            and (c.state is State.APPROVED if approved else _live_or_approved(c))]


def tip_of(tx: JournalTx, orig: TxnRecord) -> int:
    """The original's tip now: its own, changed by every approved tip adjustment."""
    return orig.tip + sum(c.amount for c in children(tx, orig, _TIP_KINDS, approved=True))


def captured(tx: JournalTx, orig: TxnRecord) -> int:
    """What the original took from the card, cash back aside: amount and tip (as adjusted)."""
    return orig.amount + tip_of(tx, orig)


def held(tx: JournalTx, orig: TxnRecord) -> int:
    """What the original's voids and refunds return, approved or still possible."""
    return sum(c.amount for c in children(tx, orig, _RETURN_KINDS))


# -- guards ----------------------------------------------------------------------------------


def approved_original(orig: TxnRecord | None, verb: str) -> TxnRecord:
    """The original, read inside the journal unit; approved, else 1010."""
    if orig is None:
        raise RequestError(1005, "original_not_found", "original transaction not found",
                           field="orig_order_no")
    if orig.state != State.APPROVED:
        raise RequestError(1010, "not_allowed",
                           f"only an approved payment can be {verb} (it is {orig.state.value})",
                           field="orig_order_no")
    return orig


def _in_open_batch(tx: JournalTx, orig: TxnRecord, why: str) -> None:
    if orig.terminal_sn is not None and orig.batch_no is not None:
        batch = tx.batch(orig.terminal_sn, orig.batch_no)
        if batch is not None and batch.state is not BatchState.OPEN:
            raise RequestError(1010, "not_allowed", f"the original's batch is closed: {why}",
                               field="orig_order_no")


def _void_guard(tx: JournalTx, rec: TxnRecord, original: TxnRecord | None) -> TxnRecord:
    """A void returns everything the original took: amount, tip as adjusted, cash back."""
    orig = approved_original(original, "voided")
    _in_open_batch(tx, orig, "refund it instead")
    if held(tx, orig) > 0:
        raise RequestError(1006, "amount_exceeds_refundable",
                           "the original was already voided or refunded", field="orig_order_no")
    return dataclasses.replace(rec, amount=captured(tx, orig) + orig.cashback)


def _refund_guard(tx: JournalTx, rec: TxnRecord, original: TxnRecord | None) -> None:
    orig = approved_original(original, "refunded")
    taken, left = captured(tx, orig), captured(tx, orig) - held(tx, orig)
    if rec.amount > left:
        amount = format_amount(max(0, left), orig.currency, orig.exponent)
        raise RequestError(1006, "amount_exceeds_refundable",
                           f"at most {amount} {orig.currency} can still be refunded "
                           f"(of {format_amount(taken, orig.currency, orig.exponent)})",
                           field="amount")


def _open_hold(tx: JournalTx, original: TxnRecord | None, verb: str) -> TxnRecord:
    """An approved pre-authorisation that is neither cancelled nor completed, else 1010."""
    orig = approved_original(original, verb)
    if children(tx, orig, frozenset({TxnKind.PREAUTH_CANCEL})):
        raise RequestError(1010, "not_allowed", "the pre-authorisation was cancelled",
                           field="orig_order_no")
    if children(tx, orig, frozenset({TxnKind.COMPLETION})):
        raise RequestError(1010, "not_allowed", "the pre-authorisation was already completed",
                           field="orig_order_no")
    return orig


def _preauth_cancel_guard(tx: JournalTx, rec: TxnRecord, original: TxnRecord | None) -> None:
    _open_hold(tx, original, "cancelled")


def _completion_guard(tx: JournalTx, rec: TxnRecord, original: TxnRecord | None) -> None:
    _open_hold(tx, original, "completed")


def _tip_adjust_guard(tx: JournalTx, rec: TxnRecord,
                      original: TxnRecord | None) -> TxnRecord:
    orig = approved_original(original, "tip-adjusted")
    _in_open_batch(tx, orig, "a tip can only be adjusted while it is open")
    if children(tx, orig, _TIP_KINDS) != children(tx, orig, _TIP_KINDS, approved=True):
        raise RequestError(1010, "not_allowed", "another tip adjustment of it is in flight",
                           field="orig_order_no")
    if held(tx, orig) > 0:
        raise RequestError(1010, "not_allowed", "the original was voided or refunded",
                           field="orig_order_no")
    difference = rec.tip - tip_of(tx, orig)
    if difference == 0:
        raise RequestError(1010, "not_allowed", "the tip is already that amount", field="tip")
    return dataclasses.replace(rec, amount=difference)


# -- the table -------------------------------------------------------------------------------

_RETURNS: Final = frozenset({TxnKind.SALE, TxnKind.COMPLETION})

OPERATIONS: Final[Mapping[TxnKind, Operation]] = {op.kind: op for op in (
    Operation(kind=TxnKind.SALE, method="sale", role="cashier", amount=AmountRule.OWN,
              totals=Line.SALES, tips=True, needs_terminal=True, receipt=True,
              defines=("tip", "terminal_sn", "description"),
              defines_if_set=("cashback", "extra")),
    Operation(kind=TxnKind.VOID, method="void", role="manager",
              amount=AmountRule.WHOLE_ORIGINAL, totals=Line.VOIDS, originals=_RETURNS,
              guard=_void_guard, receipt=True, verb="voided", on_original="refunded",
              defines=("terminal_sn", "orig_order_no")),
    Operation(kind=TxnKind.REFUND, method="refund", role="manager",
              amount=AmountRule.UP_TO_REFUNDABLE, totals=Line.REFUNDS, originals=_RETURNS,
              guard=_refund_guard, receipt=True, verb="refunded", on_original="refunded",
              defines=("terminal_sn", "orig_order_no", "description"),
              defines_if_set=("extra",)),
    Operation(kind=TxnKind.QR_SALE, method="qr_sale", role="cashier", amount=AmountRule.OWN,
              totals=Line.SALES, tips=True, shows_qr=True,
              defines=("terminal_sn", "subject", "body", "display", "print_slip")),
    Operation(kind=TxnKind.QR_REFUND, method="refund", role="manager",
              amount=AmountRule.UP_TO_REFUNDABLE, totals=Line.REFUNDS,
              originals=frozenset({TxnKind.QR_SALE}), guard=_refund_guard, receipt=True,
              verb="refunded", on_original="refunded",
              defines=("terminal_sn", "orig_order_no", "description")),
    Operation(kind=TxnKind.CRYPTO_SALE, method="crypto_sale", role="cashier",
              amount=AmountRule.OWN, totals=Line.SALES, shows_qr=True,
              defines=("terminal_sn", "subject", "display", "print_slip", "extra",
                       "exponent")),
    Operation(kind=TxnKind.PREAUTH, method="preauth", role="cashier", amount=AmountRule.OWN,
              totals=Line.PREAUTHS, needs_terminal=True, receipt=True,
              defines=("terminal_sn", "description", "extra")),
    Operation(kind=TxnKind.PREAUTH_CANCEL, method="preauth.cancel", role="manager",
              amount=AmountRule.WHOLE_ORIGINAL, totals=None,
              originals=frozenset({TxnKind.PREAUTH}), guard=_preauth_cancel_guard,
              receipt=True, verb="cancelled", defines=("terminal_sn", "orig_order_no")),
    Operation(kind=TxnKind.COMPLETION, method="completion", role="cashier",
              amount=AmountRule.UP_TO_AUTHORISED, totals=Line.COMPLETIONS, tips=True,
              originals=frozenset({TxnKind.PREAUTH}), guard=_completion_guard, receipt=True,
              verb="completed", on_original="completed",
              defines=("terminal_sn", "orig_order_no", "tip")),
    Operation(kind=TxnKind.TIP_ADJUST, method="tip.adjust", role="manager",
              amount=AmountRule.TIP_DIFFERENCE, totals=Line.TIP_ADJUSTMENTS,
              originals=_RETURNS, guard=_tip_adjust_guard, verb="tip-adjusted",
              defines=("orig_order_no", "tip"), amount_defines=False),
    Operation(kind=TxnKind.CHECKOUT_QR, method="checkout_qr", role="cashier",
              amount=AmountRule.OWN, totals=Line.SALES, shows_qr=True,
              defines=("terminal_sn", "subject", "display", "print_slip")),
)}

_TIP_KINDS: Final = frozenset({TxnKind.TIP_ADJUST})
_RETURN_KINDS: Final = frozenset(op.kind for op in OPERATIONS.values()
                                 if op.on_original == "refunded")

#: The ECR methods that start an operation, and the rows each may start.
METHOD_ROWS: Final[Mapping[str, tuple[Operation, ...]]] = {
    method: tuple(op for op in OPERATIONS.values() if op.method == method)
    for method in dict.fromkeys(op.method for op in OPERATIONS.values())
}

#: Kinds whose customer pays by a QR the bridge shows.
QR_KINDS: Final = frozenset(op.kind for op in OPERATIONS.values() if op.shows_qr)


def row_for(method: str, orig_kind: TxnKind | None) -> Operation | None:
    """The row ``method`` starts, given the original's kind (None for a new payment)."""
    for op in METHOD_ROWS.get(method, ()):
        if (orig_kind is None) == op.is_new_payment and (
                orig_kind is None or orig_kind in op.originals):
            return op
    return None


@dataclass(slots=True)
class _Acc:
    count: int = 0
    exponent: int | None = None
    lines: dict[str, int] = field(default_factory=dict)

    def add(self, line: str, amount: int) -> None:
        self.lines[line] = self.lines.get(line, 0) + amount


def fold_totals(
    rows: Iterable[tuple[str, int | None, str, int, int, int, int]],
) -> dict[str, Totals]:
    """Per-currency batch totals from ``(currency, exponent, kind, count, sum amount, sum tip,
    sum cashback)`` rows of approved transactions (:meth:`posbridge.journal.Reads.batch_rows`):
    each kind adds to the line its row of :data:`OPERATIONS` names; tips and cash back have
    lines of their own."""
    acc: dict[str, _Acc] = {}
    for currency, exp, kind, count, amount, tip, cashback in rows:
        op = OPERATIONS.get(TxnKind(kind))
        t = acc.setdefault(currency, _Acc())
        t.count += count
        if exp is not None:
            t.exponent = exp
        if op is None or op.totals is None:
            continue
        t.add(op.totals, amount)
        if op.tips:
            t.add("tips", tip)
        if cashback:
            t.add("cashback", cashback)
    return {cur: Totals(count=a.count, exponent=a.exponent, **a.lines)
            for cur, a in sorted(acc.items())}
