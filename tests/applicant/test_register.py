"""What everyone reads (#19): every mail an applicant can receive, in the formal register of a
government office (Bapak/Ibu, never "Anda"), without internal codes or empty lines, SOP 003 as a
complaint (keluhan); every time with its zone, in the text and in the Date header.

Each applicant template is rendered with the context the intake builds (Intake.context) for a
ticket opened, disposed and answered through real RFC 5322 mail; the mails the pipeline itself
queued (ack, assigned, answer) are read back from the outbox as well."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from mailbot.core.compose import TEMPLATES_DIR, MailSpec, build_mail, render
from mailbot.core.fields import FieldIssue
from mailbot.core.survey import ELEMENTS, SurveyError
from mailbot.shell import models
from tests.conftest import request_mail
from tests.desk import APPLICANT, BUDI, HEAD, SECRETARIAT, STAFF, Desk, text_of

# Every template mailbot sends to an applicant (intake.send_to_applicant, dispatch's CLOSE and
# REJECT, intake._refuse): grep mailbot/*.py for send_to_applicant and template=.
APPLICANT_TEMPLATES = (
    "ack",
    "missing_fields",
    "answer",
    "assigned_applicant",
    "auto_closed",
    "closed",
    "rejected",
    "request_info",
    "survey_again",
    "survey_incomplete",
    "survey_reminder",
    "survey_thanks",
    "not_eligible",
    "refused",
)
TEMPLATES = TEMPLATES_DIR

ANDA = re.compile(r"\b(?:anda|kamu|saudara)\b", re.IGNORECASE)
# An internal code: two or more lower-case words joined by "_" (not_signed, awaiting_info).
CODE = re.compile(r"\b[a-z]++(?:_[a-z0-9]++)++\b")
# A data line whose value is empty: "  Jabatan        :" or "<td>Jabatan</td><td></td>".
EMPTY_LINE = re.compile(
    r"^[ \t]*+(?:Nama Lengkap|NIP/NIK|Unit Kerja|Jabatan|Nomor Telepon|Keterangan|Alasan|Disampaikan oleh"
    r"|Full name|Work unit|Position|Phone number|Note|Reason|Answered by)"
    r"[ \t]*+:[ \t]*+$",
    re.MULTILINE,
)
EMPTY_CELL = re.compile(r"<td[^>]*+>[^<]{1,40}</td><td>\s*+</td>")

# A complaint under SOP 003: identity, no position (SOP 003 does not ask for it), the type of
# complaint, the evidence described; the date and time of the incident told in the description.
COMPLAINT = (
    "Yth. Tim Sekretariat,\n\n"
    "Nama Lengkap : Rina Kartika\n"
    "NIP          : 19860926 201505 2 001\n"
    "Unit Kerja   : Biro Perencanaan, Kementerian Hukum dan HAM\n"
    "No. HP       : 0812-3456-7890\n"
    "Jenis Keluhan: Aplikasi SIMPEG\n"
    "Bukti        : pesan galat 502 Bad Gateway setelah menekan tombol Masuk\n\n"
    "Permasalahan:\n"
    "Sejak Senin 16-11-2026 pukul 08.00 aplikasi SIMPEG tidak dapat dibuka (galat 502),\n"
    "tangkapan layar terlampir.\n\n"
    "Hormat saya,\nRina\n"
)


def _desk(make_app: Any, sqlite_url: str, tmp_path: Path, profile: str) -> Desk:
    app = make_app(
        database_url=sqlite_url,
        mailbox_url=f"maildir://{tmp_path / 'md'}",
        smtp_url=f"file://{tmp_path / 'out'}",
        staff=STAFF,
        profile=profile,
    )
    return Desk(app)


def _answered(desk: Desk, profile: str) -> None:
    """A request through the pipeline: received, disposed to Budi, answered by him."""
    if profile == "sop-003":
        desk.deliver(request_mail(subject="Aplikasi SIMPEG tidak dapat dibuka", body=COMPLAINT))
        lead = SECRETARIAT
    else:
        desk.deliver(request_mail())
        lead = HEAD
    desk.reply(desk.last(lead, "notify"), lead, "ASSIGN Budi Santoso")
    desk.reply(
        desk.last(BUDI, "assign"),
        BUDI,
        "Mohon dicoba kembali; layanan telah dipulihkan pada pukul 10.00.",
    )


def _contexts(desk: Desk) -> dict[str, dict[str, Any]]:
    """The context of every applicant template, as the Python code builds it for this ticket."""
    app = desk.app
    with app.sessions() as session:
        ticket = session.execute(select(models.Ticket).order_by(models.Ticket.id.desc())).scalars().first()
        assert ticket is not None
        profile = app.config.profiles[ticket.profile]
        base = app.replies.context(ticket, profile)
        budi = app.config.staff_by_email(BUDI)
        public = app.replies.public_history(ticket)
        now = datetime(2026, 11, 23, 3, 5, tzinfo=UTC).astimezone(app.replies.tz)
        have = {1: 4, 2: 3, 3: 4}
        issues = [
            FieldIssue("id_number", "id_bad_length", "1986092620150"),
            FieldIssue("phone", "missing"),
            FieldIssue("position", "missing"),
        ]
        return {
            "ack": base,
            "not_eligible": base,
            "auto_closed": base,
            "missing_fields": {**base, "issues": issues, "still": False},
            "answer": {
                **base,
                "survey_elements": ELEMENTS,
                "answer": "Mohon dicoba kembali; layanan telah dipulihkan.",
                "answered_by": budi,
                "public_history": public,
            },
            "assigned_applicant": {**base, "assignee": budi},
            "closed": {**base, "reason": "Permasalahan telah diselesaikan melalui telepon."},
            "rejected": {**base, "reason": "Permasalahan di luar kewenangan unit kami."},
            "request_info": {**base, "question_for_applicant": "Mohon kirimkan tangkapan layar galatnya."},
            "survey_again": {**base, "survey_elements": ELEMENTS},
            "survey_incomplete": {
                **base,
                "elements": ELEMENTS,
                "have": have,
                "errors": [SurveyError(4, "mahal sekali")],
                "missing": [5, 6, 7, 8, 9],
            },
            "survey_reminder": {**base, "survey_elements": ELEMENTS, "close_at": now + timedelta(days=3)},
            "survey_thanks": {**base, "elements": ELEMENTS, "have": dict.fromkeys(range(1, 10), 4)},
            "refused": {
                "service": app.config.service,
                "limit": "too_large",
                "size": 31_457_280,
                "allowed": 26_214_400,
                "subject": "Konsultasi ABK",
                "received": now,
            },
        }


def _problems(text: str) -> list[str]:
    found = [f"'{m.group()}'" for m in ANDA.finditer(text)]
    found += [f"code {m.group()}" for m in CODE.finditer(text)]
    found += [f"empty line {m.group().strip()!r}" for m in EMPTY_LINE.finditer(text)]
    found += [f"empty cell {m.group()!r}" for m in EMPTY_CELL.finditer(text)]
    return found


def test_every_applicant_template_is_known() -> None:
    """A template added for applicants is added to this test too (or it is a staff mail)."""
    staff = {
        "answer_held", "assignment", "deadline_reminder", "digest", "escalation", "follow_up",
        "monthly_report", "notify_head", "reassigned", "record_step", "transcript",
    }  # fmt: skip
    # Partials ("_" first) are parts of other mails: the note on files left out is checked below.
    names = {p.name.split(".")[0] for p in (TEMPLATES / "id").glob("*.txt.j2") if not p.name.startswith("_")}
    assert names - staff == set(APPLICANT_TEMPLATES)
    assert {p.name for p in (TEMPLATES / "en").glob("*.txt.j2")} >= {f"{n}.txt.j2" for n in names}


@pytest.mark.parametrize("profile", ["sop-002", "sop-003"])
def test_applicant_mails_speak_formally(make_app: Any, sqlite_url: str, tmp_path: Path, profile: str) -> None:
    desk = _desk(make_app, sqlite_url, tmp_path, profile)
    _answered(desk, profile)
    complaint = profile == "sop-003"
    contexts = _contexts(desk)
    for name in APPLICANT_TEMPLATES:
        mail = render(name, "id", contexts[name])
        for part, text in (("subject", mail.subject), ("text", mail.text), ("html", mail.html)):
            assert not _problems(text), f"{name} ({part}): {_problems(text)}\n{text}"
        if name != "refused":
            assert mail.text.startswith("Yth. Bapak/Ibu Rina Kartika,\n"), f"{name}: {mail.text[:80]}"
            # SOP 003 handles complaints: no "konsultasi" for the applicant to read (but in the
            # service's own name).
            words = f"{mail.subject}\n{mail.text}".replace(desk.app.config.service.name, "").lower()
            if complaint:
                assert "konsultasi" not in words, f"{name}: {mail.subject}\n{mail.text}"
        # The English templates: no internal codes, no empty lines, the applicant by name.
        english = render(name, "en", contexts[name])
        for text in (english.subject, english.text, english.html):
            assert not _problems(text.replace("Anda", "")), f"{name} (en): {_problems(text)}\n{text}"
        if name != "refused":
            assert english.text.startswith("Dear Rina Kartika,\n"), f"{name}: {english.text[:80]}"
            words = f"{english.subject}\n{english.text}".replace(desk.app.config.service.name, "").lower()
            if complaint:
                assert "consultation" not in words, f"{name}: {english.subject}\n{english.text}"
    # What the pipeline itself sent: the same words.
    for kind in ("ack", "assigned", "answer"):
        row = desk.last(APPLICANT, kind)
        assert not _problems(row.subject), row.subject
        assert not _problems(text_of(row)), text_of(row)
    answer = desk.last(APPLICANT, "answer")
    noun = "keluhan" if complaint else "pengajuan konsultasi"
    assert answer.subject.endswith(f"] Jawaban atas {noun} Bapak/Ibu"), answer.subject
    assert re.search(r"\d\d-\d\d-2026 \d\d\.\d\d WIB  ", text_of(answer))  # the history's times


def test_no_indonesian_template_says_anda() -> None:
    """Staff mails too (command results, help, reminders) address people as Bapak/Ibu."""
    for path in sorted((TEMPLATES / "id").glob("*.j2")):
        found = ANDA.findall(path.read_text(encoding="utf-8"))
        assert not found, f"{path.name}: {found}"


def test_sop_003_acknowledgement_has_no_empty_position(
    make_app: Any, sqlite_url: str, tmp_path: Path
) -> None:
    desk = _desk(make_app, sqlite_url, tmp_path, "sop-003")
    desk.deliver(request_mail(subject="Aplikasi SIMPEG tidak dapat dibuka", body=COMPLAINT))
    ack = desk.last(APPLICANT, "ack")
    text = text_of(ack)
    assert "Jabatan" not in text and "Unit Kerja     : Biro Perencanaan" in text
    assert ack.subject.endswith("] Keluhan Bapak/Ibu telah kami terima"), ack.subject
    assert "riwayat penanganan keluhan" in text


def test_auto_close_notice_is_polite() -> None:
    """The consultation is considered complete; the applicant may still ask; with thanks. Not a
    word of blame for the survey that did not come back."""
    ctx = _plain_context()
    mail = render("auto_closed", "id", ctx)
    text = " ".join(mail.text.split())
    assert "kami anggap telah selesai" in text and "tetap dapat membalas email ini" in text
    assert "terima kasih" in text.lower()
    assert "tidak dikembalikan" not in text and "formulir" not in text.lower()
    english = " ".join(render("auto_closed", "en", ctx).text.split())
    assert english.startswith("Dear Rina Kartika,") and "not returned" not in english


ZONES = [("Asia/Jakarta", "WIB"), ("Asia/Makassar", "WITA"), ("Asia/Jayapura", "WIT")]


@pytest.mark.parametrize(("key", "zone"), ZONES)
def test_deadline_reminder_times_carry_their_zone(key: str, zone: str) -> None:
    tz = ZoneInfo(key)
    started = datetime(2026, 11, 16, 9, 5, tzinfo=tz)
    ctx = {
        **_plain_context(),
        "recipient": _Person("Siti Rahmawati", "head"),
        "step_title": "Penugasan Anggota Tim Pelaksana",
        "step_duration": "10 menit",
        "started_at": started,
        "due_at": started + timedelta(minutes=10),
    }
    for language in ("id", "en"):
        mail = render("deadline_reminder", language, ctx)
        times = re.findall(r"(?:pukul |, )(\d\d[.:]\d\d)(?: (\w+))?", f"{mail.subject}\n{mail.text}")
        sep = "." if language == "id" else ":"
        assert [t for t, _ in times] == [f"09{sep}15", f"09{sep}05", f"09{sep}15"], mail.text
        assert {z for _, z in times} == {zone}, mail.text
    mail = render("deadline_reminder", "id", ctx)
    assert "dimulai pada 16 November 2026 pukul 09.05 " + zone in " ".join(mail.text.split())
    assert mail.text.startswith("Yth. Bapak/Ibu Siti Rahmawati,\n")


@pytest.mark.parametrize(
    ("key", "offset"), [("Asia/Jakarta", "+0700"), ("Asia/Makassar", "+0800"), ("Asia/Jayapura", "+0900")]
)
def test_date_header_in_the_office_zone(key: str, offset: str) -> None:
    now = datetime(2026, 11, 16, 2, 0, tzinfo=UTC)
    spec = MailSpec(
        to_addr=APPLICANT,
        to_name="Rina Kartika",
        rendered=render("auto_closed", "id", _plain_context()),
        message_id="<a@bpsdm.example.go.id>",
    )
    envelope = build_mail(
        spec,
        from_addr="konsultasi@bpsdm.example.go.id",
        from_name="Layanan Konsultasi Online",
        instance_id="konsultasi@bpsdm.example.go.id",
        now=now.astimezone(ZoneInfo(key)),
    )
    date = message_from_bytes(envelope.raw)["Date"]
    assert date.endswith(" " + offset), date
    assert parsedate_to_datetime(date) == now


# --- a context without a database, for templates that need only the basics ----------------------


class _Person:
    def __init__(self, name: str, role: str) -> None:
        self.name, self.role, self.position, self.nip = name, role, "", ""


class _Service:
    name = "Layanan Konsultasi Online"
    office = "BPSDM Kementerian Desa PDTT"


class _Profile:
    id = "sop-002"
    title = "Pelayanan Konsultasi Online"
    office = "BPSDM Kementerian Desa PDTT"


class _State:
    value = "assigned"


class _Ticket:
    number = "KONS-2026-000001"
    applicant_name = "Rina Kartika"
    applicant_email = APPLICANT
    subject = "Konsultasi penyusunan Analisis Beban Kerja"
    state = _State()


def _plain_context() -> dict[str, Any]:
    return {
        "service": _Service(),
        "profile": _Profile(),
        "ticket": _Ticket(),
        "fields": {"name": "Rina Kartika", "question": "Bagaimana menyusun ABK?"},
        "zone": "WIB",
        "tz": ZoneInfo("Asia/Jakarta"),
    }


def test_the_note_on_files_left_out_speaks_formally() -> None:
    from mailbot.core.compose import Withheld
    from mailbot.core.withheld import NoteFacts, note

    for for_staff in (False, True):
        text, html = note(
            NoteFacts("id", "KONS-2026-000007", "Layanan Konsultasi", for_staff, 10_240_000),
            [Withheld("rekaman.mp4", 14_200_000)],
        )
        for part in (text, html):
            assert not _problems(part), f"{_problems(part)}\n{part}"
        assert "Bapak/Ibu" in text
