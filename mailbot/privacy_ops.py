"""Duties of UU 27/2022 (PDP): everything held about one person as a bundle, and the purge of
personal data of closed tickets past the retention period, keeping the anonymous figures."""

from __future__ import annotations

import json
import re
import zipfile
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from mailbot import models, store
from mailbot.workflow import State

PURGED_DOMAIN = "purged.invalid"


def _person_tickets(session: Session, who: str) -> list[models.Ticket]:
    digits = re.sub(r"\D", "", who)
    if "@" in who:
        stmt = select(models.Ticket).where(models.Ticket.applicant_email == who.strip().lower())
        return list(session.execute(stmt.order_by(models.Ticket.id)).scalars())
    if len(digits) not in (9, 16, 18):
        raise ValueError(f"{who!r} is neither an email address nor a NIK/NIP")
    # JSON field queries differ per backend: read the candidates and compare in Python.
    tickets = session.execute(select(models.Ticket).order_by(models.Ticket.id)).scalars()
    return [t for t in tickets if re.sub(r"\D", "", str(t.fields.get("id_number", ""))) == digits]


def export_person(session: Session, who: str, out: Path) -> tuple[int, int]:
    """Write a zip with `person.json` (tickets, fields, history, surveys) and every message
    to or from the person. Returns (tickets, messages)."""
    tickets = _person_tickets(session, who)
    emails = {t.applicant_email for t in tickets} | ({who.strip().lower()} if "@" in who else set())
    messages = 0
    data: dict[str, Any] = {
        "subject": who,
        "exported_at": datetime.now().astimezone().isoformat(),
        "tickets": [],
    }
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        for t in tickets:
            survey = session.execute(
                select(models.Survey).where(models.Survey.ticket_id == t.id)
            ).scalar_one_or_none()
            data["tickets"].append(
                {
                    "number": t.number,
                    "state": t.state.value,
                    "created_at": t.created_at.isoformat(),
                    "applicant_email": t.applicant_email,
                    "applicant_name": t.applicant_name,
                    "subject": t.subject,
                    "fields": t.fields,
                    "history": [
                        {"at": e.at.isoformat(), "actor": e.actor, "kind": e.kind, "detail": e.detail}
                        for e in t.events
                    ],
                    "survey": {"scores": survey.scores, "comment": survey.comment} if survey else None,
                }
            )
            inbound, outbound = store.messages_of_ticket(session, t.id)
            for m in inbound:
                if m.from_addr in emails:  # staff mail of the ticket is in the history above
                    bundle.writestr(f"messages/{t.number}/in-{m.id}.eml", m.raw)
                    messages += 1
            for o in outbound:
                if o.recipient in emails:
                    bundle.writestr(f"messages/{t.number}/out-{o.id}.eml", o.raw)
                    messages += 1
        # Mail from the person that opened no ticket (duplicates, machine mail, quarantine).
        loose = session.execute(
            select(models.InboundMessage).where(
                models.InboundMessage.from_addr.in_(emails), models.InboundMessage.ticket_id.is_(None)
            )
        ).scalars()
        for m in loose:
            bundle.writestr(f"messages/other/in-{m.id}.eml", m.raw)
            messages += 1
        bundle.writestr("person.json", json.dumps(data, indent=2, ensure_ascii=False))
    return len(tickets), messages


@dataclass(frozen=True)
class PurgeResult:
    tickets: int
    messages: int


def purge(session: Session, *, older_than: timedelta, now: datetime) -> PurgeResult:
    """Remove personal data of closed or rejected tickets last changed before `now - older_than`.

    Kept: number, profile, state, dates, work unit, assignee, the history's kinds and times, the
    survey's scores (the anonymous figures the reports need). Gone: name, NIK/NIP, phone, position,
    the question, the address, subjects, the history's texts, the survey comment and every raw
    message. The ticket's history records the purge.
    """
    cutoff = now - older_than
    stmt = select(models.Ticket).where(
        models.Ticket.state.in_([State.CLOSED, State.REJECTED]),
        models.Ticket.updated_at < cutoff,
        ~models.Ticket.applicant_email.like(f"%@{PURGED_DOMAIN}"),
    )
    tickets = 0
    messages = 0
    for ticket in list(session.execute(stmt).scalars()):
        email = ticket.applicant_email
        ticket.fields = {"unit": ticket.fields.get("unit", "")} if ticket.fields.get("unit") else {}
        ticket.issues = []
        ticket.applicant_email = f"ticket-{ticket.id}@{PURGED_DOMAIN}"
        ticket.applicant_name = ""
        ticket.subject = ""
        ticket.root_message_id = ""
        for event in ticket.events:
            event.detail = ""
            event.data = {}
            if event.actor == email:
                event.actor = "pemohon"
        inbound, outbound = store.messages_of_ticket(session, ticket.id)
        for m in inbound:
            m.raw, m.from_addr, m.subject, m.message_id, m.content_hash = b"", "", "", "", ""
            messages += 1
        for o in outbound:
            o.raw, o.subject = b"", ""
            if o.recipient == email:
                o.recipient, o.rcpt_to, o.mail_from = "", [], o.mail_from
            messages += 1
        survey = session.execute(
            select(models.Survey).where(models.Survey.ticket_id == ticket.id)
        ).scalar_one_or_none()
        if survey is not None:
            survey.comment = ""
        store.record_event(
            session,
            ticket,
            "purged",
            actor="system",
            now=now,
            detail=f"personal data removed after {older_than.days} days",
        )
        tickets += 1
    # Mail from nobody's ticket (duplicates, machine mail) past the retention period goes too.
    loose = session.execute(
        select(models.InboundMessage).where(
            models.InboundMessage.ticket_id.is_(None),
            models.InboundMessage.received_at < cutoff,
            or_(models.InboundMessage.raw != b"", models.InboundMessage.from_addr != ""),
        )
    ).scalars()
    for m in loose:
        m.raw, m.from_addr, m.subject = b"", "", ""
        messages += 1
    return PurgeResult(tickets, messages)
