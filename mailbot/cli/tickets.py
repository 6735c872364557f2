"""`mailbot tickets`, `mailbot replay` and `mailbot outbox`: looking at and re-driving mail."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from mailbot.app import create_app
from mailbot.cli.common import UTC_ZONE, _load, _office
from mailbot.core.public_record import zone_name
from mailbot.core.safe_output import json_text
from mailbot.core.safe_output import terminal_text as _t
from mailbot.core.workflow import (
    InboundStatus,
    OutboundStatus,
    State,
    next_inbound,
    next_outbound,
)
from mailbot.shell import aio, models, store


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


def cmd_replay(args: argparse.Namespace) -> int:
    """Process a quarantined message again (by inbound id) or a mail file."""
    from mailbot.pipeline.intake import Source  # the pipeline is loaded by replay only

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
