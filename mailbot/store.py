"""Queries and persistence. Every function takes the caller's Session; the caller owns the transaction."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from mailbot import models
from mailbot.compose import Envelope
from mailbot.config import Profile
from mailbot.workflow import Event, InboundStatus, OutboundStatus, State, next_state

_COUNTER = select(models.Counter).where(models.Counter.name == bindparam("name")).with_for_update()


def next_ticket_number(session: Session, profile: Profile, year: int) -> str:
    """Allocate the next number of the profile's sequence for the year, e.g. KONS-2026-000123.

    The counter row is locked (SELECT … FOR UPDATE on PostgreSQL; SQLite's
    BEGIN IMMEDIATE already serializes writers), so two processes never share a number.
    """
    name = f"{profile.id}:{year}"
    counter = session.execute(_COUNTER, {"name": name}).scalar_one_or_none()
    if counter is None:
        counter = models.Counter(name=name, value=0)
        session.add(counter)
        session.flush()  # a concurrent first insert fails here and the message is retried
    counter.value += 1
    return profile.number_format.format(year=year, seq=counter.value)


def transition(
    session: Session,
    ticket: models.Ticket,
    event: Event,
    *,
    actor: str,
    now: datetime,
    detail: str = "",
    inbound: models.InboundMessage | None = None,
    data: dict[str, Any] | None = None,
) -> State:
    """The one way a ticket changes state: checked against the table, recorded in the history."""
    current: State | None = ticket.state  # None: the ticket is being opened
    new = next_state(current, event)
    ticket.state = new
    ticket.updated_at = now
    record_event(
        session,
        ticket,
        event.value,
        actor=actor,
        now=now,
        detail=detail,
        inbound=inbound,
        data=data,
    )
    return new


def record_event(
    session: Session,
    ticket: models.Ticket,
    kind: str,
    *,
    actor: str,
    now: datetime,
    detail: str = "",
    inbound: models.InboundMessage | None = None,
    outbound: models.OutboundMessage | None = None,
    data: dict[str, Any] | None = None,
) -> models.TicketEvent:
    """The one writer of the ticket's history (the riwayat konsultasi): a line in `ticket.events`
    at once, written by the session's unit of work with the ticket and the mail it names."""
    entry = models.TicketEvent(
        at=now,
        actor=actor,
        kind=kind,
        state=ticket.state.value,
        detail=detail,
        data=data or {},
        inbound=inbound,
        outbound=outbound,
    )
    ticket.events.append(entry)
    return entry


def add_ticket(session: Session, ticket: models.Ticket) -> None:
    """A new ticket, with its id from the database (the thread tokens of its mail carry it)."""
    session.add(ticket)
    session.flush()


def get_ticket(session: Session, ticket_id: int) -> models.Ticket | None:
    return session.get(models.Ticket, ticket_id)


def tickets_opened_since(session: Session, applicant: str, since: datetime) -> int:
    """How many tickets this sender opened since then (the flood cap of new requests)."""
    count: int = session.execute(
        select(func.count(models.Ticket.id)).where(
            models.Ticket.applicant_email == applicant, models.Ticket.created_at >= since
        )
    ).scalar_one()
    return count


def held_messages(session: Session, since: datetime, limit: int = 50) -> list[models.InboundMessage]:
    """Mail held for staff (spam flagged by the server, a sender's flood of new requests)."""
    return list(
        session.execute(
            select(models.InboundMessage)
            .where(models.InboundMessage.status == "held", models.InboundMessage.received_at >= since)
            .order_by(models.InboundMessage.id)
            .limit(limit)
        ).scalars()
    )


def outbound_created_at(session: Session, message_id: str) -> datetime | None:
    """When the mail with this Message-ID of ours was queued, if it is ours."""
    return session.execute(
        select(models.OutboundMessage.created_at).where(models.OutboundMessage.message_id == message_id)
    ).scalar_one_or_none()


def enqueue(
    session: Session, envelope: Envelope, *, kind: str, ticket: models.Ticket | None, now: datetime
) -> models.OutboundMessage:
    """Write an outgoing mail into the outbox, in the caller's transaction."""
    mail = models.OutboundMessage(
        ticket=ticket,
        kind=kind,
        message_id=envelope.message_id,
        mail_from=envelope.mail_from,
        rcpt_to=list(envelope.rcpt_to),
        recipient=envelope.rcpt_to[0].lower() if envelope.rcpt_to else "",
        subject=envelope.subject[:500],
        status=OutboundStatus.PENDING,
        attempts=0,
        next_attempt_at=now,
        last_error="",
        created_at=now,
        sent_at=None,
        raw=envelope.raw,
    )
    session.add(mail)
    if ticket is not None:
        record_event(
            session,
            ticket,
            "mail_queued",
            actor="system",
            now=now,
            detail=f"{kind} → {', '.join(envelope.rcpt_to)}",
            outbound=mail,
            data={"mail": kind},
        )
    return mail


_AUTO_MAIL_COUNT = (
    select(func.count())
    .select_from(models.OutboundMessage)
    .where(
        models.OutboundMessage.recipient == bindparam("recipient"),
        models.OutboundMessage.created_at >= bindparam("since"),
    )
)


def auto_mail_count(session: Session, recipient: str, since: datetime) -> int:
    """How many automatic mails went (or wait to go) to one recipient since a time."""
    count: int = session.execute(_AUTO_MAIL_COUNT, {"recipient": recipient, "since": since}).scalar_one()
    return count


def thread_mail_times(
    session: Session, ticket_id: int, recipient: str, kind: str, since: datetime
) -> list[datetime]:
    """When mail of one kind went to one recipient of one ticket, since a time."""
    return list(
        session.execute(
            select(models.OutboundMessage.created_at).where(
                models.OutboundMessage.ticket_id == ticket_id,
                models.OutboundMessage.recipient == recipient,
                models.OutboundMessage.kind == kind,
                models.OutboundMessage.created_at >= since,
            )
        ).scalars()
    )


_BY_SOURCE = select(models.InboundMessage).where(
    models.InboundMessage.mailbox == bindparam("mailbox"),
    models.InboundMessage.uidvalidity == bindparam("uidvalidity"),
    models.InboundMessage.uid == bindparam("uid"),
)


def find_inbound_by_source(
    session: Session, mailbox: str, uidvalidity: int, uid: str
) -> models.InboundMessage | None:
    return session.execute(
        _BY_SOURCE, {"mailbox": mailbox, "uidvalidity": uidvalidity, "uid": uid}
    ).scalar_one_or_none()


# Mail stored but never processed: quarantined (unreadable) or held (spam, a sender's flood)
# until staff release it with `mailbot replay --release`.
NOT_PROCESSED = (InboundStatus.QUARANTINED, InboundStatus.HELD, InboundStatus.RELEASED)
# A quarantined copy was never processed: it is no reason to call a later one a duplicate
# (`mailbot replay` of a message quarantined by a defect must go through).
_BY_SHA = (
    select(models.InboundMessage)
    .where(
        models.InboundMessage.raw_sha256 == bindparam("sha"),
        models.InboundMessage.status.not_in(NOT_PROCESSED),
    )
    .order_by(models.InboundMessage.id)
    .limit(1)
)
_BY_MESSAGE_ID = (
    select(models.InboundMessage)
    .where(
        models.InboundMessage.message_id == bindparam("message_id"),
        models.InboundMessage.from_addr == bindparam("from_addr"),
        models.InboundMessage.status.not_in(NOT_PROCESSED),
    )
    .order_by(models.InboundMessage.id)
    .limit(1)
)


def find_duplicate(
    session: Session, *, raw_sha256: str, message_id: str, from_addr: str
) -> models.InboundMessage | None:
    """An earlier copy of this mail: the same bytes, or the same Message-ID from the same sender."""
    hit: models.InboundMessage | None = session.execute(_BY_SHA, {"sha": raw_sha256}).scalar_one_or_none()
    if hit is not None or not message_id:
        return hit
    return session.execute(
        _BY_MESSAGE_ID, {"message_id": message_id, "from_addr": from_addr}
    ).scalar_one_or_none()


_SAME_CONTENT = (
    select(models.InboundMessage)
    .where(
        models.InboundMessage.content_hash == bindparam("content_hash"),
        models.InboundMessage.received_at >= bindparam("since"),
        models.InboundMessage.ticket_id.is_not(None),
    )
    .order_by(models.InboundMessage.id)
    .limit(1)
)


def find_same_content(session: Session, content_hash: str, since: datetime) -> models.InboundMessage | None:
    return session.execute(_SAME_CONTENT, {"content_hash": content_hash, "since": since}).scalar_one_or_none()


def ticket_by_referenced_message(session: Session, message_ids: list[str]) -> models.Ticket | None:
    """A ticket whose stored inbound or outbound mail has one of these Message-IDs."""
    if not message_ids:
        return None
    for model in (models.OutboundMessage, models.InboundMessage):
        ticket_id = session.execute(
            select(model.ticket_id)
            .where(model.message_id.in_(message_ids), model.ticket_id.is_not(None))
            .limit(1)
        ).scalar_one_or_none()
        if ticket_id is not None:
            return session.get(models.Ticket, ticket_id)
    return None


def ticket_by_number(session: Session, number: str) -> models.Ticket | None:
    return session.execute(
        select(models.Ticket).where(func.upper(models.Ticket.number) == number.upper())
    ).scalar_one_or_none()


def list_tickets(session: Session, state: State | None = None, limit: int = 1000) -> list[models.Ticket]:
    stmt = select(models.Ticket).order_by(models.Ticket.id.desc()).limit(limit)
    if state is not None:
        stmt = stmt.where(models.Ticket.state == state)
    return list(session.execute(stmt).scalars())


def messages_of_ticket(
    session: Session, ticket_id: int
) -> tuple[list[models.InboundMessage], list[models.OutboundMessage]]:
    inbound = list(
        session.execute(
            select(models.InboundMessage)
            .where(models.InboundMessage.ticket_id == ticket_id)
            .order_by(models.InboundMessage.id)
        ).scalars()
    )
    outbound = list(
        session.execute(
            select(models.OutboundMessage)
            .where(models.OutboundMessage.ticket_id == ticket_id)
            .order_by(models.OutboundMessage.id)
        ).scalars()
    )
    return inbound, outbound


def since(now: datetime, hours: float) -> datetime:
    return now - timedelta(hours=hours)
