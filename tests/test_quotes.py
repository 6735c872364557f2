"""Quote stripping on real reply text: the corpus' clients and our own Indonesian samples."""

from __future__ import annotations

import pytest

from mailbot.parse import parse_message
from mailbot.quotes import strip_quotes
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
