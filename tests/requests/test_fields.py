"""Field extraction and NIP / NI PPPK / NIK / phone validation, table-driven on real message text."""

from __future__ import annotations

from datetime import date

import pytest

from mailbot.core.fields import extract_fields, label_field, merge_fields, validate_fields
from mailbot.core.html_text import html_to_text
from mailbot.core.identity import validate_id_number
from mailbot.core.message import parse_message
from mailbot.core.phone import split_phone, validate_phone
from tests.conftest import CORPUS, DATA

TODAY = date(2026, 11, 21)
ALL = ("name", "id_number", "unit", "position", "phone", "question")


@pytest.mark.parametrize(
    ("label", "field"),
    [
        ("Nama", "name"),
        ("Nama Lengkap", "name"),
        ("**Nama Lengkap**", "name"),
        ("Full Name", "name"),
        ("NIP", "id_number"),
        ("NIK", "id_number"),
        ("NIP/NIK", "id_number"),
        ("NIP / NIK", "id_number"),
        ("NI PPPK", "id_number"),
        ("Unit Kerja", "unit"),
        ("Instansi", "unit"),
        ("Unit Kerja/Instansi", "unit"),
        ("Work unit", "unit"),
        ("Jabatan", "position"),
        ("Position", "position"),
        ("No. HP", "phone"),
        ("No.HP", "phone"),
        ("Nomor Telepon", "phone"),
        ("No HP / WA", "phone"),
        ("Telp.", "phone"),
        ("Phone number", "phone"),
        ("Permasalahan", "question"),
        ("Substansi Permasalahan", "question"),
        ("Pertanyaan", "question"),
        ("Question", "question"),
        ("Tanggal", None),
        ("Hormat saya", None),
    ],
)
def test_label_variants(label: str, field: str | None) -> None:
    assert label_field(label) == field


GREETING_QUESTION = "Selamat siang, saya Rina dari Biro Perencanaan, ingin bertanya tentang penyusunan ABK."
EXTRACTION_CASES = [
    pytest.param(
        "Nama Lengkap : Rina Kartika\nNIP : 19860926 201505 2 001\nUnit Kerja : Biro Umum\n"
        "Jabatan : Analis\nNo. HP : 0812-3456-7890\nPermasalahan : Bagaimana cara menyusun ABK?\n",
        {
            "name": "Rina Kartika",
            "id_number": "19860926 201505 2 001",
            "unit": "Biro Umum",
            "position": "Analis",
            "phone": "0812-3456-7890",
            "question": "Bagaimana cara menyusun ABK?",
        },
        id="colon-aligned",
    ),
    pytest.param(
        "- Nama = Agus\n- NIK = 3516041205880003\n* Instansi = Desa Sukamaju\n"
        "• Jabatan - Sekretaris Desa\n1. Telepon: (0321) 329188\n",
        {
            "name": "Agus",
            "id_number": "3516041205880003",
            "unit": "Desa Sukamaju",
            "position": "Sekretaris Desa",
            "phone": "(0321) 329188",
        },
        id="bullets-and-separators",
    ),
    pytest.param(
        "*Nama:* Dewi\n**NIP/NIK**: 1990 0101 2019 0320 01\n__Unit Kerja__: Itjen\n",
        {"name": "Dewi", "id_number": "1990 0101 2019 0320 01", "unit": "Itjen"},
        id="bold-labels",
    ),
    pytest.param(
        "| Nama | Yohanes |\n| Jabatan | Pendamping Desa |\n",
        {"name": "Yohanes", "position": "Pendamping Desa"},
        id="pipe-table",
    ),
    pytest.param(
        "Nama:\nSiti Aminah\nPertanyaan:\nApakah tunjangan kinerja dibayarkan\nselama cuti besar?\n\n"
        "Terima kasih\nSiti",
        {"name": "Siti Aminah", "question": "Apakah tunjangan kinerja dibayarkan\nselama cuti besar?"},
        id="values-on-next-line-multiline-question",
    ),
    pytest.param(
        "Yth. Bapak/Ibu,\nDengan hormat,\n"
        "Saya ingin bertanya mengenai prosedur mutasi pegawai antar instansi.\n"
        "Nama: Andi\n\nSalam,\nAndi",
        {"name": "Andi", "question": "Saya ingin bertanya mengenai prosedur mutasi pegawai antar instansi."},
        id="unlabelled-question-is-the-prose",
    ),
    pytest.param(
        "Full name: John Tan\nEmployee ID: 199001012019031002\nWork unit: Bureau of Planning\n"
        "Position: Analyst\nPhone: +62 812 3456 7890\nQuestion: How is the workload analysis done?",
        {
            "name": "John Tan",
            "id_number": "199001012019031002",
            "unit": "Bureau of Planning",
            "position": "Analyst",
            "phone": "+62 812 3456 7890",
            "question": "How is the workload analysis done?",
        },
        id="english-labels",
    ),
    # Several fields on one line, as people type them into a reply.
    pytest.param(
        "NIP/NIK: 198609262015052001  Unit Kerja/Instansi: Dinas PMD Kab. Jayapura"
        "  Nomor Telepon: 081234567890",
        {"id_number": "198609262015052001", "unit": "Dinas PMD Kab. Jayapura", "phone": "081234567890"},
        id="fields-on-one-line-by-spaces",
    ),
    pytest.param(
        "Nama: Budi Santoso, NIP: 198609262015052001, Unit Kerja: Biro Perencanaan, Kementerian Desa PDTT;"
        " Jabatan: Analis  No. HP: 0812-3456-7890",
        {
            "name": "Budi Santoso",
            "id_number": "198609262015052001",
            "unit": "Biro Perencanaan, Kementerian Desa PDTT",
            "position": "Analis",
            "phone": "0812-3456-7890",
        },
        id="fields-on-one-line-by-commas",
    ),
    pytest.param(
        # A comma in a value, or a colon after a word that names no field, splits nothing.
        "Unit Kerja: Biro Perencanaan, Kementerian Desa PDTT\nJabatan: Kepala Seksi, Bidang: Umum\n"
        "Pertanyaan: Bagaimana cara menyusun ABK, NIP: apakah wajib dicantumkan?",
        {
            "unit": "Biro Perencanaan, Kementerian Desa PDTT",
            "position": "Kepala Seksi, Bidang: Umum",
            "question": "Bagaimana cara menyusun ABK, NIP: apakah wajib dicantumkan?",
        },
        id="one-line-splits-only-at-field-labels-never-in-the-question",
    ),
    pytest.param(
        "Yth. Bapak/Ibu,\nSaya ingin bertanya tentang ABK unit kami.\n\nHormat saya,\n\n\n"
        "Rina Kartika, S.E.\nNIP. 19860926 201505 2 001\nHP 0812-3456-7890",
        {
            "id_number": "19860926 201505 2 001",
            "phone": "0812-3456-7890",
            "question": "Saya ingin bertanya tentang ABK unit kami.",
        },
        id="numbers-under-the-closing-count-the-name-and-prose-there-do-not",
    ),
    pytest.param(
        "Pertanyaan saya tentang penyusunan ABK.\nTerima kasih.\nNIP: 19860926 201505 2 001\n"
        "Unit Kerja: Biro Perencanaan",
        {
            "id_number": "19860926 201505 2 001",
            "unit": "Biro Perencanaan",
            "question": "Pertanyaan saya tentang penyusunan ABK.",
        },
        id="labelled-fields-below-a-thank-you-line",
    ),
    pytest.param(
        "Salam,\nNama: Rina\nNIP: 19860926 201505 2 001\nPertanyaan: bagaimana ABK disusun?",
        {"name": "Rina", "id_number": "19860926 201505 2 001", "question": "bagaimana ABK disusun?"},
        id="a-closing-word-above-everything-is-a-greeting",
    ),
    pytest.param(
        "Nama saya : Rina Kartika\nPertanyaan: bagaimana ABK disusun?\n\nDikirim dari Yahoo Mail di Android",
        {"name": "Rina Kartika", "question": "bagaimana ABK disusun?"},
        id="a-label-in-the-first-person-and-a-phone-client-line",
    ),
    pytest.param(
        "Dikirim dari kantor pusat, saya ingin bertanya tentang penyusunan ABK.",
        {"question": "Dikirim dari kantor pusat, saya ingin bertanya tentang penyusunan ABK."},
        id="dikirim-dari-in-prose-is-no-client-line",
    ),
    pytest.param(
        GREETING_QUESTION,
        {"question": GREETING_QUESTION},
        id="a-long-line-that-starts-with-a-greeting-is-the-question",
    ),
]


@pytest.mark.parametrize(("text", "expected"), EXTRACTION_CASES)
def test_extract_fields(text: str, expected: dict[str, str]) -> None:
    assert extract_fields(text) == expected


def test_html_only_mail_with_table_and_bold_labels() -> None:
    msg = parse_message((DATA / "request_html_table.eml").read_bytes())
    assert msg.text == msg.html_text  # no text/plain part
    found = extract_fields(msg.text)
    assert found["name"] == "Agus Salim"
    assert found["unit"] == "Pemerintah Desa Sukamaju, Kab. Mojokerto"
    assert found["position"] == "Sekretaris Desa"
    result = validate_fields(found, ALL, TODAY)
    assert result.complete, result.issues
    assert result.values["id_number"] == "3516041205880003"
    assert result.values["phone"] == "+62321329188"
    assert "Dana Desa" in result.values["question"]


def test_html_to_text_escapes_and_scripts() -> None:
    html = (
        "<p>Nama: <b>A&amp;B</b></p><script>alert(1)</script><table><tr><td>NIP</td><td>1</td></tr></table>"
    )
    assert html_to_text(html) == "Nama: A&B\n\nNIP\t1"


@pytest.mark.parametrize(
    ("value", "kind", "error"),
    [
        ("19860926 201505 1 001", "nip", None),  # DOMAIN.md example
        ("198609262015051001", "nip", None),
        ("19860926.201505.1.001", "nip", None),
        ("19860926 201513 1 001", "nip", "nip_bad_appointment"),  # month 13
        ("19860926 201500 1 001", "nip", "nip_bad_appointment"),  # month 00
        ("19860230 201505 1 001", "nip", "nip_bad_birth_date"),  # 30 February
        ("19860926 201505 3 001", "nip", "nip_bad_gender"),
        ("19860926 199505 1 001", "nip", "nip_bad_appointment"),  # appointed at 8
        ("19900101 2022 2 1 1 001", "pppk", None),  # NI PPPK: digit 13 is 2
        ("199001012022214001", "pppk", "nip_bad_gender"),
        ("131234567", "nip_old", None),  # legacy 9 digits: accepted with a warning
        ("3273014101900001", "nik", None),  # woman: day 41 = 1st
        ("3273010101900001", "nik", None),
        ("9201010101050001", "nik", None),  # new Papua province (92): not rejected on region
        ("6501014507150001", "nik", None),  # Kalimantan Utara (65), born 2015 not 1915
        ("3273013202900001", "nik", "nik_bad_birth_date"),  # 32 February
        ("3273017201900001", "nik", "nik_bad_birth_date"),  # day 72
        ("0073010101900001", "nik", "nik_bad_format"),
        ("3273010101900000", "nik", "nik_bad_format"),
        ("1986 0926 2015", None, "id_bad_length"),
        ("tidak ada", None, "id_bad_length"),
    ],
)
def test_id_numbers(value: str, kind: str | None, error: str | None) -> None:
    _, got_kind, got_error = validate_id_number(value, TODAY)
    assert (got_kind, got_error) == (kind, error)


@pytest.mark.parametrize(
    ("value", "e164"),
    [
        ("0812-3456-7890", "+6281234567890"),
        ("+62 812 3456 7890", "+6281234567890"),
        ("62 812 3456 7890", "+6281234567890"),  # bare 62 is the country code
        ("6281234567890", "+6281234567890"),
        ("(0321) 329188", "+62321329188"),
        ("021-5551234", "+62215551234"),
        ("0812 3456 7890 (WA)", "+6281234567890"),
        ("0812-3456-7890 / 021-5551234", "+6281234567890"),
    ],
)
def test_valid_phones(value: str, e164: str) -> None:
    assert validate_phone(value) == (e164, None)


@pytest.mark.parametrize("value", ["12345", "0812", "nomor saya", "+1 202 555", "0000000000"])
def test_invalid_phones(value: str) -> None:
    assert validate_phone(value) == ("", "phone_invalid")


def test_validation_reports_each_missing_or_invalid_field() -> None:
    found = {"name": "Rina", "id_number": "1986", "phone": "12345", "question": "Bagaimana prosedurnya?"}
    result = validate_fields(found, ALL, TODAY)
    assert not result.complete
    assert [(i.field, i.code) for i in result.issues] == [
        ("id_number", "id_bad_length"),
        ("unit", "missing"),
        ("position", "missing"),
        ("phone", "phone_invalid"),
    ]
    assert result.values == {"name": "Rina", "question": "Bagaimana prosedurnya?"}


def test_only_required_fields_are_issues() -> None:
    result = validate_fields(
        {"name": "Rina Kartika", "question": "Pertanyaan saya panjang."}, ("name", "question"), TODAY
    )
    assert result.complete


def test_old_nip_is_a_warning_not_an_error() -> None:
    found = {
        "name": "Bambang",
        "id_number": "130 456 789",
        "unit": "Itjen",
        "position": "Auditor",
        "phone": "08123456789",
        "question": "Bagaimana prosedurnya?",
    }
    result = validate_fields(found, ALL, TODAY)
    assert result.complete
    assert [w.code for w in result.warnings] == ["nip_old"]


def test_name_with_digits_is_rejected() -> None:
    result = validate_fields({"name": "Rina 198609262015"}, ("name",), TODAY)
    assert [i.code for i in result.issues] == ["name_has_digits"]


def _every_mail() -> list[tuple[str, bytes]]:
    return [(p.name, p.read_bytes()) for p in [*sorted(DATA.glob("*.eml")), *sorted(CORPUS.glob("*.eml"))]]


@pytest.mark.parametrize(("name", "raw"), _every_mail(), ids=lambda v: v if isinstance(v, str) else "")
def test_html_part_is_read_only_when_the_text_lacks_a_field_with_the_same_result(
    name: str, raw: bytes
) -> None:
    """The HTML part is turned into text only when text/plain lacks a field; the fields found are
    those of reading both parts every time."""
    msg = parse_message(raw)
    text_fields = extract_fields(msg.text)
    needs_html = bool(msg.html) and not all(f in text_fields for f in ALL)
    both = merge_fields(text_fields, extract_fields(html_to_text(msg.html)) if msg.html else {})
    assert msg.request_fields == both
    html_only = bool(msg.html) and "text/plain" not in msg.content_types  # its text is the HTML's
    assert ("html_text" in msg.__dict__) == (needs_html or html_only)


def test_html_fills_a_field_the_text_part_lacks() -> None:
    raw = (
        b"From: Rina <rina@example.go.id>\r\nTo: konsultasi@x.go.id\r\nSubject: Konsultasi\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n"
        b"--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nNama: Rina Kartika\r\n"
        b"--b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
        b"<p><b>Nama:</b> Rina K.</p><p><b>Jabatan:</b> Analis Kebijakan</p>\r\n--b--\r\n"
    )
    msg = parse_message(raw)
    assert msg.request_fields["name"] == "Rina Kartika"  # the text part wins
    assert msg.request_fields["position"] == "Analis Kebijakan"  # the HTML part fills in


def test_html_is_not_read_when_the_text_part_has_every_field() -> None:
    plain = (
        "Nama Lengkap: Rina Kartika\r\nNIP: 198609262015051001\r\nUnit Kerja: Biro Perencanaan\r\n"
        "Jabatan: Analis Kebijakan\r\nNo. HP: 0812-3456-7890\r\n"
        "Pertanyaan: Bagaimana cara menyusun analisis beban kerja?\r\n"
    )
    raw = (
        "From: Rina <rina@example.go.id>\r\nTo: konsultasi@x.go.id\r\nSubject: Konsultasi\r\n"
        "MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n"
        f"--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{plain}"
        "--b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p><b>Nama:</b> Lain</p>\r\n--b--\r\n"
    ).encode()
    msg = parse_message(raw)
    assert msg.request_fields["name"] == "Rina Kartika" and set(msg.request_fields) == set(ALL)
    assert "html_text" not in msg.__dict__
    assert msg.html_text == "Nama: Lain"  # still there when asked for


# --- issue #18 item 6: parser robustness ------------------------------------------------------


def _mail(body: str, *, sender: str = "Rina Kartika <rina.kartika@kemendesa.example.go.id>") -> bytes:
    return (
        f"From: {sender}\r\nTo: konsultasi@bpsdm.example.go.id\r\nSubject: Konsultasi\r\n"
        "Date: Mon, 16 Nov 2026 09:00:00 +0700\r\nMessage-ID: <fields@kemendesa.example.go.id>\r\n"
        f"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    ).encode()


def test_html_with_an_unknown_marked_section_is_read_not_raised() -> None:
    """html.parser raises AssertionError on `<![foo[`; the fallback scan reads the same table."""
    raw = (
        b"From: Rina <rina@example.go.id>\r\nTo: konsultasi@x.go.id\r\nSubject: Konsultasi\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
        b"<html><body><![foo[ x ]]><table><tr><td><b>Nama</b></td><td>Rina &amp; Kartika</td></tr>"
        b"<tr><td>Jabatan</td><td>Analis</td></tr></table><script>alert(1)</script>"
        b"<p>Pertanyaan: Bagaimana cara menyusun ABK?</p></body></html>\r\n"
    )
    msg = parse_message(raw)
    assert msg.request_fields["name"] == "Rina & Kartika"
    assert msg.request_fields["position"] == "Analis"
    assert msg.request_fields["question"] == "Bagaimana cara menyusun ABK?"
    assert "alert" not in msg.text


@pytest.mark.parametrize(
    ("sender", "address", "name"),
    [
        ("Rína <rína@example.go.id>", "rína@example.go.id", "Rína"),
        ("user@bücher.example", "user@bücher.example", ""),
        ("=?utf-8?q?R=C3=ADna?= <RÍNA@Bücher.Example>", "rína@bücher.example", "Rína"),
        ('"Kartika, Rína" <rína@désa.example.go.id>', "rína@désa.example.go.id", "Kartika, Rína"),
    ],
)
def test_a_sender_address_with_unicode_is_kept_lowercased(sender: str, address: str, name: str) -> None:
    """RFC 6532: UTF-8 in the header as 8-bit bytes; the address stays Unicode (no punycode)."""
    msg = parse_message(_mail("halo", sender=sender))
    assert (msg.from_addr, msg.from_name) == (address, name)


# --- issue #19: identity numbers, phones, the question ----------------------------------------


@pytest.mark.parametrize(
    ("text", "id_number", "other"),
    [
        ("NIP : -\nNIK : 3516016609860001", "3516016609860001", ""),
        ("NIP : tidak ada\nNIK : 3516016609860001", "3516016609860001", ""),
        ("NIP: bukan PNS\nNIK: 3516016609860001", "3516016609860001", ""),
        ("NIP: belum ada\nNo. KTP: 3516016609860001", "3516016609860001", ""),
        ("NIP : –\nNIK : 3516016609860001", "3516016609860001", ""),
        ("NIP/NIK: 198609262015051001 / 3273012609860001", "198609262015051001", "3273012609860001"),
        ("NIP/NIK: 19860926 201505 1 001 - 3273012609860001", "198609262015051001", "3273012609860001"),
        ("NIK/NIP: 3273012609860001 / 198609262015051001", "198609262015051001", "3273012609860001"),
        ("NIP: 198609262015051001, NIK 3273012609860001", "198609262015051001", "3273012609860001"),
        ("NIP: 19860926 201505 1 001\nNIK: 3273012609860001", "198609262015051001", "3273012609860001"),
        # an invalid NIP beside a valid NIK: the NIK is the id number
        ("NIP/NIK: 19860926 201513 1 001 / 3273012609860001", "3273012609860001", "198609262015131001"),
    ],
)
def test_identity_number_placeholders_and_pairs(text: str, id_number: str, other: str) -> None:
    result = validate_fields(extract_fields(text), ("id_number",), TODAY)
    assert result.complete, result.issues
    assert result.values["id_number"] == id_number
    assert result.values.get("id_number_other", "") == other


@pytest.mark.parametrize("text", ["NIP : -", "NIP: tidak ada", "NIP/NIK: bukan PNS"])
def test_a_placeholder_alone_is_a_missing_number(text: str) -> None:
    result = validate_fields(extract_fields(text), ("id_number",), TODAY)
    assert [(i.field, i.code) for i in result.issues] == [("id_number", "missing")]


@pytest.mark.parametrize(
    ("value", "today", "kind", "error"),
    [
        ("19860926 202701 1 001", date(2026, 12, 15), "nip", None),  # TMT January of next year
        ("19900101 2027 2 1 1 001", date(2026, 12, 15), "pppk", None),
        ("19860926 202702 1 001", date(2026, 12, 15), "nip", "nip_bad_appointment"),  # February: no
        ("19860926 202801 1 001", date(2026, 12, 15), "nip", "nip_bad_appointment"),  # two years on
        ("19900101 2028 2 1 1 001", date(2026, 12, 15), "pppk", "nip_bad_appointment"),
        ("19860926 202601 1 001", date(2025, 12, 1), "nip", None),
    ],
)
def test_appointment_in_january_of_next_year(value: str, today: date, kind: str, error: str | None) -> None:
    _, got_kind, got_error = validate_id_number(value, today)
    assert (got_kind, got_error) == (kind, error)


@pytest.mark.parametrize(
    ("label", "field"),
    [
        ("Nama Lengkap (beserta gelar)", "name"),
        ("Nomor Telepon/HP (WA)", "phone"),
        ("NIP (bagi PNS)", "id_number"),
        ("Unit Kerja (Instansi)", "unit"),
        ("Jabatan (saat ini)", "position"),
        ("Pertanyaan (uraikan dengan jelas)", "question"),
        ("Tanggal (hari ini)", None),
    ],
)
def test_labels_with_a_note_in_parentheses(label: str, field: str | None) -> None:
    assert label_field(label) == field


@pytest.mark.parametrize(
    ("value", "e164", "note"),
    [
        ("(021) 5551234 psw. 123", "+62215551234", "psw. 123"),
        ("021 1234567 pes. 204", "+62211234567", "pes. 204"),
        ("0812 3456 7890 a.n. Budi", "+6281234567890", "a.n. Budi"),
        ("0812 3456 7890 (Budi)", "+6281234567890", "Budi"),
        ("0812 3456 7890 (WhatsApp only)", "+6281234567890", "WhatsApp only"),
        ("0812-3456-7890 (Kantor: 021-1234567)", "+6281234567890", "Kantor: 021-1234567"),
        ("0812-3456-7890 / 021-5551234", "+6281234567890", "021-5551234"),
        ("(0321) 329188 ext. 12", "+62321329188", "ext. 12"),
        ("Kantor (0321) 329188", "+62321329188", "Kantor"),
        ("+62 812 3456 7890 (WA & telepon)", "+6281234567890", "WA & telepon"),
        ("62 812 3456 7890 - Budi Santoso", "+6281234567890", "Budi Santoso"),
        ("0812 3456 7890", "+6281234567890", ""),
    ],
)
def test_phone_with_a_note(value: str, e164: str, note: str) -> None:
    assert split_phone(value) == (e164, None, note)
    result = validate_fields({"phone": value}, ("phone",), TODAY)
    assert result.values["phone"] == e164
    assert result.values.get("phone_note", "") == note


QUESTION = "Apakah tunjangan kinerja tetap dibayarkan selama cuti besar?"


@pytest.mark.parametrize(
    "closing",
    [
        "Atas perhatian Bapak/Ibu saya ucapkan terima kasih.",
        "Atas perhatian dan kerja samanya kami ucapkan terima kasih",
        "Demikian permohonan kami, atas perhatiannya diucapkan terima kasih.",
        "Demikian disampaikan.",
        "Demikian pertanyaan saya.\nAtas perhatian Bapak/Ibu diucapkan terima kasih.\n\nHormat saya,\nRina",
        "Terima kasih.\n\nRina Kartika\nAnalis Kebijakan\nNIP. 19860926 201505 2 001",
        "Terima kasih atas perhatiannya.",
        "Demikian disampaikan.\n\nSalam,\nBudi",
        "Wassalam\nBudi",
    ],
)
def test_the_closing_courtesy_is_not_part_of_the_question(closing: str) -> None:
    found = extract_fields(f"Nama: Rina Kartika\nPertanyaan:\n{QUESTION}\n\n{closing}\n")
    assert found["question"] == QUESTION
    unlabelled = extract_fields(f"Yth. Bapak/Ibu,\n\n{QUESTION}\n\n{closing}\n")
    assert unlabelled["question"] == QUESTION


@pytest.mark.parametrize(
    "question",
    [
        "Terima kasih atas jawaban sebelumnya. Apakah cuti besar juga mengurangi tunjangan?",
        "Apakah ucapan terima kasih kepada narasumber boleh berupa honorarium?\nBerapa besarannya?",
        "Demikian bunyi Pasal 5. Bagaimana penerapannya untuk PPPK?",
        "Bagaimana prosedurnya?\nTerima kasih atas jawabannya, namun bagaimana jika pegawai tersebut sedang "
        "menjalani tugas belajar dan belum kembali ke instansi asalnya?",
    ],
)
def test_a_question_that_only_contains_thanks_is_kept_whole(question: str) -> None:
    assert extract_fields(f"Pertanyaan: {question}\n")["question"] == question


def test_fields_of_issue_19_through_a_real_mail() -> None:
    body = (
        "Yth. Bapak/Ibu Admin Konsultasi,\r\n\r\n"
        "Nama Lengkap (beserta gelar) : Dr. Rina Kartika, S.E., M.Si.\r\n"
        "NIP : -\r\n"
        "NIK : 3516016609860001\r\n"
        "Unit Kerja : Pemerintah Desa Sukamaju\r\n"
        "Jabatan : Sekretaris Desa\r\n"
        "Nomor Telepon/HP (WA) : 0812-3456-7890 (Kantor: 021-1234567)\r\n"
        "Substansi Permasalahan :\r\n"
        "Bagaimana tata cara pertanggungjawaban Dana Desa tahap II?\r\n\r\n"
        "Atas perhatian Bapak/Ibu saya ucapkan terima kasih.\r\n\r\n"
        "Hormat saya,\r\nRina Kartika"
    )
    msg = parse_message(_mail(body))
    result = validate_fields(msg.request_fields, ALL, TODAY)
    assert result.complete, result.issues
    assert result.values == {
        "name": "Dr. Rina Kartika, S.E., M.Si.",
        "id_number": "3516016609860001",
        "unit": "Pemerintah Desa Sukamaju",
        "position": "Sekretaris Desa",
        "phone": "+6281234567890",
        "phone_note": "Kantor: 021-1234567",
        "question": "Bagaimana tata cara pertanggungjawaban Dana Desa tahap II?",
    }
