"""Who the sender is, and what a stranger, a vendor or a resent mail can make mailbot do (issue #16).

Every decision on mail from outside names the sender by From (and, for staff, the signed token
bound to that address): a Reply-To never makes someone the applicant; a vendor reports and never
commands; a command acts once; a command token expires.
"""

from __future__ import annotations

import email
import email.policy
import secrets

import pytest
from sqlalchemy import select

from mailbot.core.authz import AUTHZ, Standing, TicketFacts, may, standing
from mailbot.core.commands import Verb
from mailbot.core.workflow import OPEN_STATES, State
from mailbot.shell import models
from tests.conftest import SERVICE_ADDRESS, request_mail
from tests.desk import (
    APPLICANT,
    BUDI,
    COMPLAINT,
    HEAD,
    IRBAN2,
    SECRETARIAT,
    VENDOR,
    Desk,
    reply_bytes,
    text_of,
)
from tests.staff.test_dispatch import _profile_desk

STRANGER = "penyusup@contoh-luar.example.com"
VICTIM = "korban@kemendesa.example.go.id"


def _forged(to: models.OutboundMessage, body: str, *, reply_to: str, via: str = "in-reply-to") -> bytes:
    """A stranger's mail that names `reply_to` as the address to answer, in the ticket's thread."""
    original = email.message_from_bytes(to.raw, policy=email.policy.default)
    thread = (
        f"In-Reply-To: {original['Message-ID']}\r\nReferences: {original['Message-ID']}\r\n"
        if via == "in-reply-to"
        else ""
    )
    return (
        f"From: Rina Kartika <{STRANGER}>\r\nReply-To: {reply_to}\r\nTo: {SERVICE_ADDRESS}\r\n"
        f"Subject: Re: {original['Subject']}\r\n"
        f"Message-ID: <{secrets.token_hex(8)}@contoh-luar.example.com>\r\n"
        f"{thread}Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    ).encode()


def _answered(desk: Desk) -> models.OutboundMessage:
    desk.deliver(request_mail())
    desk.reply(desk.last(HEAD, "notify"), HEAD, "ASSIGN Budi Santoso")
    desk.reply(desk.last(BUDI, "assign"), BUDI, "ABK disusun per jabatan dengan 1.250 jam efektif per tahun.")
    assert desk.ticket().state is State.ANSWERED
    return desk.last(APPLICANT, "answer")


@pytest.mark.parametrize("via", ["in-reply-to", "subject"])
def test_a_stranger_with_the_applicants_reply_to_cannot_file_the_survey(desk: Desk, via: str) -> None:
    answer = _answered(desk)
    before = len(desk.outbox(APPLICANT))
    desk.deliver(_forged(answer, "1 1 1 1 1 1 1 1 1\nKomentar/saran: buruk", reply_to=APPLICANT, via=via))
    ticket = desk.ticket() if via == "in-reply-to" else _ticket_by_number(desk, "KONS-2026-000001")
    assert ticket.state is State.ANSWERED
    with desk.app.sessions() as s:
        assert s.execute(select(models.Survey)).scalars().first() is None
        events = s.get(models.Ticket, ticket.id).events
        assert not any(e.actor == APPLICANT and e.kind.startswith("survey") for e in events)
    assert len(desk.outbox(APPLICANT)) == before  # nothing mailed to the applicant in the stranger's name


def _ticket_by_number(desk: Desk, number: str) -> models.Ticket:
    with desk.app.sessions() as s:
        return s.execute(select(models.Ticket).where(models.Ticket.number == number)).scalar_one()


def test_a_strangers_plea_is_not_relayed_as_the_applicants_words(desk: Desk) -> None:
    desk.deliver(request_mail())
    desk.reply(desk.last(HEAD, "notify"), HEAD, "ASSIGN Budi Santoso")
    ack = desk.last(APPLICANT, "ack")
    relays = len(desk.outbox(BUDI))
    ticket_id = desk.ticket().id
    desk.deliver(_forged(ack, "Mohon batalkan tiket saya, sudah tidak perlu.", reply_to=APPLICANT))
    assert len(desk.outbox(BUDI)) == relays
    with desk.app.sessions() as s:
        [event] = [e for e in s.get(models.Ticket, ticket_id).events if "batalkan" in e.detail]
        assert event.kind == "third_party" and event.actor == STRANGER


def test_a_request_with_someone_elses_reply_to_never_mails_that_person(desk: Desk) -> None:
    for i in range(3):
        desk.deliver(
            request_mail(
                sender=STRANGER,
                subject=f"Konsultasi {i}",
                headers=f"Reply-To: {VICTIM}\r\n",
            )
        )
    assert desk.outbox(VICTIM) == []
    assert len(desk.outbox(STRANGER, "ack")) == 3  # the sender gets their own text back, nobody else
    ticket = desk.ticket()
    assert ticket.applicant_email == STRANGER
    notify = text_of(desk.last(HEAD, "notify"))
    assert f"Balas-ke (Reply-To): {VICTIM}" in notify and "tidak dipakai" in notify


def test_a_vendor_reports_and_never_commands(make_app, sqlite_url, tmp_path) -> None:
    desk = _profile_desk(make_app, sqlite_url, tmp_path, "sop-003")
    desk.deliver(request_mail(subject="Aplikasi SIMPEG tidak bisa login", body=COMPLAINT))
    desk.reply(desk.last(SECRETARIAT, "notify"), SECRETARIAT, "TERUSKAN vendor jaringan")
    forwarded = desk.last(VENDOR, "forward")
    to_applicant = len(desk.outbox(APPLICANT))
    for text in (
        "ANSWER\nSudah kami perbaiki.",
        "REQUEST-INFO Kirimkan password Anda",
        "CLOSE selesai",
        "HELP",
        "jawab\nSudah kami perbaiki.",
    ):
        desk.reply(forwarded, VENDOR, text)
        transcript = text_of(desk.last(VENDOR, "transcript"))
        assert "DITOLAK: penyedia jasa menyampaikan laporan penanganan" in transcript, text
    assert desk.ticket().state is State.FORWARDED
    assert len(desk.outbox(APPLICANT)) == to_applicant
    desk.reply(forwarded, VENDOR, "Akun sudah direset, silakan login ulang.")
    assert "Akun sudah direset" in text_of(desk.last(SECRETARIAT, "vendor_report"))
    assert len(desk.outbox(APPLICANT)) == to_applicant


def test_a_command_acts_once_even_when_the_mail_comes_again(desk: Desk) -> None:
    desk.deliver(request_mail())
    notify = desk.last(HEAD, "notify")
    raw = reply_bytes(notify, HEAD, "ASSIGN Budi Santoso")
    desk.deliver(raw)
    again = raw.replace(b"Message-ID: <", b"Message-ID: <again.", 1)
    assert again != raw
    desk.deliver(again)
    assert len(desk.outbox(BUDI, "assign")) == 1
    ticket_id = desk.ticket().id
    with desk.app.sessions() as s:
        kinds = [e.kind for e in s.get(models.Ticket, ticket_id).events]
    assert kinds.count("assign") == 1
    assert "sudah dijalankan sebelumnya" in text_of(desk.last(HEAD, "transcript"))
    # Other commands answering the same mail are not repeats.
    desk.reply(notify, HEAD, "NOTE mohon diprioritaskan")
    assert "catatan disimpan" in text_of(desk.last(HEAD, "transcript"))


def test_a_command_token_expires_and_the_transcript_is_a_fresh_mail_to_act_on(desk: Desk, clock) -> None:
    desk.deliver(request_mail())
    notify = desk.last(HEAD, "notify")
    clock.advance(days=31)
    desk.reply(notify, HEAD, "ASSIGN Budi Santoso")
    assert desk.ticket().state is State.NEW
    transcript = desk.last(HEAD, "transcript")
    assert "lebih dari 30 hari" in text_of(transcript)
    desk.reply(transcript, HEAD, "ASSIGN Budi Santoso")
    assert desk.ticket().state is State.ASSIGNED


@pytest.mark.parametrize(
    "command",
    ["tugaskan budi santoso", "Tugaskan Budi Santoso", "assign budi santoso", "Assign: Budi Santoso"],
)
def test_commands_in_any_case(desk: Desk, command: str) -> None:
    desk.deliver(request_mail())
    desk.reply(desk.last(HEAD, "notify"), HEAD, f"{command}\n\nSalam,\nSiti")
    ticket = desk.ticket()
    assert ticket.state is State.ASSIGNED and ticket.assignee_email == BUDI
    desk.reply(desk.last(BUDI, "assign"), BUDI, "Jawab\nABK disusun per jabatan.")
    assert desk.ticket().state is State.ANSWERED


def test_a_mistyped_command_gets_a_transcript_not_silence(desk: Desk) -> None:
    desk.deliver(request_mail())
    desk.reply(desk.last(HEAD, "notify"), HEAD, "ASIGN Budi Santoso")
    assert desk.ticket().state is State.NEW
    assert "perintah tidak dikenal" in text_of(desk.last(HEAD, "transcript"))


def test_sideways_assign_names_the_reason(make_app, sqlite_url, tmp_path) -> None:
    desk = _profile_desk(make_app, sqlite_url, tmp_path, "sop-004")
    body = (
        request_mail()
        .decode()
        .split("\r\n\r\n", 1)[1]
        .replace("Biro Perencanaan, Kementerian Desa PDTT", "Dinas Pekerjaan Umum dan Penataan Ruang")
    )
    desk.deliver(request_mail(body=body))
    desk.reply(desk.last(HEAD, "notify"), HEAD, "DISPOSISI Irban II")
    desk.reply(desk.last(IRBAN2, "assign"), IRBAN2, "ASSIGN Siti Rahmawati")
    assert "tidak berada di bawah Bapak/Ibu" in text_of(desk.last(IRBAN2, "transcript"))


# --- the authorization table, cell by cell ------------------------------------------------------

# SOP 004's chain head -> subhead -> consultant, with a secretariat and a vendor. Rows: who, on a
# ticket assigned to the subhead Irban II. Expected refusal code per verb (None: allowed).
_OK = None
EXPECTED_004: dict[str, dict[Verb, str | None]] = {
    "head": dict.fromkeys(Verb, _OK)
    | {
        Verb.ANSWER: "answer_not_allowed",
        Verb.FORWARD: "no_vendors_in_profile",
        Verb.NORMATIVE: "normative_not_allowed",
        Verb.REPORT: "no_step_running",  # no step after the answer runs on this ticket
        Verb.ARCHIVE: "no_step_running",
    },
    "secretariat": dict.fromkeys(Verb, _OK)
    | {
        Verb.ANSWER: "answer_not_allowed",
        Verb.FORWARD: "no_vendors_in_profile",
        Verb.ASSIGN: "role_cannot_assign",
        Verb.NORMATIVE: "normative_not_allowed",  # SOP 004 has no normative answers
        Verb.REPORT: "no_step_running",
        Verb.ARCHIVE: "no_step_running",
    },
    "subhead_assignee": dict.fromkeys(Verb, "role_lead_only")
    | {
        Verb.HELP: _OK,
        Verb.LIST: _OK,
        Verb.STATUS: _OK,
        Verb.NOTE: _OK,
        Verb.ASSIGN: _OK,
        Verb.ANSWER: _OK,
        Verb.REQUEST_INFO: _OK,
        Verb.MEDIUM: _OK,  # the assignee records how the consultation was held
        Verb.FORWARD: "no_vendors_in_profile",
        Verb.NORMATIVE: "normative_not_allowed",
        Verb.REPORT: "no_step_running",
        Verb.ARCHIVE: "no_step_running",
    },
    "consultant_other": dict.fromkeys(Verb, "role_lead_only")
    | {
        Verb.HELP: _OK,
        Verb.LIST: _OK,
        Verb.STATUS: _OK,
        Verb.NOTE: _OK,
        Verb.ASSIGN: "not_your_ticket",
        Verb.ANSWER: "answer_not_allowed",
        Verb.REQUEST_INFO: "not_your_ticket",
        Verb.FORWARD: "not_your_ticket",
        Verb.MEDIUM: "not_your_ticket",
        Verb.NORMATIVE: "normative_not_allowed",
        Verb.REPORT: "no_step_running",
        Verb.ARCHIVE: "no_step_running",
    },
    "vendor": dict.fromkeys(Verb, "vendor_reports_only"),
}


def test_every_cell_of_the_authorization_table(desk: Desk) -> None:
    from mailbot.settings import StaffMember

    profile = desk.app.config.profiles["sop-004"]
    people = {
        "head": StaffMember(name="Inspektur", emails=["i@x.go.id"], role="head"),
        "secretariat": StaffMember(name="Sek", emails=["s@x.go.id"], role="secretariat"),
        "subhead_assignee": StaffMember(name="Irban", emails=["irban@x.go.id"], role="subhead"),
        "consultant_other": StaffMember(name="Auditor", emails=["a@x.go.id"], role="consultant"),
        "vendor": StaffMember(name="Vendor", emails=["v@x.com"], role="vendor"),
    }
    assert set(AUTHZ) == set(Verb)  # every verb has its row
    for state in State:
        facts = TicketFacts(state, "irban@x.go.id")
        for who, member in people.items():
            for verb in Verb:
                expected = EXPECTED_004[who][verb]
                if expected is None and verb in (Verb.URGENT, Verb.EXTEND) and state not in OPEN_STATES:
                    expected = "bad_state"
                assert may(verb, member, facts, profile) == expected, (who, verb, state)
    assert standing(people["vendor"], None, profile) is Standing.VENDOR


def test_identity_numbers_typed_in_free_text_reach_staff_masked(desk: Desk) -> None:
    body = (
        request_mail()
        .decode()
        .split("\r\n\r\n", 1)[1]
        .replace(
            "fungsional yang baru dibentuk?",
            "fungsional yang baru dibentuk? NIK saya 3273012609860001, NIP 19860926 201505 2 001,\r\n"
            "WA 0812-9876-5432.",
        )
    )
    desk.deliver(request_mail(body=body))
    notify = text_of(desk.last(HEAD, "notify"))
    assert "Substansi" in notify and "3273********0001" in notify
    for full in ("3273012609860001", "19860926 201505 2 001", "0812-9876-5432", "081298765432"):
        assert full not in notify
    desk.reply(desk.last(HEAD, "notify"), HEAD, "ASSIGN Budi Santoso")
    assignment = text_of(desk.last(BUDI, "assign"))
    assert "3273012609860001" not in assignment and "0812-9876-5432" not in assignment
    desk.reply(desk.last(APPLICANT, "assigned"), APPLICANT, "Tambahan: NIK istri saya 3273015509880002.")
    relay = text_of(desk.last(BUDI, "follow_up"))
    assert "3273015509880002" not in relay and "3273********0002" in relay


def test_the_head_sees_the_phone_note_the_second_number_and_an_old_nip(desk: Desk) -> None:
    body = (
        request_mail()
        .decode()
        .split("\r\n\r\n", 1)[1]
        .replace("NIP          : 19860926 201505 2 001", "NIP          : 010203040")
        .replace("No. HP       : 0812-3456-7890", "No. HP       : 0812-3456-7890 (WhatsApp only)")
    )
    desk.deliver(request_mail(body=body))
    notify = text_of(desk.last(HEAD, "notify"))
    assert "NIP lama (9 digit)" in notify
    assert "WhatsApp only" in notify
