"""Time to make the documents and reports (issue #22 item 6): a ticket's document (HTML + PDF), the
month's Laporan Hasil Layanan Konsultasi (query + HTML + PDF) and the published SKM poster, over a
month of tickets that went through the desk as real mail (request, disposition, answer, survey).

Targets: a document <= 0.5 s, the Laporan of a month of 1,000 tickets <= 2 s.
A/B in the same run: what the Laporan reads of its tickets and their events, as columns in two
queries (A), against ORM tickets whose events load when first read, one query per ticket (B, before).

Usage: .venv/bin/python bench/documents.py [--tickets 1000] [--samples 20] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from datetime import time as time_of_day
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import select  # noqa: E402

from mailbot.app import create_app  # noqa: E402
from mailbot.config import load_config  # noqa: E402
from mailbot.pipeline.intake import Source  # noqa: E402
from mailbot.records.documents import period_report, render_document, render_period_html  # noqa: E402
from mailbot.records.rendering import html_to_pdf  # noqa: E402
from mailbot.records.skm_result import skm_files, skm_result  # noqa: E402
from mailbot.shell import models  # noqa: E402
from tests.conftest import Clock, request_mail, write_config  # noqa: E402
from tests.desk import BUDI, BUDI2, HEAD, STAFF, reply_bytes  # noqa: E402

UNITS = [f"Biro {name}" for name in ("Perencanaan", "Keuangan", "Hukum", "Umum", "Kepegawaian")] + [
    f"Direktorat Jenderal Pembangunan Kawasan Perdesaan Wilayah {n}" for n in range(1, 16)
]
WIB = ZoneInfo("Asia/Jakarta")
SCORES = ["4 4 3 4 4 4 4 3 4", "3 3 3 4 3 3 3 3 3", "4 4 4 4 4 4 4 4 4", "3 4 3 4 3 4 3 3 4"]


def timed(fn: Callable[[], Any], repeat: int) -> tuple[list[float], Any]:
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return times, result


def summary(times: list[float]) -> dict[str, float]:
    return {
        "median_s": round(statistics.median(times), 4),
        "min_s": round(min(times), 4),
        "max_s": round(max(times), 4),
        "n": len(times),
    }


def person(i: int) -> str:
    """A name without digits (a name with digits is refused as a typing error)."""
    letters = ""
    while True:
        i, r = divmod(i, 26)
        letters = chr(ord("a") + r) + letters
        if not i:
            break
    return f"Pemohon {letters.capitalize()}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=1000)
    parser.add_argument("--samples", type=int, default=20, help="documents timed per kind")
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="mailbot-bench-docs-") as folder:
        tmp = Path(folder)
        config_path = write_config(
            tmp,
            database_url=f"sqlite:///{tmp / 'db.sqlite'}",
            mailbox_url=f"maildir://{tmp / 'md'}",
            smtp_url=f"file://{tmp / 'out'}",
            staff=STAFF,
            daily_digest=False,
        )
        # Monday 2 November 2026, 08:00 WIB; the tickets spread over the month's office hours.
        clock = Clock(datetime(2026, 11, 2, 1, 0, tzinfo=UTC))
        app = create_app(load_config(config_path), clock=clock)
        n = 0

        def deliver(raw: bytes) -> None:
            nonlocal n
            n += 1
            app.process_raw(Source("bench", 1, str(n)), raw)

        def last(to: str, kind: str) -> models.OutboundMessage:
            with app.sessions() as s:
                return s.execute(
                    select(models.OutboundMessage)
                    .where(models.OutboundMessage.recipient == to, models.OutboundMessage.kind == kind)
                    .order_by(models.OutboundMessage.id.desc())
                    .limit(1)
                ).scalar_one()

        t0 = time.perf_counter()
        # Office hours of the month's working days (08:00-15:00 WIB), so that every mail goes out
        # at once and the next reply answers it.
        days = [date(2026, 11, d) for d in range(2, 28) if date(2026, 11, d).weekday() < 5]
        per_day = -(-args.tickets // len(days))
        for i in range(args.tickets):
            day, k = days[i // per_day], i % per_day
            clock.now = datetime.combine(day, time_of_day(8), WIB) + timedelta(minutes=420 * k / per_day)
            sender = f"pemohon{i}@instansi{i % 50}.example.go.id"
            body = (
                f"Nama Lengkap : {person(i)}\nNIP : 19860926 201505 {1 + i % 2} {i % 1000:03d}\n"
                f"Unit Kerja : {UNITS[i % len(UNITS)]}\nJabatan : Analis Kebijakan\n"
                "No. HP : 0812-3456-7890\n\n"
                f"Permasalahan: Bagaimana menyusun ABK untuk unit baru (permohonan {i})?\n"
            )
            deliver(request_mail(sender=sender, name=person(i), subject=f"Soal {i}", body=body))
            if i % 10 != 9:  # nine in ten are disposed of and answered
                deliver(
                    reply_bytes(
                        last(HEAD, "notify"), HEAD, f"ASSIGN {'Budi Santoso' if i % 3 else 'Budi Hartono'}"
                    )
                )
                consultant = BUDI if i % 3 else BUDI2
                deliver(reply_bytes(last(consultant, "assign"), consultant, f"Jawaban atas permohonan {i}."))
                if i % 5 < 3:  # three in five answered return the survey
                    deliver(reply_bytes(last(sender, "answer"), sender, SCORES[i % len(SCORES)]))
        setup = time.perf_counter() - t0
        print(f"set-up: {args.tickets} tickets, {n} mails through the desk in {setup:.1f} s")

        now = clock()
        figures: dict[str, Any] = {"tickets": args.tickets, "mails": n, "setup_s": round(setup, 1)}

        # The first document of a process pays WeasyPrint's import and font set-up.
        with app.sessions.begin() as s:
            first = s.execute(select(models.Ticket).order_by(models.Ticket.id).limit(1)).scalar_one()
            t0 = time.perf_counter()
            html_to_pdf(render_document(s, app.config, first, "disposisi", now))
            figures["first_document_cold_s"] = round(time.perf_counter() - t0, 4)

        with app.sessions.begin() as s:
            tickets = list(
                s.execute(
                    select(models.Ticket).where(models.Ticket.assignee_email.is_not(None)).limit(args.samples)
                ).scalars()
            )
            for kind in ("disposisi", "surat-tugas", "berita-acara"):
                times, _ = timed(lambda: None, 0)
                for t in tickets:
                    one, _ = timed(
                        lambda t=t, kind=kind: html_to_pdf(render_document(s, app.config, t, kind, now)), 1
                    )
                    times += one
                figures[f"document_{kind}"] = summary(times)
        start, end = date(2026, 11, 1), date(2026, 11, 30)

        def laporan() -> tuple[float, float, float]:
            t0 = time.perf_counter()
            with app.sessions() as s:
                report = period_report(s, app.config, start, end)
            t1 = time.perf_counter()
            html = render_period_html(app.config, report, now)
            t2 = time.perf_counter()
            html_to_pdf(html)
            t3 = time.perf_counter()
            return t1 - t0, t2 - t1, t3 - t2

        def tickets_and_events(columns: bool) -> int:
            """A: what period_report reads, as columns; B: ORM tickets, each one's events loaded
            when first read (the code before)."""
            low = datetime(2026, 10, 31, 17, 0, tzinfo=UTC)
            high = datetime(2026, 11, 30, 17, 0, tzinfo=UTC)
            where = (models.Ticket.created_at >= low, models.Ticket.created_at < high)
            with app.sessions() as s:
                if columns:
                    ids = select(models.Ticket.id).where(*where)
                    rows = s.execute(
                        select(models.Ticket.id, models.Ticket.fields, models.Ticket.assignee_email).where(
                            *where
                        )
                    ).all()
                    kinds = s.execute(
                        select(models.TicketEvent.ticket_id, models.TicketEvent.kind).where(
                            models.TicketEvent.ticket_id.in_(ids),
                            models.TicketEvent.kind.in_(("assign", "answer")),
                        )
                    ).all()
                    return len(rows) + len(kinds)
                tickets = s.execute(select(models.Ticket).where(*where)).scalars()
                return sum(1 + sum(e.kind in ("assign", "answer") for e in t.events) for t in tickets)

        a, b = [], []
        for _ in range(5):
            a += timed(lambda: tickets_and_events(True), 1)[0]
            b += timed(lambda: tickets_and_events(False), 1)[0]
        figures["ab_laporan_rows_as_columns"] = summary(a)
        figures["ab_laporan_rows_orm_lazy_events"] = summary(b)

        parts = [laporan() for _ in range(5)]
        figures["laporan_total"] = summary([sum(p) for p in parts])
        figures["laporan_query"] = summary([p[0] for p in parts])
        figures["laporan_html"] = summary([p[1] for p in parts])
        figures["laporan_pdf"] = summary([p[2] for p in parts])
        with app.sessions() as s:
            figures["laporan_received"] = period_report(s, app.config, start, end).total.received

        def poster() -> None:
            with app.sessions() as s:
                result = skm_result(s, app.config, start, end)
            skm_files(app.config, result, now)

        figures["skm_poster_pdf_png"] = summary(timed(poster, 3)[0])
        app.close()

    for key, value in figures.items():
        print(f"{key:40} {value}")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
