"""The transition table, walked for every (state, event) pair, as h11's tests do."""

from __future__ import annotations

import itertools

import pytest

from mailbot.core.workflow import TRANSITIONS, Event, InvalidTransition, State, allowed_events, next_state

ALL_STATES: list[State | None] = [None, *State]


@pytest.mark.parametrize(("state", "event"), list(itertools.product(ALL_STATES, Event)))
def test_every_pair_either_moves_by_the_table_or_raises_naming_both(
    state: State | None, event: Event
) -> None:
    if (state, event) in TRANSITIONS:
        assert next_state(state, event) is TRANSITIONS[(state, event)]
    else:
        with pytest.raises(InvalidTransition) as err:
            next_state(state, event)
        assert err.value.state == state and err.value.event == event
        assert event.value in str(err.value)
        assert (state.value if state else "(no ticket)") in str(err.value)


def test_a_ticket_opens_only_as_new_or_awaiting_info() -> None:
    assert sorted(allowed_events(None)) == sorted([Event.REQUEST_COMPLETE, Event.REQUEST_INCOMPLETE])


def test_every_state_is_reachable_and_closed_can_be_reopened() -> None:
    reached = {State(s) for s in TRANSITIONS.values()}
    assert reached == set(State)
    assert next_state(State.CLOSED, Event.REOPEN) is State.ASSIGNED


def test_sop_002_happy_path() -> None:
    state = next_state(None, Event.REQUEST_INCOMPLETE)
    for event in (Event.REQUEST_COMPLETE, Event.ASSIGN, Event.ANSWER, Event.SURVEY_RECEIVED):
        state = next_state(state, event)
    assert state is State.CLOSED
