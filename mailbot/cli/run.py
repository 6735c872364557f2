"""`mailbot run` (the daemon or one pass) and `mailbot status`."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.exc import OperationalError

from mailbot.app import App, create_app
from mailbot.cli.check import _redact_db
from mailbot.cli.common import EXIT_TEMPFAIL, SAMPLES, _load, counted, how_called, open_maildir
from mailbot.config import Config
from mailbot.shell.mailbox import MailboxError


def _seed_samples(config: Config) -> int:
    """First run of the embedded default: drop sample requests into the local Maildir."""
    if not config.service.seed_samples or config.mailbox.scheme != "maildir":
        return 0
    marker = config.data_dir / ".samples-seeded"
    if marker.exists():
        return 0
    maildir = open_maildir(Path(config.mailbox.path))
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
        from mailbot.shell import aio

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
            return _run_once(app, how_called(args) if seeded else None)
        print(
            f"mailbot running: mailbox {config.mailbox.redacted()}, outgoing {config.smtp.redacted()}, "
            f"database {_redact_db(config.database_url)}. Ctrl-C stops."
        )
        from mailbot.shell import aio

        aio.run(_run_daemon(app, how_called(args) if seeded else None))
        return 0
    finally:
        app.close()


async def _run_daemon(app: App, first_run: str | None) -> None:
    """The service; on a first run that seeded the samples (`first_run`: the command as the user
    calls it), they are processed before it goes quiet, and where to look is said once."""
    import asyncio

    from mailbot import daemon  # the scheduler and the service's parts: not for `run --once`

    if first_run is not None:
        # Process the samples before going quiet, so a newcomer sees tickets right away.
        stats = await asyncio.to_thread(app.run_intake_once)
        await app.send_pending()
        print(f"Processed {counted(stats.fetched, 'message')}: tickets {', '.join(stats.tickets) or '-'}")
        _where_to_look(app, first_run)
    await daemon.serve(app)


def _where_to_look(app: App, command: str) -> None:
    """Said after the first run only (the samples): a cron job's `run --once` mails its output."""
    config = app.config
    print("Where to look:")
    print(f"  tickets:          {command} tickets list   (and: {command} tickets show NUMBER)")
    if config.smtp.scheme == "file":
        print(f"  replies sent:     {config.smtp.path}/*.eml")
    if config.mailbox.scheme == "maildir":
        print(f"  new mail goes to: {config.mailbox.path}/new/ (processed mail moves to .Processed)")


def _run_once(app: App, first_run: str | None) -> int:
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
    # Nothing due: no event loop, no SMTP client (the common pass of a cron job or a monitor).
    result = None
    if app.outbox_has_work():
        from mailbot.shell import aio

        result = aio.run(app.send_pending())
    if result is None:
        app.outbox_idle()
    sent, retried, dead = (result.sent, result.retried, result.dead) if result else (0, 0, 0)
    print(
        f"intake: {stats.fetched} fetched, {stats.processed} processed, {stats.duplicates} duplicates, "
        f"{stats.machine} machine mail, {stats.quarantined} quarantined, {stats.already_done} already done; "
        f"deadline notices: {notices.total}; "
        f"outbox: {sent} sent, {retried} deferred, {dead} dead"
    )
    if stats.tickets:
        print(f"tickets: {', '.join(stats.tickets)}")
    if first_run is not None:
        _where_to_look(app, first_run)
    if retried:
        print("some mail could not be sent now and stays queued; run again later", file=sys.stderr)
        return EXIT_TEMPFAIL
    return 0
