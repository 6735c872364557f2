"""Health of the daemon for `mailbot status` and monitors: what last worked, what is failing."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from mailbot.core.workflow import OPEN_STATES
from mailbot.shell import models

log = logging.getLogger(__name__)
COMPONENTS = ("intake", "outbox")


def record(sessions: sessionmaker[Session], component: str, now: datetime, error: str | None = None) -> None:
    """Note a success (error None) or a failure of a component; never raises."""
    try:
        with sessions.begin() as session:
            row = session.get(models.Health, component)
            if row is None:
                row = models.Health(component=component, last_error="")
                session.add(row)
            if error is None:
                row.last_ok_at, row.failing_since = now, None
            else:
                row.last_error_at, row.last_error = now, error[:2000]
                row.failing_since = row.failing_since or now
    except DBAPIError as exc:  # the database itself is away: the log line is all we can leave
        log.warning("cannot record %s health: %s", component, exc.orig)


@dataclass(frozen=True)
class Status:
    components: dict[str, dict[str, Any]]
    outbox_pending: int
    outbox_sending: int
    dead_letters: int
    quarantined: int
    open_tickets: int
    overdue_tickets: int
    failing: list[str]

    @property
    def healthy(self) -> bool:
        return not self.failing

    def as_json(self) -> dict[str, Any]:
        return {
            "healthy": self.healthy,
            "failing": self.failing,
            "components": self.components,
            "outbox": {
                "pending": self.outbox_pending,
                "sending": self.outbox_sending,
                "dead": self.dead_letters,
            },
            "quarantined": self.quarantined,
            "tickets": {"open": self.open_tickets, "overdue": self.overdue_tickets},
        }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def status(session: Session, now: datetime, failing_after: timedelta) -> Status:
    def count(model: Any, *where: Any) -> int:
        return int(session.execute(select(func.count()).select_from(model).where(*where)).scalar_one())

    components: dict[str, dict[str, Any]] = {}
    failing = []
    for name in COMPONENTS:
        row = session.get(models.Health, name)
        components[name] = {
            "last_ok_at": _iso(row.last_ok_at) if row else None,
            "last_error_at": _iso(row.last_error_at) if row else None,
            "last_error": row.last_error if row else "",
            "failing_since": _iso(row.failing_since) if row else None,
        }
        if row is not None and row.failing_since is not None and now - row.failing_since >= failing_after:
            failing.append(name)
    return Status(
        components=components,
        outbox_pending=count(models.OutboundMessage, models.OutboundMessage.status == "pending"),
        outbox_sending=count(models.OutboundMessage, models.OutboundMessage.status == "sending"),
        dead_letters=count(models.OutboundMessage, models.OutboundMessage.status == "dead"),
        quarantined=count(models.InboundMessage, models.InboundMessage.status == "quarantined"),
        open_tickets=count(models.Ticket, models.Ticket.state.in_(list(OPEN_STATES))),
        overdue_tickets=count(
            models.Ticket, models.Ticket.state.in_(list(OPEN_STATES)), models.Ticket.due_at <= now
        ),
        failing=failing,
    )
