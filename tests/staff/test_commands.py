"""The command parser, name matching and the Authentication-Results check (pure parts)."""

from __future__ import annotations

import pytest

from mailbot.core.authz import authenticated
from mailbot.core.commands import Verb, fold, match_person, parse_commands
from mailbot.core.staff_text import not_an_answer, text_after_commands
from mailbot.settings import StaffMember


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ASSIGN Budi Santoso", [(Verb.ASSIGN, "Budi Santoso")]),
        ("TUGASKAN budi", [(Verb.ASSIGN, "budi")]),
        ("DISPOSISI: Dewi Lestari", [(Verb.ASSIGN, "Dewi Lestari")]),
        ("REQUEST-INFO Mohon kirim SK", [(Verb.REQUEST_INFO, "Mohon kirim SK")]),
        ("REQUEST INFO Mohon kirim SK", [(Verb.REQUEST_INFO, "Mohon kirim SK")]),
        ("MINTA-DATA lampiran SK", [(Verb.REQUEST_INFO, "lampiran SK")]),
        ("**URGENT**\nNOTE cek dulu", [(Verb.URGENT, ""), (Verb.NOTE, "cek dulu")]),
        ("\n\nSTATUS\nLIST\nHELP\n", [(Verb.STATUS, ""), (Verb.LIST, ""), (Verb.HELP, "")]),
        ("PERPANJANG 2 hari", [(Verb.EXTEND, "2 hari")]),
        ("TOLAK bukan kewenangan kami", [(Verb.REJECT, "bukan kewenangan kami")]),
        ("BUKA-KEMBALI", [(Verb.REOPEN, "")]),
        ("NORMATIF", [(Verb.NORMATIVE, "")]),
        ("MEDIA tatap muka", [(Verb.MEDIUM, "face_to_face")]),
        ("media: Zoom", [(Verb.MEDIUM, "video")]),
        ("Media luring\nJAWAB\nSudah.", [(Verb.MEDIUM, "face_to_face"), (Verb.ANSWER, "Sudah.")]),
        ("MEDIUM email", [(Verb.MEDIUM, "email")]),
        ("LAPORAN\nLayanan telah diberikan.", [(Verb.REPORT, "Layanan telah diberikan.")]),
        ("ARSIP", [(Verb.ARCHIVE, "")]),
        ("arsip", [(Verb.ARCHIVE, "")]),
        ("Normatif.", [(Verb.NORMATIVE, "")]),
        ("normative\nJAWAB\nSesuai PP 11/2017.", [(Verb.NORMATIVE, ""), (Verb.ANSWER, "Sesuai PP 11/2017.")]),
    ],
)
def test_parse_commands(text: str, expected: list[tuple[Verb, str]]) -> None:
    parsed = parse_commands(text)
    assert not parsed.errors
    assert [(c.verb, c.arg) for c in parsed.commands] == expected


def test_parsing_stops_at_the_first_line_that_is_not_a_command() -> None:
    parsed = parse_commands("ASSIGN Budi\nMohon segera ditindaklanjuti.\nCLOSE selesai\n")
    assert [c.verb for c in parsed.commands] == [Verb.ASSIGN]
    assert parsed.body.startswith("Mohon segera")


def test_answer_takes_the_rest_of_the_mail() -> None:
    parsed = parse_commands("NOTE normatif\nJAWAB\nSesuai PP 11/2017, cuti besar\ndiberikan setelah 5 tahun.")
    assert [c.verb for c in parsed.commands] == [Verb.NOTE, Verb.ANSWER]
    assert parsed.commands[1].arg == "Sesuai PP 11/2017, cuti besar\ndiberikan setelah 5 tahun."


def test_prose_and_lowercase_words_are_not_commands() -> None:
    for text in (
        "Status kepegawaian Anda sudah aktif.",
        "Catatan: harap dibaca",
        "note that this is fine",
        "> ASSIGN Budi",
        "Terima kasih",
        "Normatif saja: sesuai PP 11/2017 cuti besar diberikan setelah 5 tahun.",
        "Media sosial instansi kami belum aktif.",
        "Laporan:\nHasil telaah kami sebagai berikut.",  # REPORT counts only in capitals
    ):
        assert parse_commands(text).empty, text


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("ASSIGN", "missing_argument"),
        ("NOTE", "missing_argument"),
        ("STATUS sekarang", "unexpected_argument"),
        ("NORMATIF sesuai PP 11/2017", "unexpected_argument"),
        ("MEDIA kantor", "bad_medium"),
        ("MEDIA", "missing_argument"),
        ("EXTEND lama", "bad_days"),
        ("EXTEND 45", "bad_days"),
        ("EXTEND 0", "bad_days"),
    ],
)
def test_malformed_commands(text: str, code: str) -> None:
    parsed = parse_commands(text)
    assert [e.code for e in parsed.errors] == [code] and not parsed.commands


def _m(name: str, email: str, *aliases: str) -> StaffMember:
    return StaffMember(name=name, emails=[email], role="consultant", aliases=list(aliases))


PEOPLE = [
    _m("Budi Santoso", "budi.santoso@x.go.id", "Pak Budi"),
    _m("Budi Hartono", "bhartono@x.go.id"),
    _m("Dédé Suryadi", "dede@x.go.id"),
    _m("Siti Aminah", "siti.aminah@x.go.id"),
]


@pytest.mark.parametrize(
    ("query", "names"),
    [
        ("Budi Santoso", ["Budi Santoso"]),
        ("budi santoso", ["Budi Santoso"]),
        ("pak budi", ["Budi Santoso"]),
        ("bhartono", ["Budi Hartono"]),
        ("budi.santoso@x.go.id", ["Budi Santoso"]),
        ("Dede Suryadi", ["Dédé Suryadi"]),
        ("DEDE", ["Dédé Suryadi"]),
        ("Budi", ["Budi Santoso", "Budi Hartono"]),
        ("Joko", []),
    ],
)
def test_match_person(query: str, names: list[str]) -> None:
    assert [p.name for p in match_person(query, PEOPLE)] == names


def test_fold() -> None:
    assert fold("  Dédé   SURYADI ") == "dede suryadi"


OUR = "mx.kemendesa.go.id"


@pytest.mark.parametrize(
    ("headers", "ok"),
    [
        ([f"{OUR}; dkim=pass header.d=kemendesa.go.id; spf=pass"], True),
        ([f"{OUR}; dmarc=pass (p=quarantine) header.from=kemendesa.go.id"], True),
        ([f"{OUR}; dkim=fail header.d=kemendesa.go.id; dmarc=fail header.from=kemendesa.go.id"], False),
        ([f"{OUR}; dkim=pass header.d=evil.example"], False),
        (["evil.example; dkim=pass header.d=kemendesa.go.id; dmarc=pass"], False),  # not our server
        ([], False),
    ],
)
def test_authentication_results(headers: list[str], ok: bool) -> None:
    assert authenticated(tuple(headers), OUR, "kabag@kemendesa.go.id") is ok


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("Mohon dijawab segera.\n\nSiti", "Mohon dijawab segera."),
        ("Siti", ""),
        ("Terima kasih,\nSiti R.", ""),
        ("ABK disusun per jabatan.\nTks, Budi", "ABK disusun per jabatan."),
        ("Segera", "Segera"),
        ("Rahmawati sudah saya hubungi", "Rahmawati sudah saya hubungi"),
        ("Terima kasih banyak atas bantuan Bapak kemarin", "Terima kasih banyak atas bantuan Bapak kemarin"),
        ("", ""),
        ("x" * 5000 + "\nSiti", "x" * 5000),
    ],
)
def test_text_after_commands_leaves_out_only_a_closing_line(body: str, expected: str) -> None:
    assert text_after_commands(body, ["Siti Rahmawati", "Budi Santoso"]) == expected


@pytest.mark.parametrize(
    ("text", "verbs", "body"),
    [
        ("Baik,\nCATATAN pemohon sudah saya telepon", [Verb.NOTE], ""),
        ("Yth. Tim,\n\nMINTA-INFO Mohon kirim SK", [Verb.REQUEST_INFO], ""),
        ("Baik Bu Kabag,\nJAWAB\nABK disusun", [Verb.ANSWER], "ABK disusun"),
        ("Selamat pagi\nDAFTAR", [Verb.LIST], ""),
        ("Pak Budi,\nASSIGN Budi Santoso", [Verb.ASSIGN], ""),
        # A greeting above prose, and prose that starts like a greeting: no commands.
        ("Baik,\nABK disusun per jabatan.", [], "Baik,\nABK disusun per jabatan."),
        ("Bapak cukup mengisi formulir.\nNOTE x", [], "Bapak cukup mengisi formulir.\nNOTE x"),
    ],
)
def test_a_greeting_above_the_commands(text: str, verbs: list[Verb], body: str) -> None:
    parsed = parse_commands(text)
    assert [c.verb for c in parsed.commands] == verbs
    assert parsed.body == body


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("Siap Bu, segera saya tindaklanjuti.\n\nBudi", "acknowledgment"),
        (
            "Mohon izin Bu, pertanyaan ini bukan bidang saya. Mohon dialihkan ke Pak Budi Hartono.",
            "acknowledgment",
        ),
        ("Baik Bu, akan saya pelajari dulu.", "acknowledgment"),
        ("Bapak cukup mengisi formulir.\nNOTE pemohon sudah ditelepon", "commands_below"),
        ("ABK disusun per jabatan dengan 1.250 jam efektif per tahun.", None),
        ("Dokumen akan kami proses setelah Ibu mengirim SK.", None),
        ("Baik, silakan Ibu mengisi formulir di SIASN, menu Usul Mutasi.", None),
        # Headings in capitals that happen to be verbs are part of an answer.
        ("Jawaban.\nDAFTAR PUSTAKA\n1. PP 11/2017", None),
        ("Ok, Bapak cukup melampirkan SK saja.", None),
        ("Diterima. Dokumen Ibu sudah lengkap dan akan kami proses.", None),
        ("Jawaban.\nSTATUS PPPK berbeda dari PNS.", None),
        ("Jawaban.\nPENTING: bawa SK asli.", None),
    ],
)
def test_not_an_answer(text: str, why: str | None) -> None:
    assert not_an_answer(text) == why


@pytest.mark.parametrize(
    "arg",
    [
        "Budi Santoso",
        "ke Budi Santoso",
        "kepada Budi Santoso",
        "pak budi santoso",
        "Sdr. Budi Santoso",
        "Bapak Budi Santoso",
        "Budi Santoso, mohon segera",
        "Budi Santoso (Analis SDM)",
        "<budi.santoso@bpsdm.example.go.id>",
    ],
)
def test_the_assignee_named_with_the_words_around_a_name(arg: str) -> None:
    people = [
        StaffMember(name="Budi Santoso", emails=["budi.santoso@bpsdm.example.go.id"], role="consultant"),
        StaffMember(name="Budi Hartono", emails=["budi.hartono@bpsdm.example.go.id"], role="consultant"),
        StaffMember(name="Kepala Bagian Umum", emails=["kabag@bpsdm.example.go.id"], role="head"),
    ]
    assert [p.name for p in match_person(arg, people)] == ["Budi Santoso"]
    assert [p.name for p in match_person("Kepala Bagian Umum", people)] == ["Kepala Bagian Umum"]


@pytest.mark.parametrize(
    ("text", "commands", "body"),
    [
        (
            "TOLAK Pertanyaan ini bukan kewenangan BPSDM.\nSilakan Ibu menghubungi BKN Regional I.",
            [
                (
                    Verb.REJECT,
                    "Pertanyaan ini bukan kewenangan BPSDM.\nSilakan Ibu menghubungi BKN Regional I.",
                )
            ],
            "",
        ),
        (
            "MINTA-INFO Mohon kirimkan:\n1. SK\n2. Daftar jabatan\n\nTerima kasih",
            [(Verb.REQUEST_INFO, "Mohon kirimkan:\n1. SK\n2. Daftar jabatan")],
            "Terima kasih",
        ),
        ("NOTE a\nb\nASSIGN Budi", [(Verb.NOTE, "a\nb"), (Verb.ASSIGN, "Budi")], ""),
        # A heading of prose in mixed case is no command.
        ("Penting:\nABK harus disusun per jabatan.", [], "Penting:\nABK harus disusun per jabatan."),
    ],
)
def test_a_reason_or_question_over_several_lines(
    text: str, commands: list[tuple[Verb, str]], body: str
) -> None:
    parsed = parse_commands(text)
    assert [(c.verb, c.arg) for c in parsed.commands] == commands
    assert parsed.body == body
