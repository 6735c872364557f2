"""Shared by the command modules: logging set-up, loading the configuration, printing problems."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from datetime import date, datetime
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from mailbot.core.masking import masked_stderr_handler
from mailbot.core.public_record import zone_name

if TYPE_CHECKING:  # the validated configuration is loaded by the commands that need it
    from mailbot.config import Config

log = logging.getLogger("mailbot")
UTC_ZONE = ZoneInfo("UTC")
EXIT_TEMPFAIL = 75  # sysexits.h: try again later
# The sample requests of a first run are package data (mailbot/samples/*.eml).
SAMPLES = resources.files("mailbot") / "samples"


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """'1 ticket', '3 tickets', '0 tickets': a count and its noun, as a sentence says them."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


def _setup_logging(verbose: bool, log_format: str = "text") -> None:
    root = logging.getLogger()
    root.handlers[:] = [masked_stderr_handler(log_format)]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for noisy in (
        "apscheduler",
        "imapclient",
        "mailparser",
        "alembic",
        "aiosmtplib",
        "weasyprint",
        "fontTools",
    ):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _load(args: argparse.Namespace) -> Config:
    from mailbot.config import load_config  # pydantic and the settings' models: 0.2 s to import

    private_files()
    return load_config(Path(args.config) if args.config else None)


PRIVATE_UMASK = 0o027


def private_files() -> None:
    """What a command creates from here on (the database, the outbox's mail, archives, reports,
    Surat Tugas) holds NIK, NIP and phone numbers (UU 27/2022): no other user of the machine may
    read it, whatever the caller's umask (a checkout's `./run.sh` under a login's 022). The
    group keeps read access, as under the systemd unit's UMask=0027; a stricter umask stays."""
    os.umask(os.umask(PRIVATE_UMASK) | PRIVATE_UMASK)


def how_called(args: argparse.Namespace) -> str:
    """`mailbot` as the user can type it again, for the hints a command prints: the program as it
    was called when `mailbot` on the PATH is not this one (a checkout's `.venv/bin/mailbot`,
    `python -m mailbot`), with the `--config` it was given."""
    import shlex
    import shutil

    program = sys.argv[0] if sys.argv and sys.argv[0] else "mailbot"
    if program.endswith("__main__.py"):
        program = f"{shlex.quote(sys.executable)} -m mailbot"
    else:
        on_path = shutil.which("mailbot")
        program = (
            "mailbot"
            if on_path and Path(on_path).resolve() == Path(program).resolve()
            else shlex.quote(program)
        )
    config = getattr(args, "config", None)
    return f"{program} --config {shlex.quote(config)}" if config else program


def open_maildir(path: Path) -> Any:
    """A Maildir to write mail into (the samples, a playground reply), its tmp/, new/ and cur/
    made when missing: the standard library makes them only for a folder it creates itself, and
    an officer may have made the folder, or dropped mail into new/, by hand."""
    import mailbox

    for sub in ("tmp", "new", "cur"):
        (path / sub).mkdir(parents=True, exist_ok=True)
    return mailbox.Maildir(path, factory=None, create=False)


def _print_problems(problems: list[tuple[str, str]]) -> None:
    for key, message in problems:
        print(f"  {key}: {message}", file=sys.stderr)


def _office(when: datetime, tz: ZoneInfo) -> str:
    """A time as staff read it: office time with the zone's name (WIB, WITA, WIT)."""
    return f"{when.astimezone(tz):%Y-%m-%d %H:%M} {zone_name(tz)}"


def _days(text: str) -> int:
    """A number of days, 0 or more."""
    try:
        days = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of days: {text!r}") from None
    if days < 0:
        raise argparse.ArgumentTypeError(f"a number of days is 0 or more, not {days}")
    return days


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None
