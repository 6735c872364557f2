"""The office's calendar and each ticket's running step with its deadline, read from the ticket's
history: the clock the sweep, the intake and the staff commands share."""

from __future__ import annotations

from datetime import datetime

from mailbot.config import Config
from mailbot.core.workflow import AFTER_ANSWER_STATES, OPEN_STATES, TRANSITION_KINDS, State
from mailbot.core.working_time import (
    Happening,
    StepClock,
    WorkCalendar,
    after_answer_clock,
    reminder_time,
    step_clock,
)
from mailbot.shell import models
from mailbot.shell.holiday_cache import work_calendar


class Clocks:
    """The running step of a ticket and its deadline (no I/O: the ticket's history in, a clock out)."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.calendar: WorkCalendar = work_calendar(config)

    def clock(self, ticket: models.Ticket) -> StepClock | None:
        profile = self.config.profiles.get(ticket.profile, self.config.profile)
        steps = {s.id: s.deadline for s in profile.steps}
        history = [
            Happening(e.id, e.at, e.kind, e.state, e.data or {}, seq=i) for i, e in enumerate(ticket.events)
        ]
        assignee = self.config.staff_by_email(ticket.assignee_email) if ticket.assignee_email else None
        return step_clock(
            ticket.state.value,
            history,
            steps,
            {str(k): v for k, v in profile.state_steps.items()},
            self.calendar,
            TRANSITION_KINDS,
            assignee_role=assignee.role if assignee else None,
            role_steps={str(k): v for k, v in profile.role_steps.items()},
        )

    def after_answer(self, ticket: models.Ticket) -> StepClock | None:
        """The running step after the answer (SOP 001: the report, then the archiving), if any."""
        profile = self.config.profiles.get(ticket.profile, self.config.profile)
        if not profile.after_answer or ticket.state not in AFTER_ANSWER_STATES:
            return None
        history = [
            Happening(e.id, e.at, e.kind, e.state, e.data or {}, seq=i) for i, e in enumerate(ticket.events)
        ]
        steps = {s.id: s.deadline for s in profile.steps}
        return after_answer_clock(history, profile.after_answer, steps, self.calendar)

    def refresh(self, ticket: models.Ticket) -> StepClock | None:
        """Store the running step, its deadline and when the sweep should next look at the ticket:
        at the step's reminder time; an answered ticket (survey pending) right away; a ticket with
        a step after the answer still to do at that step's reminder time."""
        clock = self.clock(ticket) if ticket.state in OPEN_STATES else None
        step, due = (clock.step, clock.due_at) if clock else ("", None)
        if ticket.step != step or ticket.due_at != due:
            ticket.step, ticket.due_at = step, due
        profile = self.config.profiles.get(ticket.profile, self.config.profile)
        check: datetime | None = None
        if clock is not None:
            check = min(reminder_time(clock, profile.remind_at, self.calendar), clock.due_at)
        elif ticket.state is State.ANSWERED:
            check = ticket.updated_at
        after = self.after_answer(ticket)
        if after is not None:
            due_check = min(reminder_time(after, profile.remind_at, self.calendar), after.due_at)
            check = due_check if check is None else min(check, due_check)
        if ticket.next_check_at != check:
            ticket.next_check_at = check
        return clock
