"""`mailbot tickets`, `mailbot replay` and `mailbot outbox`: looking at and re-driving mail."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sqlalchemy import select

from mailbot.app import create_app
from mailbot.cli.common import _load, counted
from mailbot.core.safe_output import terminal_text as _t
from mailbot.core.workflow import (
    InboundStatus,
    OutboundStatus,
    next_inbound,
    next_outbound,
)
from mailbot.shell import aio, models, persist


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
            with persist.unit(app.sessions) as (session, effects):
                stmt = select(models.OutboundMessage).where(models.OutboundMessage.status == "dead")
                if not args.all:
                    stmt = stmt.where(models.OutboundMessage.id.in_(args.ids))
                rows = list(session.execute(stmt).scalars())
                if not args.all:
                    # An id that is not a dead letter is said, with what it is: nothing to retry.
                    found = {r.id for r in rows}
                    for missing in [i for i in args.ids if i not in found]:
                        other = session.get(models.OutboundMessage, missing)
                        what = f"is {other.status.value}" if other is not None else "does not exist"
                        print(
                            f"outgoing mail #{missing} {what}, not a dead letter: nothing to retry",
                            file=sys.stderr,
                        )
                for row in rows:
                    row.status = next_outbound(row.status, OutboundStatus.PENDING)
                    row.attempts, row.next_attempt_at = 0, app.clock()
                    if row.ticket_id is not None:
                        ticket = session.get(models.Ticket, row.ticket_id)
                        if ticket is not None:
                            effects.record(
                                ticket,
                                "mail_retry",
                                actor="admin",
                                now=app.clock(),
                                detail=f"{row.kind} → {row.recipient}: {row.last_error[:200]}",
                            )
            print(f"{counted(len(rows), 'dead letter')} queued again")
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
