"""A notice (reminder, escalation, survey reminder, digest, monthly report) goes out once: its
(key, kind) row is written in the transaction of its mail, and the unique key decides between two
schedulers."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailbot.shell import models


def notice_exists(session: Session, key: str, kind: str) -> bool:
    found = session.execute(
        select(models.Notice.id).where(models.Notice.key == key, models.Notice.kind == kind)
    ).scalar_one_or_none()
    return found is not None


def claim_notice(session: Session, key: str, kind: str, ticket_id: int | None, now: datetime) -> bool:
    if notice_exists(session, key, kind):
        return False
    session.add(models.Notice(key=key, kind=kind, ticket_id=ticket_id, created_at=now))
    session.flush()  # the unique key decides between two schedulers here
    return True


def digest_key(address: str, day: date) -> str:
    """The notice key of a head's daily digest (kind "digest")."""
    return f"{address}:{day.isoformat()}"


def monthly_report_key(start: date) -> str:
    """The notice key of the monthly report of the month from `start` (kind "monthly_report")."""
    return f"report:{start:%Y-%m}"
