"""The `mailbot` command: run, check-config, tickets, replay."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import shutil
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select, text
from sqlalchemy.exc import OperationalError

from mailbot.app import App, create_app
from mailbot.config import Config, load_config
from mailbot.core.masking import masked_stderr_handler
from mailbot.core.public_record import zone_name
from mailbot.core.safe_output import json_text
from mailbot.core.safe_output import terminal_text as _t
from mailbot.core.workflow import (
    OPEN_STATES,
    InboundStatus,
    OutboundStatus,
    State,
    next_inbound,
    next_outbound,
)
from mailbot.pipeline.intake import Source
from mailbot.records.archive import Selection, export_mbox
from mailbot.records.documents import (
    DocumentError,
    html_to_pdf,
    period_csv,
    period_report,
    render_document,
    render_period_html,
)
from mailbot.records.personal_data import export_person, purge, remove_copies
from mailbot.records.reports import format_ikm_table, ikm_report
from mailbot.settings import ConfigError, Profile
from mailbot.shell import aio, models, store
from mailbot.shell.health import status
from mailbot.shell.mailbox import MailboxError, open_source
from mailbot.shell.outbox import SendError, make_sender

log = logging.getLogger("mailbot")
UTC_ZONE = ZoneInfo("UTC")
EXIT_TEMPFAIL = 75  # sysexits.h: try again later
SAMPLES = Path(__file__).resolve().parents[1] / "samples"


def _setup_logging(verbose: bool, log_format: str = "text") -> None:
    root = logging.getLogger()
    root.handlers[:] = [masked_stderr_handler(log_format)]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for noisy in ("apscheduler", "imapclient", "mailparser", "alembic", "aiosmtplib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _load(args: argparse.Namespace) -> Config:
    return load_config(Path(args.config) if args.config else None)


def _print_problems(problems: list[tuple[str, str]]) -> None:
    for key, message in problems:
        print(f"  {key}: {message}", file=sys.stderr)


# --- run ---------------------------------------------------------------------------


def _seed_samples(config: Config) -> int:
    """First run of the embedded default: drop sample requests into the local Maildir."""
    if not config.service.seed_samples or config.mailbox.scheme != "maildir":
        return 0
    marker = config.data_dir / ".samples-seeded"
    if marker.exists():
        return 0
    import mailbox as stdlib_mailbox

    maildir = stdlib_mailbox.Maildir(config.mailbox.path, factory=None, create=True)
    count = 0
    for path in sorted(SAMPLES.glob("*.eml")):
        maildir.add(path.read_bytes())
        count += 1
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(datetime.now(UTC).isoformat())
    return count


def cmd_run(args: argparse.Namespace) -> int:
    config = _load(args)
    if args.sender_only:
        app = create_app(config)
        try:
            aio.run(app.run_sender(args.wake_fd))
        finally:
            app.close()
        return 0
    seeded = _seed_samples(config)
    app = create_app(config)
    try:
        if seeded:
            print(f"Dropped {seeded} sample requests (one incomplete) into {config.mailbox.path}/new")
        if args.once:
            return _run_once(app)
        if seeded:
            _where_to_look(app)
        print(
            f"mailbot running: mailbox {config.mailbox.redacted()}, outgoing {config.smtp.redacted()}, "
            f"database {_redact_db(config.database_url)}. Ctrl-C stops."
        )
        aio.run(_run_daemon(app, show_first=seeded > 0))
        return 0
    finally:
        app.close()


async def _run_daemon(app: App, *, show_first: bool) -> None:
    if show_first:
        # Process the samples before going quiet, so a newcomer sees tickets right away.
        stats = await asyncio.to_thread(app.run_intake_once)
        await app.send_pending()
        print(f"Processed {stats.fetched} messages: tickets {', '.join(stats.tickets) or '-'}")
        _where_to_look(app)
    await app.run()


def _where_to_look(app: App) -> None:
    config = app.config
    print("Where to look:")
    print("  tickets:          mailbot tickets list   (and: mailbot tickets show NUMBER)")
    if config.smtp.scheme == "file":
        print(f"  replies sent:     {config.smtp.path}/*.eml")
    if config.mailbox.scheme == "maildir":
        print(f"  new mail goes to: {config.mailbox.path}/new/ (processed mail moves to .Processed)")


def _run_once(app: App) -> int:
    try:
        stats = app.run_intake_once()
    except MailboxError as exc:
        print(f"mailbox unavailable: {exc}", file=sys.stderr)
        return EXIT_TEMPFAIL
    except OperationalError as exc:
        print(f"database unavailable: {exc.orig}; nothing was marked in the mailbox", file=sys.stderr)
        return EXIT_TEMPFAIL
    if stats.standby:
        print("another mailbot process reads the mailbox; only queued mail is sent", file=sys.stderr)
    notices = app.sweep_deadlines()
    result = aio.run(app.send_pending())
    print(
        f"intake: {stats.fetched} fetched, {stats.processed} processed, {stats.duplicates} duplicates, "
        f"{stats.machine} machine mail, {stats.quarantined} quarantined, {stats.already_done} already done; "
        f"deadline notices: {notices.total}; "
        f"outbox: {result.sent} sent, {result.retried} deferred, {result.dead} dead"
    )
    if stats.tickets:
        print(f"tickets: {', '.join(stats.tickets)}")
    _where_to_look(app)
    if result.retried:
        print("some mail could not be sent now and stays queued; run again later", file=sys.stderr)
        return EXIT_TEMPFAIL
    return 0


def _redact_db(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


# --- check-config --------------------------------------------------------------------


def cmd_check_config(args: argparse.Namespace) -> int:
    try:
        config = load_config(Path(args.config) if args.config else None, create_secret=False)
    except ConfigError as exc:
        print(f"configuration has {len(exc.problems)} problem(s):", file=sys.stderr)
        _print_problems(exc.problems)
        return 1
    problems: list[tuple[str, str]] = []
    if not config.secret:
        problems.append(
            (
                "security.secret_env",
                f"no secret in ${config.settings.security.secret_env} "
                f"nor in {config.settings.security.secret_file} (it is created on first run)",
            )
        )
    if not args.offline:
        problems += _check_connections(config)
    if problems:
        print(f"configuration has {len(problems)} problem(s):", file=sys.stderr)
        _print_problems(problems)
        return 1
    print(f"configuration OK: {config.source}")
    print(f"  profiles: {', '.join(sorted(config.profiles))}; active: {config.profile.id}")
    print(
        f"  staff: {len(config.settings.staff)}; mailbox: {config.mailbox.redacted()}; "
        f"smtp: {config.smtp.redacted()}; database: {_redact_db(config.database_url)}"
    )
    for warning in _security_warnings(config) + _calendar_warnings(config, datetime.now(UTC)):
        print(f"  WARNING: {warning}")
    return 0


def _calendar_warnings(config: Config, now: datetime) -> list[str]:
    """The holiday data has no cuti bersama for this year or the next (the SKB is not issued yet,
    or the installed `holidays` predates it): deadlines would run through those days."""
    from mailbot.core.working_time import has_cuti_bersama

    year = now.astimezone(ZoneInfo(config.service.timezone)).year
    return [
        f"no cuti bersama known for {y}: deadlines count those days as working days until the SKB's "
        f"dates are added as [calendar] closed_days = [...] or a newer `holidays` is installed"
        for y in (year, year + 1)
        if not has_cuti_bersama(y)
    ]


def _security_warnings(config: Config, profile_ids: Sequence[str] = ()) -> list[str]:
    """Profiles in use (the service's, and those of open tickets) whose staff commands count on
    the From address alone: anyone who has seen a notification's Message-ID can forge them."""
    ids = sorted({config.profile.id, *(p for p in profile_ids if p in config.profiles)})
    return [
        f"profile {pid}: staff commands are accepted on the From address alone "
        "(set require_authentication and authserv in the profile)"
        for pid in ids
        if not config.profiles[pid].require_authentication
    ]


def _check_connections(config: Config) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    try:
        from mailbot.shell.db import make_engine

        engine = make_engine(config.database_url)
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as exc:  # any driver error is a problem to report, not a crash
        problems.append(("database.url", f"cannot connect: {type(exc).__name__}: {exc}"))
    try:
        source = open_source(config)
        source.connect()
        source.close()
    except MailboxError as exc:
        problems.append(("mailbox.url", f"cannot connect: {exc}"))
    sender = make_sender(config.smtp, config.settings.smtp)

    async def _try_smtp() -> None:
        try:
            await sender.open()
        finally:
            await sender.close()

    try:
        aio.run(_try_smtp())
    except SendError as exc:
        problems.append(("smtp.url", f"cannot connect: {exc}"))
    except OSError as exc:
        problems.append(("smtp.url", f"cannot use: {exc}"))
    return problems


# --- tickets -----------------------------------------------------------------------------


def _ticket_json(ticket: models.Ticket) -> dict[str, Any]:
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
    config = _load(args)
    app = create_app(config)
    try:
        with app.sessions() as session:
            if args.tickets_command == "list":
                state = State(args.state) if args.state else None
                tickets = store.list_tickets(session, state=state, limit=args.limit)
                if args.json:
                    print(json_text([_ticket_json(t) for t in tickets]))
                    return 0
                if not tickets:
                    print("no tickets")
                    return 0
                width = shutil.get_terminal_size((100, 20)).columns
                tz = ZoneInfo(config.service.timezone)
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
                return 0
            ticket = store.ticket_by_number(session, args.number)
            if ticket is None:
                print(f"no ticket {args.number}", file=sys.stderr)
                return 1
            return _show_ticket(session, ticket, as_json=args.json, tz=ZoneInfo(config.service.timezone))
    finally:
        app.close()


def _office(when: datetime, tz: ZoneInfo) -> str:
    """A time as staff read it: office time with the zone's name (WIB, WITA, WIT)."""
    return f"{when.astimezone(tz):%Y-%m-%d %H:%M} {zone_name(tz)}"


def _show_ticket(session: Any, ticket: models.Ticket, *, as_json: bool, tz: ZoneInfo = UTC_ZONE) -> int:
    inbound, outbound = store.messages_of_ticket(session, ticket.id)
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
        first_line = str(value).splitlines()[0] if value else ""
        print(f"    {_t(name):<10} {_t(first_line)[:90]}")
    if ticket.issues:
        print("  open issues: " + _t(", ".join(f"{i['field']} ({i['code']})" for i in ticket.issues)))
    print("  history:")
    for h in history:
        detail = _t(h["detail"].splitlines()[0])[:80] if h["detail"] else ""
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


# --- replay ------------------------------------------------------------------------------


def cmd_replay(args: argparse.Namespace) -> int:
    """Process a quarantined message again (by inbound id) or a mail file."""
    config = _load(args)
    app = create_app(config)
    try:
        target: str = args.target
        path = Path(target)
        if path.exists():
            raw = path.read_bytes()
            source = Source("replay", 0, f"file:{path.resolve()}:{len(raw)}")
        elif target.isdigit():
            with app.sessions() as session:
                row = session.get(models.InboundMessage, int(target))
                if row is None:
                    print(f"no inbound message #{target}", file=sys.stderr)
                    return 1
                raw = row.raw
                if row.status not in ("quarantined", "held") and not args.force:
                    print(
                        f"inbound #{target} is {row.status}, not quarantined; use --force to replay it",
                        file=sys.stderr,
                    )
                    return 1
                attempts = session.execute(
                    select(models.InboundMessage.id).where(models.InboundMessage.mailbox == "replay")
                ).all()
            source = Source("replay", 0, f"inbound:{target}:{len(attempts)}")
        else:
            print(f"{target}: no such file or inbound message id", file=sys.stderr)
            return 1
        outcome = app.process_raw(source, raw, release=args.release)
        if args.release and target.isdigit() and outcome.status != "held":
            with app.sessions.begin() as session:
                held = session.get(models.InboundMessage, int(target))
                if held is not None and held.status == "held":
                    held.status = next_inbound(held.status, InboundStatus.RELEASED)
                    held.reason = f"released by staff as inbound #{outcome.inbound_id}"
        result = aio.run(app.send_pending())
        print(
            f"inbound #{outcome.inbound_id}: {outcome.status} ({_t(outcome.reason)})"
            + (f", ticket {outcome.ticket_number}" if outcome.ticket_number else "")
            + f"; outbox: {result.sent} sent"
        )
        return 0 if outcome.status != "quarantined" else 2
    finally:
        app.close()


# --- export -------------------------------------------------------------------------------


def cmd_export(args: argparse.Namespace) -> int:
    config = _load(args)
    out = Path(args.out)
    if out.parent and not out.parent.exists():
        print(f"folder {out.parent} does not exist", file=sys.stderr)
        return 2
    selection = Selection(
        tickets=tuple(args.ticket or ()),
        start=args.start,
        end=args.end,
        states=tuple(State(s) for s in args.state or ()),
    )
    app = create_app(config)
    try:
        with app.sessions() as session:
            result = export_mbox(session, out, selection, ZoneInfo(config.service.timezone))
        print(f"{result.messages} messages of {result.tickets} tickets written to {result.path}")
        print(f"index: {result.index_csv} and {result.index_html}")
        return 0
    finally:
        app.close()


# --- documents ---------------------------------------------------------------------------


def _write_output(data: bytes | str, out: str | None) -> None:
    if out:
        Path(out).write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
        print(f"written to {out}", file=sys.stderr)
    elif isinstance(data, bytes):
        sys.stdout.buffer.write(data)
    else:
        sys.stdout.write(data)


def cmd_document(args: argparse.Namespace) -> int:
    config = _load(args)
    if args.format == "pdf" and not args.out and sys.stdout.isatty():
        print("a PDF goes to a file: add -o FILE.pdf", file=sys.stderr)
        return 2
    app = create_app(config)
    try:
        with app.sessions.begin() as session:
            ticket = store.ticket_by_number(session, args.number)
            if ticket is None:
                print(f"no ticket {args.number}", file=sys.stderr)
                return 1
            try:
                html = render_document(session, config, ticket, args.kind, app.clock())
            except DocumentError as exc:
                print(str(exc), file=sys.stderr)
                return 1
        _write_output(html_to_pdf(html) if args.format == "pdf" else html, args.out)
        return 0
    finally:
        app.close()


# --- privacy ---------------------------------------------------------------------------------


def cmd_privacy(args: argparse.Namespace) -> int:
    config = _load(args)
    app = create_app(config)
    try:
        if args.privacy_command == "export":
            out = Path(args.out or f"data-pribadi-{re.sub(r'[^A-Za-z0-9]+', '-', args.who)}.zip")
            with app.sessions() as session:
                try:
                    tickets, messages = export_person(session, args.who, out)
                except ValueError as exc:
                    print(str(exc), file=sys.stderr)
                    return 2
            print(f"{tickets} tickets and {messages} messages about {_t(args.who)} written to {out}")
            return 0
        days = args.older_than if args.older_than is not None else config.settings.privacy.retention_days
        with app.sessions.begin() as session:
            result = purge(session, older_than=timedelta(days=days), now=app.clock())
        # Committed: now the copies outside the database (mailbox folders, outbox files).
        copies = remove_copies(config, result)
        log.info(
            "privacy purge: %s tickets, %s messages older than %s days; %s mailbox copies and %s "
            "outbox files removed, %s left for the next purge",
            result.tickets,
            result.messages,
            days,
            copies.mailbox,
            copies.outbox,
            copies.pending,
        )
        print(
            f"purged personal data of {result.tickets} closed tickets and {result.messages} messages "
            f"older than {days} days; removed {copies.mailbox} copies from the mailbox and "
            f"{copies.outbox} files from the outbox folder"
        )
        if copies.unreachable:
            print(
                f"{copies.unreachable} messages came from another mailbox than {config.mailbox.redacted()}: "
                "remove their copies there by hand",
                file=sys.stderr,
            )
        for error in copies.errors:
            print(f"not removed yet ({error}); the next purge tries again", file=sys.stderr)
        return 1 if copies.errors else 0
    finally:
        app.close()


# --- health and the outbox -------------------------------------------------------------------


def cmd_status(args: argparse.Namespace) -> int:
    """Exit 0 when healthy; 1 when intake or sending has been failing longer than the threshold."""
    config = _load(args)
    app = create_app(config)
    try:
        with app.sessions() as session:
            st = status(session, app.clock(), timedelta(minutes=args.failing_after))
            in_use = session.execute(
                select(models.Ticket.profile).where(models.Ticket.state.in_(OPEN_STATES)).distinct()
            ).scalars()
            warnings = _security_warnings(config, list(in_use)) + _calendar_warnings(config, app.clock())
        if args.json:
            json.dump({**st.as_json(), "warnings": warnings}, sys.stdout, indent=2)
            print()
        else:
            print("mailbot: " + ("OK" if st.healthy else "FAILING: " + ", ".join(st.failing)))
            for name, c in st.components.items():
                failing = (
                    f", failing since {c['failing_since']}: {_t(c['last_error'])}"
                    if c["failing_since"]
                    else ""
                )
                print(f"  {name:<7} last ok {c['last_ok_at'] or 'never'}{failing}")
            print(
                f"  outbox  {st.outbox_pending} pending, {st.outbox_sending} sending, "
                f"{st.dead_letters} dead letters"
            )
            print(f"  inbox   {st.quarantined} quarantined")
            print(f"  tickets {st.open_tickets} open, {st.overdue_tickets} overdue")
            for warning in warnings:
                print(f"  WARNING: {warning}")
        return 0 if st.healthy else 1
    finally:
        app.close()


def reply_as(original: bytes, sender: str, text: str, *, to: str, name: str = "") -> bytes:
    """A reply to one of our mails as a mail client writes it: threading headers, the new text
    on top, the quoted mail below (the playground's `mailbot reply`)."""
    import email
    import email.policy
    import secrets
    from email.message import EmailMessage
    from email.utils import format_datetime, formataddr

    msg = email.message_from_bytes(original, policy=email.policy.default)
    body = msg.get_body(("plain",))
    quoted = "\n".join("> " + line for line in (str(body.get_content()) if body else "").splitlines())
    reply = EmailMessage()
    reply["From"] = formataddr((name, sender)) if name else sender
    reply["To"] = to
    reply["Subject"] = "Re: " + str(msg["Subject"] or "")
    reply["Date"] = format_datetime(datetime.now(UTC))
    reply["Message-ID"] = f"<play.{secrets.token_hex(8)}@{sender.rsplit('@', 1)[-1]}>"
    reply["In-Reply-To"] = str(msg["Message-ID"])
    reply["References"] = f"{msg.get('References', '')} {msg['Message-ID']}".strip()
    reply.set_content(f"{text}\n\nPada {msg['Date']}, {msg['From']} menulis:\n{quoted}\n")
    return reply.as_bytes()


def cmd_reply(args: argparse.Namespace) -> int:
    """The playground: answer a mail in the outbox as someone, into the Maildir mailbox."""
    import mailbox as std_mailbox

    config = _load(args)
    if config.mailbox.scheme != "maildir":
        print("mailbot reply writes into a Maildir mailbox (the embedded default) only", file=sys.stderr)
        return 2
    app = create_app(config)
    try:
        with app.sessions() as session:
            row = session.get(models.OutboundMessage, args.outbox_id)
            if row is None:
                print(f"no outgoing mail #{args.outbox_id} (see: mailbot outbox list)", file=sys.stderr)
                return 1
            raw = row.raw
        text = args.text.replace("\\n", "\n")
        mail = reply_as(raw, args.sender.lower(), text, to=config.service.address, name=args.name or "")
        key = std_mailbox.Maildir(config.mailbox.path, create=True).add(mail)
        print(f"written to {config.mailbox.path}/new/{key}; run: mailbot run --once")
        return 0
    finally:
        app.close()


def cmd_outbox(args: argparse.Namespace) -> int:
    config = _load(args)
    app = create_app(config)
    try:
        if args.outbox_command == "retry":
            with app.sessions.begin() as session:
                stmt = select(models.OutboundMessage).where(models.OutboundMessage.status == "dead")
                if not args.all:
                    stmt = stmt.where(models.OutboundMessage.id.in_(args.ids))
                rows = list(session.execute(stmt).scalars())
                for row in rows:
                    row.status = next_outbound(row.status, OutboundStatus.PENDING)
                    row.attempts, row.next_attempt_at = 0, app.clock()
                    if row.ticket_id is not None:
                        ticket = session.get(models.Ticket, row.ticket_id)
                        if ticket is not None:
                            store.record_event(
                                session,
                                ticket,
                                "mail_retry",
                                actor="admin",
                                now=app.clock(),
                                detail=f"{row.kind} → {row.recipient}: {row.last_error[:200]}",
                            )
            print(f"{len(rows)} dead letters queued again")
            result = aio.run(app.send_pending())
            print(f"outbox: {result.sent} sent, {result.retried} deferred, {result.dead} dead")
            return 0
        statuses = ["dead"] if args.dead else ["pending", "sending", "dead"]
        with app.sessions() as session:
            rows = list(
                session.execute(
                    select(models.OutboundMessage)
                    .where(models.OutboundMessage.status.in_(statuses))
                    .order_by(models.OutboundMessage.id)
                ).scalars()
            )
            numbers = (
                {t.id: t.number for t in session.execute(select(models.Ticket)).scalars()} if rows else {}
            )
        if args.json:
            json.dump(
                [
                    {
                        "id": r.id,
                        "ticket": numbers.get(r.ticket_id or 0),
                        "kind": r.kind,
                        "to": r.recipient,
                        "status": r.status,
                        "attempts": r.attempts,
                        "next_attempt_at": r.next_attempt_at.isoformat(),
                        "last_error": r.last_error,
                    }
                    for r in rows
                ],
                sys.stdout,
                indent=2,
            )
            print()
            return 0
        if not rows:
            print("outbox empty")
        for r in rows:
            print(
                f"#{r.id:<6} {r.status:<8} {numbers.get(r.ticket_id or 0, '-'):<20} {r.kind:<16} "
                f"{_t(r.recipient):<32} "
                f"attempts {r.attempts}  {_t(r.last_error)[:60]}"
            )
        return 0
    finally:
        app.close()


# --- reports ------------------------------------------------------------------------------


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def _report_skm(app: App, config: Config, args: argparse.Namespace) -> int:
    """The public SKM result (no personal data): HTML page, one-page PDF or PNG poster, JSON."""
    from mailbot.records.rendering import pdf_to_png
    from mailbot.records.skm_result import render_skm_html, skm_result

    with app.sessions() as session:
        result = skm_result(session, config, args.start, args.end)
    if args.format == "json":
        _write_output(json_text(result.as_json()) + "\n", args.out)
        return 0
    page = render_skm_html(config, result, app.clock())
    if args.format == "html":
        _write_output(page, args.out)
        return 0
    if not args.out and sys.stdout.isatty():
        print("a PDF or PNG goes to a file: add -o FILE", file=sys.stderr)
        return 2
    pdf = html_to_pdf(page)
    png = pdf_to_png(pdf, dpi=150) if args.format == "png" else None
    if args.format == "png" and png is None:
        print("a PNG needs pdftoppm (Debian package poppler-utils)", file=sys.stderr)
        return 1
    _write_output(png or pdf, args.out)
    return 0


def profile_rows(profile: Profile) -> list[dict[str, Any]]:
    """Each step of a profile as a row: what it is, who acts, its time, its clock, and the ticket
    states (and, with `role_steps`, the assignee's role) in which its clock runs."""
    runs: dict[str, list[str]] = {}
    for state, step in profile.state_steps.items():
        runs.setdefault(step, []).append(state)
    for role, step in profile.role_steps.items():
        runs.setdefault(step, []).append(f"assigned ({role})")
    return [
        {
            "step": s.id,
            "title": s.title,
            "actor": s.actor,
            "time": s.duration,
            "clock": "working" if s.deadline.working else "wall",
            "runs_in": runs.get(s.id, []),
        }
        for s in profile.steps
    ]


def cmd_profile(args: argparse.Namespace) -> int:
    config = _load(args)
    profile = config.profiles.get(args.id)
    if profile is None:
        print(f"no profile {args.id!r}; known: {', '.join(sorted(config.profiles))}", file=sys.stderr)
        return 1
    rows = profile_rows(profile)
    if args.json:
        print(json_text({"id": profile.id, "title": profile.title, "steps": rows}))
        return 0
    print(
        f"{profile.id}: {_t(profile.title)}" + (f" ({_t(profile.sop_number)})" if profile.sop_number else "")
    )
    print(f"  {'STEP':<14} {'ACTOR':<12} {'TIME':<16} {'CLOCK':<8} RUNS IN")
    for r in rows:
        print(
            f"  {_t(r['step']):<14} {r['actor']:<12} {_t(r['time']):<16} {r['clock']:<8} "
            f"{', '.join(r['runs_in']) or '-'}"
        )
        print(f"    {_t(r['title'])}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    config = _load(args)
    if args.start > args.end:
        print("--from is after --to", file=sys.stderr)
        return 2
    app = create_app(config)
    try:
        tz = ZoneInfo(config.service.timezone)
        if args.report_command == "skm":
            return _report_skm(app, config, args)
        if args.report_command == "period":
            with app.sessions() as session:
                period = period_report(session, config, args.start, args.end)
            if args.format == "json":
                _write_output(json_text(period.as_json()) + "\n", args.out)
            elif args.format == "csv":
                _write_output(period_csv(period), args.out)
            else:
                page = render_period_html(config, period, app.clock())
                if args.format == "pdf" and not args.out and sys.stdout.isatty():
                    print("a PDF goes to a file: add -o FILE.pdf", file=sys.stderr)
                    return 2
                _write_output(html_to_pdf(page) if args.format == "pdf" else page, args.out)
            return 0
        with app.sessions() as session:
            rows = ikm_report(session, args.start, args.end, tz, args.by)
        if args.json:
            payload = {
                "from": args.start.isoformat(),
                "to": args.end.isoformat(),
                "by": args.by,
                "groups": [r.as_json() for r in rows],
            }
            print(json_text(payload))
        else:
            print(_t(format_ikm_table(rows, args.start, args.end, args.by), one_line=False))
        return 0
    finally:
        app.close()


# --- entry point ---------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mailbot", description="Email-driven consultation helpdesk.")
    parser.add_argument(
        "--config", help="configuration file (default: $MAILBOT_CONFIG or config/mailbot.toml)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument(
        "--log-format",
        choices=["text", "json"],
        default=os.environ.get("MAILBOT_LOG_FORMAT", "text"),
        help="json: one JSON object per line for log shippers (masked like text); also $MAILBOT_LOG_FORMAT",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the daemon (or --once: process waiting mail, send, exit)")
    run.add_argument(
        "--once",
        action="store_true",
        help="process all mail now waiting, send what is queued, exit",
    )
    run.add_argument(
        "--sender-only",
        action="store_true",
        help="only drain the outbox (the daemon starts one such process itself; more can share the work)",
    )
    run.add_argument("--wake-fd", type=int, help=argparse.SUPPRESS)
    run.set_defaults(func=cmd_run)

    check = sub.add_parser("check-config", help="report every problem in the configuration")
    check.add_argument("--offline", action="store_true", help="do not try to reach the servers")
    check.set_defaults(func=cmd_check_config)

    tickets = sub.add_parser("tickets", help="list or show tickets")
    tsub = tickets.add_subparsers(dest="tickets_command", required=True)
    tlist = tsub.add_parser("list", help="list tickets, newest first")
    tlist.add_argument("--json", action="store_true")
    tlist.add_argument("--state", choices=[s.value for s in State])
    tlist.add_argument("--limit", type=int, default=1000)
    tshow = tsub.add_parser("show", help="one ticket with its history and messages")
    tshow.add_argument("number")
    tshow.add_argument("--json", action="store_true")
    tickets.set_defaults(func=cmd_tickets)

    export = sub.add_parser("export", help="export the archive")
    esub = export.add_subparsers(dest="export_command", required=True)
    embox = esub.add_parser(
        "mbox", help="every message of the selected tickets as one mboxrd file, with an index"
    )
    embox.add_argument("out", metavar="OUT.mbox")
    embox.add_argument("--ticket", action="append", help="a ticket number (repeatable)")
    embox.add_argument("--from", dest="start", type=_date, help="tickets created on or after, YYYY-MM-DD")
    embox.add_argument("--to", dest="end", type=_date, help="tickets created on or before, YYYY-MM-DD")
    embox.add_argument("--state", action="append", choices=[s.value for s in State], help="repeatable")
    export.set_defaults(func=cmd_export)

    rep = sub.add_parser(
        "reply", help="playground: answer a mail of the outbox as someone (head, consultant, applicant)"
    )
    rep.add_argument(
        "outbox_id", type=int, help="the outgoing mail's id (mailbot tickets show NUMBER lists them)"
    )
    rep.add_argument("--as", dest="sender", required=True, help="the sender's address")
    rep.add_argument("--name", help="the sender's display name")
    rep.add_argument("--text", required=True, help='the new text on top; "\\n" starts a new line')
    rep.set_defaults(func=cmd_reply)

    prof = sub.add_parser("profile", help="a service profile (SOP) as a table of its steps")
    psub = prof.add_subparsers(dest="profile_command", required=True)
    pshow = psub.add_parser("show", help="each step: actor, time, clock (working or wall), states it runs in")
    pshow.add_argument("id", help="the profile's id, e.g. sop-002")
    pshow.add_argument("--json", action="store_true")
    prof.set_defaults(func=cmd_profile)

    report = sub.add_parser("report", help="reports: ikm, period, skm")
    rsub = report.add_subparsers(dest="report_command", required=True)
    rikm = rsub.add_parser("ikm", help="the satisfaction index (IKM) per period and group")
    rikm.add_argument("--from", dest="start", type=_date, required=True, help="first day, YYYY-MM-DD")
    rikm.add_argument("--to", dest="end", type=_date, required=True, help="last day, YYYY-MM-DD")
    rikm.add_argument("--by", choices=["all", "unit", "consultant", "profile"], default="all")
    rikm.add_argument("--json", action="store_true")
    rper = rsub.add_parser("period", help="the Laporan Hasil Layanan Konsultasi of a period")
    rper.add_argument("--from", dest="start", type=_date, required=True, help="first day, YYYY-MM-DD")
    rper.add_argument("--to", dest="end", type=_date, required=True, help="last day, YYYY-MM-DD")
    rper.add_argument("--format", choices=["html", "pdf", "csv", "json"], default="html")
    rper.add_argument("-o", "--out", help="write to this file (default: standard output)")
    rskm = rsub.add_parser("skm", help="the published SKM result of a period (Permenpan RB 14/2017)")
    rskm.add_argument("--from", dest="start", type=_date, required=True, help="first day, YYYY-MM-DD")
    rskm.add_argument("--to", dest="end", type=_date, required=True, help="last day, YYYY-MM-DD")
    rskm.add_argument("--format", choices=["html", "pdf", "png", "json"], default="html")
    rskm.add_argument("-o", "--out", help="write to this file (default: standard output)")
    report.set_defaults(func=cmd_report)

    st = sub.add_parser(
        "status", help="health: last fetch and send, queues, quarantine, dead letters, overdue"
    )
    st.add_argument("--json", action="store_true")
    st.add_argument(
        "--failing-after",
        type=float,
        default=15.0,
        metavar="MINUTES",
        help="exit 1 when intake or sending has been failing this long (default 15)",
    )
    st.set_defaults(func=cmd_status)

    outbox = sub.add_parser("outbox", help="list queued mail and dead letters; retry dead letters")
    osub = outbox.add_subparsers(dest="outbox_command", required=True)
    olist = osub.add_parser("list", help="mail waiting, being sent, or dead")
    olist.add_argument("--dead", action="store_true", help="dead letters only")
    olist.add_argument("--json", action="store_true")
    oretry = osub.add_parser("retry", help="queue dead letters again and send")
    oretry.add_argument("ids", nargs="*", type=int)
    oretry.add_argument("--all", action="store_true", help="every dead letter")
    outbox.set_defaults(func=cmd_outbox)

    privacy = sub.add_parser(
        "privacy", help="personal data: export everything about a person, purge old data"
    )
    psub = privacy.add_subparsers(dest="privacy_command", required=True)
    pexp = psub.add_parser(
        "export", help="everything held about one person (EMAIL or NIK/NIP) as a zip bundle"
    )
    pexp.add_argument("who", metavar="EMAIL|NIK")
    pexp.add_argument("-o", "--out", help="the bundle (default: data-pribadi-<who>.zip)")
    ppur = psub.add_parser("purge", help="remove personal data of closed tickets past the retention period")
    ppur.add_argument("--older-than", type=int, metavar="DAYS", help="default: privacy.retention_days")
    privacy.set_defaults(func=cmd_privacy)

    document = sub.add_parser("document", help="an official document of a ticket, as HTML or PDF")
    document.add_argument("number", help="ticket number")
    document.add_argument("--kind", choices=["disposisi", "surat-tugas", "berita-acara"], required=True)
    document.add_argument("--format", choices=["html", "pdf"], default="html")
    document.add_argument("-o", "--out", help="write to this file (default: standard output)")
    document.set_defaults(func=cmd_document)

    replay = sub.add_parser("replay", help="process a quarantined message (by id) or a .eml file again")
    replay.add_argument("target", help="FILE.eml or an inbound message id")
    replay.add_argument("--force", action="store_true", help="replay a message that was not quarantined")
    replay.add_argument(
        "--release",
        action="store_true",
        help="release a held message (spam flag, a sender's flood): process it as if it had not been held",
    )
    replay.set_defaults(func=cmd_replay)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup_logging(args.verbose, args.log_format)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"configuration has {len(exc.problems)} problem(s):", file=sys.stderr)
        _print_problems(exc.problems)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `mailbot tickets list | head`: the reader left. No traceback; the rest of the output
        # goes nowhere (Python's documented way, so that the exit flush cannot fail again).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
