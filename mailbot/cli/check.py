"""`mailbot check-config`: every problem of the configuration, its servers and its calendar."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import text

from mailbot.cli.common import _print_problems
from mailbot.config import Config, load_config
from mailbot.settings import ConfigError
from mailbot.shell import aio
from mailbot.shell.mailbox import MailboxError, open_source
from mailbot.shell.outbox import SendError, make_sender


def _redact_db(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


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
