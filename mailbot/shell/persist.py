"""The persist step: mailbot's Session, whose flush writes the history lines and queued mail the
transaction holds, one INSERT per table. Stages record them through shell/store.py."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, insert, orm
from sqlalchemy.orm import make_transient_to_detached

from mailbot.shell import models

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
class PendingLine:
    entry: models.TicketEvent
    ticket: models.Ticket
    inbound: models.InboundMessage | None
    outbound: QueuedMail | None


@dataclass
class Pending:
    mails: list[QueuedMail] = field(default_factory=list)
    lines: list[PendingLine] = field(default_factory=list)


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
    one before the commit, so nothing held is lost or unseen by a query. A rollback drops them,
    and the lookups read for a group of messages (`Known`) with them."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pending = Pending()
        self.known: Known | None = None  # a group transaction's lookups (`group_lookups.prefetch`)
        self._writing = False

    def flush(self, objects: Any = None) -> None:
        super().flush(objects)
        if self.pending.mails or self.pending.lines:
            self._write_pending()

    def rollback(self) -> None:
        self.pending, self.known = Pending(), None
        super().rollback()

    def close(self) -> None:
        self.pending, self.known = Pending(), None
        super().close()

    def _write_pending(self) -> None:
        if self._writing:
            return
        self._writing = True
        try:
            pending, self.pending = self.pending, Pending()
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
            self.pending = Pending()
            raise
        finally:
            self._writing = False


def pending_of(session: orm.Session) -> Pending:
    if not isinstance(session, Session):
        raise TypeError("mailbot's store needs its own Session class (persist.Session)")
    return session.pending


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
