"""The persist step: what a transaction's decisions decided to write (history lines, queued mail),
an `Effects` value its owner hands to `apply`, which writes each table in one INSERT."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, insert, inspect, orm
from sqlalchemy.orm import make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value

from mailbot.core.workflow import Event, State, next_state
from mailbot.shell import models

# The stages' decisions are made with a session (they read), but what they decide to *write* is a
# value: an `Effects`, given by the caller that owns the transaction to every stage it runs, and
# handed by that caller to `apply`, the persist step, before it commits. History lines and queued
# mail, the two insert-only tables that are most of what a request writes (three lines and two
# mails for a new request), are written by `apply`, each table with one Core statement for all its
# rows: through the unit of work, its bookkeeping per object, the intake took a quarter more CPU
# per request (bench/README.md). Ids come from the database (RETURNING).
#
# Two things a decision does write at once, both plain ORM changes that `apply`'s flush writes:
# a transition sets the ticket's state on the object (the decisions after it, in the same
# transaction, must see the new state; its history line is an effect like any other), and a new
# ticket or received mail is added to the session. A decision that reads rows its own group
# recorded (a reply to a mail the group queued a moment ago) applies the effects so far first
# (`apply` may run more than once in a transaction; each run writes what is new).
#
# A group of messages is one transaction with one `Effects`, applied once before its commit:
# applied after each message instead, the intake took 1.67 times the CPU (bench/README.md).


@dataclass
class QueuedMail:
    """A mail written into the outbox by this transaction; `id` once applied."""

    row: dict[str, Any]
    ticket: models.Ticket | None = None
    id: int | None = None


@dataclass(frozen=True)
class TicketRef:
    """A ticket named by its id and current state without being loaded: how a writer that holds no
    ticket (the sending side, after a batch) names the ticket of a history line. There is no
    history in memory to add the line to; the persist step writes it like any other."""

    id: int
    state: State


@dataclass
class PendingLine:
    entry: models.TicketEvent
    ticket: models.Ticket | TicketRef
    inbound: models.InboundMessage | None
    outbound: QueuedMail | None


@dataclass
class Effects:
    """What a transaction's decisions decided to write and `apply` has not written yet: history
    lines (`record`, `transition`) and queued mail (`store.enqueue`, through `Replies`)."""

    mails: list[QueuedMail] = field(default_factory=list)
    lines: list[PendingLine] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.mails or self.lines)

    def clear(self) -> None:
        self.mails.clear()
        self.lines.clear()

    def transition(
        self,
        ticket: models.Ticket,
        event: Event,
        *,
        actor: str,
        now: datetime,
        detail: str = "",
        inbound: models.InboundMessage | None = None,
        data: dict[str, Any] | None = None,
    ) -> State:
        """The one way a ticket changes state: checked against the table (core/workflow.py), with
        its history line."""
        new = next_state(ticket.state, event)
        ticket.state = new
        ticket.updated_at = now
        self.record(ticket, event.value, actor=actor, now=now, detail=detail, inbound=inbound, data=data)
        return new

    def record(
        self,
        ticket: models.Ticket | TicketRef,
        kind: str,
        *,
        actor: str,
        now: datetime,
        detail: str = "",
        inbound: models.InboundMessage | None = None,
        outbound: QueuedMail | None = None,
        outbound_id: int | None = None,
        data: dict[str, Any] | None = None,
    ) -> models.TicketEvent:
        """The one writer of a ticket's history (the riwayat konsultasi): a line in `ticket.events`
        at once, written by `apply` with the ticket and the mail it names. A `TicketRef` (a ticket
        not loaded, by id and state) gets the line written, with no history in memory to add it to.
        `outbound`: the mail this transaction queued that the line is about; `outbound_id`: a
        mail stored earlier (the sending side's lines)."""
        entry = models.TicketEvent(
            at=now,
            actor=actor,
            kind=kind,
            state=ticket.state.value,
            detail=detail,
            data=data or {},
            outbound_id=outbound_id,
        )
        if inbound is not None and orm.object_session(inbound) is None:
            raise ValueError("a history line names received mail that is stored (session.add) first")
        if not isinstance(ticket, TicketRef):
            # In the ticket's history at once, as if loaded: `apply` writes it. A stored history
            # not loaded yet is loaded first (it holds what was applied; a later read would miss
            # the line); a new ticket has none to load.
            state = inspect(ticket)
            if "events" in state.unloaded:
                if state.has_identity:
                    ticket.events  # noqa: B018 - the lazy load
                else:
                    set_committed_value(ticket, "events", [])
            set_committed_value(ticket, "events", [*ticket.events, entry])
        self.lines.append(PendingLine(entry, ticket, inbound, outbound))
        return entry


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
    """mailbot's session: plain SQLAlchemy, plus a group transaction's lookups (`known`,
    `group_lookups.prefetch`). A rollback drops them: what they held was never written."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.known: Known | None = None

    def rollback(self) -> None:
        self.known = None
        super().rollback()

    def close(self) -> None:
        self.known = None
        super().close()


@contextmanager
def unit(sessions: orm.sessionmaker[Any]) -> Iterator[tuple[orm.Session, Effects]]:
    """One transaction and the effects its decisions record, applied before its commit (an error
    rolls back both)."""
    with sessions.begin() as session:
        effects = Effects()
        yield session, effects
        apply(session, effects)


def apply(session: orm.Session, effects: Effects) -> None:
    """The persist step: write what the decisions recorded, queued mail first (history lines name
    it), each table in one INSERT … RETURNING; the ids are set back on the mail and lines, and
    `effects` is left empty. The session's own changes are flushed first (new tickets, received
    mail and state changes get written, and their ids), also when nothing was recorded."""
    session.flush()
    if not effects:
        return
    mails, lines = list(effects.mails), list(effects.lines)
    effects.clear()
    connection = session.connection()
    if mails:
        for mail in mails:
            mail.row["ticket_id"] = mail.ticket.id if mail.ticket is not None else None
        ids = connection.execute(_INSERT_MAILS, [m.row for m in mails]).scalars().all()
        for mail, new_id in zip(mails, ids, strict=True):
            mail.id = new_id
    if lines:
        rows = []
        for line in lines:
            line.entry.ticket_id = line.ticket.id
            if line.inbound is not None:
                line.entry.inbound_id = line.inbound.id
            if line.outbound is not None:
                line.entry.outbound_id = line.outbound.id
            rows.append({key: getattr(line.entry, key) for key in _LINE_KEYS})
        ids = connection.execute(_INSERT_LINES, rows).scalars().all()
        for line, new_id in zip(lines, ids, strict=True):
            line.entry.id = new_id
            # Written: a persistent object of the session from now on, as if loaded (a later
            # change to it, the privacy purge's, is an UPDATE like any other).
            make_transient_to_detached(line.entry)
            session.add(line.entry)


# What a group of messages needs to know about stored mail: filled and kept current by
# shell/group_lookups.py, carried by the session so that a rollback drops it with what it holds.


@dataclass
class Known:
    """The lookups of a group transaction's messages, read for the whole group in a few queries
    (`group_lookups.prefetch`) and kept current as the group's own rows are added (`remember`).
    A key outside what was read is looked up in the database as before. Without it, every
    message's lookups made the session flush the previous message's rows first: a flush per lookup."""

    sources: dict[tuple[str, int, str], models.InboundMessage | None] = field(default_factory=dict)
    by_sha: dict[str, models.InboundMessage | None] = field(default_factory=dict)
    by_message_id: dict[str, list[models.InboundMessage]] = field(default_factory=dict)
    by_content: dict[str, list[models.InboundMessage]] = field(default_factory=dict)
    content_since: datetime | None = None
    # Automatic mails per recipient within the last hour (as of the read, plus what was queued since).
    mail_counts: dict[str, int] = field(default_factory=dict)
    # Tickets opened per sender within the last day (the flood cap), kept current the same way.
    opened: dict[str, int] = field(default_factory=dict)


def known_of(session: orm.Session) -> Known | None:
    return session.known if isinstance(session, Session) else None
