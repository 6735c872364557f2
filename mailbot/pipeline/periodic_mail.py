"""Mail on the calendar rather than on a ticket: the daily digest to each head and the monthly
Laporan Hasil Layanan Konsultasi (PDF). Each goes out once (pipeline/notices.py)."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailbot.config import Config
from mailbot.core.compose import OutgoingAttachment
from mailbot.core.workflow import OPEN_STATES, State
from mailbot.core.working_time import WorkCalendar
from mailbot.pipeline.notices import claim_notice, digest_key, monthly_report_key
from mailbot.pipeline.replies import Replies
from mailbot.records.documents import html_to_pdf, period_report, render_period_html
from mailbot.settings import StaffMember
from mailbot.shell import models, store
from mailbot.shell.persist import Effects


class PeriodicMail:
    """The digest and the monthly report, each in the sweep's transaction of its own."""

    def __init__(self, config: Config, replies: Replies, calendar: WorkCalendar) -> None:
        self.config = config
        self.replies = replies
        self.calendar = calendar

    def monthly_report(
        self, session: Session, effects: Effects, start: date, end: date, now: datetime
    ) -> list[str]:
        """The Laporan Hasil Layanan Konsultasi of the month from `start` to `end`, once (the
        sweep says when it is due)."""
        settings = self.config.settings
        if not claim_notice(session, monthly_report_key(start), "monthly_report", None, now):
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
                effects,
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

    def digest(
        self, session: Session, effects: Effects, head: StaffMember, day: date, now: datetime
    ) -> list[str]:
        """The head's digest of `day`, once (the sweep says when it is due: a working day, in
        office hours, after `digest_time`): new, due today (each ticket's `due_at` is its step's
        own clock), overdue, by person."""
        local = now.astimezone(self.calendar.tz)
        if not claim_notice(session, digest_key(head.emails[0], day), "digest", None, now):
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
            effects,
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
