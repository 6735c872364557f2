"""SQLAlchemy 2.x typed models: tickets, their history, raw inbound and outbound mail, counters."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Dialect,
    Enum,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from mailbot.core.workflow import InboundStatus, OutboundStatus, State


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; pass an aware UTC time")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime,
        dict[str, Any]: JSON,
        list[Any]: JSON,
    }


def _status(kind: type[enum.StrEnum], length: int) -> Enum:
    """A state column: the enum's values as text (no database enum type to migrate)."""
    return Enum(kind, native_enum=False, length=length, values_callable=lambda e: [m.value for m in e])


class Ticket(Base):
    __tablename__ = "tickets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    number: Mapped[str] = mapped_column(String(64), unique=True)
    profile: Mapped[str] = mapped_column(String(64))
    state: Mapped[State] = mapped_column(_status(State, 32))
    applicant_email: Mapped[str] = mapped_column(String(320), index=True)
    applicant_name: Mapped[str] = mapped_column(String(200), default="")
    subject: Mapped[str] = mapped_column(String(500), default="")
    # name -> normalized value of every field received so far (valid or not yet).
    fields: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Open problems with the request: [{"field": ..., "code": ..., "value": ...}].
    issues: Mapped[list[Any]] = mapped_column(default=list)
    # The applicant's first Message-ID: replies to the applicant thread under it.
    root_message_id: Mapped[str] = mapped_column(String(998), default="")
    assignee_email: Mapped[str | None] = mapped_column(String(320), default=None)
    urgent: Mapped[bool] = mapped_column(default=False)
    # The running step of the SOP and when it is due (refreshed after every change and sweep).
    step: Mapped[str] = mapped_column(String(64), default="")
    due_at: Mapped[datetime | None] = mapped_column(default=None, index=True)
    # When the deadline sweep next has something to do for this ticket (a reminder, an
    # escalation, a survey reminder, closing): the sweep reads only tickets whose time has come.
    next_check_at: Mapped[datetime | None] = mapped_column(default=None, index=True)
    # A follow-up after the reopen window opens a new ticket linked to the old one.
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"), default=None)
    # Working days added to the current step's deadline by EXTEND.
    extension_days: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    version: Mapped[int] = mapped_column(Integer, default=1)

    events: Mapped[list[TicketEvent]] = relationship(
        back_populates="ticket", order_by="TicketEvent.id", cascade="all, delete-orphan"
    )

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012 (SQLAlchemy's declarative API)
    __table_args__ = (Index("ix_tickets_state", "state"),)


class TicketEvent(Base):
    """One line of the riwayat konsultasi: who did what, when, and through which message."""

    __tablename__ = "ticket_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(320))
    kind: Mapped[str] = mapped_column(String(40))
    state: Mapped[str] = mapped_column(String(32), default="")
    detail: Mapped[str] = mapped_column(Text, default="")
    inbound_id: Mapped[int | None] = mapped_column(ForeignKey("inbound_messages.id"), default=None)
    outbound_id: Mapped[int | None] = mapped_column(ForeignKey("outbound_messages.id"), default=None)
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)

    ticket: Mapped[Ticket] = relationship(back_populates="events")
    # The mail the line is about (the unit of work writes it before the line).
    inbound: Mapped[InboundMessage | None] = relationship()
    outbound: Mapped[OutboundMessage | None] = relationship()


class InboundMessage(Base):
    """A received mail, kept byte for byte, keyed by where it came from (DOMAIN.md s. 5)."""

    __tablename__ = "inbound_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    mailbox: Mapped[str] = mapped_column(String(500))
    uidvalidity: Mapped[int] = mapped_column(BigInteger)
    uid: Mapped[str] = mapped_column(String(255))
    message_id: Mapped[str] = mapped_column(String(998), default="", index=True)
    raw_sha256: Mapped[str] = mapped_column(String(64), index=True)
    content_hash: Mapped[str] = mapped_column(String(64), default="", index=True)
    from_addr: Mapped[str] = mapped_column(String(320), default="")
    subject: Mapped[str] = mapped_column(String(500), default="")
    received_at: Mapped[datetime]
    status: Mapped[InboundStatus] = mapped_column(_status(InboundStatus, 20), index=True)
    kind: Mapped[str] = mapped_column(String(20), default="")
    reason: Mapped[str] = mapped_column(Text, default="")
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"), default=None, index=True)
    size: Mapped[int] = mapped_column(Integer, default=0)
    raw: Mapped[bytes] = mapped_column(LargeBinary)

    ticket: Mapped[Ticket | None] = relationship()

    __table_args__ = (UniqueConstraint("mailbox", "uidvalidity", "uid", name="uq_inbound_source"),)


class OutboundMessage(Base):
    """The durable outbox: written with the state change that causes it, then sent."""

    __tablename__ = "outbound_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"), default=None, index=True)
    kind: Mapped[str] = mapped_column(String(40))
    message_id: Mapped[str] = mapped_column(String(998), unique=True)
    mail_from: Mapped[str] = mapped_column(String(320))
    rcpt_to: Mapped[list[Any]] = mapped_column()
    # The (single) recipient, indexed for the per-recipient rate limit.
    recipient: Mapped[str] = mapped_column(String(320), default="", index=True)
    subject: Mapped[str] = mapped_column(String(500), default="")
    status: Mapped[OutboundStatus] = mapped_column(
        _status(OutboundStatus, 12), default=OutboundStatus.PENDING
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None] = mapped_column(default=None)
    raw: Mapped[bytes] = mapped_column(LargeBinary)

    ticket: Mapped[Ticket | None] = relationship()

    __table_args__ = (Index("ix_outbound_due", "status", "next_attempt_at"),)


class Survey(Base):
    """A satisfaction survey (SKM) of one ticket: answers so far, complete or not."""

    __tablename__ = "surveys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), unique=True)
    # {"1": 4, ..., "9": 3}: element number -> score 1..4
    scores: Mapped[dict[str, Any]] = mapped_column(default=dict)
    comment: Mapped[str] = mapped_column(Text, default="")
    complete: Mapped[bool] = mapped_column(default=False, index=True)
    received_at: Mapped[datetime] = mapped_column(index=True)
    # Grouping keys for reports, fixed when the survey is complete.
    profile: Mapped[str] = mapped_column(String(64), default="")
    unit: Mapped[str] = mapped_column(String(200), default="")
    consultant: Mapped[str] = mapped_column(String(320), default="")


class Notice(Base):
    """A reminder, escalation or digest that was sent: the unique key makes it once only,
    however many schedulers run and however often the daemon restarts."""

    __tablename__ = "notices"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(40))
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"), default=None)
    created_at: Mapped[datetime]

    __table_args__ = (UniqueConstraint("key", "kind", name="uq_notice"),)


class Document(Base):
    """The number given to one official document of a ticket, fixed the first time it is made."""

    __tablename__ = "documents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"))
    kind: Mapped[str] = mapped_column(String(40))
    number: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime]

    __table_args__ = (UniqueConstraint("ticket_id", "kind", name="uq_document"),)


class Counter(Base):
    """Ticket number sequences, one row per (profile, year)."""

    __tablename__ = "counters"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[int] = mapped_column(Integer, default=0)


class Health(Base):
    """When a component (intake, outbox) last worked and since when it has been failing."""

    __tablename__ = "health"

    component: Mapped[str] = mapped_column(String(40), primary_key=True)
    last_ok_at: Mapped[datetime | None] = mapped_column(default=None)
    last_error_at: Mapped[datetime | None] = mapped_column(default=None)
    last_error: Mapped[str] = mapped_column(Text, default="")
    failing_since: Mapped[datetime | None] = mapped_column(default=None)


class MailboxState(Base):
    """Per source folder: the UIDVALIDITY last seen, to notice when it changes."""

    __tablename__ = "mailbox_state"

    mailbox: Mapped[str] = mapped_column(String(500), primary_key=True)
    uidvalidity: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime]
