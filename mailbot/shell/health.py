"""Health of the daemon: each component's last success and failure, recorded as they happen;
`mailbot status` reads them (shell/readonly.py)."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from mailbot.shell import models

log = logging.getLogger(__name__)


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
