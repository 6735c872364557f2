"""Ticket states and the one transition table every state change goes through.

Like h11's `_state.py`: the table is the whole truth; an event not allowed in
a state raises `InvalidTransition` naming both.
"""

from __future__ import annotations

import enum


class State(enum.StrEnum):
    AWAITING_INFO = "awaiting_info"  # request incomplete or invalid; waiting for the applicant
    NEW = "new"  # registered, waiting for disposition (SOP 002 step 2-3)
    ASSIGNED = "assigned"  # delegated to a person (step 4-5)
    FORWARDED = "forwarded"  # with an external vendor (SOP 003)
    WAITING_APPLICANT = "waiting_applicant"  # staff asked the applicant (REQUEST-INFO)
    ANSWERED = "answered"  # answer and survey form sent (step 6)
    CLOSED = "closed"  # survey returned or closed by staff (step 8)
    REJECTED = "rejected"  # refused (not eligible, out of scope)


class Event(enum.StrEnum):
    REQUEST_INCOMPLETE = "request_incomplete"
    REQUEST_COMPLETE = "request_complete"
    INFO_STILL_MISSING = "info_still_missing"
    ASSIGN = "assign"
    FORWARD = "forward"
    REQUEST_INFO = "request_info"
    INFO_RECEIVED = "info_received"
    ANSWER = "answer"
    SURVEY_RECEIVED = "survey_received"
    CLOSE = "close"
    REJECT = "reject"
    REOPEN = "reopen"


class InvalidTransition(Exception):
    """An event that the ticket's current state does not allow."""

    def __init__(self, state: State | None, event: Event) -> None:
        self.state = state
        self.event = event
        where = state.value if state else "(no ticket)"
        super().__init__(f"event {event.value!r} is not allowed in state {where!r}")


# (current state or None for a ticket being opened, event) -> next state.
TRANSITIONS: dict[tuple[State | None, Event], State] = {
    (None, Event.REQUEST_INCOMPLETE): State.AWAITING_INFO,
    (None, Event.REQUEST_COMPLETE): State.NEW,
    (State.AWAITING_INFO, Event.INFO_STILL_MISSING): State.AWAITING_INFO,
    (State.AWAITING_INFO, Event.REQUEST_COMPLETE): State.NEW,
    (State.AWAITING_INFO, Event.REJECT): State.REJECTED,
    (State.AWAITING_INFO, Event.CLOSE): State.CLOSED,
    (State.NEW, Event.ASSIGN): State.ASSIGNED,
    (State.NEW, Event.FORWARD): State.FORWARDED,
    (State.NEW, Event.ANSWER): State.ANSWERED,
    (State.NEW, Event.REJECT): State.REJECTED,
    (State.NEW, Event.CLOSE): State.CLOSED,
    (State.ASSIGNED, Event.ASSIGN): State.ASSIGNED,
    (State.ASSIGNED, Event.FORWARD): State.FORWARDED,
    (State.ASSIGNED, Event.REQUEST_INFO): State.WAITING_APPLICANT,
    (State.ASSIGNED, Event.ANSWER): State.ANSWERED,
    (State.ASSIGNED, Event.REJECT): State.REJECTED,
    (State.ASSIGNED, Event.CLOSE): State.CLOSED,
    (State.FORWARDED, Event.ANSWER): State.ANSWERED,
    (State.FORWARDED, Event.ASSIGN): State.ASSIGNED,
    (State.FORWARDED, Event.REQUEST_INFO): State.WAITING_APPLICANT,
    (State.FORWARDED, Event.CLOSE): State.CLOSED,
    (State.FORWARDED, Event.REJECT): State.REJECTED,
    (State.WAITING_APPLICANT, Event.INFO_RECEIVED): State.ASSIGNED,
    (State.WAITING_APPLICANT, Event.CLOSE): State.CLOSED,
    (State.WAITING_APPLICANT, Event.REJECT): State.REJECTED,
    (State.ANSWERED, Event.SURVEY_RECEIVED): State.CLOSED,
    (State.ANSWERED, Event.REOPEN): State.ASSIGNED,
    (State.ANSWERED, Event.CLOSE): State.CLOSED,
    (State.CLOSED, Event.REOPEN): State.ASSIGNED,
    (State.REJECTED, Event.REOPEN): State.NEW,
}

OPEN_STATES = frozenset(
    {State.AWAITING_INFO, State.NEW, State.ASSIGNED, State.FORWARDED, State.WAITING_APPLICANT}
)
# States in which the clock runs for the staff; in the others it waits for the applicant or is done.
WAITING_FOR_APPLICANT = frozenset({State.AWAITING_INFO, State.WAITING_APPLICANT})


def next_state(state: State | None, event: Event) -> State:
    """The state after `event`, or InvalidTransition."""
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise InvalidTransition(state, event) from None


def allowed_events(state: State | None) -> list[Event]:
    return [e for (s, e) in TRANSITIONS if s == state]
