"""The persist step: what a transaction's decisions recorded (history lines, queued mail), held as
an `Effects` value while they are made and written by `apply`, one INSERT per table."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, insert, orm
from sqlalchemy.orm import make_transient_to_detached

from mailbot.core.workflow import State
from mailbot.shell import models

# Ticket state changes are attribute changes of the ORM's objects (store.transition through the
# workflow table), written by the unit of work. History lines and queued mail, the two insert-only
# tables that are most of what a request writes (three lines and two mails for a new request), are
# held as an `Effects` value and written by `apply`, each table with one Core statement for all its
# rows: through the unit of work, its bookkeeping per object, the intake took a quarter more CPU
# per request (bench/README.md). Ids come from the database (RETURNING).
#
# Effects are recorded only inside a `recording` scope (or `unit`, a transaction with one), which
# applies them at its end: a stage that records outside one raises (`store`), so none is dropped
# unnoticed. The scope is carried by the session (`Session.effects`) rather than passed as an
# argument through every stage: each stage already takes the session its caller owns, and the
# history writer (`store.record_event`) is called from some sixty places.


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
    """What decisions recorded and `apply` has not written yet: queued mail and history lines."""

    mails: list[QueuedMail] = field(default_factory=list)
    lines: list[PendingLine] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.mails or self.lines)

    def clear(self) -> None:
        self.mails.clear()
        self.lines.clear()


class EffectsOutsideUnit(RuntimeError):
    """History lines or mail recorded where nothing would write them: outside `persist.recording`."""


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
    """mailbot's session: plain SQLAlchemy, plus what a transaction carries for the persist step.

    `effects`: the recording scope's effects, None outside one. `known`: a group transaction's
    lookups (`group_lookups.prefetch`). A rollback drops both: what they held was never written."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.effects: Effects | None = None
        self.known: Known | None = None

    def rollback(self) -> None:
        self._drop()
        super().rollback()

    def close(self) -> None:
        self._drop()
        super().close()

    def _drop(self) -> None:
        if self.effects is not None:
            self.effects.clear()
        self.known = None


def _own(session: orm.Session) -> Session:
    if not isinstance(session, Session):
        raise TypeError("mailbot's persist step needs its own Session class (persist.Session)")
    return session


def effects_of(session: orm.Session) -> Effects:
    """The effects of the recording scope the session is in; raises outside one."""
    effects = _own(session).effects
    if effects is None:
        raise EffectsOutsideUnit(
            "history lines and queued mail are recorded inside persist.recording (or persist.unit), "
            "which writes them"
        )
    return effects


def recorded(session: orm.Session) -> Effects:
    """What the session's scope holds and has not applied yet (nothing outside a scope): what a
    count of stored mail in the same transaction adds in memory."""
    effects = session.effects if isinstance(session, Session) else None
    return effects if effects is not None else Effects()


@contextmanager
def recording(session: orm.Session) -> Iterator[Effects]:
    """A scope of decisions on a session in a transaction: what they record is written by `apply`
    when the scope ends without an error (and may be applied earlier, where a decision reads rows
    the scope wrote). An error drops what is left unapplied; the caller's rollback drops the rest.
    A scope opened inside another joins it: the outer one applies (a group of messages is written
    once, before its commit)."""
    own = _own(session)
    if own.effects is not None:
        yield own.effects
        return
    own.effects = effects = Effects()
    try:
        yield effects
        apply(own)
    finally:
        effects.clear()
        own.effects = None


@contextmanager
def unit(sessions: orm.sessionmaker[Any]) -> Iterator[orm.Session]:
    """One transaction whose decisions are applied before its commit."""
    with sessions.begin() as session, recording(session):
        yield session


def apply(session: orm.Session) -> None:
    """The persist step: write what the session's scope recorded, queued mail first (history lines
    name it), each table in one INSERT … RETURNING; the ids are set back on the mail and lines.
    The session's own changes are flushed first (new tickets and received mail get their ids),
    also when nothing was recorded."""
    own = _own(session)
    own.flush()
    effects = own.effects
    if not effects:
        return
    mails, lines = list(effects.mails), list(effects.lines)
    effects.clear()
    connection = own.connection()
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
            own.add(line.entry)


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
