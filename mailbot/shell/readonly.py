"""What the read-only commands read (`tickets list`, `tickets show`, `status`), through the
database's own driver: sqlite3 or psycopg, without SQLAlchemy.

A monitor runs `status` every minute and scripts call `tickets` in loops; importing SQLAlchemy
alone took 0.2 to 0.3 s of their start on the office's small machine (bench/README.md). These
few SELECTs name their columns, and `tests` holds their answers against the models' on SQLite and
PostgreSQL. A database that is not at the newest schema (or not there at all) is not read this
way: `open_reader` answers None and the caller lets the full start create or migrate it.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qsl, unquote

from mailbot.core.workflow import OPEN_STATES, State
from mailbot.locate import ConfigError
from mailbot.migrations import head_revision
from mailbot.secret import permission_denied

COMPONENTS = ("intake", "outbox")  # the daemon's parts whose health is recorded


class ReadError(Exception):
    """The database cannot be read (gone, locked too long, refused): the driver's error, said once."""


@dataclass(frozen=True)
class Event:
    at: datetime
    actor: str
    kind: str
    state: str
    detail: str
    inbound_id: int | None
    outbound_id: int | None


@dataclass(frozen=True)
class Ticket:
    id: int
    number: str
    profile: str
    state: State
    applicant_email: str
    applicant_name: str
    subject: str
    fields: dict[str, Any]
    issues: list[Any]
    assignee_email: str | None
    urgent: bool
    step: str
    due_at: datetime | None
    parent_id: int | None
    created_at: datetime
    updated_at: datetime
    events: list[Event] = field(default_factory=list)


@dataclass(frozen=True)
class Inbound:
    id: int
    message_id: str
    from_addr: str
    subject: str
    received_at: datetime
    status: str
    size: int


@dataclass(frozen=True)
class Outbound:
    id: int
    message_id: str
    rcpt_to: list[str]
    subject: str
    kind: str
    created_at: datetime
    status: str
    attempts: int
    last_error: str
    sent_at: datetime | None


@dataclass(frozen=True)
class Status:
    components: dict[str, dict[str, Any]]
    outbox_pending: int
    outbox_sending: int
    dead_letters: int
    quarantined: int
    open_tickets: int
    overdue_tickets: int
    failing: list[str]

    @property
    def healthy(self) -> bool:
        return not self.failing

    def as_json(self) -> dict[str, Any]:
        return {
            "healthy": self.healthy,
            "failing": self.failing,
            "components": self.components,
            "outbox": {
                "pending": self.outbox_pending,
                "sending": self.outbox_sending,
                "dead": self.dead_letters,
            },
            "quarantined": self.quarantined,
            "tickets": {"open": self.open_tickets, "overdue": self.overdue_tickets},
        }


class _Connection(Protocol):
    """A DB-API connection: sqlite3's, psycopg's, or the full start's own (any driver's)."""

    def cursor(self) -> Any: ...
    def close(self) -> None: ...


_TICKET = (
    "SELECT id, number, profile, state, applicant_email, applicant_name, subject, fields, issues, "
    "assignee_email, urgent, step, due_at, parent_id, created_at, updated_at FROM tickets"
)
_EVENTS = (
    "SELECT at, actor, kind, state, detail, inbound_id, outbound_id FROM ticket_events "
    "WHERE ticket_id = ? ORDER BY id"
)
_INBOUND = (
    "SELECT id, message_id, from_addr, subject, received_at, status, size FROM inbound_messages "
    "WHERE ticket_id = ? ORDER BY id"
)
_OUTBOUND = (
    "SELECT id, message_id, rcpt_to, subject, kind, created_at, status, attempts, last_error, sent_at "
    "FROM outbound_messages WHERE ticket_id = ? ORDER BY id"
)

_OPEN = tuple(sorted(s.value for s in OPEN_STATES))
_IN_OPEN = "state IN (" + ", ".join("?" * len(_OPEN)) + ")"  # placeholders only: the states are bound
_OPEN_PROFILES = "SELECT DISTINCT profile FROM tickets WHERE " + _IN_OPEN  # noqa: S608
_OPEN_COUNTS = "SELECT count(*), count(CASE WHEN due_at <= ? THEN 1 END) FROM tickets WHERE " + _IN_OPEN  # noqa: S608


class Reader:
    """One connection, for one command; `close` it (or use it in `with`)."""

    def __init__(self, connection: _Connection, *, sqlite: bool) -> None:
        self._conn = connection
        self._sqlite = sqlite

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._conn.close()

    def tickets(self, state: State | None = None, limit: int = 1000) -> list[Ticket]:
        """Newest first, as `mailbot tickets list` shows them."""
        where, params = (" WHERE state = ?", [state.value]) if state is not None else ("", [])
        rows = self._rows(f"{_TICKET}{where} ORDER BY id DESC LIMIT ?", [*params, max(limit, 0)])
        return [self._ticket(row) for row in rows]

    def ticket(self, number: str) -> Ticket | None:
        """The ticket of that number (any case), with its history."""
        rows = self._rows(f"{_TICKET} WHERE upper(number) = ?", [number.upper()])
        if not rows:
            return None
        ticket = self._ticket(rows[0])
        events = [
            Event(self._time(r[0]), r[1], r[2], r[3], r[4], r[5], r[6])
            for r in self._rows(_EVENTS, [ticket.id])
        ]
        ticket.events.extend(events)
        return ticket

    def messages(self, ticket_id: int) -> tuple[list[Inbound], list[Outbound]]:
        inbound = [
            Inbound(r[0], r[1], r[2], r[3], self._time(r[4]), r[5], r[6])
            for r in self._rows(_INBOUND, [ticket_id])
        ]
        outbound = [
            Outbound(
                r[0], r[1], self._json(r[2]), r[3], r[4], self._time(r[5]), r[6], r[7], r[8], self._when(r[9])
            )
            for r in self._rows(_OUTBOUND, [ticket_id])
        ]
        return inbound, outbound

    def open_profiles(self) -> list[str]:
        """The profiles of the tickets still open."""
        return [r[0] for r in self._rows(_OPEN_PROFILES, list(_OPEN))]

    def status(self, now: datetime, failing_after: timedelta) -> Status:
        """What last worked, what is failing (longer than `failing_after`), and the queues."""
        health = {
            r[0]: r
            for r in self._rows(
                "SELECT component, last_ok_at, last_error_at, last_error, failing_since FROM health", []
            )
        }
        components: dict[str, dict[str, Any]] = {}
        failing: list[str] = []
        for name in COMPONENTS:
            row = health.get(name)
            since = self._when(row[4]) if row else None
            components[name] = {
                "last_ok_at": _iso(self._when(row[1])) if row else None,
                "last_error_at": _iso(self._when(row[2])) if row else None,
                "last_error": row[3] if row else "",
                "failing_since": _iso(since),
            }
            if since is not None and now - since >= failing_after:
                failing.append(name)
        outbox = dict(self._rows("SELECT status, count(*) FROM outbound_messages GROUP BY status", []))
        open_tickets, overdue = self._rows(_OPEN_COUNTS, [self._bind_time(now), *_OPEN])[0]
        quarantined = self._rows("SELECT count(*) FROM inbound_messages WHERE status = ?", ["quarantined"])[
            0
        ][0]
        return Status(
            components=components,
            outbox_pending=int(outbox.get("pending", 0)),
            outbox_sending=int(outbox.get("sending", 0)),
            dead_letters=int(outbox.get("dead", 0)),
            quarantined=int(quarantined),
            open_tickets=int(open_tickets),
            overdue_tickets=int(overdue or 0),
            failing=failing,
        )

    # --- the two drivers' differences -------------------------------------------------------

    def _rows(self, query: str, params: list[Any]) -> list[tuple[Any, ...]]:
        if not self._sqlite:
            query = query.replace("?", "%s")
        try:
            with closing(self._conn.cursor()) as cursor:
                cursor.execute(query, params)
                return [tuple(row) for row in cursor.fetchall()]
        except Exception as exc:  # the driver's own error types (sqlite3, psycopg): mapped once, here
            if _is_driver_error(exc):
                raise ReadError(str(exc).strip()) from exc
            raise

    def _ticket(self, r: tuple[Any, ...]) -> Ticket:
        return Ticket(
            id=r[0],
            number=r[1],
            profile=r[2],
            state=State(r[3]),
            applicant_email=r[4],
            applicant_name=r[5],
            subject=r[6],
            fields=self._json(r[7]) or {},
            issues=self._json(r[8]) or [],
            assignee_email=r[9],
            urgent=bool(r[10]),
            step=r[11] or "",
            due_at=self._when(r[12]),
            parent_id=r[13],
            created_at=self._time(r[14]),
            updated_at=self._time(r[15]),
        )

    @staticmethod
    def _json(value: Any) -> Any:
        # SQLite keeps JSON as text; psycopg hands PostgreSQL's json back already parsed.
        return json.loads(value) if isinstance(value, str | bytes) else value

    def _time(self, value: Any) -> datetime:
        when = self._when(value)
        if when is None:
            raise ReadError("a time that must be set is empty")
        return when

    def _when(self, value: Any) -> datetime | None:
        # SQLite: naive UTC text as the models write it; PostgreSQL: timestamptz, aware.
        if value is None:
            return None
        when: datetime = datetime.fromisoformat(value) if isinstance(value, str) else value
        return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)

    def _bind_time(self, moment: datetime) -> Any:
        # The text the models' SQLite column holds compares as time only in exactly that form.
        return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f") if self._sqlite else moment


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _is_driver_error(exc: Exception) -> bool:
    if isinstance(exc, sqlite3.Error):
        return True
    module = type(exc).__module__
    return module.startswith("psycopg")


_SQLITE_HAS_VERSIONS = "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'"
_POSTGRESQL_HAS_VERSIONS = "SELECT to_regclass('alembic_version') IS NOT NULL"


def open_reader(url: str) -> Reader | None:
    """A reader of the database at `url` (SQLAlchemy's URL form), or None when the full start
    must come first: no database file yet, a schema older than this mailbot's, or a URL form this
    path does not read itself (the caller then reads through the full start). ReadError when the
    database is there but cannot be read."""
    parts = parse_url(url)
    if parts is None:
        return None
    dialect, _, driver = parts.name.partition("+")
    if dialect == "sqlite" and driver in ("", "pysqlite"):
        connection = _sqlite(parts)
        sqlite = True
    elif dialect == "postgresql" and driver in ("", "psycopg"):
        connection = _postgresql(parts)
        sqlite = False
    else:
        return None
    if connection is None:
        return None
    reader = Reader(connection, sqlite=sqlite)
    try:
        catalog = _SQLITE_HAS_VERSIONS if sqlite else _POSTGRESQL_HAS_VERSIONS
        versions = (
            [r[0] for r in reader._rows("SELECT version_num FROM alembic_version", [])]
            if reader._rows(catalog, [])[0][0]
            else []  # no table: a database no mailbot has set up yet
        )
    except BaseException:
        reader.close()
        raise
    if versions != [head_revision()]:
        reader.close()
        return None
    return reader


@dataclass(frozen=True)
class UrlParts:
    """A database URL's parts as SQLAlchemy reads them (`sqlalchemy.engine.make_url`)."""

    name: str  # dialect+driver
    username: str | None
    password: str | None
    host: str | None
    port: int | None
    database: str | None
    query: dict[str, list[str]]


# SQLAlchemy's own pattern (sqlalchemy/engine/url.py, _parse_url): the same URL must name the
# same database here. Not urlsplit's reading: for it a "#" in a path starts a fragment, and a
# "/" in a password ends the host (libpq's URI parser reads it so too).
_URL = re.compile(
    r"""
        (?P<name>[\w+]+)://
        (?:
            (?P<username>[^:/]*)
            (?::(?P<password>[^@]*))?
        @)?
        (?:
            (?:
                \[(?P<ipv6host>[^/?]+)\] |
                (?P<ipv4host>[^/:?]+)
            )?
            (?::(?P<port>[^/?]*))?
        )?
        (?:/(?P<database>[^?]*))?
        (?:\?(?P<query>.*))?
    """,
    re.X,
)


def parse_url(url: str) -> UrlParts | None:
    """The URL's parts, unescaped as SQLAlchemy unescapes them; None when it does not parse
    (the full start says why)."""
    m = _URL.match(url)
    if m is None:
        return None
    port = m["port"] or None
    if port is not None and not port.isdigit():
        return None
    query: dict[str, list[str]] = {}
    for key, value in parse_qsl(m["query"] or ""):
        query.setdefault(key, []).append(value)
    return UrlParts(
        name=m["name"],
        username=None if m["username"] is None else unquote(m["username"]),
        password=None if m["password"] is None else unquote(m["password"]),
        host=m["ipv4host"] or m["ipv6host"],
        port=int(port) if port else None,
        database=None if m["database"] is None else unquote(m["database"]),
        query=query,
    )


# The query options SQLAlchemy's pysqlite dialect gives the driver (create_connect_args); any
# other is ignored by it (with a warning) unless uri=true makes the path an SQLite URI.
_PYSQLITE_OPTIONS = (
    "uri",
    "timeout",
    "isolation_level",
    "detect_types",
    "check_same_thread",
    "cached_statements",
)


def _sqlite(parts: UrlParts) -> _Connection | None:
    if parts.username or parts.password or parts.host or parts.port:
        return None  # not an SQLite URL SQLAlchemy takes: the full start says so
    options = {k: v[-1] for k, v in parts.query.items() if k in _PYSQLITE_OPTIONS}
    if options.get("uri", "").lower() in ("1", "t", "true", "y", "yes", "on"):
        return None  # an SQLite URI with its own options: read through the full start
    path = parts.database or ""
    if not path or path == ":memory:":
        return None  # an in-memory database: only the full start's own engine holds it
    # sqlite:///relative, sqlite:////absolute; the loader has made a relative one absolute
    # (to the project), and SQLAlchemy takes one still relative to the working folder.
    file = Path(path)
    try:
        if not file.is_file():
            return None
    except PermissionError:  # a folder on the way the user may not enter: no retry helps
        raise ConfigError([("database.url", permission_denied(file))]) from None
    if not os.access(file, os.R_OK):
        raise ConfigError([("database.url", permission_denied(file))])
    try:
        timeout = float(options.get("timeout", 10))
    except ValueError:
        return None  # the full start says what is wrong with it
    try:
        # Read-only: a mistyped path or a database being replaced is never created or written.
        return sqlite3.connect(f"{file.resolve().as_uri()}?mode=ro", uri=True, timeout=timeout)
    except sqlite3.Error as exc:
        raise ReadError(f"{file}: {exc}") from exc


def _postgresql(parts: UrlParts) -> _Connection | None:
    try:
        import psycopg
    except ImportError:
        return None
    if any(len(values) > 1 for values in parts.query.values()):
        return None  # several hosts (host=a&host=b): SQLAlchemy's own reading, in the full start
    # What SQLAlchemy's psycopg dialect passes to psycopg.connect (create_connect_args): the
    # parts as keywords, never the URL as a libpq URI (it reads a password's "/" as the host's end).
    named = {
        "user": parts.username,
        "password": parts.password,
        "host": parts.host,
        "port": parts.port,
        "dbname": parts.database,
    }
    options: dict[str, Any] = {k: v for k, v in named.items() if v is not None}
    options.update({k: v[0] for k, v in parts.query.items()})
    try:
        connection = psycopg.connect(**options)
    except psycopg.Error as exc:
        raise ReadError(str(exc).strip()) from exc
    connection.read_only = True  # its one transaction, rolled back at close
    return connection
