"""`mailbot check-config`: every problem of the configuration, its servers and its calendar.

Every layer is checked in one run, and nothing is created: the file (unknown keys, bad values),
the profiles and staff, the connection URLs and, unless `--offline`, whether each server answers
and takes the login. A file whose settings are wrong still has its profiles folder and its
servers tried, with what can be read of it. What the first run creates by itself (the secret,
the SQLite database, the Maildir and outbox folders, the mailbox's Processed and Quarantine
folders) is a note; what stops mailbot from working is a problem, and makes the exit status 1.
"""

from __future__ import annotations

import argparse
import imaplib
import os
import socket
import ssl
import sys
import tomllib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from mailbot.cli.common import _print_problems
from mailbot.cli.warnings import calendar_warnings, security_warnings
from mailbot.config import (
    Config,
    ConnectionUrl,
    connection_urls,
    load_config,
    load_profiles,
    load_staff_csv,
)
from mailbot.locate import BUILTIN_PROFILES, ENV_CONFIG, ConfigError, config_base, default_config_path
from mailbot.secret import permission_denied, secret_path
from mailbot.settings import MailboxSettings, Settings, SmtpSettings

# A server that does not answer within this is reported as such (the service itself waits the
# configured timeouts, which are longer).
PROBE_TIMEOUT = 10.0
SQLITE_HEADER = b"SQLite format 3\x00"


@dataclass
class Report:
    """What check-config found: problems (exit 1), warnings and notes (exit 0)."""

    problems: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[tuple[str, str]] = field(default_factory=list)

    def problem(self, key: str, message: str) -> None:
        if (key, message) not in self.problems:
            self.problems.append((key, message))

    def note(self, key: str, message: str) -> None:
        self.notes.append((key, message))


def staffing_warnings(config: Config) -> list[str]:
    """Roles the active profile hands work or mail to that no active staff member of the profile
    holds: that work would reach nobody (a step's task, a report, the disposition request), or
    escalations would fall back to the heads."""
    profile = config.profile
    needs: dict[str, str] = dict.fromkeys(
        profile.notify_roles, "notify_roles: the disposition request of a new ticket"
    )
    for step in profile.steps:
        if step.actor not in ("applicant", "system"):
            needs.setdefault(step.actor, f"the actor of step {step.id!r}")
        for role in step.report_to:
            needs.setdefault(role, f"report_to of step {step.id!r}")
    for reader in profile.report_roles or config.settings.reports.roles:
        needs.setdefault(reader, "the monthly Laporan")
    warnings = [
        f"profile {profile.id}: no active staff member has the role {role!r} ({why}); "
        "add one to the staff directory"
        for role, why in needs.items()
        if not config.staff_with_roles([role], profile.id)
    ]
    if not config.staff_with_roles(list(profile.escalate_to), profile.id):
        # The sweep's chain (pipeline/reminders.py): escalate_to, else the heads, else the leads.
        if config.staff_with_roles(["head"], profile.id):
            instead = "are escalated to the heads instead"
        elif config.staff_with_roles(list(profile.notify_roles), profile.id):
            instead = f"are escalated to notify_roles ({', '.join(profile.notify_roles)}) instead"
        else:
            instead = "reach nobody: no head and no one of notify_roles either"
        warnings.append(
            f"profile {profile.id}: nobody holds a role of escalate_to ({', '.join(profile.escalate_to)}); "
            f"overdue steps {instead}"
        )
    return warnings


def _redact_db(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def cmd_check_config(args: argparse.Namespace) -> int:
    report = Report()
    path = _config_path(args.config)
    config: Config | None = None
    mailbox: ConnectionUrl | None
    smtp: ConnectionUrl | None
    try:
        config = load_config(path, create_secret=False)
    except ConfigError as exc:
        for key, message in exc.problems:
            report.problem(key, message)
    if config is not None:
        settings, base = config.settings, config.base_dir
        database_url, mailbox, smtp = config.database_url, config.mailbox, config.smtp
    elif path is not None and (salvaged := _salvage(path.resolve(), report)) is not None:
        settings, base = salvaged
        database_url, mailbox, smtp, _problems = connection_urls(settings, base)  # reported above
    else:  # no file to read: nothing more can be tried
        return _print(report, None)
    _check_secret(settings, base, report)
    _check_database(database_url, report, offline=args.offline)
    if mailbox is not None:
        _check_mailbox(mailbox, settings.mailbox, report, offline=args.offline)
    if smtp is not None:
        _check_smtp(smtp, settings.smtp, report, offline=args.offline)
    if config is not None:
        report.warnings += (
            security_warnings(
                config.profile.id, {pid: p.require_authentication for pid, p in config.profiles.items()}
            )
            + calendar_warnings(ZoneInfo(config.service.timezone), datetime.now(UTC))
            + staffing_warnings(config)
        )
    return _print(report, config)


def _config_path(given: str | None) -> Path | None:
    if given:
        return Path(given)
    env_path = os.environ.get(ENV_CONFIG)
    return Path(env_path) if env_path else default_config_path()


def _print(report: Report, config: Config | None) -> int:
    if report.problems:
        print(f"configuration has {len(report.problems)} problem(s):", file=sys.stderr)
        _print_problems(report.problems)
    elif config is not None:
        print(f"configuration OK: {config.source}")
        print(f"  profiles: {', '.join(sorted(config.profiles))}; active: {config.profile.id}")
        print(
            f"  staff: {len(config.settings.staff)}; mailbox: {config.mailbox.redacted()}; "
            f"smtp: {config.smtp.redacted()}; database: {_redact_db(config.database_url)}"
        )
    for warning in report.warnings:
        print(f"  WARNING: {warning}")
    for key, note in report.notes:
        print(f"  NOTE: {key}: {note}")
    return 1 if report.problems else 0


def _salvage(path: Path, report: Report) -> tuple[Settings, Path] | None:
    """The settings that can be read from a file that does not load: each section that is valid
    on its own (else its URL alone), and the profiles and staff CSV it names, checked as
    `load_config` would once the rest is right. None when the file cannot be read at all."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None  # load_config said why
    base = config_base(path)
    kept: dict[str, Any] = {}
    for name, section in data.items():
        candidates = [section]
        if isinstance(section, dict):
            candidates.append({k: v for k, v in section.items() if k in ("url", "password_env")})
        for candidate in candidates:
            try:
                Settings.model_validate({name: candidate})
            except ValidationError:
                continue
            kept[name] = candidate
            break
    settings = Settings.model_validate(kept)
    try:
        Settings.model_validate(data)
    except ValidationError:
        # load_config stopped at the schema: the next layer is checked here.
        if settings.profiles_dir is None:
            profiles_dir = BUILTIN_PROFILES
        else:
            profiles_dir = (
                settings.profiles_dir if settings.profiles_dir.is_absolute() else base / settings.profiles_dir
            )
        profiles, problems = load_profiles(profiles_dir)
        if profiles and "service" in kept and settings.service.profile not in profiles:
            problems.append(("service.profile", f"no profile {settings.service.profile!r} in {profiles_dir}"))
        if settings.staff_csv is not None:
            csv_path = settings.staff_csv if settings.staff_csv.is_absolute() else base / settings.staff_csv
            problems += load_staff_csv(csv_path)[1]
        for key, message in problems + connection_urls(settings, base)[3]:
            report.problem(key, message)
    return settings, base


# --- what the first run creates --------------------------------------------------------------


def _creatable(path: Path) -> Path | None:
    """The folder that would have to be written to create `path`, when that is not possible."""
    for parent in path.parents:
        if parent.exists():
            return None if parent.is_dir() and os.access(parent, os.W_OK | os.X_OK) else parent
    return path.parents[-1]


def _exists(key: str, path: Path, report: Report) -> bool | None:
    """Whether `path` exists; None, reported as a problem, when a folder on the way may not be
    entered by the user running the check (the service's user, if it is the one who checks)."""
    try:
        return path.exists()
    except PermissionError:
        report.problem(key, permission_denied(path))
        return None


def _first_run_creates(key: str, path: Path, what: str, report: Report) -> None:
    blocked = _creatable(path)
    if blocked is None:
        report.note(key, f"{what} {path} does not exist yet; the first run creates it")
    else:
        report.problem(key, f"{what} {path} does not exist and cannot be created ({blocked} is not writable)")


def _check_secret(settings: Settings, base: Path, report: Report) -> None:
    security = settings.security
    path = secret_path(settings, base)
    if os.environ.get(security.secret_env) or _exists("security.secret_file", path, report) is not False:
        return
    _first_run_creates(
        "security.secret_file", path, f"no secret in ${security.secret_env}, and the secret file", report
    )


def _check_folder(key: str, path: Path, what: str, report: Report) -> None:
    exists = _exists(key, path, report)
    if exists is None:
        return
    if not exists:
        _first_run_creates(key, path, what, report)
    elif not path.is_dir():
        report.problem(key, f"{path} is not a folder")
    elif not os.access(path, os.W_OK | os.X_OK):
        report.problem(key, f"{what} {path} is not writable")


# --- the servers ------------------------------------------------------------------------------


def describe_failure(exc: BaseException) -> tuple[bool, str]:
    """(login refused?, why) for an error of the libraries below, told apart by type once here:
    a refused login (imapclient's LoginError for IMAP AUTHENTICATIONFAILED, aiosmtplib's
    SMTPAuthenticationError for 535, an OAuth2 token not had or refused) against no conversation
    at all (refused, timed out, no such host, TLS, dropped). Our own errors (MailboxError,
    SendError, SQLAlchemy's) are followed to the error they were raised from."""
    import aiosmtplib
    from imapclient.exceptions import LoginError

    from mailbot.shell.oauth2 import TokenError
    from mailbot.shell.smtp import LoginRefused

    chain: list[BaseException] = [exc]
    while (cause := chain[-1].__cause__) is not None and len(chain) < 10:
        chain.append(cause)
    for error in reversed(chain):  # the library's own error says it best
        if isinstance(error, LoginError | aiosmtplib.SMTPAuthenticationError | TokenError | LoginRefused):
            return True, _text(error)
    error = chain[-1]
    if isinstance(error, socket.gaierror):
        return False, f"no such host ({error.strerror})"
    if isinstance(error, ConnectionRefusedError):
        return False, "connection refused"
    if isinstance(error, TimeoutError | aiosmtplib.SMTPTimeoutError):
        return False, "no answer (timed out)"
    if isinstance(error, ssl.SSLCertVerificationError):
        return False, f"TLS certificate not trusted ({error.verify_message})"
    if isinstance(error, ssl.SSLError):
        return False, f"TLS failed ({error.reason or error})"
    if isinstance(error, imaplib.IMAP4.abort | aiosmtplib.SMTPServerDisconnected | EOFError):
        return False, f"connection dropped ({_text(error)})"
    if isinstance(error, OSError) and error.strerror:
        return False, error.strerror.lower()
    return False, _text(error)


def _text(exc: BaseException) -> str:
    import aiosmtplib

    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return f"{exc.code} {exc.message}"
    text = str(exc)
    if text.startswith("b'") or text.startswith('b"'):  # imaplib's bytes in the message
        text = text[2:-1]
    return text or type(exc).__name__


def _failure(key: str, where: str, user: str, exc: BaseException, report: Report) -> None:
    refused, why = describe_failure(exc)
    if refused:
        report.problem(key, f"login refused for {user or '(no user)'} at {where}: {why}")
    else:
        report.problem(key, f"cannot connect to {where}: {why}")


def _check_database(url: str, report: Report, *, offline: bool) -> None:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        report.problem("database.url", str(exc))
        return
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if not database or database == ":memory:":
            return
        path = Path(database)
        exists = _exists("database.url", path, report)
        if not exists:
            if exists is False:
                _first_run_creates("database.url", path, "the SQLite database", report)
            return
        # Not opened: even a read-only connection leaves -wal and -shm files beside a WAL database.
        try:
            with path.open("rb") as fh:
                header = fh.read(16)
        except PermissionError:
            report.problem("database.url", permission_denied(path))
            return
        except OSError as exc:
            report.problem("database.url", f"cannot read {path}: {exc.strerror}")
            return
        if header and header != SQLITE_HEADER:
            report.problem("database.url", f"{path} is not an SQLite database")
        elif not os.access(path, os.W_OK) or not os.access(path.parent, os.W_OK | os.X_OK):
            report.problem("database.url", f"{path} or its folder is not writable")
        return
    if offline:
        return
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    where = f"{parsed.host or 'localhost'}:{parsed.port or 'default port'}"
    try:
        engine = create_engine(
            url, poolclass=NullPool, connect_args=_connect_timeout(parsed.get_backend_name())
        )
    except ImportError as exc:  # the driver is not installed
        from mailbot.shell.db import no_driver

        report.problem("database.url", no_driver(parsed, exc))
        return
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # any driver's error is reported, never a crash
        _failure("database.url", where, parsed.username or "", exc, report)
    finally:
        engine.dispose()


def _connect_timeout(backend: str) -> dict[str, Any]:
    return {"connect_timeout": int(PROBE_TIMEOUT)} if backend == "postgresql" else {}


def _check_mailbox(url: ConnectionUrl, settings: MailboxSettings, report: Report, *, offline: bool) -> None:
    if url.scheme == "maildir":
        _check_folder("mailbox.url", Path(url.path), "the Maildir", report)
        return
    _note_oauth2("mailbox.url", url, report)
    if offline:
        return
    from mailbot.shell.mailbox import MailboxError
    from mailbot.shell.mailbox.imap import ImapSource

    # Flagging instead of moving: connect() then creates no folder; their absence is a note.
    probe = settings.model_copy(update={"after": "flag", "timeout": min(settings.timeout, PROBE_TIMEOUT)})
    source = ImapSource(url, probe)
    where = f"{url.host}:{url.port}"
    try:
        source.connect()
        client = source.client
        assert client is not None
        if settings.after == "move":
            for folder in (settings.processed_folder, settings.quarantine_folder):
                if not client.folder_exists(folder):
                    report.note(
                        "mailbox.url", f"no folder {folder!r} at {where} yet; the first run creates it"
                    )
    except MailboxError as exc:
        if source.client is not None:  # logged in; a later step failed (e.g. no such folder)
            report.problem("mailbox.url", f"{where}: {_text(exc.__cause__ or exc)}")
        else:
            _failure("mailbox.url", where, url.user, exc, report)
    except Exception as exc:  # a folder listing that fails after the login
        report.problem("mailbox.url", f"{where}: {type(exc).__name__}: {_text(exc)}")
    finally:
        source.close()


def _note_oauth2(key: str, url: ConnectionUrl, report: Report) -> None:
    """Which token source an XOAUTH2 login uses (connecting fetches a token: the login checks it)."""
    if url.oauth2 is not None:
        from mailbot.shell.oauth2 import describe

        report.note(key, f"logs in with XOAUTH2 as {url.oauth2.user}, the token from {describe(url.oauth2)}")


def _check_smtp(url: ConnectionUrl, settings: SmtpSettings, report: Report, *, offline: bool) -> None:
    if url.scheme == "file":
        _check_folder("smtp.url", Path(url.path), "the outbox folder", report)
        return
    _note_oauth2("smtp.url", url, report)
    if offline:
        return
    from mailbot.shell import aio
    from mailbot.shell.smtp import SendError, SmtpSender

    sender = SmtpSender(url, settings.model_copy(update={"timeout": min(settings.timeout, PROBE_TIMEOUT)}))

    async def _try() -> None:
        try:
            await sender.open()
        finally:
            await sender.close()

    try:
        aio.run(_try())
    except SendError as exc:
        _failure("smtp.url", f"{url.host}:{url.port}", url.user, exc, report)
