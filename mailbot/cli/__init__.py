"""The `mailbot` command: argument parsing and dispatch; each command group is its own module."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence

from mailbot.cli.common import EXIT_TEMPFAIL, _date, _days, _print_problems, _setup_logging
from mailbot.core.workflow import State
from mailbot.locate import ConfigError


def _command(module: str, name: str) -> Callable[[argparse.Namespace], int]:
    """A command's function, imported when it runs: `status` does not load the documents' PDF stack."""

    def run(args: argparse.Namespace) -> int:
        return int(getattr(importlib.import_module(f"mailbot.cli.{module}"), name)(args))

    return run


class _Version(argparse.Action):
    """`--version`, its package metadata read only when asked (not on every command's start)."""

    def __init__(self, option_strings: Sequence[str], dest: str, help: str | None = None) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help=help)

    def __call__(self, parser: argparse.ArgumentParser, *_args: object, **_kwargs: object) -> None:
        from importlib.metadata import PackageNotFoundError, version

        try:
            found = version("mailbot")
        except PackageNotFoundError:  # a checkout on the path without an install
            found = "(not installed)"
        print(f"mailbot {found}")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mailbot", description="Email-driven consultation helpdesk.")
    parser.add_argument(
        "--config", help="configuration file (default: $MAILBOT_CONFIG; in a checkout config/mailbot.toml)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--version", action=_Version, help="print the installed version and exit")
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
    run.set_defaults(func=_command("run", "cmd_run"))

    init = sub.add_parser(
        "init", help="write a ready configuration (the embedded default) to DIR/mailbot.toml"
    )
    init.add_argument("dir", metavar="DIR", help="the folder of mailbot.toml (created if absent)")
    init.add_argument(
        "--data-dir", metavar="PATH", help="database, mailbox, outbox and secret here (default: DIR/var)"
    )
    init.add_argument(
        "--force",
        action="store_true",
        help="write mailbot.toml even if it exists (the old one is kept as mailbot.toml.<time>.bak)",
    )
    init.set_defaults(func=_command("init", "cmd_init"))

    check = sub.add_parser("check-config", help="report every problem in the configuration")
    check.add_argument("--offline", action="store_true", help="do not try to reach the servers")
    check.set_defaults(func=_command("check", "cmd_check_config"))

    tickets = sub.add_parser("tickets", help="list or show tickets")
    tsub = tickets.add_subparsers(dest="tickets_command", required=True)
    tlist = tsub.add_parser("list", help="list tickets, newest first")
    tlist.add_argument("--json", action="store_true")
    tlist.add_argument("--state", choices=[s.value for s in State])
    tlist.add_argument("--limit", type=int, default=1000)
    tshow = tsub.add_parser("show", help="one ticket with its history and messages")
    tshow.add_argument("number")
    tshow.add_argument("--json", action="store_true")
    tickets.set_defaults(func=_command("readonly", "cmd_tickets"))

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
    export.set_defaults(func=_command("records", "cmd_export"))

    rep = sub.add_parser(
        "reply", help="playground: answer a mail of the outbox as someone (head, consultant, applicant)"
    )
    rep.add_argument(
        "outbox_id", type=int, help="the outgoing mail's id (mailbot tickets show NUMBER lists them)"
    )
    rep.add_argument("--as", dest="sender", required=True, help="the sender's address")
    rep.add_argument("--name", help="the sender's display name")
    rep.add_argument("--text", required=True, help='the new text on top; "\\n" starts a new line')
    rep.set_defaults(func=_command("playground", "cmd_reply"))

    prof = sub.add_parser("profile", help="a service profile (SOP) as a table of its steps")
    psub = prof.add_subparsers(dest="profile_command", required=True)
    pshow = psub.add_parser("show", help="each step: actor, time, clock (working or wall), states it runs in")
    pshow.add_argument("id", help="the profile's id, e.g. sop-002")
    pshow.add_argument("--json", action="store_true")
    prof.set_defaults(func=_command("profile", "cmd_profile"))

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
    report.set_defaults(func=_command("records", "cmd_report"))

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
    st.set_defaults(func=_command("readonly", "cmd_status"))

    outbox = sub.add_parser("outbox", help="list queued mail and dead letters; retry dead letters")
    osub = outbox.add_subparsers(dest="outbox_command", required=True)
    olist = osub.add_parser("list", help="mail waiting, being sent, or dead")
    olist.add_argument("--dead", action="store_true", help="dead letters only")
    olist.add_argument("--json", action="store_true")
    oretry = osub.add_parser("retry", help="queue dead letters again and send")
    oretry.add_argument("ids", nargs="*", type=int)
    oretry.add_argument("--all", action="store_true", help="every dead letter")
    outbox.set_defaults(func=_command("tickets", "cmd_outbox"))

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
    ppur.add_argument("--older-than", type=_days, metavar="DAYS", help="default: privacy.retention_days")
    ppur.add_argument("--dry-run", action="store_true", help="say what would be purged; change nothing")
    ppur.add_argument(
        "--yes",
        action="store_true",
        help="confirm a purge with --older-than shorter than privacy.retention_days",
    )
    privacy.set_defaults(func=_command("records", "cmd_privacy"))

    document = sub.add_parser("document", help="an official document of a ticket, as HTML or PDF")
    document.add_argument("number", help="ticket number")
    document.add_argument("--kind", choices=["disposisi", "surat-tugas", "berita-acara"], required=True)
    document.add_argument("--format", choices=["html", "pdf"], default="html")
    document.add_argument("-o", "--out", help="write to this file (default: standard output)")
    document.set_defaults(func=_command("records", "cmd_document"))

    replay = sub.add_parser("replay", help="process a quarantined message (by id) or a .eml file again")
    replay.add_argument("target", help="FILE.eml or an inbound message id")
    replay.add_argument("--force", action="store_true", help="replay a message that was not quarantined")
    replay.add_argument(
        "--release",
        action="store_true",
        help="release a held message (spam flag, a sender's flood): process it as if it had not been held",
    )
    replay.set_defaults(func=_command("tickets", "cmd_replay"))
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
    except Exception as exc:
        reason = _database_unavailable(exc)
        if reason is None:
            raise
        # The database is away or refusing at start (a command's own work maps it where it can
        # say more): try again later, as systemd's Restart=on-failure and cron do.
        print(f"database unavailable: {reason}; nothing was done, try again later", file=sys.stderr)
        return EXIT_TEMPFAIL


def _database_unavailable(exc: Exception) -> str | None:
    """The reason, when `exc` is SQLAlchemy's error for a database that cannot be reached or used
    now (OperationalError: connection refused, locked, disk I/O). Looked up among the modules
    already loaded: the read-only commands never import SQLAlchemy."""
    errors = sys.modules.get("sqlalchemy.exc")
    if errors is None or not isinstance(exc, errors.OperationalError):
        return None
    return str(exc.orig if exc.orig is not None else exc).strip().splitlines()[0][:500]


if __name__ == "__main__":
    raise SystemExit(main())
