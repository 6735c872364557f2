"""Queries and persistence. Every function takes the caller's Session; the caller owns the transaction."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Table, bindparam, func, insert, inspect, orm, select
from sqlalchemy.orm import make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value

from mailbot.core.workflow import Event, InboundStatus, OutboundStatus, State, next_outbound, next_state
from mailbot.settings import Profile
from mailbot.shell import models

if TYPE_CHECKING:  # not at run time: the sending child and `tickets list` need no templates
    from mailbot.core.compose import Envelope

# --- the persist step ---------------------------------------------------------------------------
#
# A group of messages is one transaction and one flush, at its commit (the lookups read for the
# group, `Known`, are what spares a flush before each message's queries). At that flush the unit
# of work writes the new tickets and received mail, then the session writes the history lines and
# queued mail it holds, each table with one Core statement for all its rows. These two insert-only
# tables are most of what a request writes (three lines and two mails for a new request); through
# the unit of work, its bookkeeping per object, the intake took a quarter more CPU per request
# (bench/README.md). Ids come from the database (RETURNING).


@dataclass
class QueuedMail:
    """A mail written into the outbox by this transaction; `id` once the session has flushed."""

    row: dict[str, Any]
    ticket: models.Ticket | None = None
    id: int | None = None


@dataclass
class _Line:
    entry: models.TicketEvent
    ticket: models.Ticket
    inbound: models.InboundMessage | None
    outbound: QueuedMail | None


@dataclass
class _Pending:
    mails: list[QueuedMail] = field(default_factory=list)
    lines: list[_Line] = field(default_factory=list)


_MAILS = cast(Table, models.OutboundMessage.__table__)
_LINES = cast(Table, models.TicketEvent.__table__)
# The new ids in the order of the rows given (RETURNING itself promises no order): SQLAlchemy's
# "insertmanyvalues" sorts them, on PostgreSQL within one multi-row INSERT per table, on SQLite by
# sending the rows one at a time within the one call (an insert sentinel column, which would let
# SQLite take them in one INSERT too, measured no faster: bench/README.md).
_INSERT_MAILS = insert(_MAILS).returning(_MAILS.c.id, sort_by_parameter_order=True)
_LINE_KEYS = [c.key for c in _LINES.columns if c.key != "id"]
_INSERT_LINES = insert(_LINES).returning(_LINES.c.id, sort_by_parameter_order=True)


class Session(orm.Session):
    """mailbot's session: its flush also writes the history lines and queued mail it holds.

    Every flush runs it: the session's own autoflush before a query, an explicit flush, and the
    one before the commit, so nothing held is lost or unseen by a query. A rollback drops them."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pending = _Pending()
        self.known: Known | None = None  # a group transaction's lookups (`prefetch`)
        self._writing = False

    def flush(self, objects: Any = None) -> None:
        super().flush(objects)
        if self.pending.mails or self.pending.lines:
            self._write_pending()

    def rollback(self) -> None:
        self.pending, self.known = _Pending(), None
        super().rollback()

    def close(self) -> None:
        self.pending, self.known = _Pending(), None
        super().close()

    def _write_pending(self) -> None:
        if self._writing:
            return
        self._writing = True
        try:
            pending, self.pending = self.pending, _Pending()
            connection = self.connection()
            if pending.mails:
                for mail in pending.mails:
                    mail.row["ticket_id"] = mail.ticket.id if mail.ticket is not None else None
                ids = connection.execute(_INSERT_MAILS, [m.row for m in pending.mails]).scalars().all()
                for mail, new_id in zip(pending.mails, ids, strict=True):
                    mail.id = new_id
            if pending.lines:
                rows = []
                for line in pending.lines:
                    line.entry.ticket_id = line.ticket.id
                    if line.inbound is not None:
                        line.entry.inbound_id = line.inbound.id
                    if line.outbound is not None:
                        line.entry.outbound_id = line.outbound.id
                    rows.append({key: getattr(line.entry, key) for key in _LINE_KEYS})
                ids = connection.execute(_INSERT_LINES, rows).scalars().all()
                for line, new_id in zip(pending.lines, ids, strict=True):
                    line.entry.id = new_id
                    # Written: a persistent object of the session from now on, as if loaded (a
                    # later change to it, the privacy purge's, is an UPDATE like any other).
                    make_transient_to_detached(line.entry)
                    self.add(line.entry)
        except BaseException:
            self.pending = _Pending()
            raise
        finally:
            self._writing = False


def _pending(session: orm.Session) -> _Pending:
    if not isinstance(session, Session):
        raise TypeError("mailbot's store needs its own Session class (store.Session)")
    return session.pending


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


def transition(
    session: orm.Session,
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
    current = ticket.state
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
    session: orm.Session,
    ticket: models.Ticket,
    kind: str,
    *,
    actor: str,
    now: datetime,
    detail: str = "",
    inbound: models.InboundMessage | None = None,
    outbound: QueuedMail | None = None,
    data: dict[str, Any] | None = None,
) -> models.TicketEvent:
    """The one writer of the ticket's history (the riwayat konsultasi): a line in `ticket.events`
    at once, written by the session's next flush (`Session`) with the ticket and the mail it names."""
    entry = models.TicketEvent(
        at=now,
        actor=actor,
        kind=kind,
        state=ticket.state.value,
        detail=detail,
        data=data or {},
    )
    if inbound is not None and inbound not in session:
        raise ValueError("a history line names received mail that is stored (session.add) first")
    _pending(session).lines.append(_Line(entry, ticket, inbound, outbound))
    # In the ticket's history at once, as if loaded: the session's flush writes it. A history not
    # loaded yet is not loaded for this: its first read flushes the session first (autoflush).
    if "events" not in inspect(ticket).unloaded:
        set_committed_value(ticket, "events", [*ticket.events, entry])
    # The ticket counts as changed, so that the commit flushes (a session with nothing changed
    # commits without a flush); an unchanged value is no UPDATE.
    ticket.updated_at = ticket.updated_at
    return entry


def open_ticket(
    session: orm.Session,
    ticket: models.Ticket,
    event: Event,
    *,
    actor: str,
    now: datetime,
    detail: str = "",
    inbound: models.InboundMessage | None = None,
    data: dict[str, Any] | None = None,
) -> None:
    """A new ticket: its first state from the table and its first history line. Its id comes from
    the database with the session's next flush (its mail's thread tokens carry its number)."""
    ticket.state = next_state(None, event)
    ticket.updated_at = now
    set_committed_value(ticket, "events", [])  # a new ticket has no history to load
    session.add(ticket)
    known = _known(session)
    if known is not None and ticket.applicant_email in known.opened:
        known.opened[ticket.applicant_email] += 1
    record_event(
        session, ticket, event.value, actor=actor, now=now, detail=detail, inbound=inbound, data=data
    )


def get_ticket(session: orm.Session, ticket_id: int) -> models.Ticket | None:
    return session.get(models.Ticket, ticket_id)


def tickets_opened_since(session: orm.Session, applicant: str, since: datetime) -> int:
    """How many tickets this sender opened since then (the flood cap of new requests); in a group
    transaction the count read for the group plus the group's own new tickets."""
    known = _known(session)
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
    session: orm.Session, envelope: Envelope, *, kind: str, ticket: models.Ticket | None, now: datetime
) -> QueuedMail:
    """Write an outgoing mail into the outbox, in the caller's transaction (at its next flush)."""
    mail = QueuedMail(
        {
            "ticket_id": None,  # the ticket's id, once it has one (the flush)
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
    _pending(session).mails.append(mail)
    known = _known(session)
    if known is not None and mail.row["recipient"] in known.mail_counts:
        known.mail_counts[mail.row["recipient"]] += 1
    if ticket is None:
        session.flush()  # a mail of no ticket (HELP, a refusal): nothing else makes the commit flush
    else:
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


# --- what a group of messages needs to know about stored mail --------------------------------


@dataclass
class Known:
    """The lookups of a group transaction's messages, read for the whole group in a few queries
    (`prefetch`) and kept current as the group's own rows are added (`remember`). A key outside
    what was read is looked up in the database as before. Without it, every message's lookups
    made the session flush the previous message's rows first: a flush per lookup."""

    sources: dict[tuple[str, int, str], models.InboundMessage | None] = field(default_factory=dict)
    by_sha: dict[str, models.InboundMessage | None] = field(default_factory=dict)
    by_message_id: dict[str, list[models.InboundMessage]] = field(default_factory=dict)
    by_content: dict[str, list[models.InboundMessage]] = field(default_factory=dict)
    content_since: datetime | None = None
    # Automatic mails per recipient within the last hour (as of the read, plus what was queued since).
    mail_counts: dict[str, int] = field(default_factory=dict)
    # Tickets opened per sender within the last day (the flood cap), kept current the same way.
    opened: dict[str, int] = field(default_factory=dict)


def _known(session: orm.Session) -> Known | None:
    return session.known if isinstance(session, Session) else None


def prefetch(
    session: orm.Session,
    *,
    sources: Iterable[tuple[str, int, str]],
    shas: Iterable[str],
    message_ids: Iterable[str],
    content_hashes: Iterable[str],
    content_since: datetime | None,
    recipients: Iterable[str],
    mail_since: datetime,
    opened_since: datetime | None = None,
) -> Known:
    """Read, for a whole group, what its messages' lookups will ask; the answers stay with the
    session's transaction."""
    session.flush()
    known = Known()
    if isinstance(session, Session):
        session.known = known
    inbound = models.InboundMessage
    keys = set(sources)
    known.sources.update(dict.fromkeys(keys))
    for mailbox, uidvalidity in {(m, v) for m, v, _ in keys}:
        uids = [u for m, v, u in keys if (m, v) == (mailbox, uidvalidity)]
        for row in session.execute(
            select(inbound).where(
                inbound.mailbox == mailbox, inbound.uidvalidity == uidvalidity, inbound.uid.in_(uids)
            )
        ).scalars():
            known.sources[(row.mailbox, row.uidvalidity, row.uid)] = row
    wanted = set(shas)
    known.by_sha.update(dict.fromkeys(wanted))
    if wanted:
        for row in session.execute(
            select(inbound)
            .where(inbound.raw_sha256.in_(wanted), inbound.status.not_in(NOT_PROCESSED))
            .order_by(inbound.id)
        ).scalars():
            if known.by_sha.get(row.raw_sha256) is None:
                known.by_sha[row.raw_sha256] = row
    mids = {m for m in message_ids if m}
    for mid in mids:
        known.by_message_id.setdefault(mid, [])
    if mids:
        for row in session.execute(
            select(inbound)
            .where(inbound.message_id.in_(mids), inbound.status.not_in(NOT_PROCESSED))
            .order_by(inbound.id)
        ).scalars():
            known.by_message_id[row.message_id].append(row)
    hashes = {h for h in content_hashes if h}
    if content_since is not None and hashes:
        known.content_since = content_since
        for h in hashes:
            known.by_content.setdefault(h, [])
        for row in session.execute(
            select(inbound)
            .where(
                inbound.content_hash.in_(hashes),
                inbound.received_at >= content_since,
                inbound.ticket_id.is_not(None),
            )
            .order_by(inbound.id)
        ).scalars():
            known.by_content[row.content_hash].append(row)
    people = {r.lower() for r in recipients if r}
    if people:
        counts = {
            recipient: int(count)
            for recipient, count in session.execute(
                select(models.OutboundMessage.recipient, func.count())
                .where(
                    models.OutboundMessage.recipient.in_(people),
                    models.OutboundMessage.created_at >= mail_since,
                )
                .group_by(models.OutboundMessage.recipient)
            )
        }
        known.mail_counts.update({p: counts.get(p, 0) for p in people})
    senders = {r for r in recipients if r}
    if senders and opened_since is not None:
        opened = {
            applicant: int(count)
            for applicant, count in session.execute(
                select(models.Ticket.applicant_email, func.count())
                .where(models.Ticket.applicant_email.in_(senders), models.Ticket.created_at >= opened_since)
                .group_by(models.Ticket.applicant_email)
            )
        }
        known.opened.update({p: opened.get(p, 0) for p in senders})
    return known


def remember(session: orm.Session, row: models.InboundMessage, message_id: str) -> None:
    """A message of the group is stored: later messages' lookups find it (as a query would have)."""
    known = _known(session)
    if known is None:
        return
    known.sources[(row.mailbox, row.uidvalidity, row.uid)] = row
    if row.status not in NOT_PROCESSED:
        if known.by_sha.get(row.raw_sha256) is None:
            known.by_sha[row.raw_sha256] = row
        if message_id and message_id in known.by_message_id:
            known.by_message_id[message_id].append(row)


def remember_content(session: orm.Session, row: models.InboundMessage) -> None:
    """A message of the group now belongs to a ticket: a later copy of its content finds it."""
    known = _known(session)
    if (
        known is not None
        and row.content_hash in known.by_content
        and (row.ticket_id is not None or row.ticket is not None)
    ):
        known.by_content[row.content_hash].append(row)


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


def auto_mail_count(session: orm.Session, recipient: str, since: datetime) -> int:
    """How many automatic mails went (or wait to go) to one recipient since a time; in a group
    transaction the count read for the group plus what the group queued since."""
    known = _known(session)
    if known is not None and recipient in known.mail_counts:
        return known.mail_counts[recipient]
    count: int = session.execute(_AUTO_MAIL_COUNT, {"recipient": recipient, "since": since}).scalar_one()
    if known is not None:
        known.mail_counts[recipient] = count
    return count


def thread_mail_times(
    session: orm.Session, ticket_id: int, recipient: str, kind: str, since: datetime
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
    session: orm.Session, mailbox: str, uidvalidity: int, uid: str
) -> models.InboundMessage | None:
    known = _known(session)
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
    known = _known(session)
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
    known = _known(session)
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


def ticket_by_number(session: orm.Session, number: str) -> models.Ticket | None:
    return session.execute(
        select(models.Ticket).where(func.upper(models.Ticket.number) == number.upper())
    ).scalar_one_or_none()


def list_tickets(session: orm.Session, state: State | None = None, limit: int = 1000) -> list[models.Ticket]:
    stmt = select(models.Ticket).order_by(models.Ticket.id.desc()).limit(limit)
    if state is not None:
        stmt = stmt.where(models.Ticket.state == state)
    return list(session.execute(stmt).scalars())


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
