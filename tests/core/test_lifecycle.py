"""The transition table: every path to a final state, duplicates and late approvals."""

from __future__ import annotations

import pytest

from posbridge.lifecycle import (
    ACTIVE_STATES,
    FINAL_SIGNALS,
    FINAL_STATES,
    TABLE,
    Facts,
    Signal,
    State,
    signal_for,
    transition,
)
from posbridge.providers.base import Outcome


@pytest.mark.parametrize(
    ("path", "end"),
    [
        ([Signal.ACCEPTED, Signal.APPROVED], State.APPROVED),
        ([Signal.ACCEPTED, Signal.WORKING, Signal.DECLINED], State.DECLINED),
        ([Signal.ACCEPTED, Signal.CANCELLED], State.CANCELLED),
        ([Signal.ACCEPTED, Signal.EXPIRED], State.EXPIRED),
        ([Signal.REJECTED], State.FAILED),
        ([Signal.LOST, Signal.WORKING, Signal.APPROVED], State.APPROVED),
        ([Signal.LOST, Signal.GAVE_UP], State.FAILED),
        ([Signal.LOST, Signal.APPROVED], State.APPROVED),
    ],
)
def test_paths_reach_their_final_state(path: list[Signal], end: State) -> None:
    state = State.PENDING
    for signal in path:
        step = transition(state, signal)
        if step is not None:
            state = step.new
    assert state is end
    assert state.is_final


@pytest.mark.parametrize("final", sorted(FINAL_STATES))
@pytest.mark.parametrize("signal", list(Signal))
def test_final_states_only_ever_move_to_a_late_approval(final: State, signal: Signal) -> None:
    step = transition(final, signal)
    if step is None:
        return
    assert signal is Signal.APPROVED
    assert final in (State.CANCELLED, State.EXPIRED, State.DECLINED)
    assert step.new is State.APPROVED
    assert step.late_approval


def test_duplicates_change_nothing() -> None:
    assert transition(State.APPROVED, Signal.APPROVED) is None
    assert transition(State.IN_PROGRESS, Signal.WORKING) is None
    assert transition(State.FAILED, Signal.APPROVED) is None  # no order exists: nothing to approve


def test_stale_progress_after_final_is_ignored() -> None:
    for final in FINAL_STATES:
        assert transition(final, Signal.WORKING) is None
        assert transition(final, Signal.ACCEPTED) is None


def test_active_states_have_no_late_flag() -> None:
    for (state, _signal), _new in TABLE.items():
        if state in ACTIVE_STATES:
            step = transition(state, _signal)
            assert step is None or not step.late_approval


def test_a_lost_answer_cannot_be_reported_as_approved_without_the_provider() -> None:
    # Only an APPROVED signal (which only a provider report produces) leads to approved.
    for (state, signal), new in TABLE.items():
        if new is State.APPROVED:
            assert signal is Signal.APPROVED, (state, signal)


# -- what a provider's report means (signal_for) --------------------------------------------

CLOSED_BY_BRIDGE = Facts(close_sent=True)
CANCELLED_BY_REGISTER = Facts(close_sent=True, cancel_requested=True)
TIMED_OUT = Facts(close_sent=True, expired=True)


def test_a_report_of_still_open_answering_the_create_is_an_acceptance() -> None:
    assert signal_for(Outcome.PENDING, Facts(), accepted=True) is Signal.ACCEPTED
    assert signal_for(Outcome.PENDING, Facts()) is Signal.WORKING
    assert signal_for(Outcome.NOT_FOUND, Facts()) is None


@pytest.mark.parametrize("code", [None, "", "51", "E1001"])
def test_a_failure_after_the_bridges_close_is_never_a_decline(code: str | None) -> None:
    """Whatever the error code, an order the bridge closed ends cancelled (a register asked)
    or expired (its time ran out)."""
    assert signal_for(Outcome.DECLINED, CANCELLED_BY_REGISTER,
                      provider_code=code) is Signal.CANCELLED
    assert signal_for(Outcome.DECLINED, TIMED_OUT, provider_code=code) is Signal.EXPIRED
    assert signal_for(Outcome.DECLINED, CLOSED_BY_BRIDGE, provider_code=code) is Signal.EXPIRED


def test_a_decline_is_a_failure_the_bridge_did_not_cause() -> None:
    assert signal_for(Outcome.DECLINED, Facts(), provider_code="51") is Signal.DECLINED
    assert signal_for(Outcome.DECLINED, Facts(), provider_code=None) is Signal.DECLINED
    # asked to cancel, not closed yet: a card refusal with its code is still a decline
    assert signal_for(Outcome.DECLINED, Facts(cancel_requested=True),
                      provider_code="51") is Signal.DECLINED
    # without a code after a cancel request or past expiry: the provider closed it itself
    assert signal_for(Outcome.DECLINED, Facts(cancel_requested=True)) is Signal.CANCELLED
    assert signal_for(Outcome.DECLINED, Facts(expired=True)) is Signal.EXPIRED


def test_a_cancellation_nobody_asked_for_is_an_expiry() -> None:
    assert signal_for(Outcome.CANCELLED, Facts()) is Signal.CANCELLED
    assert signal_for(Outcome.CANCELLED, TIMED_OUT) is Signal.EXPIRED
    assert signal_for(Outcome.CANCELLED, Facts(expired=True)) is Signal.EXPIRED
    assert signal_for(Outcome.CANCELLED, CANCELLED_BY_REGISTER) is Signal.CANCELLED


def test_an_approval_wins_unless_the_order_was_reversed() -> None:
    assert signal_for(Outcome.APPROVED, CANCELLED_BY_REGISTER) is Signal.APPROVED
    assert signal_for(Outcome.APPROVED, Facts(reversed=True)) is None


def test_a_signal_that_can_end_a_transaction_always_ends_it() -> None:
    """The engine makes a unit durable before it runs when its signal is in FINAL_SIGNALS: a
    signal that ended a transaction from one state but not from another would leave some
    final states committed without an fsync (the journal's durability table forbids it)."""
    for signal in Signal:
        outcomes = {new for (_old, sig), new in TABLE.items() if sig is signal}
        if any(new.is_final for new in outcomes):
            assert signal in FINAL_SIGNALS, signal
    assert Signal.APPROVED in FINAL_SIGNALS and Signal.WORKING not in FINAL_SIGNALS
