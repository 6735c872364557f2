"""Holding people to the SOP's times: reminders, escalation, the survey reminder, closing
without a survey; and, on the same sweep, the daily digest and the monthly report (periodic_mail).

`sweep(now)` does everything that is due; the scheduler calls it every minute and
`run --once` once. It looks at the tickets whose `next_check_at` has come (pipeline/reminders.py
does their notices) and at the calendar's mail (pipeline/periodic_mail.py); both are brought in
only when something is due, so a sweep with nothing to do reads two indexes and composes
nothing. Each step runs on its own clock (office hours unless the SOP
says "1 x 24 jam"), and reminders and escalations are mailed in office hours only:
an escalation that falls due at night is recorded then, mailed at the next opening.
Every notice is written with a unique key in the same transaction as its mail, so
it goes out once however many schedulers run and however often the daemon
restarts; what fell due while the daemon was down goes out at the first sweep
after it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache, partial
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from sqlalchemy import and_, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from mailbot.config import Config
from mailbot.core.workflow import OPEN_STATES, State
from mailbot.migrations import head_revision
from mailbot.pipeline.clocks import Clocks
from mailbot.pipeline.notices import claim_notice, digest_key, monthly_report_key, notice_exists
from mailbot.shell import models, persist
from mailbot.shell.persist import Effects

if TYPE_CHECKING:
    from mailbot.pipeline.periodic_mail import PeriodicMail
    from mailbot.pipeline.reminders import TicketNotices
    from mailbot.pipeline.replies import Replies

log = logging.getLogger(__name__)
T = TypeVar("T")
# The notice that every open ticket was looked at under one configuration (its fingerprint).
FULL_SWEEP = "full_sweep"
PACKAGE = Path(__file__).resolve().parent.parent  # mailbot's code, part of the fingerprint


@lru_cache(maxsize=4)
def code_digest(package: Path) -> str:
    """A hash of the package's Python files (names and contents): a deadline rule changed in the
    code moves deadlines as a changed profile does. About a megabyte, read once a process."""
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


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
        self,
        config: Config,
        replies: Callable[[], Replies],
        clocks: Clocks,
        sessions: sessionmaker[Session],
    ) -> None:
        self.config = config
        self._replies = replies  # built at the first notice: composing mail is not for an idle sweep
        self.clocks = clocks
        self.calendar = self.clocks.calendar
        self._sessions = sessions
        self._full_sweep_done = False
        self._ticket_notices: TicketNotices | None = None
        self._periodic: PeriodicMail | None = None

    # --- the sweep -------------------------------------------------------------------------

    def sweep(self, now: datetime) -> SweepStats:
        """Queue every notice that is due.

        Tickets are read through the index of `next_check_at`, which every change of a ticket
        sets. All open tickets are looked at instead when the configuration they were last looked
        at under is not this one (a changed calendar, profile, staff directory or holiday data
        moves deadlines), or never was (a database from before `next_check_at`): once per
        configuration, recorded as a notice, so that `run --once` from cron every minute does not
        recompute every open ticket each time.
        """
        stats = SweepStats()
        fingerprint = "" if self._full_sweep_done else self.fingerprint()
        if fingerprint:
            with self._sessions() as session:
                self._full_sweep_done = notice_exists(session, fingerprint, FULL_SWEEP)
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
        lost = False  # a ticket whose transaction was rolled back: it was not looked at
        if ids:
            notices = self._notices()
            for ticket_id in ids:
                done = self._guarded(partial(notices.run, ticket_id=ticket_id, now=now))
                lost = lost or done is None
                for kind in done or []:
                    stats.add(kind)
        day = self._digest_day(now)
        if day is not None:
            heads = [m for m in self.config.staff if m.active and m.role == "head"]
            for head in self._not_yet(heads, lambda h: (digest_key(h.emails[0], day), "digest")):
                for kind in (
                    self._guarded(partial(self._periodic_mail().digest, head=head, day=day, now=now)) or []
                ):
                    stats.add(kind)
        period = self._report_period(now)
        if period is not None and self._not_yet(
            [period], lambda p: (monthly_report_key(p[0]), "monthly_report")
        ):
            for kind in (
                self._guarded(lambda s, e: self._periodic_mail().monthly_report(s, e, *period, now)) or []
            ):
                stats.add(kind)
        # On record once every open ticket was looked at under this configuration: one whose
        # transaction lost a race keeps the deadline of the one before (or none), so the next
        # sweep is a full one again.
        if not self._full_sweep_done and not lost:
            self._guarded(lambda s, _e: self._swept_fully(s, fingerprint, now))
            self._full_sweep_done = True
        return stats

    def fingerprint(self) -> str:
        """What the tickets' deadlines are computed from: the settings (calendar, office hours),
        the profiles, the staff directory (a role picks a step), the holiday data's release and
        mailbot's code (its version stays 0.1.0 from one wheel to the next: the code itself).
        Only its hash is kept."""
        config = self.config
        data = {
            "settings": config.settings.model_dump(mode="json"),
            "profiles": {pid: p.model_dump(mode="json") for pid, p in sorted(config.profiles.items())},
            "staff": [m.model_dump(mode="json") for m in config.staff],
            "holidays": metadata.version("holidays"),
            "mailbot": [code_digest(PACKAGE), head_revision()],
        }
        digest = hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()
        return f"configuration:{digest}"

    def _digest_day(self, now: datetime) -> date | None:
        """Today, when the daily digest may go out now: a working day, in office hours, after
        `digest_time` (each head's digest once a day: pipeline/periodic_mail.py)."""
        calendar = self.config.settings.calendar
        local = now.astimezone(self.calendar.tz)
        if not calendar.daily_digest or not self.calendar.is_open(now) or local.time() < calendar.digest_time:
            return None
        return local.date()

    def _report_period(self, now: datetime) -> tuple[date, date] | None:
        """The past month, when its Laporan may go out: from the first working day of this month
        at `digest_time` on (later if the daemon was down then); once (periodic_mail.py)."""
        settings = self.config.settings
        if not settings.reports.monthly:
            return None
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
            return None
        end = first - timedelta(days=1)
        return end.replace(day=1), end

    def _not_yet(self, items: list[T], notice: Callable[[T], tuple[str, str]]) -> list[T]:
        """The items whose notice (key, kind) is not written yet: what is already done is not
        composed again (the claim in the mail's own transaction still decides between sweeps)."""
        with self._sessions() as session:
            return [item for item in items if not notice_exists(session, *notice(item))]

    def _swept_fully(self, session: Session, fingerprint: str, now: datetime) -> list[str]:
        claim_notice(session, fingerprint, FULL_SWEEP, None, now)
        return []

    def _notices(self) -> TicketNotices:
        if self._ticket_notices is None:
            from mailbot.pipeline.reminders import TicketNotices

            self._ticket_notices = TicketNotices(self.config, self._replies(), self.clocks)
        return self._ticket_notices

    def _periodic_mail(self) -> PeriodicMail:
        if self._periodic is None:
            from mailbot.pipeline.periodic_mail import PeriodicMail

            self._periodic = PeriodicMail(self.config, self._replies(), self.calendar)
        return self._periodic

    def _guarded(self, work: Callable[[Session, Effects], Iterable[str]]) -> list[str] | None:
        """One ticket's notices, one transaction; losing the race for a key (or for the ticket's
        row, changed meanwhile by another scheduler or by intake) means the other side did the
        work or the ticket moved on: this transaction (and its mail) is rolled back, and the next
        sweep looks again if anything is left."""
        try:
            with persist.unit(self._sessions) as (session, effects):
                return list(work(session, effects))
        except (IntegrityError, StaleDataError):
            return None  # rolled back
