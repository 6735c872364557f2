"""One ticket's notices on the sweep: the step's reminder and escalation (in office hours; an
escalation that falls due at night is recorded then and mailed at the next opening), the survey
reminder and the closing without a survey, and the steps after the answer. The sweep
(pipeline/sweep.py) brings this in when a ticket's `next_check_at` has come."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from mailbot.config import Config
from mailbot.core.authz import level
from mailbot.core.durations import parse_duration
from mailbot.core.survey import ELEMENTS
from mailbot.core.workflow import AFTER_ANSWER_STATES, Event, State
from mailbot.core.working_time import StepClock, reminder_time
from mailbot.pipeline.after_answer import step_people
from mailbot.pipeline.clocks import Clocks
from mailbot.pipeline.notices import claim_notice, notice_exists
from mailbot.pipeline.replies import Replies
from mailbot.settings import Profile, StaffMember
from mailbot.shell import models
from mailbot.shell.persist import Effects


class TicketNotices:
    """The notices of one ticket at a time, each in the sweep's transaction for that ticket."""

    def __init__(self, config: Config, replies: Replies, clocks: Clocks) -> None:
        self.config = config
        self.replies = replies
        self.clocks = clocks
        self.calendar = clocks.calendar

    def run(self, session: Session, effects: Effects, ticket_id: int, now: datetime) -> list[str]:
        """The notices of one ticket that are due now; sets when to look at it next."""
        ticket = session.get(models.Ticket, ticket_id)
        if ticket is None:
            return []
        profile = self.config.profiles.get(ticket.profile, self.config.profile)
        if ticket.state in AFTER_ANSWER_STATES:
            sent: list[str] = []
            checks: list[datetime | None] = []
            if ticket.state is State.ANSWERED:
                sent, check = self._survey(session, effects, ticket, profile, now)
                checks.append(check)
            # The steps after the answer run on, whatever the survey does (it may close the ticket).
            after = self.clocks.after_answer(ticket)
            if after is not None:
                people = step_people(self.config, ticket, profile, after.step)
                more, check = self._notices(session, effects, ticket, profile, after, people, now)
                sent += more
                checks.append(check)
            ticket.next_check_at = min((c for c in checks if c is not None), default=None)
            return sent
        clock = self.clocks.refresh(ticket)
        if clock is None:
            return []
        sent, ticket.next_check_at = self._notices(
            session, effects, ticket, profile, clock, self._responsible(ticket, profile), now
        )
        return sent

    def _notices(
        self,
        session: Session,
        effects: Effects,
        ticket: models.Ticket,
        profile: Profile,
        clock: StepClock,
        responsible: list[StaffMember],
        now: datetime,
    ) -> tuple[list[str], datetime | None]:
        """A step's reminder to the people responsible and its escalation, in office hours only;
        the notices sent and when to look at the ticket next."""
        sent: list[str] = []
        remind = reminder_time(clock, profile.remind_at, self.calendar)
        is_open = self.calendar.is_open(now)
        # Next time: the reminder, else the escalation, else nothing until the ticket changes.
        next_check = _first_after(now, remind, clock.due_at)
        key = f"{ticket.id}:{clock.key}"
        if remind <= now < clock.due_at and not is_open:
            # No reminder outside office hours: at the opening, unless the step is overdue by then.
            next_check = min(clock.due_at, self.calendar.next_open(now))
        elif remind <= now < clock.due_at and claim_notice(session, key, "reminder", ticket.id, now):
            for person in responsible:
                self._mail(
                    session,
                    effects,
                    ticket,
                    profile,
                    "deadline_reminder",
                    "reminder",
                    person,
                    clock,
                    responsible,
                    now,
                )
            effects.record(
                ticket,
                "reminder",
                actor="system",
                now=now,
                detail=f"{clock.step} due {clock.due_at.astimezone(self.calendar.tz):%d-%m-%Y %H.%M}",
                data=_step_data(profile, clock.step, clock.due_at.astimezone(self.calendar.tz)),
            )
            sent.append("reminder")
        if now >= clock.due_at:
            # The escalation notice records the step as late when it falls due (the period
            # report counts it); its mail waits for office hours.
            if claim_notice(session, key, "escalation", ticket.id, now):
                effects.record(
                    ticket,
                    "escalation",
                    actor="system",
                    now=now,
                    detail=f"{clock.step} overdue since "
                    f"{clock.due_at.astimezone(self.calendar.tz):%d-%m-%Y %H.%M}",
                    data=_step_data(profile, clock.step, clock.due_at.astimezone(self.calendar.tz)),
                )
                if is_open:
                    self._escalate(session, effects, ticket, profile, clock, responsible, now)
                    sent.append("escalation")
                else:
                    claim_notice(session, key, "escalation_held", ticket.id, now)
                    sent.append("escalation_held")
                    next_check = self.calendar.next_open(now)
            elif not is_open:
                if notice_exists(session, key, "escalation_held"):
                    next_check = self.calendar.next_open(now)
            elif notice_exists(session, key, "escalation_held") and claim_notice(
                session, key, "escalation_mailed", ticket.id, now
            ):
                self._escalate(session, effects, ticket, profile, clock, responsible, now)
                sent.append("escalation")
        return sent, next_check

    def _escalate(
        self,
        session: Session,
        effects: Effects,
        ticket: models.Ticket,
        profile: Profile,
        clock: StepClock,
        responsible: list[StaffMember],
        now: datetime,
    ) -> None:
        for head in self._heads(profile):
            self._mail(
                session, effects, ticket, profile, "escalation", "escalation", head, clock, responsible, now
            )

    def _survey(
        self, session: Session, effects: Effects, ticket: models.Ticket, profile: Profile, now: datetime
    ) -> tuple[list[str], datetime | None]:
        """The survey reminder and the closing without a survey; when to look again."""
        answered = next((e for e in reversed(ticket.events) if e.kind == Event.ANSWER.value), None)
        if not profile.survey or answered is None:
            return [], None  # nothing for the sweep to do until the ticket changes
        remind = self.calendar.deadline(answered.at, parse_duration(profile.survey_reminder_after))
        close = self.calendar.deadline(answered.at, parse_duration(profile.survey_close_after))
        ticket.step, ticket.due_at = "survey", close
        next_check = _first_after(now, remind, close)
        key = f"{ticket.id}:answer:{answered.id}"
        if now >= close:
            if not claim_notice(session, key, "auto_close", ticket.id, now):
                return [], next_check
            effects.transition(
                ticket,
                Event.CLOSE,
                actor="system",
                now=now,
                detail=f"closed without a survey after {profile.survey_close_after}",
                data={"reason": "no_survey", "after": profile.survey_close_after},
            )
            ticket.step, ticket.due_at = "", None
            ctx = self.replies.context(ticket, profile)
            self.replies.send_to_applicant(
                session,
                effects,
                ticket,
                profile,
                "auto_closed",
                "auto_closed",
                ctx,
                now,
            )
            return ["auto_close"], None
        if now >= remind and claim_notice(session, key, "survey_reminder", ticket.id, now):
            ctx = {
                **self.replies.context(ticket, profile),
                "survey_elements": ELEMENTS,
                "close_at": close.astimezone(self.calendar.tz),
            }
            self.replies.send_to_applicant(
                session,
                effects,
                ticket,
                profile,
                "survey_reminder",
                "survey_reminder",
                ctx,
                now,
            )
            effects.record(ticket, "survey_reminder", actor="system", now=now)
            return ["survey_reminder"], next_check
        return [], next_check

    # --- people and mail --------------------------------------------------------------------

    def _heads(self, profile: Profile) -> list[StaffMember]:
        """Who receives a profile's escalations (`escalate_to`, else the heads, else the leads)."""
        escalate: list[str] = [str(r) for r in profile.escalate_to]
        for roles in (escalate, ["head"], [str(r) for r in profile.notify_roles]):
            people = self.config.staff_with_roles(roles, profile.id)
            if people:
                return people
        return []

    def _responsible(self, ticket: models.Ticket, profile: Profile) -> list[StaffMember]:
        if ticket.assignee_email:
            person = self.config.staff_by_email(ticket.assignee_email)
            if person is not None:
                return [person]
        return self.config.staff_with_roles(list(profile.notify_roles), profile.id)

    def _mail(
        self,
        session: Session,
        effects: Effects,
        ticket: models.Ticket,
        profile: Profile,
        template: str,
        kind: str,
        person: StaffMember,
        clock: StepClock,
        responsible: list[StaffMember],
        now: datetime,
    ) -> None:
        step = next((s for s in profile.steps if s.id == clock.step), None)
        ctx = {
            **self.replies.context(ticket, profile),
            "recipient": person,
            "step_title": step.title if step else clock.step,
            "step_duration": clock.duration.describe(profile.language),
            "due_at": clock.due_at.astimezone(self.calendar.tz),
            "started_at": clock.started_at.astimezone(self.calendar.tz),
            "responsible": ", ".join(m.name for m in responsible),
            # The escalation suggests ASSIGN only to someone in the chain who can delegate.
            "can_assign": _can_assign(profile, person),
        }
        self.replies.send_to_staff(
            session,
            effects,
            ticket,
            profile,
            person,
            template,
            kind,
            ctx,
            now,
        )


def _can_assign(profile: Profile, person: StaffMember) -> bool:
    mine = level(profile, person.role)
    return mine is not None and mine < len(profile.delegation) - 1


def _first_after(now: datetime, *times: datetime) -> datetime | None:
    """The first of these times still to come (they are in order), or None."""
    return next((t for t in times if now < t), None)


def _step_data(profile: Profile, step: str, due: datetime) -> dict[str, str]:
    """A deadline line's data for staff mail: the step by its title, the due time as written."""
    title = next((s.title for s in profile.steps if s.id == step), step)
    return {"step": title, "due": f"{due:%d-%m-%Y %H.%M}"}
