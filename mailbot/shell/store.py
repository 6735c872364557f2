"""Queries, and the two writes that need them: a new ticket (added to the session) and queued mail
(recorded into the transaction's `persist.Effects`). Every function takes the caller's Session; the
caller owns the transaction and hands its effects to the persist step (`persist.apply`) before
committing."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import bindparam, func, orm, select

from mailbot.core.workflow import OPEN_STATES, InboundStatus, OutboundStatus, next_outbound
from mailbot.settings import Profile
from mailbot.shell import models
from mailbot.shell.persist import Effects, QueuedMail, known_of

if TYPE_CHECKING:  # not at run time: the sending child and `tickets list` need no templates
    from mailbot.core.compose import Envelope


_COUNTER = select(models.Counter).where(models.Counter.name == bindparam("name")).with_for_update()
_LOCKED_COUNTERS = "mailbot.locked_counters"  # in Session.info: (its transaction, {name: Counter})


def next_ticket_number(session: orm.Session, profile: Profile, year: int) -> str:
    """Allocate the next number of the profile's sequence for the year, e.g. KONS-2026-000123.

    The counter row is locked (SELECT … FOR UPDATE on PostgreSQL; SQLite's
    BEGIN IMMEDIATE already serializes writers), so two processes never share a number. It stays
    locked until the transaction ends: the transaction's later tickets (a group of messages) count
    on without reading it again.
    """
    name = f"{profile.id}:{year}"
    held = session.info.get(_LOCKED_COUNTERS)
    if held is None or held[0] is not session.get_transaction():
        held = session.info[_LOCKED_COUNTERS] = (session.get_transaction(), {})
    locked: dict[str, models.Counter] = held[1]
    counter = locked.get(name)
    if counter is None:
        counter = session.execute(_COUNTER, {"name": name}).scalar_one_or_none()
        if counter is None:
            counter = models.Counter(name=name, value=0)
            session.add(counter)
            session.flush()  # a concurrent first insert fails here and the message is retried
        locked[name] = counter
    counter.value += 1
    return profile.number_format.format(year=year, seq=counter.value)


def outbox_has_work(session: orm.Session, now: datetime) -> bool:
    """Whether the outbox has anything to do now: a queued mail that is due, or a claim whose
    lease ran out (a process died mid-send). Two lookups on the outbox's (status, next attempt)
    index; `run --once` skips the sending side (its event loop and SMTP client) when neither."""
    out = models.OutboundMessage
    return any(
        session.execute(select(out.id).where(out.status == status, when).limit(1)).first() is not None
        for status, when in (
            (OutboundStatus.PENDING, out.next_attempt_at <= now),
            (OutboundStatus.SENDING, out.next_attempt_at < now),
        )
    )


def add_ticket(session: orm.Session, ticket: models.Ticket) -> None:
    """A new ticket, added to the session and counted for its sender's flood cap; its first state
    and history line come from its first transition (`Effects.transition` from no state). Its id
    comes from the database with the session's next flush (its mail's thread tokens carry its
    number)."""
    session.add(ticket)
    known = known_of(session)
    if known is not None and ticket.applicant_email in known.opened:
        known.opened[ticket.applicant_email] += 1


def get_ticket(session: orm.Session, ticket_id: int) -> models.Ticket | None:
    return session.get(models.Ticket, ticket_id)


def tickets_opened_since(session: orm.Session, applicant: str, since: datetime) -> int:
    """How many tickets this sender opened since then (the flood cap of new requests); in a group
    transaction the count read for the group plus the group's own new tickets."""
    known = known_of(session)
    if known is not None and applicant in known.opened:
        return known.opened[applicant]
    count: int = session.execute(
        select(func.count(models.Ticket.id)).where(
            models.Ticket.applicant_email == applicant, models.Ticket.created_at >= since
        )
    ).scalar_one()
    if known is not None:
        known.opened[applicant] = count
    return count


def held_messages(session: orm.Session, since: datetime, limit: int = 50) -> list[models.InboundMessage]:
    """Mail held for staff (spam flagged by the server, a sender's flood of new requests)."""
    return list(
        session.execute(
            select(models.InboundMessage)
            .where(models.InboundMessage.status == "held", models.InboundMessage.received_at >= since)
            .order_by(models.InboundMessage.id)
            .limit(limit)
        ).scalars()
    )


def outbound_created_at(session: orm.Session, message_id: str) -> datetime | None:
    """When the mail with this Message-ID of ours was queued, if it is ours."""
    return session.execute(
        select(models.OutboundMessage.created_at).where(models.OutboundMessage.message_id == message_id)
    ).scalar_one_or_none()


def enqueue(
    session: orm.Session,
    effects: Effects,
    envelope: Envelope,
    *,
    kind: str,
    ticket: models.Ticket | None,
    now: datetime,
) -> QueuedMail:
    """Queue an outgoing mail into `effects`, with its line in the ticket's history: the persist
    step writes it into the outbox, in the caller's transaction."""
    mail = QueuedMail(
        {
            "ticket_id": None,  # the ticket's id, once it has one (the persist step)
            "kind": kind,
            "message_id": envelope.message_id,
            "mail_from": envelope.mail_from,
            "rcpt_to": list(envelope.rcpt_to),
            "recipient": envelope.rcpt_to[0].lower() if envelope.rcpt_to else "",
            "subject": envelope.subject[:500],
            "status": next_outbound(None, OutboundStatus.PENDING),
            "attempts": 0,
            "next_attempt_at": now,
            "last_error": "",
            "created_at": now,
            "sent_at": None,
            "raw": envelope.raw,
        },
        ticket,
    )
    effects.mails.append(mail)
    known = known_of(session)
    if known is not None and mail.row["recipient"] in known.mail_counts:
        known.mail_counts[mail.row["recipient"]] += 1
    if ticket is not None:
        effects.record(
            ticket,
            "mail_queued",
            actor="system",
            now=now,
            detail=f"{kind} → {', '.join(envelope.rcpt_to)}",
            outbound=mail,
            data={"mail": kind},
        )
    return mail


# The lookups every inbound message makes are built once: building a statement costs several
# times more than running it on SQLite (bench/: about 80 µs against 20 µs).
_AUTO_MAIL_COUNT = (
    select(func.count())
    .select_from(models.OutboundMessage)
    .where(
        models.OutboundMessage.recipient == bindparam("recipient"),
        models.OutboundMessage.created_at >= bindparam("since"),
    )
)


def auto_mail_count(session: orm.Session, effects: Effects, recipient: str, since: datetime) -> int:
    """How many automatic mails went (or wait to go) to one recipient since a time: the stored ones
    and those this transaction queued and has not applied yet; in a group transaction the count
    read for the group plus what the group queued since."""
    known = known_of(session)
    if known is not None and recipient in known.mail_counts:
        return known.mail_counts[recipient]
    count: int = session.execute(_AUTO_MAIL_COUNT, {"recipient": recipient, "since": since}).scalar_one()
    count += sum(1 for m in effects.mails if m.row["recipient"] == recipient and m.row["created_at"] >= since)
    if known is not None:
        known.mail_counts[recipient] = count
    return count


def thread_mail_times(
    session: orm.Session, effects: Effects, ticket_id: int, recipient: str, kind: str, since: datetime
) -> list[datetime]:
    """When mail of one kind went to one recipient of one ticket, since a time: stored, or queued by
    this transaction and not applied yet."""
    stored = list(
        session.execute(
            select(models.OutboundMessage.created_at).where(
                models.OutboundMessage.ticket_id == ticket_id,
                models.OutboundMessage.recipient == recipient,
                models.OutboundMessage.kind == kind,
                models.OutboundMessage.created_at >= since,
            )
        ).scalars()
    )
    return stored + [
        m.row["created_at"]
        for m in effects.mails
        if m.ticket is not None
        and m.ticket.id == ticket_id
        and (m.row["recipient"], m.row["kind"]) == (recipient, kind)
        and m.row["created_at"] >= since
    ]


_BY_SOURCE = select(models.InboundMessage).where(
    models.InboundMessage.mailbox == bindparam("mailbox"),
    models.InboundMessage.uidvalidity == bindparam("uidvalidity"),
    models.InboundMessage.uid == bindparam("uid"),
)


def find_inbound_by_source(
    session: orm.Session, mailbox: str, uidvalidity: int, uid: str
) -> models.InboundMessage | None:
    known = known_of(session)
    if known is not None and (mailbox, uidvalidity, uid) in known.sources:
        return known.sources[(mailbox, uidvalidity, uid)]
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
    session: orm.Session, *, raw_sha256: str, message_id: str, from_addr: str
) -> models.InboundMessage | None:
    """An earlier copy of this mail: the same bytes, or the same Message-ID from the same sender."""
    known = known_of(session)
    hit: models.InboundMessage | None
    if known is not None and raw_sha256 in known.by_sha:
        hit = known.by_sha[raw_sha256]
    else:
        hit = session.execute(_BY_SHA, {"sha": raw_sha256}).scalar_one_or_none()
    if hit is not None or not message_id:
        return hit
    if known is not None and message_id in known.by_message_id:
        return next((r for r in known.by_message_id[message_id] if r.from_addr == from_addr), None)
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


def find_same_content(
    session: orm.Session, content_hash: str, since: datetime
) -> models.InboundMessage | None:
    known = known_of(session)
    if (
        known is not None
        and content_hash in known.by_content
        and known.content_since is not None
        and known.content_since <= since
    ):
        return next((r for r in known.by_content[content_hash] if r.received_at >= since), None)
    return session.execute(_SAME_CONTENT, {"content_hash": content_hash, "since": since}).scalar_one_or_none()


def ticket_by_referenced_message(session: orm.Session, message_ids: list[str]) -> models.Ticket | None:
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


def open_ticket_of(session: orm.Session, applicant: str, subject: str) -> models.Ticket | None:
    """The applicant's latest open ticket with this subject (a request they forward again)."""
    if not subject:
        return None
    return session.execute(
        select(models.Ticket)
        .where(
            models.Ticket.applicant_email == applicant.lower(),
            func.lower(models.Ticket.subject) == subject.lower()[:500],
            models.Ticket.state.in_(list(OPEN_STATES)),
        )
        .order_by(models.Ticket.id.desc())
        .limit(1)
    ).scalar_one_or_none()


def ticket_by_number(session: orm.Session, number: str) -> models.Ticket | None:
    return session.execute(
        select(models.Ticket).where(func.upper(models.Ticket.number) == number.upper())
    ).scalar_one_or_none()


def messages_of_ticket(
    session: orm.Session, ticket_id: int
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
