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
    NORMATIVE = "normative"  # SOP 000: the secretariat answers the question itself (step 5-6)
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
    (State.NEW, Event.NORMATIVE): State.ASSIGNED,
    (State.NEW, Event.ANSWER): State.ANSWERED,
    (State.NEW, Event.REJECT): State.REJECTED,
    (State.NEW, Event.CLOSE): State.CLOSED,
    (State.ASSIGNED, Event.ASSIGN): State.ASSIGNED,
    (State.ASSIGNED, Event.FORWARD): State.FORWARDED,
    (State.ASSIGNED, Event.NORMATIVE): State.ASSIGNED,
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
# A ticket whose steps after the answer (SOP 001's report and archiving) may still run.
AFTER_ANSWER_STATES = frozenset({State.ANSWERED, State.CLOSED})
# The history kinds that are transitions of the table (the clocks read a ticket's steps from them).
TRANSITION_KINDS = frozenset(e.value for e in Event)


def next_state(state: State | None, event: Event) -> State:
    """The state after `event`, or InvalidTransition."""
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise InvalidTransition(state, event) from None


def allowed_events(state: State | None) -> list[Event]:
    return [e for (s, e) in TRANSITIONS if s == state]


# --- mail ------------------------------------------------------------------------------------


class InvalidStatusChange(Exception):
    """A mail status change that the table does not allow."""

    def __init__(self, what: str, current: str | None, new: str) -> None:
        super().__init__(f"{what} status {current!r} cannot become {new!r}")


class InboundStatus(enum.StrEnum):
    """What became of a received mail."""

    PROCESSING = "processing"  # stored, being processed in this transaction
    PROCESSED = "processed"  # acted on: a ticket opened, completed, answered, a command run
    DUPLICATE = "duplicate"  # a copy of a mail already received
    MACHINE = "machine"  # an automatic mail: recorded, never answered
    IGNORED = "ignored"  # staff mail that belongs to no ticket and carries no command
    QUARANTINED = "quarantined"  # unreadable or over a limit; can be replayed
    HELD = "held"  # spam or a sender's flood: kept for staff (`mailbot replay --release`)
    RELEASED = "released"  # a held mail that staff released (processed again as a new copy)


INBOUND_TRANSITIONS: dict[InboundStatus | None, frozenset[InboundStatus]] = {
    # Stored for processing, or straight to quarantine when processing itself failed.
    None: frozenset({InboundStatus.PROCESSING, InboundStatus.QUARANTINED}),
    InboundStatus.PROCESSING: frozenset(
        {
            InboundStatus.PROCESSED,
            InboundStatus.DUPLICATE,
            InboundStatus.MACHINE,
            InboundStatus.IGNORED,
            InboundStatus.QUARANTINED,
            InboundStatus.HELD,
        }
    ),
    InboundStatus.HELD: frozenset({InboundStatus.RELEASED}),
}


class OutboundStatus(enum.StrEnum):
    """Where a queued mail is on its way out."""

    PENDING = "pending"  # queued; sent when its time comes (first try or a retry after backoff)
    SENDING = "sending"  # claimed by a sender process until its lease ends
    SENT = "sent"  # the server accepted it (250)
    DEAD = "dead"  # refused for good (5xx) or out of attempts: a dead letter, shown to staff


OUTBOUND_TRANSITIONS: dict[OutboundStatus | None, frozenset[OutboundStatus]] = {
    None: frozenset({OutboundStatus.PENDING}),
    OutboundStatus.PENDING: frozenset({OutboundStatus.SENDING}),
    # Sent, failed for good, or back to pending: a retry, or a claim released or expired.
    OutboundStatus.SENDING: frozenset({OutboundStatus.SENT, OutboundStatus.DEAD, OutboundStatus.PENDING}),
    OutboundStatus.DEAD: frozenset({OutboundStatus.PENDING}),  # staff retry a dead letter
}


def next_inbound(current: InboundStatus | None, new: InboundStatus) -> InboundStatus:
    if new not in INBOUND_TRANSITIONS.get(current, frozenset()):
        raise InvalidStatusChange("inbound", current, new)
    return new


def next_outbound(current: OutboundStatus | None, new: OutboundStatus) -> OutboundStatus:
    if new not in OUTBOUND_TRANSITIONS.get(current, frozenset()):
        raise InvalidStatusChange("outbound", current, new)
    return new
