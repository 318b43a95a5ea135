"""The transition table: every path to a final state, duplicates and late approvals."""

from __future__ import annotations

import pytest

from posbridge.lifecycle import ACTIVE_STATES, FINAL_STATES, TABLE, Signal, State, transition


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
