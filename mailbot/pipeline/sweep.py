"""Holding people to the SOP's times: reminders, escalation, the survey reminder, closing
without a survey, and the daily digest.

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
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from mailbot.config import Config
from mailbot.core.authz import level
from mailbot.core.compose import OutgoingAttachment
from mailbot.core.durations import parse_duration
from mailbot.core.routing import of_region, route_keys
from mailbot.core.survey import ELEMENTS
from mailbot.core.workflow import OPEN_STATES, Event, State
from mailbot.core.working_time import (
    Happening,
    HoursPeriod,
    StepClock,
    WorkCalendar,
    after_answer_clock,
    make_calendar,
    reminder_time,
    step_clock,
)
from mailbot.pipeline.replies import Replies
from mailbot.records.documents import html_to_pdf, period_report, render_period_html
from mailbot.settings import Profile, StaffMember
from mailbot.shell import models, store
from mailbot.shell.holiday_cache import holiday_cache

log = logging.getLogger(__name__)
TRANSITION_KINDS = frozenset(e.value for e in Event)


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


def work_calendar(config: Config) -> WorkCalendar:
    """The office's calendar: its time zone, [office_hours] with their dated periods, and
    [calendar]'s closed and open days."""
    cal = config.settings.calendar
    hours = config.settings.office_hours
    periods = [HoursPeriod(p.first_day, p.last_day, p.week(), p.name) for p in hours.periods]
    # The national holidays as kept in the data folder: no process loads the library to know them.
    national = holiday_cache(config.data_dir).holidays
    return make_calendar(
        config.service.timezone, cal.closed_days, cal.open_days, hours.week(), periods, national
    )


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


class Deadlines:
    def __init__(
        self, config: Config, replies: Replies, clocks: Clocks, sessions: sessionmaker[Session]
    ) -> None:
        self.config = config
        self.replies = replies
        self.clocks = clocks
        self.calendar = self.clocks.calendar
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
            for kind in self._guarded(lambda s, h=head: self._digest(s, h, now)):
                stats.add(kind)
        for kind in self._guarded(lambda s: self._monthly_report(s, now)):
            stats.add(kind)
        self._full_sweep_done = True
        return stats

    def _monthly_report(self, session: Session, now: datetime) -> list[str]:
        """The Laporan Hasil Layanan Konsultasi of the past month, once, from the first working
        day of the month on (later if the daemon was down then)."""
        settings = self.config.settings
        if not settings.reports.monthly:
            return []
        local = now.astimezone(self.calendar.tz)
        first = local.date().replace(day=1)
        first_working = next(
            first + timedelta(days=d)
            for d in range(31)
            if self.calendar.is_working_day(first + timedelta(days=d))
        )
        if local.date() < first_working or (
            local.date() == first_working and local.time() < settings.calendar.digest_time
        ):
            return []
        end = first - timedelta(days=1)
        start = end.replace(day=1)
        if not self._claim(session, f"report:{start:%Y-%m}", "monthly_report", None, now):
            return []
        report = period_report(session, self.config, start, end)
        if report.total.received == 0:
            return []  # nothing to report: the claim stands, so it is not tried again
        pdf = html_to_pdf(render_period_html(self.config, report, now))
        attachment = OutgoingAttachment(f"laporan-konsultasi-{start:%Y-%m}.pdf", "application/pdf", pdf)
        profile = self.config.profile
        roles = [str(r) for r in profile.report_roles] or list(settings.reports.roles)
        for member in self.config.staff_with_roles(roles, profile.id):
            ctx = {
                "service": self.config.service,
                "recipient": member,
                "report": report,
                "start": start,
                "end": end,
            }
            self.replies.send_plain(
                session,
                template="monthly_report",
                kind="monthly_report",
                to_addr=member.emails[0],
                to_name=member.name,
                context=ctx,
                now=now,
                in_reply_to="",
                language=profile.language,
                attachments=(attachment,),
            )
        return ["monthly_report"]

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

    def _exists(self, session: Session, key: str, kind: str) -> bool:
        found = session.execute(
            select(models.Notice.id).where(models.Notice.key == key, models.Notice.kind == kind)
        ).scalar_one_or_none()
        return found is not None

    def _claim(self, session: Session, key: str, kind: str, ticket_id: int | None, now: datetime) -> bool:
        if self._exists(session, key, kind):
            return False
        session.add(models.Notice(key=key, kind=kind, ticket_id=ticket_id, created_at=now))
        session.flush()  # the unique key decides between two schedulers here
        return True

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
        elif remind <= now < clock.due_at and self._claim(session, key, "reminder", ticket.id, now):
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
            if self._claim(session, key, "escalation", ticket.id, now):
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
                    self._claim(session, key, "escalation_held", ticket.id, now)
                    sent.append("escalation_held")
                    next_check = self.calendar.next_open(now)
            elif not is_open:
                if self._exists(session, key, "escalation_held"):
                    next_check = self.calendar.next_open(now)
            elif self._exists(session, key, "escalation_held") and self._claim(
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
            if not self._claim(session, key, "auto_close", ticket.id, now):
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
        if now >= remind and self._claim(session, key, "survey_reminder", ticket.id, now):
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

    def _digest(self, session: Session, head: StaffMember, now: datetime) -> list[str]:
        """Once a working day after `digest_time`, in office hours: new, due today (each
        ticket's `due_at` is its step's own clock), overdue, by person."""
        local = now.astimezone(self.calendar.tz)
        if (
            not self.config.settings.calendar.daily_digest
            or not self.calendar.is_open(now)
            or local.time() < self.config.settings.calendar.digest_time
        ):
            return []
        if not self._claim(session, f"{head.emails[0]}:{local.date().isoformat()}", "digest", None, now):
            return []
        tickets = list(
            session.execute(
                select(models.Ticket)
                .where(models.Ticket.state.in_(list(OPEN_STATES)))
                .order_by(models.Ticket.id)
            ).scalars()
        )
        tickets = [t for t in tickets if not head.profiles or t.profile in head.profiles]
        end_of_day = datetime.combine(local.date() + timedelta(days=1), datetime.min.time(), self.calendar.tz)
        overdue = [t for t in tickets if t.due_at is not None and t.due_at <= now]
        due_today = [t for t in tickets if t.due_at is not None and now < t.due_at < end_of_day]
        new = [t for t in tickets if t.state is State.NEW]
        by_person: dict[str, int] = {}
        for t in tickets:
            if t.assignee_email:
                by_person[t.assignee_email] = by_person.get(t.assignee_email, 0) + 1
        profile = self.config.profile
        ctx = {
            "service": self.config.service,
            "profile": profile,
            "recipient": head,
            "new": new,
            "due_today": due_today,
            "overdue": overdue,
            "by_person": sorted(by_person.items()),
            "day": local.date(),
            "tz": self.calendar.tz,
            "open_count": len(tickets),
            # Mail held for staff (spam flag, a sender's flood), to release with `mailbot replay --release`.
            "held": store.held_messages(session, now - timedelta(days=7)),
        }
        self.replies.send_plain(
            session,
            template="digest",
            kind="digest",
            to_addr=head.emails[0],
            to_name=head.name,
            context=ctx,
            now=now,
            in_reply_to="",
            language=profile.language,
        )
        return ["digest"]

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


AFTER_ANSWER_STATES = frozenset({State.ANSWERED, State.CLOSED})


def step_people(config: Config, ticket: models.Ticket, profile: Profile, step_id: str) -> list[StaffMember]:
    """Who does a step after the answer: of the step's actor role, the one who handled this ticket
    (SOP 004: the Inspektur Pembantu who named the auditor), else those of the applicant's region
    (SOP 001: the TU of that region), else everyone with the role."""
    step = next((s for s in profile.steps if s.id == step_id), None)
    if step is None:
        return []
    return role_people(config, ticket, profile, step.actor)


def role_people(config: Config, ticket: models.Ticket, profile: Profile, role: str) -> list[StaffMember]:
    people = config.staff_with_roles([role], profile.id)
    handled = [
        str((e.data or {}).get("assignee") or "")
        for e in ticket.events
        if e.kind in (Event.ASSIGN.value, Event.NORMATIVE.value)
    ]
    for address in reversed(handled):
        mine = [p for p in people if address in p.emails]
        if mine:
            return mine
    routed = route_keys(
        profile,
        ticket.subject,
        str(ticket.fields.get("question", "")),
        str(ticket.fields.get("unit", "")),
    )
    return of_region(routed.get("region") or routed.get("unit") or "", people)


def _can_assign(profile: Profile, person: StaffMember) -> bool:
    mine = level(profile, person.role)
    return mine is not None and mine < len(profile.delegation) - 1


def _first_after(now: datetime, *times: datetime) -> datetime | None:
    """The first of these times still to come (they are in order), or None."""
    return next((t for t in times if now < t), None)
