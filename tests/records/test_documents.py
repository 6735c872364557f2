"""Documents, the period report and the published SKM result, checked as rendered: each is made to
PDF by WeasyPrint and read back with pdftotext (text, word boxes, page count). Figures by hand."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest

from mailbot.app import App, create_app
from mailbot.config import load_config
from mailbot.records.documents import period_report, render_document, render_period_html
from mailbot.records.rendering import html_to_pdf, renderer_warnings
from mailbot.records.wording import figure, long_date, terbilang
from mailbot.shell import models
from mailbot.shell.store import ticket_by_number
from tests.applicant.test_answer_survey import reply_from_applicant
from tests.conftest import CONSULTANT, HEAD, PROFILES, ROOT, Clock, request_mail, write_config
from tests.desk import BUDI, IRBAN2, SECRETARIAT, Desk, reply_bytes, text_of

APPLICANT = "rina.kartika@kemendesa.example.go.id"
needs_poppler = pytest.mark.skipif(
    shutil.which("pdftotext") is None or shutil.which("pdfinfo") is None,
    reason="poppler-utils (./test.sh installs it)",
)

# The staff of tests/desk.py, with the NIPs and positions a signature block prints.
STAFF = f"""
[[staff]]
name = "Siti Rahmawati"
aliases = ["Kabag Umum"]
emails = ["{HEAD}"]
role = "head"
nip = "197503152000032001"
position = "Kepala Bagian Umum dan Rumah Tangga"

[[staff]]
name = "Tim Sekretariat"
emails = ["{SECRETARIAT}"]
role = "secretariat"
nip = "198802022010121002"
position = "Koordinator Sekretariat Layanan"

[[staff]]
name = "Budi Santoso"
emails = ["{BUDI}"]
role = "consultant"
nip = "198001012005011001"
position = "Analis SDM Aparatur"

[[staff]]
name = "Irban Wilayah II"
aliases = ["Irban II"]
emails = ["{IRBAN2}"]
role = "subhead"
nip = "197001011995031003"
position = "Inspektur Pembantu Wilayah II"
region = "Wilayah II"
"""
DOCUMENTS = """
[documents]
letterhead = ["KEMENTERIAN DESA, PEMBANGUNAN DAERAH TERTINGGAL, DAN TRANSMIGRASI",
              "BADAN PENGEMBANGAN SUMBER DAYA MANUSIA"]
address = "Jalan TMP Kalibata Nomor 17, Jakarta Selatan 12750"
phone = "(021) 7989924"
website = "www.bpsdm.kemendesa.example.go.id"
email = "konsultasi@bpsdm.example.go.id"
city = "Jakarta"
head_name = "Siti Rahmawati"
head_nip = "197503152000032001"
skm_follow_up = [
  "Menyusun panduan pengajuan konsultasi yang lebih ringkas (unsur U3 Waktu penyelesaian).",
  "Menambah kanal pengaduan melalui laman unit (unsur U8).",
]
"""


# --- reading a PDF back ------------------------------------------------------------------------


@dataclass(frozen=True)
class Word:
    page: int
    x0: float
    y0: float
    x1: float
    y1: float
    text: str


@dataclass(frozen=True)
class Pdf:
    text: str  # pdftotext -layout
    words: list[Word]
    pages: int
    width: float


def read_pdf(data: bytes, tmp_path: Path, name: str = "doc") -> Pdf:
    path = tmp_path / f"{name}.pdf"
    path.write_bytes(data)
    run = lambda *a: subprocess.run(a, capture_output=True, timeout=60, check=True).stdout.decode()  # noqa: E731
    text = run("pdftotext", "-layout", str(path), "-")
    bbox = run("pdftotext", "-bbox", str(path), "-")
    pages = int(re.search(r"^Pages:\s+(\d+)", run("pdfinfo", str(path)), re.M).group(1))
    width = float(re.search(r'<page width="([\d.]+)"', bbox).group(1))
    words = []
    for page_no, page in enumerate(bbox.split("<page ")[1:], start=1):
        for m in re.finditer(
            r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">([^<]*)</word>', page
        ):
            words.append(Word(page_no, *(float(m.group(i)) for i in range(1, 5)), m.group(5)))
    return Pdf(text, words, pages, width)


def assert_laid_out(pdf: Pdf) -> None:
    """No word outside the page's text column (a cell or a line that overflows runs into the right
    margin), and no two words on top of each other (headers that run together, a cell that spills
    into its neighbour)."""
    left, right = 2.5 / 2.54 * 72, pdf.width - 2 / 2.54 * 72  # the @page margins
    for w in pdf.words:
        assert left - 1 <= w.x0 and w.x1 <= right + 1, f"{w.text!r} outside the column on page {w.page}"
    by_page: dict[int, list[Word]] = {}
    for w in pdf.words:
        by_page.setdefault(w.page, []).append(w)
    for words in by_page.values():
        words.sort(key=lambda w: (w.y0, w.x0))
        for i, a in enumerate(words):
            for b in words[i + 1 :]:
                if b.y0 >= a.y1 - 0.5:
                    break
                overlap_x = min(a.x1, b.x1) - max(a.x0, b.x0)
                overlap_y = min(a.y1, b.y1) - max(a.y0, b.y0)
                assert overlap_x <= 0.5 or overlap_y <= 0.5, f"{a.text!r} and {b.text!r} overlap"


def rendered(html: str, tmp_path: Path, name: str = "doc") -> Pdf:
    with renderer_warnings() as warnings:
        data = html_to_pdf(html)
    assert warnings == [], warnings  # e.g. a CSS property WeasyPrint ignores
    assert data.startswith(b"%PDF")
    pdf = read_pdf(data, tmp_path, name)
    assert_laid_out(pdf)
    return pdf


def right_half(pdf: Pdf, text: str) -> bool:
    """Whether the last `text` (a word) stands in the right half of the page: the signature block."""
    found = sorted((w for w in pdf.words if w.text == text), key=lambda w: (w.page, w.y0))
    assert found, f"{text!r} not in the PDF"
    return found[-1].x0 > pdf.width / 2


# --- the desk, per profile and language -------------------------------------------------------


def _app(tmp_path: Path, clock: Clock, profile: str, language: str = "id", medium: str = "") -> App:
    profiles = PROFILES
    if language == "en" or medium:
        profiles = tmp_path / "config" / "profiles"
        profiles.mkdir(parents=True)
        shutil.copy(PROFILES / "roster-ehrm.example.csv", profiles)
        for path in PROFILES.glob("*.toml"):
            text = path.read_text().replace('language = "id"', f'language = "{language}"')
            if medium:
                text = text.replace("\ntitle = ", f'\nconsultation_medium = "{medium}"\ntitle = ', 1)
            (profiles / path.name).write_text(text)
    path = write_config(
        tmp_path,
        database_url=f"sqlite:///{tmp_path / 'db.sqlite'}",
        mailbox_url=f"maildir://{tmp_path / 'md'}",
        smtp_url=f"file://{tmp_path / 'out'}",
        staff=STAFF,
        profile=profile,
        profiles_dir=profiles,
        daily_digest=False,
        extra=DOCUMENTS,
    )
    return create_app(load_config(path), clock=clock)


QUESTION = (
    "Nama Lengkap : Rina Kartika\nNIP : 19860926 201505 2 001\nUnit Kerja : Biro Perencanaan\n"
    "Jabatan : Analis Kebijakan\nNo. HP : 0812-3456-7890\n\n"
    "Permasalahan: Bagaimana menyusun ABK? <script>alert('x')</script> <b>tebal</b>\n"
)
# SOP 003 asks a complaint for its type, the date and time of the incident and the evidence.
COMPLAINT_QUESTION = QUESTION.replace(
    "\n\nPermasalahan",
    "\nJenis Keluhan : Aplikasi SIMPEG\nWaktu Kejadian : 16-11-2026 pukul 08.00\nBukti : pesan galat 502\n\n"
    "Permasalahan",
)
# Who gets the request, and the disposition to the consultant, per profile (config/profiles).
FIRST = {"sop-000": SECRETARIAT, "sop-001": SECRETARIAT, "sop-002": HEAD, "sop-003": SECRETARIAT,
         "sop-004": HEAD}  # fmt: skip
SIGNER = {
    SECRETARIAT: ("Tim Sekretariat", "198802022010121002"),
    HEAD: ("Siti Rahmawati", "197503152000032001"),
    IRBAN2: ("Irban Wilayah II", "197001011995031003"),
}


def serve(desk: Desk, profile: str, answer: str = "Gunakan 1.250 jam efektif per tahun.") -> str:
    """A request assigned to Budi Santoso (through the Irban in SOP 004) and answered; returns the
    address of who assigned him."""
    desk.deliver(request_mail(body=COMPLAINT_QUESTION if profile == "sop-003" else QUESTION))
    first = FIRST[profile]
    if profile == "sop-004":
        desk.reply(desk.last(HEAD, "notify"), HEAD, "ASSIGN Irban II")
        desk.reply(desk.last(IRBAN2, "assign"), IRBAN2, "ASSIGN Budi Santoso")
        first = IRBAN2
    else:
        desk.reply(desk.last(first, "notify"), first, "ASSIGN Budi Santoso")
    desk.reply(desk.last(CONSULTANT, "assign"), CONSULTANT, answer)
    return first


LETTERHEAD = (
    "KEMENTERIAN DESA",
    "BADAN PENGEMBANGAN SUMBER DAYA MANUSIA",
    "Jalan TMP Kalibata",
    "(021) 7989924",
    "www.bpsdm.kemendesa.example.go.id",
    "konsultasi@bpsdm.example.go.id",
)
NO_TTE = re.compile(r"ditandatangani secara elektronik|electronically signed|tanda tangan elektronik", re.I)
TITLES = {
    "id": {"disposisi": "LEMBAR DISPOSISI", "surat-tugas": "SURAT TUGAS",
           "berita-acara": "BERITA ACARA KONSULTASI"},
    "en": {"disposisi": "DISPOSITION SHEET", "surat-tugas": "ASSIGNMENT LETTER",
           "berita-acara": "CONSULTATION MINUTES"},
}  # fmt: skip


def _document(app: App, kind: str) -> str:
    with app.sessions.begin() as session:
        ticket = ticket_by_number(session, Desk(app).ticket().number)
        assert ticket is not None
        return render_document(session, app.config, ticket, kind, app.clock())  # type: ignore[arg-type]


@needs_poppler
@pytest.mark.parametrize("language", ["id", "en"])
@pytest.mark.parametrize("profile", ["sop-000", "sop-001", "sop-002", "sop-003", "sop-004"])
def test_documents_of_every_profile_as_printed(
    profile: str, language: str, tmp_path: Path, clock: Clock
) -> None:
    app = _app(tmp_path, clock, profile, language)
    try:
        desk = Desk(app)
        signer = serve(desk, profile)
        name, nip = SIGNER[signer]
        number = desk.ticket().number
        for kind, title in TITLES[language].items():
            html = _document(app, kind)
            # Mail text never reaches the document as markup.
            assert "<script>" not in html
            pdf = rendered(html, tmp_path, kind)
            text = pdf.text
            assert pdf.pages == 1, (kind, text)
            assert title in text and number in text
            # The letterhead: ministry, unit, address, telephone, website, email.
            for part in LETTERHEAD:
                assert part in text, (kind, part)
            # Dates written out: "16 November 2026", never 16-11-2026.
            assert "16 November 2026" in text and not re.search(r"\b\d{2}-\d{2}-\d{4}\b", text)
            # No claim of an electronic signature: an email is not a TTE (UU ITE, PP 71/2019).
            assert not NO_TTE.search(text)
            assert "Budi Santoso" in text
            if kind == "berita-acara":
                assert "Rina Kartika" in text and "1.250 jam efektif" in text
                assert ("melalui surat elektronik" if language == "id" else "by email") in text
                # The consultant signs on the right, with NIP.
                assert "NIP 198001012005011001" in text and right_half(pdf, "198001012005011001")
            else:
                # The signature block on the right: position, name, NIP of who assigned.
                assert f"NIP {nip}" in text and right_half(pdf, nip), (kind, text)
                assert name in text
            if kind == "disposisi":
                assert (
                    "Didisposisikan melalui surat elektronik" if language == "id" else "Disposed of by email"
                ) in text
                assert ("Biasa" if language == "id" else "Normal") in text
            if kind == "berita-acara" and language == "id":
                # "Pada hari ini Senin tanggal enam belas bulan November tahun dua ribu dua puluh enam"
                assert "enam belas" in text and "dua ribu dua puluh enam" in text
    finally:
        app.close()


@needs_poppler
def test_a_normative_answer_of_the_secretariat_has_minutes_but_no_surat_tugas(
    tmp_path: Path, clock: Clock
) -> None:
    """SOP 000: the secretariat answers a normative question itself; nobody is assigned."""
    from mailbot.records.documents import DocumentError

    app = _app(tmp_path, clock, "sop-000")
    try:
        desk = Desk(app)
        desk.deliver(request_mail(body=QUESTION))
        desk.reply(
            desk.last(SECRETARIAT, "notify"),
            SECRETARIAT,
            "JAWAB\nJawaban normatif: lihat Permenpan RB 1/2020.",
        )
        text = rendered(_document(app, "berita-acara"), tmp_path).text
        assert "Tim Sekretariat" in text and "NIP 198802022010121002" in text and "Jawaban normatif" in text
        assert "(belum didisposisikan)" in rendered(_document(app, "disposisi"), tmp_path).text
        with pytest.raises(DocumentError, match="has not been assigned"):
            _document(app, "surat-tugas")
    finally:
        app.close()


@needs_poppler
def test_an_urgent_request_is_printed_segera_and_a_video_consultation_so_named(
    tmp_path: Path, clock: Clock
) -> None:
    app = _app(tmp_path, clock, "sop-002", medium="video")
    try:
        desk = Desk(app)
        desk.deliver(request_mail(body=QUESTION))
        desk.reply(desk.last(HEAD, "notify"), HEAD, "SEGERA")
        desk.reply(desk.last(HEAD, "notify"), HEAD, "ASSIGN Budi Santoso")
        desk.reply(desk.last(CONSULTANT, "assign"), CONSULTANT, "Jawaban.")
        assert desk.ticket().urgent
        text = rendered(_document(app, "disposisi"), tmp_path).text
        assert re.search(r"Sifat:\s+Segera", text) and "Sangat segera" not in text
        text = rendered(_document(app, "berita-acara"), tmp_path).text
        assert "melalui konferensi video" in text and "surat elektronik," not in text
    finally:
        app.close()


def _berita_acara_html(app: App) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", _document(app, "berita-acara")).split())


def test_the_berita_acara_medium_per_ticket_by_command(tmp_path: Path, clock: Clock) -> None:
    """SOP 004: the profile's medium (email) unless a ticket's own is recorded with MEDIA, by the
    auditor or a lead, in any case where the line has the command's shape; a later MEDIA wins."""
    app = _app(tmp_path, clock, "sop-004")
    try:
        desk = Desk(app)
        serve(desk, "sop-004")
        assert "dilaksanakan konsultasi melalui surat elektronik" in _berita_acara_html(app)
        assignment = desk.last(CONSULTANT, "assign")
        desk.reply(assignment, CONSULTANT, "media tatap muka")
        transcript = text_of(desk.last(CONSULTANT, "transcript"))
        assert "media konsultasi untuk Berita Acara dicatat: tatap muka" in transcript
        text = _berita_acara_html(app)
        assert "konsultasi secara tatap muka" in text
        assert "konsultasi melalui surat elektronik" not in text
        desk.reply(desk.last(HEAD, "notify"), HEAD, "MEDIA Zoom")
        assert "melalui konferensi video" in _berita_acara_html(app)
        # Not a medium: refused, nothing changes; prose that starts with "Media" is no command.
        desk.reply(assignment, CONSULTANT, "MEDIA kantor")
        assert "DITOLAK: tulis MEDIA email" in text_of(desk.last(CONSULTANT, "transcript"))
        assert desk.ticket().fields["consultation_medium"] == "video"
    finally:
        app.close()


def test_a_medium_given_with_the_answer(tmp_path: Path, clock: Clock) -> None:
    app = _app(tmp_path, clock, "sop-002")
    try:
        desk = Desk(app)
        desk.deliver(request_mail(body=QUESTION))
        desk.reply(desk.last(HEAD, "notify"), HEAD, "ASSIGN Budi Santoso")
        desk.reply(
            desk.last(CONSULTANT, "assign"), CONSULTANT, "MEDIA video\nJAWAB\nSudah dibahas melalui Zoom."
        )
        assert desk.ticket().fields["consultation_medium"] == "video"
        assert "melalui konferensi video" in _berita_acara_html(app)
        answer = text_of(desk.last(APPLICANT, "answer"))
        assert "Sudah dibahas melalui Zoom." in answer and "MEDIA" not in answer
    finally:
        app.close()


@needs_poppler
def test_a_long_answer_flows_onto_a_second_page_without_a_page_of_footer_only(
    tmp_path: Path, clock: Clock
) -> None:
    app = _app(tmp_path, clock, "sop-002")
    try:
        paragraph = (
            "Analisis beban kerja disusun per jabatan dengan jam kerja efektif 1.250 jam setahun. " * 6
        )
        serve(Desk(app), "sop-002", answer="\n\n".join(f"{i}. {paragraph}" for i in range(1, 9)))
        pdf = rendered(_document(app, "berita-acara"), tmp_path)
        assert pdf.pages >= 2
        # Every page carries body text besides the footer (generated by the system ... ; 1 / 2).
        for page in range(1, pdf.pages + 1):
            body = [w for w in pdf.words if w.page == page and w.y1 < 760]
            assert len(body) > 20, page
    finally:
        app.close()


def test_figures_and_dates_as_indonesian_writes_them() -> None:
    from decimal import Decimal
    from fractions import Fraction

    assert figure(Decimal("88.31"), 2) == "88,31" and figure(30.5, 1) == "30,5"
    assert figure(1250) == "1.250" and figure(1250, 0, "en") == "1,250"
    assert figure(Fraction(2, 3), 2) == "0,67" and figure(Decimal("0.125"), 2) == "0,13"  # half up
    assert (
        long_date(date(2026, 12, 4)) == "4 Desember 2026"
        and long_date(date(2026, 12, 4), "en") == "4 December 2026"
    )
    assert terbilang(16) == "enam belas" and terbilang(2026) == "dua ribu dua puluh enam"
    assert (
        terbilang(11) == "sebelas"
        and terbilang(100) == "seratus"
        and terbilang(1999) == "seribu sembilan ratus sembilan puluh sembilan"
    )


# --- through the command line ------------------------------------------------------------------


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "mailbot", "--config", str(tmp_path / "mailbot.toml"), *args],
        cwd=ROOT,
        capture_output=True,
        timeout=120,
    )


def _served(desk: Desk) -> None:
    desk.deliver(request_mail(body=QUESTION))
    desk.reply(desk.last(HEAD, "notify"), HEAD, "ASSIGN Budi Santoso")
    desk.reply(desk.last(CONSULTANT, "assign"), CONSULTANT, "Gunakan 1.250 jam efektif per tahun.")


@needs_poppler
@pytest.mark.parametrize("kind", ["disposisi", "surat-tugas", "berita-acara"])
def test_documents_render_to_html_and_pdf(desk: Desk, tmp_path: Path, kind: str) -> None:
    _served(desk)
    html = _cli(tmp_path, "document", "KONS-2026-000001", "--kind", kind)
    assert html.returncode == 0, html.stderr
    page = html.stdout.decode()
    assert "KONS-2026-000001" in page
    assert "<script>" not in page
    if kind != "surat-tugas":  # the Surat Tugas does not quote the question
        assert "&lt;script&gt;" in page
    pdf = tmp_path / f"{kind}.pdf"
    out = _cli(tmp_path, "document", "KONS-2026-000001", "--kind", kind, "--format", "pdf", "-o", str(pdf))
    assert out.returncode == 0, out.stderr
    # WeasyPrint logs nothing: no CSS property it ignores, no image it cannot load.
    assert b"WARNING" not in out.stderr and b"Ignored" not in out.stderr, out.stderr
    text = read_pdf(pdf.read_bytes(), tmp_path, "cli").text
    assert "KONS-2026-000001" in text and "Budi Santoso" in text


def test_document_numbers_are_fixed_once(desk: Desk, tmp_path: Path) -> None:
    _served(desk)
    first = _cli(tmp_path, "document", "KONS-2026-000001", "--kind", "surat-tugas").stdout.decode()
    again = _cli(tmp_path, "document", "KONS-2026-000001", "--kind", "surat-tugas").stdout.decode()
    assert "ST-0001/KONS/2026" in first and "ST-0001/KONS/2026" in again


def test_no_surat_tugas_before_an_assignment(desk: Desk, tmp_path: Path) -> None:
    desk.deliver(request_mail())
    out = _cli(tmp_path, "document", "KONS-2026-000001", "--kind", "surat-tugas")
    assert out.returncode == 1 and b"has not been assigned" in out.stderr


# --- the period report -------------------------------------------------------------------------


@needs_poppler
def test_period_report_figures_against_a_hand_built_set(desk: Desk, tmp_path: Path, clock) -> None:
    # Three requests: two answered (one late: the 10-minute disposition missed), one still new.
    _served(desk)  # on time: assigned and answered at once
    desk.deliver(request_mail(sender="agus@example.go.id", name="Agus Salim", subject="Soal dua"))
    clock.advance(minutes=30)
    desk.app.sweep_deadlines()  # the second ticket's disposition is now overdue → escalation
    desk.reply(desk.last(HEAD, "notify"), HEAD, "ASSIGN Budi Santoso")
    desk.reply(desk.last(CONSULTANT, "assign"), CONSULTANT, "Jawaban kedua.")
    desk.deliver(request_mail(sender="dewi@example.go.id", name="Dewi", subject="Soal tiga"))
    # One survey: 4 4 3 4 4 4 4 3 4 → IKM 94.44 (A).
    desk.deliver(reply_from_applicant(desk.last(APPLICANT, "answer").raw, "4 4 3 4 4 4 4 3 4"))
    out = _cli(tmp_path, "report", "period", "--from", "2026-11-01", "--to", "2026-11-30", "--format", "json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["total"] == {
        "name": "Jumlah",
        "received": 3,
        "completed": 2,
        "in_time": 1,
        "late": 1,
        "respondents": 1,
        "ikm": 94.44,
        "grade": "A",
    }
    assert {g["name"]: g["received"] for g in report["by_consultant"]} == {
        CONSULTANT: 2,
        "(belum ditugaskan)": 1,
    }
    assert {s["step"]: (s["in_time"], s["late"]) for s in report["steps"]} == {
        "assign": (1, 1),
        "review": (2, 0),
    }
    # Weeks from Monday: 1 (a Sunday), 2-8, 9-15, 16-22, 23-29, 30.
    assert [w["received"] for w in report["weeks"]] == [0, 0, 0, 3, 0, 0]
    csv = _cli(tmp_path, "report", "period", "--from", "2026-11-01", "--to", "2026-11-30", "--format", "csv")
    assert b"total,Jumlah,3,2,1,1,1,94.44,A" in csv.stdout
    assert b"consultant,budi.santoso@bpsdm.example.go.id,2,2,1,1,1,94.44,A,Budi Santoso" in csv.stdout
    pdf = tmp_path / "laporan.pdf"
    args = (
        "report",
        "period",
        "--from",
        "2026-11-01",
        "--to",
        "2026-11-30",
        "--format",
        "pdf",
        "-o",
        str(pdf),
    )
    assert _cli(tmp_path, *args).returncode == 0
    text = read_pdf(pdf.read_bytes(), tmp_path, "laporan").text
    assert "LAPORAN HASIL LAYANAN KONSULTASI" in text and "94,44" in text and "Biro Perencanaan" in text
    assert "1 s.d. 30 November 2026" in text


def survey_reply(answer: models.OutboundMessage, sender: str, scores: str = "4 4 3 4 4 4 4 3 4") -> bytes:
    """The applicant's reply to the answer mail, the survey's scores on top, the answer quoted."""
    return reply_bytes(answer, sender, scores)


UNITS = [
    "Biro Perencanaan",
    "Direktorat Jenderal Pembangunan dan Pemberdayaan Masyarakat Desa",
    "Subbagian_Perencanaan_dan_Penganggaran_Kegiatan_Prioritas_Nasional_Tahun_Anggaran",
    '=HYPERLINK("http://x.example")',
]


@needs_poppler
@pytest.mark.parametrize("language", ["id", "en"])
def test_the_laporan_reads_at_a_glance(tmp_path: Path, clock: Clock, language: str) -> None:
    app = _app(tmp_path, clock, "sop-004" if language == "id" else "sop-002", language)
    profile = app.config.profile
    try:
        desk = Desk(app)
        for i, unit in enumerate(UNITS):
            desk.deliver(request_mail(
                sender=f"p{i}@example.go.id", name=f"Pemohon {i}", subject=f"Soal {i}",
                body=QUESTION.replace("Biro Perencanaan", unit),
            ))  # fmt: skip
            if profile.id == "sop-004":
                desk.reply(desk.last(HEAD, "notify"), HEAD, "ASSIGN Irban II")
                desk.reply(desk.last(IRBAN2, "assign"), IRBAN2, "ASSIGN Budi Santoso")
            else:
                desk.reply(desk.last(HEAD, "notify"), HEAD, "ASSIGN Budi Santoso")
            desk.reply(desk.last(CONSULTANT, "assign"), CONSULTANT, f"Jawaban {i}.")
            desk.deliver(survey_reply(desk.last(f"p{i}@example.go.id", "answer"), f"p{i}@example.go.id"))
            clock.advance(days=3)
        with app.sessions() as session:
            report = period_report(session, app.config, date(2026, 11, 1), date(2026, 11, 30))
        html = render_period_html(app.config, report, clock())
        pdf = rendered(html, tmp_path, "laporan")
        text = pdf.text
        # Names and positions instead of addresses; the profile's title instead of its id.
        assert "Budi Santoso" in text and "Analis SDM Aparatur" in text
        assert "budi.santoso@" not in text and f" {profile.id} " not in text
        assert all(
            any(w.text == word for w in pdf.words) for word in profile.title.split()
        )  # a cell wraps it
        # Headers that fit: each a word of its own in the table.
        headers = ["Masuk", "Selesai", "Terlambat", "Responden"] if language == "id" else [
            "Received", "Answered", "Late", "Respondents"]  # fmt: skip
        for header in headers:
            assert any(w.text == header for w in pdf.words), header
        # The charts: requests per week, in time and late per step, the IKM per element.
        per_week, per_element = ("Pengajuan per minggu", "IKM per unsur") if language == "id" else (
            "Requests per week", "IKM per element")  # fmt: skip
        assert per_week in text
        assert ("94,44" if language == "id" else "94.44") in text
        assert "U1 Persyaratan" in text if language == "id" else "U1 Requirements" in text
        # Every step that ran has its row, named as the profile names it (SOP 004: the Irban's own
        # hour to name the auditor, then the auditor's), with the columns of section B.
        ran = ["assign", "assign_auditor", "review", "report"]  # the report to the Inspektur: open
        if profile.id == "sop-002":
            ran = ["assign", "review"]
        assert [r.step for r in report.steps] == ran
        assert all(f"<td>{r.title}</td>" in html for r in report.steps)
        assert any(w.text == ("Dimulai" if language == "id" else "Started") for w in pdf.words)
        # A signature block: the head's name and NIP on the right.
        assert "NIP 197503152000032001" in text and right_half(pdf, "197503152000032001")
        del per_element
    finally:
        app.close()


# --- the published SKM result ------------------------------------------------------------------

MALE_NIP = "19800101 200501 1 001"


@needs_poppler
@pytest.mark.parametrize("language", ["id", "en"])
def test_the_published_skm_result_as_a_one_page_poster(tmp_path: Path, clock: Clock, language: str) -> None:
    from mailbot.records.skm_result import skm_files, skm_result

    app = _app(tmp_path, clock, "sop-002", language)
    try:
        desk = Desk(app)
        # Three respondents: NRR U1 (4+3+4)/3, U3 and U8 (3+3+4)/3, U4 4; IKM 98/3 x 1/9 x 25 = 90,74 (A).
        for i, scores in enumerate(["4 4 3 4 4 4 4 3 4", "3 3 3 4 3 3 3 3 3", "4 4 4 4 4 4 4 4 4"]):
            body = QUESTION.replace("Biro Perencanaan", f"Unit Rahasia {i}")
            if i == 2:
                body = body.replace("19860926 201505 2 001", MALE_NIP)
            sender = f"p{i}@example.go.id"
            desk.deliver(
                request_mail(sender=sender, name=f"Pemohon Rahasia {i}", subject=f"Soal {i}", body=body)
            )
            desk.reply(desk.last(HEAD, "notify"), HEAD, "ASSIGN Budi Santoso")
            desk.reply(desk.last(CONSULTANT, "assign"), CONSULTANT, f"Jawaban {i}.")
            desk.deliver(survey_reply(desk.last(sender, "answer"), sender, scores))
        with app.sessions() as session:
            result = skm_result(session, app.config, date(2026, 10, 1), date(2026, 12, 31))
        assert result.tally.respondents == 3 and result.ikm is not None and str(result.ikm.rounded) == "90.74"
        assert result.respondents.gender == {"female": 2, "male": 1}
        files = skm_files(app.config, result, clock(), language)
        with renderer_warnings() as warnings:
            pdf = rendered(files.html, tmp_path, "skm")
        assert warnings == []
        text = pdf.text
        assert pdf.pages == 1
        if language == "id":
            for part in ("HASIL SURVEI KEPUASAN MASYARAKAT", "Triwulan IV 2026", "90,74", "Sangat Baik",
                         "3,67", "3,33", "4,00", "Rencana tindak lanjut",
                         "Menambah kanal pengaduan"):  # fmt: skip
                assert part in text, part
            assert re.search(r"^\s*Laki-laki\s+1$", text, re.M) and re.search(
                r"^\s*Perempuan\s+2$", text, re.M
            )
        else:
            for part in ("COMMUNITY SATISFACTION SURVEY RESULT", "Quarter IV 2026", "90.74", "Very good",
                         "3.67", "3.33", "Women", "Follow-up plan"):  # fmt: skip
                assert part in text, part
            assert re.search(r"^\s*Men\s+1$", text, re.M)
        # No personal data: no respondent's name, address, NIP, unit or question, on poster or page.
        for secret in ("Rahasia", "@example.go.id", "19860926", "198001012005", "ABK", "Budi Santoso"):
            assert secret not in text and secret not in files.html, secret
        if shutil.which("pdftoppm"):
            assert files.png is not None and files.png.startswith(b"\x89PNG")
    finally:
        app.close()


@needs_poppler
def test_the_skm_result_of_a_period_without_surveys(tmp_path: Path, clock: Clock) -> None:
    from mailbot.records.skm_result import render_skm_html, skm_result

    app = _app(tmp_path, clock, "sop-002")
    try:
        with app.sessions() as session:
            result = skm_result(session, app.config, date(2026, 1, 1), date(2026, 6, 30))
        pdf = rendered(render_skm_html(app.config, result, clock()), tmp_path)
        assert pdf.pages == 1 and "Semester I 2026" in pdf.text and "Belum ada survei" in pdf.text
    finally:
        app.close()
