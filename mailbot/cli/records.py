"""`mailbot export`, `document`, `privacy` and `report`: the archivist's and the secretariat's records."""

from __future__ import annotations

import argparse
import re
import sys
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from mailbot.app import App, create_app
from mailbot.cli.common import _load, counted, log
from mailbot.config import Config
from mailbot.core.safe_output import json_text
from mailbot.core.safe_output import terminal_text as _t
from mailbot.core.workflow import (
    State,
)
from mailbot.records.archive import Selection, export_mbox, index_rows
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
from mailbot.shell import store


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
    tz = ZoneInfo(config.service.timezone)
    app = create_app(config)
    try:
        with app.sessions() as session:
            # A mistyped number is refused, not exported as nothing; and an archive already there
            # is never replaced by an empty one (export_mbox writes beside it, then renames).
            missing = [n for n in selection.tickets if store.ticket_by_number(session, n) is None]
            for number in missing:
                print(f"no ticket {number}", file=sys.stderr)
            if missing:
                return 1
            if out.exists() and next(index_rows(session, selection, tz), None) is None:
                print(f"no ticket matches the selection; {out} is left as it was", file=sys.stderr)
                return 1
            result = export_mbox(session, out, selection, tz)
        what = f"{counted(result.messages, 'message')} of {counted(result.tickets, 'ticket')}"
        print(f"{what} written to {result.path}")
        print(f"index: {result.index_csv} and {result.index_html}")
        return 0
    finally:
        app.close()


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
            what = f"{counted(tickets, 'ticket')} and {counted(messages, 'message')}"
            print(f"{what} about {_t(args.who)} written to {out}")
            return 0
        retention = config.settings.privacy.retention_days
        days = args.older_than if args.older_than is not None else retention
        if days < retention and not args.dry_run and not args.yes:
            # Cannot be undone: data the office promised to keep for the retention period.
            print(
                f"--older-than {days} is shorter than the retention period "
                f"(privacy.retention_days = {retention}): personal data of tickets closed since "
                "then would be removed for good. See what it would remove with --dry-run, then "
                "run it again with --yes.",
                file=sys.stderr,
            )
            return 2
        if args.dry_run:
            # The purge itself, rolled back: the same selection as a real run, nothing changed,
            # no copy outside the database touched.
            with app.sessions() as session:
                result = purge(session, older_than=timedelta(days=days), now=app.clock())
                session.rollback()
            tickets_text = counted(result.tickets, "closed or rejected ticket")
            what = f"{tickets_text} and {counted(result.messages, 'message')}"
            print(
                f"dry run: would purge personal data of {what} older than {days} days, with their "
                "copies in the mailbox and the outbox folder; nothing was changed"
            )
            return 0
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
            f"purged personal data of {counted(result.tickets, 'closed or rejected ticket')} and "
            f"{counted(result.messages, 'message')} "
            f"older than {days} days; removed {counted(copies.mailbox, 'copy', 'copies')} from the "
            f"mailbox and {counted(copies.outbox, 'file')} from the outbox folder"
        )
        if copies.unreachable:
            print(
                f"{counted(copies.unreachable, 'message')} came from another mailbox than "
                f"{config.mailbox.redacted()}: "
                "remove their copies there by hand",
                file=sys.stderr,
            )
        for error in copies.errors:
            print(f"not removed yet ({error}); the next purge tries again", file=sys.stderr)
        return 1 if copies.errors else 0
    finally:
        app.close()


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
                # Steps still open are seen at the period's end, or now while the period runs.
                period = period_report(session, config, args.start, args.end, app.clock())
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
