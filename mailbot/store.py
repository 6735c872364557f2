"""Queries and persistence. Every function takes the caller's Session; the caller owns the transaction."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, bindparam, event, func, insert, select, text
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value

from mailbot import models
from mailbot.compose import Envelope
from mailbot.config import Profile
from mailbot.workflow import Event, State, next_state

# --- primary keys known before the insert -----------------------------------------------------
#
# The rows a message writes (its stored copy, the ticket, history lines, queued mail) get their
# ids when they are made, not from an INSERT: nothing needs a flush just to learn an id, and a
# group transaction's rows go to the database together at its commit, a few multi-row statements
# per table instead of a flush per step of every message.

ALLOCATED = frozenset({"inbound_messages", "tickets", "ticket_events", "outbound_messages"})
_IDS = "mailbot.ids"
_KNOWN = "mailbot.known"
_ID_BLOCK = 64


@dataclass
class _IdRange:
    next: int
    last: int  # inclusive; on SQLite unbounded for the transaction


def new_id(session: Session, table: str) -> int:
    """The next primary key of `table` for a row this transaction is about to add.

    SQLite: every write transaction starts with BEGIN IMMEDIATE and holds the database's write
    lock until it ends, so the ids after the table's highest are this transaction's alone.
    PostgreSQL: a block of ids from the table's own sequence, which every other writer (another
    process, a plain INSERT) also draws from. Once a transaction has taken ids of a table, every
    other new row of that table it flushes gets one the same way (`_ids_for_new_rows`).
    """
    ids: dict[str, _IdRange] = _transaction_state(session, _IDS, dict)
    current = ids.get(table)
    if current is None or current.next > current.last:
        current = ids[table] = _id_range(session, table)
    value = current.next
    current.next += 1
    return value


def _id_range(session: Session, table: str) -> _IdRange:
    if table not in ALLOCATED:
        raise ValueError(f"ids of {table} are not allocated here")
    if session.get_bind().dialect.name == "sqlite":
        top = session.execute(text(f"SELECT coalesce(max(id), 0) FROM {table}")).scalar_one()  # noqa: S608
        return _IdRange(int(top) + 1, 2**62)
    block = session.execute(
        text("SELECT nextval(pg_get_serial_sequence(:t, 'id')) FROM generate_series(1, :n)"),
        {"t": table, "n": _ID_BLOCK},
    ).scalars()
    values = sorted(int(v) for v in block)
    # A sequence's values for one caller are increasing but need not be contiguous (another
    # process may draw in between): hand out only the contiguous run at the start.
    run = 0
    while run + 1 < len(values) and values[run + 1] == values[run] + 1:
        run += 1
    return _IdRange(values[0], values[run])


def _transaction_state(session: Session, key: str, make: Any) -> Any:
    """Per-transaction state kept on the session: made afresh when a new transaction begins."""
    owner: SessionTransaction = session.get_transaction() or session.begin()
    held = session.info.get(key)
    if held is None or held[0] is not owner:
        held = session.info[key] = (owner, make())
    return held[1]


def _existing_state(session: Session, key: str) -> Any:
    """The state `_transaction_state` made for the current transaction, or None."""
    held = session.info.get(key)
    return held[1] if held is not None and held[0] is session.get_transaction() else None


@event.listens_for(Session, "before_flush")
def _ids_for_new_rows(session: Session, _context: Any, _instances: Any) -> None:
    """A row added without an id, in a transaction that allocates ids of its table, gets one from
    the same allocator (SQLite would otherwise give it an id already handed out)."""
    ids = _existing_state(session, _IDS)
    if ids is None:
        return
    for obj in session.new:
        table = getattr(obj, "__tablename__", None)
        if isinstance(table, str) and table in ids and getattr(obj, "id", None) is None:
            obj.id = new_id(session, table)


_COUNTER = select(models.Counter).where(models.Counter.name == bindparam("name")).with_for_update()


def next_ticket_number(session: Session, profile: Profile, year: int) -> str:
    """Allocate the next number of the profile's sequence for the year, e.g. KONS-2026-000123.

    The counter row is locked (SELECT … FOR UPDATE on PostgreSQL; SQLite's
    BEGIN IMMEDIATE already serializes writers), so two processes never share a number.
    """
    name = f"{profile.id}:{year}"
    held: dict[str, models.Counter] = _transaction_state(session, "mailbot.counters", dict)
    counter = held.get(name)  # locked already by this transaction: no need to read it again
    if counter is None:
        counter = session.execute(_COUNTER, {"name": name}).scalar_one_or_none()
        if counter is None:
            counter = models.Counter(name=name, value=0)
            session.add(counter)
            session.flush()  # a concurrent first insert fails here and the message is retried
        held[name] = counter
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
    inbound_id: int | None = None,
    data: dict[str, Any] | None = None,
) -> State:
    """The one way a ticket changes state: checked against the table, recorded in the history."""
    current = ticket.state if ticket.id is not None else None
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
        inbound_id=inbound_id,
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
    inbound_id: int | None = None,
    outbound_id: int | None = None,
    data: dict[str, Any] | None = None,
) -> models.TicketEvent:
    """A line of the ticket's history: in `ticket.events` at once, in the database with the next
    flush, query or commit, where it is written by one INSERT for all of the transaction's lines
    (`_Writes`) instead of the unit of work, which spent a fifth of a new request's processing on
    the three lines it writes."""
    if ticket.id is None:
        raise ValueError("a ticket gets its id (add_ticket) before its first history line")
    row: dict[str, Any] = {
        "id": new_id(session, "ticket_events"),
        "ticket_id": ticket.id,
        "at": now,
        "actor": actor,
        "kind": kind,
        "state": ticket.state.value,
        "detail": detail,
        "inbound_id": inbound_id,
        "outbound_id": outbound_id,
        "data": data or {},
    }
    entry = models.TicketEvent(**row)
    _transaction_state(session, _WRITES, _Writes).add_event(row, entry)
    # As if loaded: the unit of work does not see it (the line is written by _Writes).
    set_committed_value(ticket, "events", [*ticket.events, entry])
    return entry


_WRITES = "mailbot.core_writes"
_INSERT_OUTBOUND = insert(cast(Table, models.OutboundMessage.__table__))
_INSERT_EVENTS = insert(cast(Table, models.TicketEvent.__table__))


@dataclass
class _Writes:
    """Rows of the two insert-only tables a request writes most of, kept by the transaction and
    written with one INSERT per table at its next flush, query or commit, after the rows they
    refer to. Queued mail (`outbound`) is written before the history lines that name it; `entries`
    are the history lines' objects (in their tickets' `events`), `written` those not yet in the
    session."""

    outbound: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    entries: list[models.TicketEvent] = field(default_factory=list)
    written: list[models.TicketEvent] = field(default_factory=list)

    def add_event(self, row: dict[str, Any], entry: models.TicketEvent) -> None:
        self.events.append(row)
        self.entries.append(entry)

    def __bool__(self) -> bool:
        return bool(self.outbound or self.events)

    def write(self, session: Session) -> None:
        connection = session.connection()
        if self.outbound:
            connection.execute(_INSERT_OUTBOUND, self.outbound)
            self.outbound = []
        if self.events:
            connection.execute(_INSERT_EVENTS, self.events)
            self.written += self.entries
            self.events, self.entries = [], []

    def attach(self, session: Session) -> None:
        """Make the written history lines persistent objects of the session, as if loaded: a later
        change to one (the privacy purge blanks them) is then an UPDATE like any other."""
        for entry in self.written:
            make_transient_to_detached(entry)
            session.add(entry)
        self.written = []


@event.listens_for(Session, "after_flush")
def _write_rows(session: Session, _context: Any) -> None:
    writes: _Writes | None = _existing_state(session, _WRITES)
    if writes:
        writes.write(session)


@event.listens_for(Session, "after_flush_postexec")
def _attach_history(session: Session, _context: Any) -> None:
    writes: _Writes | None = _existing_state(session, _WRITES)
    if writes is not None:
        writes.attach(session)


def _flush_rows(session: Session) -> None:
    """Rows kept since the last flush go to the database now, even when the unit of work has
    nothing to flush (and so no flush event comes)."""
    writes: _Writes | None = _existing_state(session, _WRITES)
    if writes:
        session.flush()  # first the rows they refer to
        writes.write(session)
        writes.attach(session)


@event.listens_for(Session, "before_commit")
def _rows_before_commit(session: Session) -> None:
    _flush_rows(session)


@event.listens_for(Session, "do_orm_execute")
def _rows_before_query(state: ORMExecuteState) -> None:
    """A query sees the rows kept before it, as it sees every other change (autoflush)."""
    # As the session's own autoflush: not for a statement the flush itself runs (an id block).
    if state.session.autoflush and not state.session._flushing:
        _flush_rows(state.session)


def add_ticket(session: Session, ticket: models.Ticket) -> None:
    """A new ticket, with its id: found by `get_ticket` before it is flushed."""
    ticket.id = new_id(session, "tickets")
    session.add(ticket)
    _transaction_state(session, "mailbot.new_tickets", dict)[ticket.id] = ticket
    known = _known(session)
    if known is not None and ticket.applicant_email in known.opened:
        known.opened[ticket.applicant_email] += 1


def get_ticket(session: Session, ticket_id: int) -> models.Ticket | None:
    """A ticket by id; one added by this transaction without a flush (a query would flush)."""
    pending: dict[int, models.Ticket] = _transaction_state(session, "mailbot.new_tickets", dict)
    return pending.get(ticket_id) or session.get(models.Ticket, ticket_id)


def tickets_opened_since(session: Session, applicant: str, since: datetime) -> int:
    """How many tickets this sender opened since then (the flood cap of new requests); in a group
    transaction, the count read for the group plus the group's own new tickets."""
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
) -> int:
    """Write an outgoing mail into the outbox, in the caller's transaction; its id."""
    recipient = envelope.rcpt_to[0].lower() if envelope.rcpt_to else ""
    outbound_id = new_id(session, "outbound_messages")
    # Written with the next flush, query or commit, by one INSERT for the transaction's mail
    # (`_Writes`): nothing in the transaction needs it as an object.
    _transaction_state(session, _WRITES, _Writes).outbound.append(
        {
            "id": outbound_id,
            "ticket_id": ticket.id if ticket is not None else None,
            "kind": kind,
            "message_id": envelope.message_id,
            "mail_from": envelope.mail_from,
            "rcpt_to": list(envelope.rcpt_to),
            "recipient": recipient,
            "subject": envelope.subject[:500],
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": now,
            "last_error": "",
            "created_at": now,
            "sent_at": None,
            "raw": envelope.raw,
        }
    )
    known = _known(session)
    if known is not None and recipient in known.mail_counts:
        known.mail_counts[recipient] += 1
    if ticket is not None:
        record_event(
            session,
            ticket,
            "mail_queued",
            actor="system",
            now=now,
            detail=f"{kind} → {', '.join(envelope.rcpt_to)}",
            outbound_id=outbound_id,
            data={"mail": kind},
        )
    return outbound_id


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


def _known(session: Session) -> Known | None:
    known: Known | None = _existing_state(session, _KNOWN)
    return known


def prefetch(
    session: Session,
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
    known: Known = _transaction_state(session, _KNOWN, Known)
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


def remember(session: Session, row: models.InboundMessage, message_id: str) -> None:
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


def remember_content(session: Session, row: models.InboundMessage) -> None:
    """A message of the group now belongs to a ticket: a later copy of its content finds it."""
    known = _known(session)
    if known is not None and row.content_hash in known.by_content and row.ticket_id is not None:
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


def auto_mail_count(session: Session, recipient: str, since: datetime) -> int:
    """How many automatic mails went (or wait to go) to one recipient since a time.

    In a group transaction the count read for the group (a few seconds earlier at most) plus what
    the group queued since: it may count a mail that left the window in those seconds, never
    one less."""
    known = _known(session)
    if known is not None and recipient in known.mail_counts:
        return known.mail_counts[recipient]
    count: int = session.execute(_AUTO_MAIL_COUNT, {"recipient": recipient, "since": since}).scalar_one()
    if known is not None:
        known.mail_counts[recipient] = count
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
    known = _known(session)
    if known is not None and (mailbox, uidvalidity, uid) in known.sources:
        return known.sources[(mailbox, uidvalidity, uid)]
    return session.execute(
        _BY_SOURCE, {"mailbox": mailbox, "uidvalidity": uidvalidity, "uid": uid}
    ).scalar_one_or_none()


# Mail stored but never processed: quarantined (unreadable) or held (spam, a sender's flood)
# until staff release it with `mailbot replay --release`.
NOT_PROCESSED = ("quarantined", "held", "released")
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
    known = _known(session)
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


def find_same_content(session: Session, content_hash: str, since: datetime) -> models.InboundMessage | None:
    known = _known(session)
    if (
        known is not None
        and content_hash in known.by_content
        and known.content_since is not None
        and known.content_since <= since
    ):
        return next((r for r in known.by_content[content_hash] if r.received_at >= since), None)
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
