"""The transaction lifecycle as one pure transition table.

Nothing else in posbridge assigns a transaction state: the engine turns what happened
(a provider answer, a notification, a query result, a lost response) into a :class:`Signal`
(:func:`signal_for` reads a provider's report in the light of what the bridge itself did) and
asks :func:`transition` what the new state is. Start-up reconciliation, polling and
notifications all go through the same table, so duplicates and out-of-order reports are
harmless: a signal that does not apply to the current state is ignored.

::

    pending ──accepted/working──▶ in_progress ──approved──▶ approved
       │  ╲                          │      ╲──declined──▶ declined
       │   ╲──lost──▶ unknown ───────┤       ╲─cancelled─▶ cancelled
       │                             │        ╲─expired──▶ expired
       ╰──rejected / gave_up──▶ failed (no money moved)

One exception to "final is final": the provider is the source of truth for money. When it
reports an approval for a transaction that the bridge had already finalised as cancelled,
expired or declined (a terminal that approved off-line, a race with a close), the transaction
becomes ``approved`` and the transition is marked ``late_approval`` so that the register and
the manager are told; it is never dropped silently.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from posbridge.providers.base import Outcome


class State(enum.StrEnum):
    PENDING = "pending"  # recorded; the provider has not confirmed it yet
    IN_PROGRESS = "in_progress"  # on the terminal / QR shown
    UNKNOWN = "unknown"  # the provider's answer was lost; reconciling
    APPROVED = "approved"
    DECLINED = "declined"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    FAILED = "failed"  # the provider refused the request; no money moved

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATES


FINAL_STATES = frozenset(
    {State.APPROVED, State.DECLINED, State.CANCELLED, State.EXPIRED, State.FAILED}
)
ACTIVE_STATES = frozenset({State.PENDING, State.IN_PROGRESS, State.UNKNOWN})


class Signal(enum.StrEnum):
    """What happened to a transaction, in the engine's words."""

    ACCEPTED = "accepted"  # the provider took the order
    REJECTED = "rejected"  # the provider refused the order; no money moved
    LOST = "lost"  # the answer to a create was lost: outcome unknown
    GAVE_UP = "gave_up"  # the order never reached the provider before it expired
    WORKING = "working"  # the provider says the order is still open
    APPROVED = "approved"
    DECLINED = "declined"
    CANCELLED = "cancelled"  # the provider confirms it was cancelled / closed
    EXPIRED = "expired"  # the provider confirms it closed after the bridge's timeout


_TO_FINAL = {
    Signal.APPROVED: State.APPROVED,
    Signal.DECLINED: State.DECLINED,
    Signal.CANCELLED: State.CANCELLED,
    Signal.EXPIRED: State.EXPIRED,
}

TABLE: dict[tuple[State, Signal], State] = {
    (State.PENDING, Signal.ACCEPTED): State.IN_PROGRESS,
    (State.PENDING, Signal.WORKING): State.IN_PROGRESS,
    (State.PENDING, Signal.REJECTED): State.FAILED,
    (State.PENDING, Signal.LOST): State.UNKNOWN,
    (State.PENDING, Signal.GAVE_UP): State.FAILED,
    (State.UNKNOWN, Signal.ACCEPTED): State.IN_PROGRESS,
    (State.UNKNOWN, Signal.WORKING): State.IN_PROGRESS,
    (State.UNKNOWN, Signal.REJECTED): State.FAILED,
    (State.UNKNOWN, Signal.GAVE_UP): State.FAILED,
    **{(state, signal): final for state in (State.PENDING, State.IN_PROGRESS, State.UNKNOWN)
       for signal, final in _TO_FINAL.items()},
    # The provider's word on money wins over the bridge's earlier conclusion.
    (State.CANCELLED, Signal.APPROVED): State.APPROVED,
    (State.EXPIRED, Signal.APPROVED): State.APPROVED,
    (State.DECLINED, Signal.APPROVED): State.APPROVED,
}


#: The signals after which a transaction is final, whatever state it was in.
FINAL_SIGNALS = frozenset(
    signal for signal in Signal
    if all(new.is_final for (_old, sig), new in TABLE.items() if sig is signal))


@dataclass(frozen=True, slots=True)
class Transition:
    old: State
    new: State
    late_approval: bool = False


def transition(state: State, signal: Signal) -> Transition | None:
    """The state ``signal`` leads to from ``state``, or None when it changes nothing.

    None covers duplicates (an approval of an approved transaction) and signals that do not
    apply (a late ``working`` after a final state).
    """
    new = TABLE.get((state, signal))
    if new is None or new is state:
        return None
    return Transition(old=state, new=new, late_approval=state.is_final)


_OUTCOME_SIGNAL = {
    Outcome.PENDING: Signal.WORKING,
    Outcome.APPROVED: Signal.APPROVED,
    Outcome.DECLINED: Signal.DECLINED,
    Outcome.CANCELLED: Signal.CANCELLED,
}


@dataclass(frozen=True, slots=True)
class Facts:
    """What the bridge itself did to a transaction, as far as a provider report's meaning
    depends on it."""

    close_sent: bool = False  # the bridge asked the provider to close the order
    cancel_requested: bool = False  # a register asked to cancel it
    expired: bool = False  # the bridge's wait for the order has run out
    reversed: bool = False  # the bridge reversed it after a lost answer (money returned)


def signal_for(outcome: Outcome, facts: Facts, *, provider_code: str | None = None,
               accepted: bool = False) -> Signal | None:
    """What a provider's report of ``outcome`` means for a transaction; None: nothing.

    * ``accepted``: the report answers the bridge's create, so "still open" is an acceptance.
    * A failure the bridge caused is not a decline. A provider may report an order the bridge
      closed as "closed or failed", with or without an error code: once the bridge has sent a
      close, such a report ends the order ``cancelled`` (a register asked) or ``expired``
      (its time ran out), whatever the code.
      Without a close, a failure with no error code after a cancel request or past the
      order's expiry is the provider closing it on its own, not a card declined.
    * A cancellation nobody asked for, after the bridge's close or past expiry, is ``expired``.
    * A reversed order's money went back: an approval sent before the reverse is stale.
    """
    if outcome is Outcome.NOT_FOUND:
        return None
    signal = _OUTCOME_SIGNAL[outcome]
    if accepted and signal is Signal.WORKING:
        signal = Signal.ACCEPTED
    if signal is Signal.DECLINED and (facts.close_sent or (
            not provider_code and (facts.cancel_requested or facts.expired))):
        signal = Signal.CANCELLED
    if signal is Signal.APPROVED and facts.reversed:
        return None
    if (signal is Signal.CANCELLED and not facts.cancel_requested
            and (facts.close_sent or facts.expired)):
        signal = Signal.EXPIRED
    return signal
