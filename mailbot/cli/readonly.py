"""The read-only commands: `tickets list`, `tickets show` and `status`.

They read the few settings they need (`mailbot.locate`) and the database through its own driver
(`mailbot.shell.readonly`): no validation of the whole configuration, no SQLAlchemy, so that a
monitor's `status` every minute and scripts' loops over `tickets` start in a tenth of a second.
A database not set up yet, or at an older schema, gets the full start first (it creates or
migrates it), once. `mailbot check-config` validates the rest of the configuration.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from mailbot.cli.common import EXIT_TEMPFAIL, _office, counted, private_files
from mailbot.cli.warnings import authentication_of_profiles, calendar_warnings, security_warnings
from mailbot.core.public_record import zone_name
from mailbot.core.safe_output import json_text
from mailbot.core.safe_output import terminal_text as _t
from mailbot.core.workflow import State
from mailbot.locate import Location, locate
from mailbot.shell import readonly

if TYPE_CHECKING:
    from mailbot.app import App


FIELD_LINES = 20


def _reader(location: Location) -> readonly.Reader:
    """The database's reader; the full start first when the database is new or older, and the
    full start's own connection for a URL form the quick path does not read itself."""
    reader = readonly.open_reader(location.database_url)
    if reader is None:
        from sqlalchemy.exc import DBAPIError

        from mailbot.app import create_app  # the full start: validation, SQLAlchemy, Alembic
        from mailbot.config import load_config

        private_files()  # the full start may create the database
        try:
            app = create_app(load_config(location.source))
        except DBAPIError as exc:
            raise readonly.ReadError(str(exc.orig).strip()) from exc
        try:
            reader = readonly.open_reader(location.database_url)
        except BaseException:
            app.close()
            raise
        if reader is not None:
            app.close()
            return reader
        # An SQLite URI (uri=true), an in-memory database, several PostgreSQL hosts: read
        # through SQLAlchemy's own connection, as these commands did before (it closes the app).
        try:
            return _through_app(app)
        except DBAPIError as exc:
            raise readonly.ReadError(str(exc.orig).strip()) from exc
    return reader


def _through_app(app: App) -> readonly.Reader:
    dialect = app.engine.dialect.name

    class Connection:
        def __init__(self) -> None:
            self.raw = app.engine.raw_connection()

        def cursor(self) -> Any:
            return self.raw.cursor()

        def close(self) -> None:
            try:
                self.raw.close()
            finally:
                app.close()

    try:
        if dialect not in ("sqlite", "postgresql"):
            raise readonly.ReadError(f"the read-only commands read SQLite and PostgreSQL, not {dialect}")
        connection = Connection()
    except BaseException:
        app.close()
        raise
    return readonly.Reader(connection, sqlite=dialect == "sqlite")


def _location(args: argparse.Namespace) -> Location:
    return locate(Path(args.config) if args.config else None)


def _ticket_json(ticket: readonly.Ticket) -> dict[str, Any]:
    return {
        "number": ticket.number,
        "state": ticket.state.value,
        "profile": ticket.profile,
        "applicant_email": ticket.applicant_email,
        "applicant_name": ticket.applicant_name,
        "subject": ticket.subject,
        "created_at": ticket.created_at.isoformat(),
        "updated_at": ticket.updated_at.isoformat(),
        "assignee_email": ticket.assignee_email,
        "fields": dict(ticket.fields),
        "issues": list(ticket.issues),
        "step": ticket.step or None,
        "due_at": ticket.due_at.isoformat() if ticket.due_at else None,
        "overdue": bool(ticket.due_at and ticket.due_at <= datetime.now(UTC)),
        "urgent": ticket.urgent,
        "parent": ticket.parent_id,
    }


def cmd_tickets(args: argparse.Namespace) -> int:
    location = _location(args)
    tz = location.timezone
    try:
        with _reader(location) as reader:
            if args.tickets_command == "list":
                state = State(args.state) if args.state else None
                tickets = reader.tickets(state=state, limit=args.limit)
                if args.json:
                    print(json_text([_ticket_json(t) for t in tickets]))
                    return 0
                if not tickets:
                    print("no tickets")
                    return 0
                _print_list(tickets, tz)
                return 0
            ticket = reader.ticket(args.number)
            if ticket is None:
                print(f"no ticket {args.number}", file=sys.stderr)
                return 1
            return _show_ticket(reader, ticket, as_json=args.json, tz=tz)
    except readonly.ReadError as exc:
        print(f"database unavailable: {exc}", file=sys.stderr)
        return EXIT_TEMPFAIL


def _print_list(tickets: list[readonly.Ticket], tz: ZoneInfo) -> None:
    width = shutil.get_terminal_size((100, 20)).columns
    # The subject is what people look for: it comes before the applicant and
    # gets what the terminal leaves (about 30 characters at 80 columns).
    subject_width = max(24, width - 50 - 25)
    header = (
        f"{'NUMBER':<17} {'STATE':<13} {'CREATED (' + zone_name(tz) + ')':<16} "
        f"{'SUBJECT':<{subject_width}} APPLICANT"
    )
    print(header[:width])
    for t in tickets:
        line = (
            f"{t.number:<17} {t.state.value:<13} {t.created_at.astimezone(tz):%Y-%m-%d %H:%M} "
            f"{_t(t.subject)[:subject_width]:<{subject_width}} {_t(t.applicant_email)}"
        )
        print(line[:width])


def _show_ticket(reader: readonly.Reader, ticket: readonly.Ticket, *, as_json: bool, tz: ZoneInfo) -> int:
    inbound, outbound = reader.messages(ticket.id)
    history: list[dict[str, Any]] = [
        {
            "at": e.at.astimezone(tz).isoformat(),
            "actor": e.actor,
            "kind": e.kind,
            "state": e.state,
            "detail": e.detail,
            "inbound_id": e.inbound_id,
            "outbound_id": e.outbound_id,
        }
        for e in ticket.events
    ]
    messages: list[dict[str, Any]] = [
        {
            "direction": "in",
            "id": m.id,
            "message_id": m.message_id,
            "from": m.from_addr,
            "subject": m.subject,
            "at": m.received_at.astimezone(tz).isoformat(),
            "status": m.status,
            "size": m.size,
        }
        for m in inbound
    ] + [
        {
            "direction": "out",
            "id": m.id,
            "message_id": m.message_id,
            "to": m.rcpt_to,
            "subject": m.subject,
            "kind": m.kind,
            "at": m.created_at.astimezone(tz).isoformat(),
            "status": m.status,
            "attempts": m.attempts,
            "last_error": m.last_error,
            "sent_at": m.sent_at.isoformat() if m.sent_at else None,
        }
        for m in outbound
    ]
    if as_json:
        print(json_text({**_ticket_json(ticket), "history": history, "messages": messages}))
        return 0
    # Stored text came in by mail: printed without its control characters (safe_output).
    print(f"Ticket {ticket.number}  [{ticket.state.value}]  profile {ticket.profile}")
    print(f"  applicant: {_t(ticket.applicant_name)} <{_t(ticket.applicant_email)}>")
    print(f"  subject:   {_t(ticket.subject)}")
    print(f"  created:   {_office(ticket.created_at, tz)}")
    if ticket.due_at:
        late = " (OVERDUE)" if ticket.due_at <= datetime.now(UTC) else ""
        print(f"  step:      {ticket.step}, due {_office(ticket.due_at, tz)}{late}")
    if ticket.assignee_email:
        print(f"  assignee:  {_t(ticket.assignee_email)}{'  [URGENT]' if ticket.urgent else ''}")
    print("  fields:")
    for name, value in ticket.fields.items():
        # Every line of a value (the question runs over several), each cut at 90 characters with
        # "…" where cut; at most FIELD_LINES lines, the rest counted (--json has everything).
        lines = [_t(line) for line in str(value or "").splitlines()] or [""]
        for i, line in enumerate(lines[:FIELD_LINES]):
            shown = line if len(line) <= 90 else line[:89] + "…"
            print(f"    {_t(name) if i == 0 else '':<10} {shown}")
        if len(lines) > FIELD_LINES:
            print(f"    {'':<10} … {len(lines) - FIELD_LINES} more lines (--json shows them)")
    if ticket.issues:
        print("  open issues: " + _t(", ".join(f"{i['field']} ({i['code']})" for i in ticket.issues)))
    print("  history:")
    for h in history:
        detail = _t(h["detail"].splitlines()[0]) if h["detail"] else ""
        if len(detail) > 80 or "\n" in h["detail"]:
            detail = detail[:79] + "…"
        print(
            f"    {h['at'][:16].replace('T', ' ')}  {h['kind']:<20} {h['state']:<15} "
            f"{_t(h['actor'])[:30]:<30} {detail}"
        )
    print("  messages:")
    for m in messages:
        who = _t(m.get("from") or ", ".join(m.get("to") or []))
        extra = f" ({_t(m['last_error'])[:60]})" if m.get("last_error") else ""
        head = f"    {m['direction']:<3} #{m['id']:<5} {m['status']:<10} {who[:32]:<32}"
        print(f"{head} {_t(m['subject'])[:50]}{extra}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """Exit 0 when healthy; 1 when intake or sending has been failing longer than the threshold;
    75 when the database cannot be read."""
    from mailbot.shell.holiday_cache import holiday_cache

    location = _location(args)
    now = datetime.now(UTC)
    try:
        with _reader(location) as reader:
            st = reader.status(now, timedelta(minutes=args.failing_after))
            in_use = reader.open_profiles()
    except readonly.ReadError as exc:
        print(f"database unavailable: {exc}", file=sys.stderr)
        return EXIT_TEMPFAIL
    warnings = security_warnings(
        location.profile, authentication_of_profiles(location.profiles_dir), in_use
    ) + calendar_warnings(location.timezone, now, holiday_cache(location.data_dir).has_cuti_bersama)
    if args.json:
        print(json_text({**st.as_json(), "warnings": warnings}))
    else:
        print("mailbot: " + ("OK" if st.healthy else "FAILING: " + ", ".join(st.failing)))
        tz = location.timezone
        for name, c in st.components.items():
            # Office time as every other command shows it (issue #21); --json keeps ISO 8601.
            last_ok = _office(datetime.fromisoformat(c["last_ok_at"]), tz) if c["last_ok_at"] else "never"
            failing = (
                f", failing since {_office(datetime.fromisoformat(c['failing_since']), tz)}: "
                f"{_t(c['last_error'])}"
                if c["failing_since"]
                else ""
            )
            print(f"  {name:<7} last ok {last_ok}{failing}")
        print(
            f"  outbox  {st.outbox_pending} pending, {st.outbox_sending} sending, "
            f"{counted(st.dead_letters, 'dead letter')}"
        )
        print(f"  inbox   {st.quarantined} quarantined")
        print(f"  tickets {st.open_tickets} open, {st.overdue_tickets} overdue")
        for warning in warnings:
            print(f"  WARNING: {warning}")
    return 0 if st.healthy else 1
