"""A complaint's own fields (SOP 003 step 1): the type of complaint, the date and time of the
incident, and the evidence, table-driven on the labels and values people write."""

from __future__ import annotations

import time
from datetime import date

import pytest

from mailbot.core.complaint_fields import incident_time_in, is_pointer
from mailbot.core.fields import extract_fields, label_field, validate_fields

TODAY = date(2026, 11, 21)
COMPLAINT = ["name", "id_number", "unit", "phone", "complaint_type", "incident_time", "evidence", "question"]
ONLY = ["complaint_type", "incident_time", "evidence", "question"]


@pytest.mark.parametrize(
    ("label", "field"),
    [
        ("Jenis Keluhan", "complaint_type"),
        ("JENIS PENGADUAN", "complaint_type"),
        ("Jenis Kendala", "complaint_type"),
        ("Kategori Keluhan", "complaint_type"),
        ("Type of complaint", "complaint_type"),
        ("Waktu Kejadian", "incident_time"),
        ("Tanggal Kejadian", "incident_time"),
        ("Tanggal/Waktu Kejadian", "incident_time"),
        ("Tanggal dan Jam Kejadian", "incident_time"),
        ("Hari/Tanggal Kejadian", "incident_time"),
        ("Date and time of the incident", "incident_time"),
        ("Bukti", "evidence"),
        ("Bukti (foto/screenshot/video)", "evidence"),
        ("Bukti Pendukung", "evidence"),
        ("Lampiran", "evidence"),
        ("Tangkapan Layar", "evidence"),
        ("Evidence", "evidence"),
        ("Deskripsi Keluhan", "question"),
        ("Deskripsi Keluhan (tanggal/waktu kejadian beserta bukti)", "question"),
        ("Uraian Pengaduan", "question"),
        ("Keluhan", "question"),
        ("Tanggal", None),  # a letter's date, not the incident's
        ("Waktu", None),
    ],
)
def test_complaint_labels(label: str, field: str | None) -> None:
    assert label_field(label) == field


def test_a_complaint_form_as_people_fill_it() -> None:
    text = (
        "Identitas Pemohon\n"
        "Nama Lengkap : Rina Kartika\n"
        "**Jenis Keluhan** : Aplikasi e-Learning\n"
        "Tanggal/Waktu Kejadian : Senin, 16-11-2026 pukul 08.00 WIB\n"
        "Bukti (foto/screenshot/video) : terlampir\n"
        "Deskripsi Keluhan:\n"
        "Tidak dapat login, muncul galat 502.\n"
    )
    assert extract_fields(text) == {
        "name": "Rina Kartika",
        "complaint_type": "Aplikasi e-Learning",
        "incident_time": "Senin, 16-11-2026 pukul 08.00 WIB",
        "evidence": "terlampir",
        "question": "Tidak dapat login, muncul galat 502.",
    }


@pytest.mark.parametrize(
    ("value", "pointer"),
    [
        ("terlampir", True),
        ("Terlampir.", True),
        ("(terlampir)", True),
        ("lihat lampiran", True),
        ("ada di lampiran", True),
        ("screenshot terlampir", True),
        ("Bukti foto terlampir di email ini", True),
        ("tangkapan layar", True),
        ("video menyusul", True),
        ("akan dikirim kemudian", True),
        ("see attachment", True),
        ("attached", True),
        ("Muncul pesan 'Error 502 Bad Gateway' setelah menekan tombol Masuk", False),
        ("foto layar login gagal pada 16/11 pukul 08.00", False),
        ("Pesan galat muncul di email ini", False),
    ],
)
def test_evidence_said_to_be_attached(value: str, pointer: bool) -> None:
    assert is_pointer(value) is pointer


@pytest.mark.parametrize(
    ("found", "issue", "value"),
    [
        # Attached files are the evidence, whatever the text says.
        ({"evidence": "terlampir", "evidence_files": "layar.png"}, None, "lampiran: layar.png"),
        ({"evidence_files": "rekaman.mp4, layar.png"}, None, "lampiran: rekaman.mp4, layar.png"),
        (
            {"evidence": "galat 502 saat login", "evidence_files": "layar.png"},
            None,
            "lampiran: layar.png; galat 502 saat login",
        ),
        # Described in words: evidence.
        ({"evidence": "Muncul pesan galat 502 setelah login"}, None, "Muncul pesan galat 502 setelah login"),
        # "Terlampir" with nothing attached: not evidence, and the reply says why.
        ({"evidence": "terlampir"}, "evidence_not_attached", None),
        ({"evidence": "lihat lampiran"}, "evidence_not_attached", None),
        ({"evidence": "screenshot"}, "evidence_not_attached", None),
        # Nothing at all.
        ({}, "missing", None),
        ({"evidence": "-"}, "missing", None),
        ({"evidence": "tidak ada"}, "missing", None),
    ],
)
def test_evidence(found: dict[str, str], issue: str | None, value: str | None) -> None:
    result = validate_fields(found, ONLY, TODAY)
    codes = {i.field: i.code for i in result.issues}
    assert codes.get("evidence") == issue
    assert result.values.get("evidence") == value


@pytest.mark.parametrize(
    ("found", "issue", "value"),
    [
        ({"incident_time": "16-11-2026 pukul 08.00"}, None, "16-11-2026 pukul 08.00"),
        ({"incident_time": "kemarin sore"}, None, "kemarin sore"),
        ({"incident_time": "Senin pagi"}, None, "Senin pagi"),
        ({"incident_time": "tidak ingat"}, "incident_time_unclear", None),
        # Told in the description, not labelled: found there.
        (
            {"question": "Sejak Senin 16-11-2026 pukul 08.00 aplikasi SIMPEG tidak dapat dibuka."},
            None,
            "16-11-2026 pukul 08.00",
        ),
        (
            {"question": "Pada 3 Desember 2026 sekitar 10:30 login gagal terus."},
            None,
            "3 Desember 2026 sekitar 10:30",
        ),
        ({"question": "Tadi pagi jam 9.15 WIB aplikasi error."}, None, "jam 9.15 WIB"),
        ({"question": "Aplikasi lambat sekali, mohon dibantu."}, "missing", None),
        ({"question": "Sesuai PP 11/2017 saya tidak bisa mengakses aplikasi."}, "missing", None),
    ],
)
def test_incident_time(found: dict[str, str], issue: str | None, value: str | None) -> None:
    result = validate_fields(found, ONLY, TODAY)
    codes = {i.field: i.code for i in result.issues}
    assert codes.get("incident_time") == issue
    assert result.values.get("incident_time") == value


def test_complaint_type_and_the_order_of_what_is_asked() -> None:
    result = validate_fields({"name": "Rina Kartika", "complaint_type": "-"}, COMPLAINT, TODAY)
    assert [(i.field, i.code) for i in result.issues] == [
        ("id_number", "missing"),
        ("unit", "missing"),
        ("phone", "missing"),
        ("complaint_type", "too_short"),
        ("incident_time", "missing"),
        ("evidence", "missing"),
        ("question", "missing"),
    ]


def test_a_consultation_is_not_asked_for_complaint_fields() -> None:
    found = {"name": "Rina Kartika", "question": "Bagaimana tata cara penyusunan ABK?"}
    result = validate_fields(found, ["name", "question"], TODAY)
    assert result.complete and "evidence" not in result.values


def test_incident_time_and_pointer_reading_are_linear() -> None:
    started = time.perf_counter()
    incident_time_in("1" * 1_000_000)
    incident_time_in("pukul " * 200_000)
    is_pointer("bukti " * 100_000)
    is_pointer(" -" * 100_000 + "x")
    assert time.perf_counter() - started < 1.0
