"""Holding people to the SOP's times: reminders, escalation, the survey reminder, closing
without a survey; and, on the same sweep, the daily digest and the monthly report (periodic_mail).

`sweep(now)` does everything that is due; the scheduler calls it every minute and
`run --once` once. Each step runs on its own clock (office hours unless the SOP
says "1 x 24 jam"), and reminders and escalations are mailed in office hours only:
an escalation that falls due at night is recorded then, mailed at the next opening.
Every notice is written with a unique key in the same transaction as its mail, so
it goes out once however many schedulers run and however often the daemon
restarts; what fell due while the daemon was down goes out at the first sweep
after it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from mailbot.config import Config
from mailbot.core.authz import level
from mailbot.core.durations import parse_duration
from mailbot.core.survey import ELEMENTS
from mailbot.core.workflow import OPEN_STATES, Event, State
from mailbot.core.working_time import (
    StepClock,
    reminder_time,
)
from mailbot.pipeline.after_answer import step_people
from mailbot.pipeline.clocks import AFTER_ANSWER_STATES, Clocks
from mailbot.pipeline.notices import claim_notice, notice_exists
from mailbot.pipeline.periodic_mail import PeriodicMail
from mailbot.pipeline.replies import Replies
from mailbot.settings import Profile, StaffMember
from mailbot.shell import models, store

log = logging.getLogger(__name__)


@dataclass
class SweepStats:
    reminder: int = 0
    escalation: int = 0
    # Fell due outside office hours: recorded as late, mailed at the next opening (not in total).
    escalation_held: int = 0
    survey_reminder: int = 0
    auto_close: int = 0
    digest: int = 0
    monthly_report: int = 0
    checked: int = 0  # tickets looked at

    def add(self, kind: str) -> None:
        setattr(self, kind, getattr(self, kind) + 1)

    @property
    def total(self) -> int:
        return (
            self.reminder
            + self.escalation
            + self.survey_reminder
            + self.auto_close
            + self.digest
            + self.monthly_report
        )


class Deadlines:
    def __init__(
        self, config: Config, replies: Replies, clocks: Clocks, sessions: sessionmaker[Session]
    ) -> None:
        self.config = config
        self.replies = replies
        self.clocks = clocks
        self.calendar = self.clocks.calendar
        self.periodic = PeriodicMail(config, replies, self.calendar)
        self._sessions = sessions
        self._full_sweep_done = False

    # --- the sweep -------------------------------------------------------------------------

    def sweep(self, now: datetime) -> SweepStats:
        """Queue every notice that is due.

        The first sweep of a process looks at every open ticket (a changed calendar or profile
        moves deadlines; tickets from before `next_check_at` existed have none); later sweeps read
        only the tickets whose `next_check_at` has come, through its index.
        """
        stats = SweepStats()
        # Closed tickets only while a step after the answer (report, archive) is still to do.
        query = select(models.Ticket.id).where(
            or_(
                models.Ticket.state.in_([*OPEN_STATES, State.ANSWERED]),
                and_(models.Ticket.state == State.CLOSED, models.Ticket.next_check_at.is_not(None)),
            )
        )
        if self._full_sweep_done:
            query = query.where(models.Ticket.next_check_at <= now)
        with self._sessions() as session:
            ids = list(session.execute(query.order_by(models.Ticket.id)).scalars())
        stats.checked = len(ids)
        for ticket_id in ids:
            for kind in self._guarded(lambda s, tid=ticket_id: self._ticket(s, tid, now)):
                stats.add(kind)
        for head in self._heads():
            for kind in self._guarded(lambda s, h=head: self.periodic.digest(s, h, now)):
                stats.add(kind)
        for kind in self._guarded(lambda s: self.periodic.monthly_report(s, now)):
            stats.add(kind)
        self._full_sweep_done = True
        return stats

    def _guarded(self, work: Any) -> list[str]:
        """One ticket's notices, one transaction; losing the race for a key (or for the ticket's
        row, changed meanwhile by another scheduler or by intake) means the other side did the
        work or the ticket moved on: this transaction (and its mail) is rolled back, and the next
        sweep looks again if anything is left."""
        try:
            with self._sessions.begin() as session:
                return list(work(session))
        except (IntegrityError, StaleDataError):
            return []

    def _ticket(self, session: Session, ticket_id: int, now: datetime) -> list[str]:
        ticket = session.get(models.Ticket, ticket_id)
        if ticket is None:
            return []
        profile = self.config.profiles.get(ticket.profile, self.config.profile)
        if ticket.state in AFTER_ANSWER_STATES:
            sent: list[str] = []
            checks: list[datetime | None] = []
            if ticket.state is State.ANSWERED:
                sent, check = self._survey(session, ticket, profile, now)
                checks.append(check)
            # The steps after the answer run on, whatever the survey does (it may close the ticket).
            after = self.clocks.after_answer(ticket)
            if after is not None:
                people = step_people(self.config, ticket, profile, after.step)
                more, check = self._notices(session, ticket, profile, after, people, now)
                sent += more
                checks.append(check)
            ticket.next_check_at = min((c for c in checks if c is not None), default=None)
            return sent
        clock = self.clocks.refresh(ticket)
        if clock is None:
            return []
        sent, ticket.next_check_at = self._notices(
            session, ticket, profile, clock, self._responsible(ticket, profile), now
        )
        return sent

    def _notices(
        self,
        session: Session,
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
                    session, ticket, profile, "deadline_reminder", "reminder", person, clock, responsible, now
                )
            store.record_event(
                session,
                ticket,
                "reminder",
                actor="system",
                now=now,
                detail=f"{clock.step} due {clock.due_at.astimezone(self.calendar.tz):%d-%m-%Y %H.%M}",
            )
            sent.append("reminder")
        if now >= clock.due_at:
            # The escalation notice records the step as late when it falls due (the period
            # report counts it); its mail waits for office hours.
            if claim_notice(session, key, "escalation", ticket.id, now):
                store.record_event(
                    session,
                    ticket,
                    "escalation",
                    actor="system",
                    now=now,
                    detail=f"{clock.step} overdue since "
                    f"{clock.due_at.astimezone(self.calendar.tz):%d-%m-%Y %H.%M}",
                )
                if is_open:
                    self._escalate(session, ticket, profile, clock, responsible, now)
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
                self._escalate(session, ticket, profile, clock, responsible, now)
                sent.append("escalation")
        return sent, next_check

    def _escalate(
        self,
        session: Session,
        ticket: models.Ticket,
        profile: Profile,
        clock: StepClock,
        responsible: list[StaffMember],
        now: datetime,
    ) -> None:
        for head in self._heads(profile):
            self._mail(session, ticket, profile, "escalation", "escalation", head, clock, responsible, now)

    def _survey(
        self, session: Session, ticket: models.Ticket, profile: Profile, now: datetime
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
            store.transition(
                session,
                ticket,
                Event.CLOSE,
                actor="system",
                now=now,
                detail=f"closed without a survey after {profile.survey_close_after}",
            )
            ticket.step, ticket.due_at = "", None
            ctx = self.replies.context(ticket, profile)
            self.replies.send_to_applicant(
                session,
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
                ticket,
                profile,
                "survey_reminder",
                "survey_reminder",
                ctx,
                now,
            )
            store.record_event(session, ticket, "survey_reminder", actor="system", now=now)
            return ["survey_reminder"], next_check
        return [], next_check

    # --- people and mail --------------------------------------------------------------------

    def _heads(self, profile: Profile | None = None) -> list[StaffMember]:
        """Who receives a profile's escalations (`escalate_to`, else the heads, else the leads);
        without a profile, the heads (the daily digest)."""
        if profile is not None:
            escalate: list[str] = [str(r) for r in profile.escalate_to]
            for roles in (escalate, ["head"], [str(r) for r in profile.notify_roles]):
                people = self.config.staff_with_roles(roles, profile.id)
                if people:
                    return people
            return []
        return [m for m in self.config.staff if m.active and m.role == "head"]

    def _responsible(self, ticket: models.Ticket, profile: Profile) -> list[StaffMember]:
        if ticket.assignee_email:
            person = self.config.staff_by_email(ticket.assignee_email)
            if person is not None:
                return [person]
        return self.config.staff_with_roles(list(profile.notify_roles), profile.id)

    def _mail(
        self,
        session: Session,
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
