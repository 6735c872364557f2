"""How mail names the service: core/wording.py decides, for mailbot's templates (`words`) and
for an office's own templates that still call m.noun / m.request / m.handling."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from mailbot.core.compose import render
from mailbot.core.wording import Wording, wording, wording_of


@pytest.mark.parametrize(
    ("noun", "language", "expected"),
    [
        ("konsultasi", "id", Wording("konsultasi", "pengajuan konsultasi", "konsultasi")),
        ("keluhan", "id", Wording("keluhan", "keluhan", "penanganan keluhan")),
        ("pengaduan", "id", Wording("pengaduan", "pengaduan", "penanganan pengaduan")),
        ("Konsultasi", "id", Wording("konsultasi", "pengajuan konsultasi", "konsultasi")),
        ("", "id", Wording("konsultasi", "pengajuan konsultasi", "konsultasi")),
        ("konsultasi", "en", Wording("consultation", "consultation request", "consultation")),
        ("keluhan", "en", Wording("complaint", "complaint", "complaint handling")),
        ("Pengaduan", "en", Wording("complaint", "complaint", "complaint handling")),
        # A noun the English mails do not know is said as the profile writes it.
        ("asistensi", "en", Wording("asistensi", "asistensi", "asistensi handling")),
    ],
)
def test_wording_by_noun_and_language(noun: str, language: str, expected: Wording) -> None:
    assert wording(noun, language) == expected


def test_a_profile_without_a_noun_is_a_consultation_service() -> None:
    assert wording_of(SimpleNamespace(), "id").request == "pengajuan konsultasi"
    assert wording_of(SimpleNamespace(service_noun=None), "en").handling == "consultation"


@pytest.mark.parametrize(("language", "noun", "expected"), [
    ("id", "keluhan", "keluhan | keluhan | penanganan keluhan"),
    ("id", "konsultasi", "konsultasi | pengajuan konsultasi | konsultasi"),
    ("en", "keluhan", "complaint | complaint | complaint handling"),
])  # fmt: skip
def test_an_office_template_calling_the_macros_gets_the_same_words(
    tmp_path: Path, language: str, noun: str, expected: str
) -> None:
    office = tmp_path / "kop"
    (office / language).mkdir(parents=True)
    (office / language / "ours.txt.j2").write_text(
        "{% block subject %}{{ m.noun(profile) }} | {{ m.request(profile) }} | {{ m.handling(profile) }}"
        "{% endblock %}{% block body %}{{ words.request }}{% endblock %}"
    )
    profile = SimpleNamespace(service_noun=noun)
    service = SimpleNamespace(name="Layanan", office="Kantor")
    mail = render("ours", language, {"profile": profile, "service": service}, office)
    assert mail.subject == expected
    assert mail.text == expected.split(" | ")[1]


def test_a_profile_given_as_a_dict_or_without_a_noun_is_worded_by_what_it_says() -> None:
    assert wording_of({"service_noun": "keluhan"}, "id").request == "keluhan"
    assert wording_of(SimpleNamespace(service_noun="", title="Penanganan Keluhan"), "id").noun == "keluhan"
    assert wording_of(SimpleNamespace(service_noun="", id="sop-003", title="SOP"), "en").noun == "complaint"
    assert wording_of({"service_noun": "", "title": "Complaint desk"}, "en").handling == "complaint handling"
    assert wording_of(SimpleNamespace(service_noun="", title="Konsultasi Hukum"), "id").noun == "konsultasi"


def test_an_office_that_words_the_service_in_its_own_macros_is_followed(tmp_path: Path) -> None:
    """An office's own id/_macros.j2 (a copy of mailbot's, its noun changed) still words every
    shipped mail, as it did when the shipped templates called those macros."""
    office = tmp_path / "kop"
    (office / "id").mkdir(parents=True)
    shipped = Path(__file__).resolve().parents[2] / "mailbot" / "templates" / "id"
    macros = (shipped / "_macros.j2").read_text()
    macros += "\n{% macro noun(profile) -%}pengaduan{%- endmacro %}"
    macros += "\n{% macro request(profile) -%}pengaduan masyarakat{%- endmacro %}"
    macros += "\n{% macro handling(profile) -%}layanan pengaduan{%- endmacro %}\n"
    (office / "id" / "_macros.j2").write_text(macros)
    (office / "id" / "ours.txt.j2").write_text(
        "{% block subject %}{{ words.request }} / {{ words.handling }}{% endblock %}"
        "{% block body %}-{% endblock %}"
    )
    service = SimpleNamespace(name="Layanan", office="Kantor")
    mail = render(
        "ours", "id", {"profile": SimpleNamespace(service_noun="konsultasi"), "service": service}, office
    )
    assert mail.subject == "pengaduan masyarakat / layanan pengaduan"
