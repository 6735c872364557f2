"""What an applicant reads is a deliberate public view, never the internal log (issue #16, item 1).

A ticket goes through every kind of event — an internal note, accepted and refused commands, a
forged mail from a stranger, an unsigned command, an escalation, a request for information, the
answer — and then every mail that reached the applicant is searched for anything internal.
"""

from __future__ import annotations

import email
import email.policy
import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from mailbot.core.public_record import Person, public_history
from mailbot.core.workflow import State
from mailbot.shell import models
from tests.conftest import SERVICE_ADDRESS, request_mail, send_all
from tests.desk import (
    APPLICANT,
    BUDI,
    BUDI2,
    COMPLAINT,
    HEAD,
    HEAD2,
    SECRETARIAT,
    VENDOR,
    Desk,
)
from tests.staff.test_dispatch import _profile_desk

STRANGER = "penyusup@contoh-luar.example.com"
NOTE = "CATATAN rahasia: pemohon ini pernah bermasalah, hati-hati"
STAFF_ADDRESSES = (HEAD, HEAD2, SECRETARIAT, BUDI, BUDI2, VENDOR)
INTERNAL_CODES = (
    "not_signed",
    "unknown_person",
    "role_cannot_assign",
    "not_authenticated",
    "already_handled",
    "bad_state",
    "not_executed",
    "commands_refused",
    "mail_queued",
    "escalation",
    "(system)",
    "overdue",
    "system",
)


def _full_text(row: models.OutboundMessage) -> str:
    """Every text part (plain and HTML) of a mail, decoded, with HTML tags dropped."""
    msg = email.message_from_bytes(row.raw, policy=email.policy.default)
    parts = [str(msg["Subject"])]
    for part in msg.walk():
        if part.get_content_maintype() == "text":
            parts.append(str(part.get_content()))
    return re.sub(r"<[^>]{0,500}>", " ", "\n".join(parts))


def _forged_reply(to: models.OutboundMessage, sender: str, body: str, reply_to: str = "") -> bytes:
    original = email.message_from_bytes(to.raw, policy=email.policy.default)
    return (
        f"From: {sender}\r\nTo: {SERVICE_ADDRESS}\r\n"
        + (f"Reply-To: {reply_to}\r\n" if reply_to else "")
        + f"Subject: Re: {original['Subject']}\r\nMessage-ID: <forged-{id(body)}@contoh-luar.example.com>\r\n"
        f"In-Reply-To: {original['Message-ID']}\r\nReferences: {original['Message-ID']}\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\n" + body.replace("\n", "\r\n") + "\r\n"
    ).encode()


def _assert_public(desk: Desk, *, also_forbidden: tuple[str, ...] = ()) -> list[str]:
    mails = desk.outbox(APPLICANT)
    assert mails, "the applicant received nothing"
    texts = [_full_text(m) for m in mails]
    for text, mail in zip(texts, mails, strict=True):
        lowered = text.lower()
        for address in (*STAFF_ADDRESSES, STRANGER):
            assert address not in lowered, f"{mail.kind} mail shows the address {address}"
        for code in (*INTERNAL_CODES, *also_forbidden):
            assert code.lower() not in lowered, f"{mail.kind} mail shows {code!r}:\n{text}"
    return texts


def test_every_kind_of_event_and_nothing_internal_reaches_the_applicant(desk: Desk, clock) -> None:
    desk.deliver(request_mail())
    notify = desk.last(HEAD, "notify")
    clock.advance(minutes=30)
    desk.app.sweep_deadlines()  # the disposition is overdue: a reminder and an escalation
    desk.app.sweep_deadlines()
    # A stranger answers the head's mail, and writes a command and a plea in the applicant's name.
    desk.deliver(_forged_reply(notify, STRANGER, "ASSIGN Budi Hartono\nTolong batalkan tiket saya."))
    desk.deliver(_forged_reply(notify, STRANGER, "Saya Rina, mohon tutup tiket ini.", reply_to=APPLICANT))
    # The head: an unsigned command (a new mail with the ticket number), then a real one with a note.
    number = desk.ticket().number
    desk.deliver(
        (
            f"From: {HEAD}\r\nTo: {SERVICE_ADDRESS}\r\nSubject: [{number}] disposisi\r\n"
            f"Message-ID: <unsigned-1@bpsdm.example.go.id>\r\nContent-Type: text/plain\r\n\r\n"
            "ASSIGN Budi Santoso\r\n"
        ).encode()
    )
    desk.reply(notify, HEAD, f"ASSIGN Budi Santoso\nNOTE {NOTE}")
    assert desk.ticket().state is State.ASSIGNED
    assignment = desk.last(BUDI, "assign")
    # The consultant tries to delegate (refused: the last level), asks the applicant, notes.
    desk.reply(assignment, BUDI, "ASSIGN Budi Hartono")
    desk.reply(assignment, BUDI, "REQUEST-INFO Mohon lampirkan peta jabatan unit Bapak/Ibu.")
    assert desk.ticket().state is State.WAITING_APPLICANT
    desk.reply(desk.last(APPLICANT, "request_info"), APPLICANT, "Peta jabatan kami terdiri atas 12 jabatan.")
    relay = desk.last(BUDI, "follow_up")
    desk.reply(relay, BUDI, "NOTE pemohon sudah melengkapi, lanjut telaah")
    desk.reply(relay, BUDI, "ANSWER\nABK disusun per jabatan dengan jam kerja efektif 1.250 jam per tahun.")
    assert desk.ticket().state is State.ANSWERED
    send_all(desk.app)

    texts = _assert_public(
        desk,
        also_forbidden=(
            "hati-hati",
            "pernah bermasalah",
            "lanjut telaah",
            "ASSIGN",
            "Tolong batalkan",
            "mohon tutup tiket",
            "Catatan internal",
            "Perintah petugas",
            "Budi Hartono",
        ),
    )
    answer = texts[[m.kind for m in desk.outbox(APPLICANT)].index("answer")]
    # What the copy does show: the request, who handles it, the exchange, and the answer.
    assert "Pengajuan konsultasi diterima" in answer
    assert "Bagaimana tata cara penyusunan Analisis Beban Kerja" in answer
    assert "Didisposisikan kepada Budi Santoso, Analis SDM Aparatur" in answer
    assert "Mohon lampirkan peta jabatan" in answer
    assert "Peta jabatan kami terdiri atas 12 jabatan." in answer
    assert "Jawaban disampaikan oleh Budi Santoso" in answer
    assert re.search(r"\d\d-\d\d-2026 \d\d\.\d\d WIB", answer)


def test_sop_003_vendor_report_stays_internal(make_app, sqlite_url, tmp_path) -> None:
    desk = _profile_desk(make_app, sqlite_url, tmp_path, "sop-003")
    desk.deliver(request_mail(subject="Aplikasi SIMPEG tidak bisa login", body=COMPLAINT))
    desk.reply(desk.last(SECRETARIAT, "notify"), SECRETARIAT, "TERUSKAN vendor jaringan\nNOTE vendor lambat")
    forwarded = desk.last(VENDOR, "forward")
    desk.reply(forwarded, VENDOR, "Laporan internal: server auth kami down karena patch, sudah dipulihkan.")
    report = desk.last(SECRETARIAT, "vendor_report")
    desk.reply(report, SECRETARIAT, "ANSWER\nAkun Bapak/Ibu sudah dapat digunakan kembali.")
    assert desk.ticket().state is State.ANSWERED
    texts = _assert_public(desk, also_forbidden=("patch", "vendor lambat", "TERUSKAN vendor"))
    answer = next(t for t in texts if "sudah dapat digunakan kembali" in t)
    assert "Diteruskan kepada penyedia jasa PT Jaringan Andal" in answer


class _Line:
    def __init__(self, kind: str, actor: str, detail: str = "", **data: object) -> None:
        self.at = datetime(2026, 12, 4, 2, 0, tzinfo=UTC)
        self.kind, self.actor, self.detail, self.data = kind, actor, detail, dict(data)


def test_the_view_is_an_allow_list() -> None:
    """A kind of history line the view does not know is internal, whatever it says."""
    people = {BUDI: Person("Budi Santoso", "Analis")}
    lines = [
        _Line("request_complete", APPLICANT, "ok"),
        _Line("some_future_kind", "system", "rahasia"),
        _Line("note", HEAD, "rahasia"),
        _Line("staff_reply", BUDI, "rahasia"),
        _Line("third_party", STRANGER, "rahasia"),
        _Line("applicant_follow_up", STRANGER, "rahasia"),  # not the applicant's words
        _Line("assign", HEAD, f"→ Budi <{BUDI}>", assignee=BUDI),
        _Line("assign", HEAD, "→ someone gone", assignee="gone@example.go.id"),
        _Line("answer", BUDI, "jawab", answer="Jawaban lengkap"),
    ]
    view = public_history(
        lines, applicant=APPLICANT, question="Pertanyaan", person=people.get, tz=ZoneInfo("Asia/Makassar")
    )
    assert [(e.kind, e.by, e.text) for e in view] == [
        ("request", "applicant", "Pertanyaan"),
        ("handled_by", "Budi Santoso", ""),
        ("handled_by", "office", ""),
        ("answer", "Budi Santoso", "Jawaban lengkap"),
    ]
    assert all(e.at.utcoffset() is not None and e.at.hour == 10 for e in view)
