"""PNG previews of the documents for the README: a request served through the desk as real mail
(SOP 002 and SOP 004), then the Lembar Disposisi, Surat Tugas, Berita Acara, the month's Laporan
and the published SKM result, each page one at 60 dpi (well under 200 KB a file).

Usage: .venv/bin/python scripts/preview_documents.py [--out docs/preview] [--dpi 60]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import select  # noqa: E402

from mailbot.app import App, create_app  # noqa: E402
from mailbot.config import load_config  # noqa: E402
from mailbot.pipeline.intake import Source  # noqa: E402
from mailbot.records.documents import period_report, render_document, render_period_html  # noqa: E402
from mailbot.records.rendering import html_to_pdf, pdf_to_png  # noqa: E402
from mailbot.records.skm_result import render_skm_html, skm_result  # noqa: E402
from mailbot.shell import models  # noqa: E402
from tests.conftest import Clock, request_mail, write_config  # noqa: E402
from tests.desk import reply_bytes  # noqa: E402
from tests.records.test_documents import DOCUMENTS, QUESTION, STAFF  # noqa: E402

HEAD = "kabag.umum@bpsdm.example.go.id"
IRBAN2 = "irban2@inspektorat.example.go.id"
BUDI = "budi.santoso@bpsdm.example.go.id"
SCORES = ["4 4 3 4 4 4 4 3 4", "3 3 3 4 3 3 3 3 3", "4 4 4 4 4 4 4 4 4", "4 3 3 4 4 4 4 3 4"]
UNITS = ["Biro Perencanaan", "Biro Keuangan", "Direktorat Jenderal Pembangunan Desa dan Perdesaan"]


class Desk:
    def __init__(self, app: App) -> None:
        self.app, self.n = app, 0

    def deliver(self, raw: bytes) -> None:
        self.n += 1
        self.app.process_raw(Source("preview", 1, str(self.n)), raw)

    def reply(self, to: str, kind: str, sender: str, body: str) -> None:
        with self.app.sessions() as s:
            row = s.execute(
                select(models.OutboundMessage)
                .where(models.OutboundMessage.recipient == to, models.OutboundMessage.kind == kind)
                .order_by(models.OutboundMessage.id.desc())
                .limit(1)
            ).scalar_one()
        self.deliver(reply_bytes(row, sender, body))


def serve(desk: Desk, profile: str, i: int, scores: str) -> None:
    sender = f"pemohon{i}@kemendesa.example.go.id"
    body = QUESTION.replace("Biro Perencanaan", UNITS[i % len(UNITS)]).replace(
        " <script>alert('x')</script> <b>tebal</b>", " Unit kami baru dibentuk pada tahun ini."
    )
    desk.deliver(request_mail(sender=sender, name="Rina Kartika" if i == 0 else person(i), body=body))
    if profile == "sop-004":
        desk.reply(HEAD, "notify", HEAD, "ASSIGN Irban II")
        desk.reply(IRBAN2, "assign", IRBAN2, "ASSIGN Budi Santoso")
    else:
        desk.reply(HEAD, "notify", HEAD, "ASSIGN Budi Santoso")
    desk.reply(
        BUDI,
        "assign",
        BUDI,
        "Penyusunan ABK mengikuti Permenpan RB Nomor 1 Tahun 2020: hitung beban kerja per jabatan\n"
        "dengan jam kerja efektif 1.250 jam per tahun, lalu bandingkan dengan jumlah pegawai.",
    )
    desk.reply(sender, "answer", sender, scores)


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
    parser.add_argument("--out", default=str(ROOT / "docs" / "preview"))
    parser.add_argument("--dpi", type=int, default=60)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    logo = ROOT / "scripts" / "sample-logo.svg"

    written = []
    with tempfile.TemporaryDirectory(prefix="mailbot-preview-") as folder:
        tmp = Path(folder)
        for profile in ("sop-002", "sop-004"):
            work = tmp / profile
            work.mkdir()
            path = write_config(
                work,
                database_url=f"sqlite:///{work / 'db.sqlite'}",
                mailbox_url=f"maildir://{work / 'md'}",
                smtp_url=f"file://{work / 'out'}",
                staff=STAFF,
                profile=profile,
                daily_digest=False,
                extra=DOCUMENTS + f'logo = "{logo}"\n',
            )
            clock = Clock(datetime(2026, 11, 16, 2, 0, tzinfo=UTC))  # Monday 16 November 2026, 09:00 WIB
            app = create_app(load_config(path), clock=clock)
            desk = Desk(app)
            for i, scores in enumerate(SCORES):
                serve(desk, profile, i, scores)
                clock.now += timedelta(days=2, hours=3)
            pages: dict[str, str] = {}
            with app.sessions.begin() as s:
                first = s.execute(select(models.Ticket).order_by(models.Ticket.id).limit(1)).scalar_one()
                for kind in ("disposisi", "surat-tugas", "berita-acara"):
                    pages[f"{profile}-{kind}"] = render_document(s, app.config, first, kind, clock())
            with app.sessions() as s:
                report = period_report(s, app.config, date(2026, 11, 1), date(2026, 11, 30))
                pages[f"{profile}-laporan"] = render_period_html(app.config, report, clock())
                if profile == "sop-002":
                    result = skm_result(s, app.config, date(2026, 10, 1), date(2026, 12, 31))
                    pages["hasil-skm"] = render_skm_html(app.config, result, clock())
            app.close()
            for name, html in pages.items():
                pdf = html_to_pdf(html)
                png = pdf_to_png(pdf, dpi=args.dpi)
                if png is None:
                    print("pdftoppm (poppler-utils) is missing: no PNG", file=sys.stderr)
                    return 1
                target = out / f"{name}.png"
                target.write_bytes(png)
                written.append((target, len(png)))
    for target, size in written:
        flag = "" if size <= 200_000 else "  (over 200 KB: lower --dpi)"
        shown = target.relative_to(ROOT) if target.is_relative_to(ROOT) else target
        print(f"{shown}  {size / 1024:.0f} KB{flag}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
