"""The journal's records: what is known about one transaction, one batch, one event.

Plain frozen dataclasses; amounts in minor units; times in epoch milliseconds (UTC).
Turning them into the ECR's JSON objects is :mod:`posbridge.views`' job.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from posbridge.lifecycle import State
from posbridge.providers.base import TxnKind


class Attention(enum.StrEnum):
    """Why a transaction needs a person to look at it."""

    LATE_APPROVAL = "late_approval"  # approved by the provider after the bridge had finalised it


@dataclass(frozen=True, slots=True)
class TxnRecord:
    order_no: str
    kind: TxnKind
    provider: str
    identity: str  # the register (ECR client name) that started it
    amount: int
    currency: str
    state: State
    fingerprint: str  # the parameters that define it, for idempotent retries
    created_at: int
    updated_at: int
    expires_at: int  # when the bridge stops waiting and closes the order
    tip: int = 0
    terminal_sn: str | None = None
    provider_ref: str | None = None
    auth_no: str | None = None
    card_brand: str | None = None
    card_last4: str | None = None
    qr_deeplink: str | None = None
    orig_order_no: str | None = None
    refunded_amount: int = 0  # on originals: approved refunds and voids
    batch_no: int | None = None
    error_code: str | None = None
    error_message: str | None = None
    provider_code: str | None = None
    attention: Attention | None = None
    description: str = ""
    subject: str = ""
    body: str = ""
    display: str | None = None
    print_slip: bool = False
    cancel_requested: bool = False
    close_sent: bool = False  # the bridge asked the provider to close it (cancel or timeout)
    create_attempts: int = 0
    #: decimals of the amounts when ``currency`` is a provider's coin (None: ISO 4217's)
    exponent: int | None = None
    #: the operation's own parameters that only some providers read (e.g. a crypto payer)
    extra: Mapping[str, str] = field(default_factory=dict)
    cashback: int = 0  # cash handed out with a sale, charged to the card with the amount
    completed_amount: int = 0  # on a pre-authorisation: what its approved completion captured

    @property
    def is_final(self) -> bool:
        return self.state.is_final


class BatchState(enum.StrEnum):
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class BatchRecord:
    terminal_sn: str
    batch_no: int
    state: BatchState
    opened_at: int
    closed_at: int | None = None
    close_sent: bool = False
    provider_result: dict[str, object] | None = None
    discrepancy: dict[str, object] | None = None


@dataclass(frozen=True, slots=True)
class Totals:
    """Batch totals of one currency, minor units (``exponent``: decimals of a coin, None for an
    ISO 4217 currency)."""

    count: int = 0
    sales: int = 0
    tips: int = 0
    refunds: int = 0
    voids: int = 0
    preauths: int = 0  # approved holds: not money taken, so not in net
    completions: int = 0
    cashback: int = 0
    tip_adjustments: int = 0  # the sum of the adjustments' differences (may be negative)
    exponent: int | None = None

    @property
    def net(self) -> int:
        """What the batch took: sales, completions, tips (as adjusted) and cash back, less
        refunds and voids. Holds are not money taken."""
        return (self.sales + self.completions + self.tips + self.tip_adjustments
                + self.cashback - self.refunds - self.voids)


@dataclass(frozen=True, slots=True)
class EventRecord:
    identity: str
    seq: int
    method: str
    params: dict[str, object] = field(default_factory=dict)
    at: int = 0
    #: ``params`` as compact JSON text, as stored (frames are built from it, not encoded again)
    params_json: str | None = field(default=None, compare=False, repr=False)
