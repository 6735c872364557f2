"""Documents and the period report: HTML and PDF (read back with pdftotext), figures by hand."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import CONSULTANT, HEAD, ROOT, request_mail
from tests.desk import Desk

APPLICANT = "rina.kartika@kemendesa.example.go.id"
needs_pdftotext = pytest.mark.skipif(
    shutil.which("pdftotext") is None, reason="poppler-utils (./test.sh installs it)"
)


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "mailbot", "--config", str(tmp_path / "mailbot.toml"), *args],
        cwd=ROOT,
        capture_output=True,
        timeout=120,
    )


def _pdf_text(path: Path) -> str:
    out = subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], capture_output=True, timeout=60, check=True
    )
    return out.stdout.decode()


def _served(desk: Desk) -> None:
    desk.deliver(
        request_mail(
            body=(
                "Nama Lengkap : Rina Kartika\nNIP : 19860926 201505 2 001\nUnit Kerja : Biro Perencanaan\n"
                "Jabatan : Analis Kebijakan\nNo. HP : 0812-3456-7890\n\n"
                "Permasalahan: Bagaimana menyusun ABK? <script>alert('x')</script> <b>tebal</b>\n"
            )
        )
    )
    desk.reply(desk.last(HEAD, "notify"), HEAD, "ASSIGN Budi Santoso")
    desk.reply(desk.last(CONSULTANT, "assign"), CONSULTANT, "Gunakan 1.250 jam efektif per tahun.")


@needs_pdftotext
@pytest.mark.parametrize("kind", ["disposisi", "surat-tugas", "berita-acara"])
def test_documents_render_to_html_and_pdf(desk: Desk, tmp_path: Path, kind: str) -> None:
    _served(desk)
    html = _cli(tmp_path, "document", "KONS-2026-000001", "--kind", kind)
    assert html.returncode == 0, html.stderr
    page = html.stdout.decode()
    assert "KONS-2026-000001" in page
    # Text from mail never reaches the document as markup.
    assert "<script>" not in page
    if kind != "surat-tugas":  # the Surat Tugas does not quote the question
        assert "&lt;script&gt;" in page
    pdf = tmp_path / f"{kind}.pdf"
    out = _cli(tmp_path, "document", "KONS-2026-000001", "--kind", kind, "--format", "pdf", "-o", str(pdf))
    assert out.returncode == 0, out.stderr
    assert pdf.read_bytes().startswith(b"%PDF")
    text = _pdf_text(pdf)
    assert "KONS-2026-000001" in text and "Budi Santoso" in text
    title = {"disposisi": "LEMBAR DISPOSISI", "surat-tugas": "SURAT TUGAS", "berita-acara": "BERITA ACARA"}[
        kind
    ]
    assert title in text
    if kind == "berita-acara":
        assert "Rina Kartika" in text and "1.250 jam efektif" in text


def test_document_numbers_are_fixed_once(desk: Desk, tmp_path: Path) -> None:
    _served(desk)
    first = _cli(tmp_path, "document", "KONS-2026-000001", "--kind", "surat-tugas").stdout.decode()
    again = _cli(tmp_path, "document", "KONS-2026-000001", "--kind", "surat-tugas").stdout.decode()
    assert "ST-0001/KONS/2026" in first and "ST-0001/KONS/2026" in again


def test_no_surat_tugas_before_an_assignment(desk: Desk, tmp_path: Path) -> None:
    desk.deliver(request_mail())
    out = _cli(tmp_path, "document", "KONS-2026-000001", "--kind", "surat-tugas")
    assert out.returncode == 1 and b"has not been assigned" in out.stderr


@needs_pdftotext
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
    from tests.test_answer_survey import reply_from_applicant

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
    csv = _cli(tmp_path, "report", "period", "--from", "2026-11-01", "--to", "2026-11-30", "--format", "csv")
    assert b'total,"Jumlah",3,2,1,1,1,94.44,A' in csv.stdout
    pdf = tmp_path / "laporan.pdf"
    assert (
        _cli(
            tmp_path,
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
        ).returncode
        == 0
    )
    text = _pdf_text(pdf)
    assert "LAPORAN HASIL LAYANAN KONSULTASI" in text and "94.44" in text and "Biro Perencanaan" in text
