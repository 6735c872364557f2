"""The assignee's own signature block (name, NIP, phone) is cut from the answer; the answer's own
text, office numbers in a sentence included, is kept."""

from __future__ import annotations

import pytest

from mailbot.core.staff_signature import strip_staff_signature

SIGNER = {"names": ["Budi Santoso"], "nip": "198001012005011001", "position": "Analis SDM Aparatur"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "ABK disusun per jabatan.\n\nTerima kasih,\nBudi Santoso\nAnalis SDM Aparatur\n"
            "NIP. 198001012005011001\nTelp. 0812-9999-8888 (WA)",
            "ABK disusun per jabatan.",
        ),
        (
            "Demikian disampaikan, atas perhatiannya terima kasih.\n\n"
            "Budi Santoso\nBagian Umum\nWA 0812-9999-8888",
            "Demikian disampaikan, atas perhatiannya terima kasih.",
        ),
        ("Jawab singkat.\nTks\nBudi\n081299998888", "Jawab singkat."),
        ("Jawaban.\n\nTtd,\nBudi Santoso, S.E., M.Si.\nNIP. 19800101 200501 1 001", "Jawaban."),
        ("Jawaban.\nEmail: budi@x.go.id", "Jawaban."),
        # Kept: the answer's own sentences, a closing that names nobody, the signer named in prose.
        (
            "Jawaban.\nSilakan hubungi BKN di 021-8093008 untuk informasi.",
            "Jawaban.\nSilakan hubungi BKN di 021-8093008 untuk informasi.",
        ),
        (
            "Jawaban.\nEmail permohonan dikirim ke bkn@bkn.go.id",
            "Jawaban.\nEmail permohonan dikirim ke bkn@bkn.go.id",
        ),
        ("Jawaban lengkap.\n\nTerima kasih.", "Jawaban lengkap.\n\nTerima kasih."),
        (
            "Budi Santoso menyarankan agar Ibu mengisi formulir.",
            "Budi Santoso menyarankan agar Ibu mengisi formulir.",
        ),
        ("Budi Santoso\nNIP. 198001012005011001", "Budi Santoso\nNIP. 198001012005011001"),
    ],
)
def test_strip_staff_signature(text: str, expected: str) -> None:
    assert strip_staff_signature(text, **SIGNER) == expected


def test_a_long_mail_is_read_from_its_end_only() -> None:
    text = "baris jawaban\n" * 50_000 + "Budi Santoso\n0812 9999 8888"
    assert strip_staff_signature(text, **SIGNER) == text[: -len("\nBudi Santoso\n0812 9999 8888")]
