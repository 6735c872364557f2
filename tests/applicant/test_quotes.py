"""Quote stripping on real reply text: the corpus' clients and our own Indonesian samples."""

from __future__ import annotations

import pytest

from mailbot.core.message import parse_message
from mailbot.core.quotes import strip_quotes
from tests.conftest import CORPUS, DATA

REPLIES = DATA / "replies"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("outlook_id.txt", "Baik, terima kasih atas penjelasannya. Kami akan menyusun ABK sesuai arahan."),
        ("gmail_id.txt", "Apakah perhitungan tersebut juga berlaku untuk jabatan pelaksana?"),
        ("outlook_old_id.txt", "Mohon maaf, lampiran SK kami kirim menyusul."),
        ("apple_id.txt", "Terlampir SK pembentukan unit kami."),
        ("thunderbird_id.txt", "Nomor telepon kantor kami (0321) 329188."),
        ("mobile_id.txt", "Siap, terima kasih Pak."),
        (
            "outlook_en.txt",
            "Thank you, that answers my question.\n\n- first point understood\n- second point understood",
        ),
    ],
)
def test_indonesian_and_english_clients(name: str, expected: str) -> None:
    assert strip_quotes((REPLIES / name).read_text()) == expected


@pytest.mark.parametrize(
    "name",
    [
        "reply_talon_android_base64_ru.eml",
        "reply_talon_apple_mail.eml",
        "reply_talon_gmail.eml",
        "reply_talon_outlook.eml",
        "reply_talon_yahoo.eml",
    ],
)
def test_corpus_replies(name: str) -> None:
    if not (CORPUS / name).exists():
        pytest.skip("corpus absent")
    assert parse_message((CORPUS / name).read_bytes()).new_text == "Hello"


def test_corpus_share_block_keeps_the_whole_new_text() -> None:
    if not (CORPUS / "reply_talon_share_block_base64.eml").exists():
        pytest.skip("corpus absent")
    text = parse_message((CORPUS / "reply_talon_share_block_base64.eml").read_bytes()).new_text
    assert text.startswith("Hi Katharine.") and "proposal" in text and "wrote:" not in text


def test_text_without_quote_is_kept() -> None:
    text = "Jawaban:\n1. Gunakan 1.250 jam efektif.\n2. Susun per jabatan.\n- catatan: cek peta jabatan"
    assert strip_quotes(text) == text


def _reply(body: str) -> bytes:
    return (
        "From: Rina Kartika <rina.kartika@kemendesa.example.go.id>\r\n"
        "To: konsultasi@bpsdm.example.go.id\r\nSubject: Re: Konsultasi\r\n"
        "Message-ID: <reply@kemendesa.example.go.id>\r\nIn-Reply-To: <root@bpsdm.example.go.id>\r\n"
        f"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    ).encode()


GMAIL_HISTORY = (
    "Pada Sen, 16 Nov 2026 pukul 09.00 Layanan Konsultasi <konsultasi@bpsdm.example.go.id>\r\n"
    "menulis:\r\n\r\n> Yth. Bapak/Ibu,\r\n> Nomor tiket Bapak/Ibu KONS-2026-0001.\r\n"
)


def test_a_long_line_of_the_reply_is_kept_whole_and_the_history_still_cut() -> None:
    """mail-parser-reply reads a bounded copy (500 characters a line); the cut it finds is a line
    of the real text, so the reply's own long line comes back whole."""
    long_line = "Terlampir rincian perhitungan jam efektif " + "dan uraian tugas jabatan " * 120
    text = parse_message(
        _reply(f"Baik, terima kasih.\r\n\r\n{long_line.strip()}\r\n\r\n{GMAIL_HISTORY}")
    ).new_text
    assert text == f"Baik, terima kasih.\n\n{long_line.strip()}"


def test_blank_lines_and_wide_spaces_do_not_move_the_cut() -> None:
    body = "Siap,    data   kami   kirim   besok." + "\r\n" * 500 + "Salam\r\nRina\r\n\r\n" + GMAIL_HISTORY
    assert parse_message(_reply(body)).new_text == "Siap,    data   kami   kirim   besok."


def test_history_beyond_what_the_library_reads_is_cut_by_our_own_rules() -> None:
    filler = "\r\n".join(f"Baris {i}: uraian kegiatan pendampingan desa tahap kedua." for i in range(1000))
    body = (
        f"{filler}\r\n\r\nOn Mon, 16 Nov 2026 at 09:00, konsultasi@bpsdm.example.go.id wrote:\r\n> lama\r\n"
    )
    text = parse_message(_reply(body)).new_text
    assert text.endswith("Baris 999: uraian kegiatan pendampingan desa tahap kedua.") and "wrote" not in text
