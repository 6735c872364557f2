"""`mailbot run` (the daemon or one pass) and `mailbot status`."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from mailbot.app import App, create_app
from mailbot.cli.check import _calendar_warnings, _redact_db, _security_warnings
from mailbot.cli.common import EXIT_TEMPFAIL, SAMPLES, _load
from mailbot.config import Config
from mailbot.core.safe_output import terminal_text as _t
from mailbot.core.workflow import (
    OPEN_STATES,
)
from mailbot.shell import aio, models
from mailbot.shell.health import status
from mailbot.shell.holiday_cache import holiday_cache
from mailbot.shell.mailbox import MailboxError


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
    for path in sorted((p for p in SAMPLES.iterdir() if p.name.endswith(".eml")), key=lambda p: p.name):
        maildir.add(path.read_bytes())
        count += 1
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(datetime.now(UTC).isoformat())
    return count


def cmd_run(args: argparse.Namespace) -> int:
    config = _load(args)
    if args.sender_only:
        from mailbot import daemon

        app = create_app(config)
        # The daemon's child (it has the pipe) leaves when idle; one started by hand stays.
        idle_exit = config.settings.smtp.sender_idle_seconds if args.wake_fd is not None else None
        try:
            aio.run(daemon.serve_sender(app, args.wake_fd, idle_exit))
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
    from mailbot import daemon  # the scheduler and the service's parts: not for `run --once`

    if show_first:
        # Process the samples before going quiet, so a newcomer sees tickets right away.
        stats = await asyncio.to_thread(app.run_intake_once)
        await app.send_pending()
        print(f"Processed {stats.fetched} messages: tickets {', '.join(stats.tickets) or '-'}")
        _where_to_look(app)
    await daemon.serve(app)


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
            warnings = _security_warnings(config, list(in_use)) + _calendar_warnings(
                config, app.clock(), holiday_cache(config.data_dir).has_cuti_bersama
            )
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
