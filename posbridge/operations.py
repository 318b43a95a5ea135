"""Every operation the bridge performs, one row each: the one table the engine, the ECR methods,
the displays and the batch totals read.

=============  ==============  =======  ================  ==================  =========  ====
kind           ECR method      role     original          amount              totals     QR
=============  ==============  =======  ================  ==================  =========  ====
sale           ``sale``        cashier  -                 its own             sales      -
void           ``void``        manager  an approved sale  the whole original  voids      -
refund         ``refund``      manager  an approved sale  up to refundable    refunds    -
qr_sale        ``qr_sale``     cashier  -                 its own             sales      yes
qr_refund      ``refund``      manager  an approved QR    up to refundable    refunds    -
crypto_sale    ``crypto_sale`` cashier  -                 its own (the coin)  sales      yes
=============  ==============  =======  ================  ==================  =========  ====

A new payment goes to the provider of its terminal (``needs_terminal``) or else to the
configured provider that declares its kind in :class:`~posbridge.providers.base.Capabilities`;
a void or refund goes to its original's provider, which must declare the void's or refund's
kind. ``refund`` names two rows; the original's kind picks one. A method with no row for the
original's kind is refused with 1010, naming the provider's own reason when it has one (the
crypto platform has no refund).

The guards run inside the journal unit that records the intent, so that two concurrent
requests can never both pass a check (see :mod:`posbridge.journal`).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

from posbridge.errors import RequestError
from posbridge.journal import JournalTx
from posbridge.lifecycle import State
from posbridge.money import format_amount
from posbridge.providers.base import TxnKind
from posbridge.records import BatchState, Totals, TxnRecord

Role = Literal["cashier", "manager"]
#: A check made inside the intent's journal unit: (tx, the new record, its original or None).
Guard = Callable[[JournalTx, TxnRecord, "TxnRecord | None"], None]


class AmountRule(enum.StrEnum):
    """Where an operation's amount comes from."""

    OWN = "own"  # the register's amount (a new payment)
    WHOLE_ORIGINAL = "whole_original"  # the original's captured amount, tip included (a void)
    UP_TO_REFUNDABLE = "up_to_refundable"  # the register's, at most what is left to return


class Line(enum.StrEnum):
    """The batch total an approved transaction's amount adds to (see :class:`Totals`)."""

    SALES = "sales"
    REFUNDS = "refunds"
    VOIDS = "voids"


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
    #: the record's fields that, with kind, amount and currency, define it: a retry with the
    #: same ``order_no`` must agree on all of them (idempotency), else it is a conflict
    defines: tuple[str, ...] = ()

    @property
    def is_new_payment(self) -> bool:
        return not self.originals


# -- guards ----------------------------------------------------------------------------------


def approved_original(orig: TxnRecord | None, verb: str) -> TxnRecord:
    """The original of a void or refund, read inside the journal unit; approved, else 1010."""
    if orig is None:
        raise RequestError(1005, "original_not_found", "original transaction not found",
                           field="orig_order_no")
    if orig.state != State.APPROVED:
        raise RequestError(1010, "not_allowed",
                           f"only an approved payment can be {verb} (it is {orig.state.value})",
                           field="orig_order_no")
    return orig


def _void_guard(tx: JournalTx, rec: TxnRecord, original: TxnRecord | None) -> None:
    orig = approved_original(original, "voided")
    if orig.terminal_sn is not None and orig.batch_no is not None:
        batch = tx.batch(orig.terminal_sn, orig.batch_no)
        if batch is not None and batch.state is not BatchState.OPEN:
            raise RequestError(1010, "not_allowed",
                               "the original's batch is closed: refund it instead",
                               field="orig_order_no")
    if tx.held_against(orig.order_no) + rec.amount > orig.amount + orig.tip:
        raise RequestError(1006, "amount_exceeds_refundable",
                           "the original was already voided or refunded", field="orig_order_no")


def _refund_guard(tx: JournalTx, rec: TxnRecord, original: TxnRecord | None) -> None:
    orig = approved_original(original, "refunded")
    held = tx.held_against(orig.order_no)
    captured = orig.amount + orig.tip
    if held + rec.amount > captured:
        left = format_amount(captured - held, orig.currency, orig.exponent)
        raise RequestError(1006, "amount_exceeds_refundable",
                           f"at most {left} {orig.currency} can still be refunded",
                           field="amount")


# -- the table -------------------------------------------------------------------------------

OPERATIONS: Final[Mapping[TxnKind, Operation]] = {op.kind: op for op in (
    Operation(kind=TxnKind.SALE, method="sale", role="cashier", amount=AmountRule.OWN,
              totals=Line.SALES, tips=True, needs_terminal=True, receipt=True,
              defines=("tip", "terminal_sn", "description")),
    Operation(kind=TxnKind.VOID, method="void", role="manager",
              amount=AmountRule.WHOLE_ORIGINAL, totals=Line.VOIDS,
              originals=frozenset({TxnKind.SALE}), guard=_void_guard, receipt=True,
              verb="voided", defines=("terminal_sn", "orig_order_no")),
    Operation(kind=TxnKind.REFUND, method="refund", role="manager",
              amount=AmountRule.UP_TO_REFUNDABLE, totals=Line.REFUNDS,
              originals=frozenset({TxnKind.SALE}), guard=_refund_guard, receipt=True,
              verb="refunded", defines=("terminal_sn", "orig_order_no", "description")),
    Operation(kind=TxnKind.QR_SALE, method="qr_sale", role="cashier", amount=AmountRule.OWN,
              totals=Line.SALES, tips=True, shows_qr=True,
              defines=("terminal_sn", "subject", "body", "display", "print_slip")),
    Operation(kind=TxnKind.QR_REFUND, method="refund", role="manager",
              amount=AmountRule.UP_TO_REFUNDABLE, totals=Line.REFUNDS,
              originals=frozenset({TxnKind.QR_SALE}), guard=_refund_guard, receipt=True,
              verb="refunded", defines=("terminal_sn", "orig_order_no", "description")),
    Operation(kind=TxnKind.CRYPTO_SALE, method="crypto_sale", role="cashier",
              amount=AmountRule.OWN, totals=Line.SALES, shows_qr=True,
              defines=("terminal_sn", "subject", "display", "print_slip", "extra",
                       "exponent")),
)}

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


def fold_totals(
    rows: Iterable[tuple[str, int | None, str, int, int, int]],
) -> dict[str, Totals]:
    """Per-currency batch totals from ``(currency, exponent, kind, count, sum amount, sum tip)``
    rows of approved transactions (:meth:`posbridge.journal.JournalTx.batch_rows`): each kind
    adds to the line its row of :data:`OPERATIONS` names."""
    acc: dict[str, _Acc] = {}
    for currency, exp, kind, count, amount, tip in rows:
        op = OPERATIONS.get(TxnKind(kind))
        t = acc.setdefault(currency, _Acc())
        t.count += count
        if exp is not None:
            t.exponent = exp
        if op is None or op.totals is None:
            continue
        t.lines[op.totals] = t.lines.get(op.totals, 0) + amount
        if op.tips:
            t.lines["tips"] = t.lines.get("tips", 0) + tip
    return {cur: Totals(count=a.count, exponent=a.exponent, **a.lines)
            for cur, a in sorted(acc.items())}
