"""Loop protection on the project's own samples (#17 item 6): machine mail is never answered.

A clean clone runs these; `tests/intake/test_corpus.py` runs the shared corpus where it sits beside the
clone. Each sample goes through the real intake on a fresh database. A new sample is one file:

- `tests/data/machine/*.eml`: machine mail (DSNs, NDRs, auto-replies, lists, receipts, calendar
  replies, feedback reports, our own mail come back). Classified `machine` with its reason, no
  ticket, no mail to anyone; in a ticket's thread, a `machine_mail` line on that ticket and
  nothing more. `REASONS` names the rule each known sample must meet first.
- `tests/data/machine/no-autoreply/*.eml`: a person's mail through a list expander, a group or a
  web-form relay (`Precedence: bulk|list|junk` and nothing else, classify.no_autoreply_reason):
  registered as a ticket for staff, but no automatic mail goes back (DOMAIN.md s. 5).
- `tests/data/machine/ooo-text/*.eml`: out-of-office text with no header and no telling subject.
  Only a reply in a ticket's thread is read for it (classify.out_of_office): from the applicant it
  is recorded and answers nothing; from the assignee it is held, never sent as the office's
  answer. Outside a thread such text is a person's new mail: see `human/request-on-leave-asks`.
  A responder that answers our held-answer notice is not told again (once per ticket and person).
- `tests/data/human/*.eml`: look-alikes that are requests and get the normal handling (a ticket,
  the acknowledgment or the missing-fields reply): machine words in the body or the display
  name, a leave question whose subject or first line reads like an out-of-office, a request
  asking for a read receipt, and a bounce forwarded by a person who asks for help (the report is
  inside the forwarded message, not the mail's own structure).
"""

from __future__ import annotations

import email
import email.policy
import secrets
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import func, select

from mailbot.app import App
from mailbot.core.classify import machine_reason
from mailbot.core.message import parse_message
from mailbot.core.workflow import State
from mailbot.shell import models
from tests.conftest import DATA, request_mail, send_all
from tests.desk import APPLICANT, HEAD, STAFF, Desk

MACHINE = DATA / "machine"
NO_AUTOREPLY = MACHINE / "no-autoreply"
OOO_TEXT = MACHINE / "ooo-text"
HUMAN = DATA / "human"

# The first rule each sample meets (classify.MACHINE_RULES is ordered): a change of rule order or
# wording shows here. A sample missing from the table is still checked for a recorded reason.
REASONS = {
    "arf-feedback-report.eml": "contains multipart/report",
    "auto-submitted-auto-generated-notification.eml": "Auto-Submitted: auto-generated",
    "auto-submitted-auto-replied-zimbra-ooo.eml": "Auto-Submitted: auto-replied (zimbra; vacation)",
    "calendar-auto-accept-diterima.eml": "calendar reply",
    "dsn-exim.eml": "Auto-Submitted: auto-replied",
    "dsn-gmail-failure.eml": "Return-Path is null",
    "dsn-nested-in-mixed.eml": "contains multipart/report",
    "dsn-postfix.eml": "Return-Path is null",
    "dsn-zimbra-delayed.eml": "Return-Path is null",
    "list-id-newsletter.eml": "mailing-list header list-id",
    "list-unsubscribe-webinar.eml": "mailing-list header list-unsubscribe",
    "mdn-read-receipt-outlook-id.eml": "contains multipart/report",
    "ndr-exchange-id-tidak-terkirim.eml": "Auto-Submitted: auto-replied",
    "ndr-gateway-id-pesan-tidak-dapat-dikirim.eml": "subject looks automatic",
    "ndr-microsoft365.eml": "contains multipart/report",
    "null-return-path-autoresponder.eml": "Return-Path is null",
    "ooo-exchange-automatic-reply.eml": "auto-reply header x-auto-response-suppress",
    "ooo-outlook-id-balas-otomatis-subject-only.eml": "subject looks automatic",
    "own-loop-header-redirected.eml": "carries our own loop header X-Mailbot-Loop",
    "sender-mailer-daemon-qmail.eml": "is a mail system address",
    "sender-no-reply-registration.eml": "is a mail system address",
    "sender-no-underscore-reply.eml": "is a mail system address",
    "sender-noreply-dotted.eml": "is a mail system address",
    "sender-noreply-ekinerja.eml": "is a mail system address",
    "sender-postmaster-quota.eml": "is a mail system address",
    "x-autoreply.eml": "auto-reply header x-autoreply",
    "x-autorespond.eml": "auto-reply header x-autorespond",
}


def _samples(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.eml"))


def _ids(paths: list[Path]) -> list[str]:
    return [p.stem for p in paths]


def _sender(raw: bytes) -> tuple[str, str]:
    """The From address (lower case) and display name, as a mail client reads them."""
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    address = msg["From"].addresses[0]
    return address.addr_spec.lower(), address.display_name


def _in_thread_of(raw: bytes, ours: models.OutboundMessage) -> bytes:
    """The sample as a reply to one of our mails: an In-Reply-To on top of its header block (the
    first one is the one read), every byte of the sample kept."""
    return b"In-Reply-To: " + ours.message_id.encode() + b"\r\n" + raw


def _sent_again(raw: bytes, n: int) -> bytes:
    """The responder's next mail: the same text under a Message-ID of its own (a copy with the
    same id would be dropped as a duplicate, and prove nothing about loops)."""
    return b"Message-ID: <again-%d.%s>\r\n" % (n, secrets.token_hex(6).encode()) + raw


def _counts(desk: Desk) -> tuple[int, int]:
    with desk.app.sessions() as s:
        tickets = s.scalar(select(func.count()).select_from(models.Ticket)) or 0
        outbound = s.scalar(select(func.count()).select_from(models.OutboundMessage)) or 0
    return tickets, outbound


def _inbound(desk: Desk, inbound_id: int) -> models.InboundMessage:
    with desk.app.sessions() as s:
        row = s.get(models.InboundMessage, inbound_id)
        assert row is not None
        return row


def _events(desk: Desk, kind: str | None = None) -> list[models.TicketEvent]:
    with desk.app.sessions() as s:
        stmt = select(models.TicketEvent).order_by(models.TicketEvent.id)
        rows = list(s.execute(stmt).scalars())
    return [e for e in rows if kind is None or e.kind == kind]


def test_every_kind_has_samples() -> None:
    """The folders are the inventory: a sample deleted by mistake, or one in the table without a
    file, shows here rather than as a test that quietly stopped running."""
    names = {p.name for p in _samples(MACHINE)}
    assert set(REASONS) <= names, sorted(set(REASONS) - names)
    assert len(names) >= 25
    assert len(_samples(NO_AUTOREPLY)) >= 3 and len(_samples(OOO_TEXT)) >= 3
    assert len(_samples(HUMAN)) >= 7


@pytest.mark.parametrize(
    ("subject", "machine"),
    [
        ("Out of Office: Permohonan konsultasi", True),
        ("Out of Office AutoReply: Permohonan konsultasi", True),
        ("Out of office", True),
        ("Sedang Cuti", True),
        ("Sedang cuti s.d. 4 Januari 2027", True),
        ("Di luar kantor (dinas luar)", True),
        ("Di luar kantor sampai 20 November", True),
        ("Sedang cuti besar, apakah TPP tetap dibayarkan?", False),
        ("Sedang cuti, bagaimana mengisi e-Kinerja?", False),
        ("Di luar kantor saat tugas belajar: bagaimana presensinya?", False),
        ("Out of office allowance for field auditors", False),
    ],
)
def test_leave_words_at_the_start_of_a_subject(subject: str, machine: bool) -> None:
    """A responder's subject ("Sedang Cuti", "Out of Office: …") against a person's question that
    begins with the same words: only the responder's forms count."""
    raw = (
        f"From: Ayu <ayu@example.go.id>\r\nTo: konsultasi@bpsdm.example.go.id\r\nSubject: {subject}\r\n"
        "Message-ID: <s@example.go.id>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nIsi.\r\n"
    ).encode()
    reason = machine_reason(parse_message(raw), "konsultasi@bpsdm.example.go.id")
    assert (reason is not None) is machine, reason


# --- machine mail ---------------------------------------------------------------------------------


@pytest.mark.parametrize("path", _samples(MACHINE), ids=_ids(_samples(MACHINE)))
def test_machine_mail_is_recorded_with_its_reason_and_never_answered(desk: Desk, path: Path) -> None:
    outcome = desk.deliver(path.read_bytes())
    assert outcome.status == "machine", outcome.reason
    assert outcome.kind == "machine" and outcome.reason
    assert REASONS.get(path.name, "") in outcome.reason
    row = _inbound(desk, outcome.inbound_id)
    assert (row.status, row.kind, row.reason) == ("machine", "machine", outcome.reason)
    assert _counts(desk) == (0, 0)  # no ticket, and no mail to the sender nor to anyone
    assert send_all(desk.app).sent == 0


@pytest.mark.parametrize("path", _samples(MACHINE), ids=_ids(_samples(MACHINE)))
def test_machine_mail_in_a_tickets_thread_is_noted_on_it_and_answers_nothing(desk: Desk, path: Path) -> None:
    """The usual case: the machine answers one of our mails (here the acknowledgment)."""
    desk.deliver(request_mail())
    ticket = desk.ticket()
    before = _counts(desk)
    outcome = desk.deliver(_in_thread_of(path.read_bytes(), desk.last(APPLICANT, "ack")))
    assert outcome.status == "machine", outcome.reason
    assert outcome.ticket_number == ticket.number
    assert desk.ticket().state is ticket.state
    assert _counts(desk) == before  # no new ticket, nothing queued to anyone
    [line] = _events(desk, "machine_mail")
    assert line.detail == outcome.reason and line.inbound_id == outcome.inbound_id


# --- a person's mail that must not be answered automatically --------------------------------------


@pytest.mark.parametrize("path", _samples(NO_AUTOREPLY), ids=_ids(_samples(NO_AUTOREPLY)))
def test_mail_through_a_list_or_relay_is_registered_but_not_answered(desk: Desk, path: Path) -> None:
    raw = path.read_bytes()
    sender, _ = _sender(raw)
    outcome = desk.deliver(raw)
    assert (outcome.status, outcome.kind) == ("processed", "new_request"), outcome.reason
    ticket = desk.ticket()
    assert ticket.applicant_email == sender
    assert desk.outbox(sender) == []
    precedence = email.message_from_bytes(raw)["Precedence"].strip().lower()
    [line] = _events(desk, "reply_suppressed")
    assert line.detail.endswith(f"not sent: Precedence: {precedence}")


# --- out-of-office text without any header, in a ticket's thread ----------------------------------


@pytest.mark.parametrize("path", _samples(OOO_TEXT), ids=_ids(_samples(OOO_TEXT)))
def test_the_applicants_out_of_office_text_answers_nothing(desk: Desk, path: Path) -> None:
    raw = path.read_bytes()
    sender, name = _sender(raw)
    desk.deliver(request_mail(sender=sender, name=name))
    ticket = desk.ticket()
    assert ticket.state is State.NEW
    before = _counts(desk)
    outcome = desk.deliver(_in_thread_of(raw, desk.last(sender, "ack")))
    assert (outcome.status, outcome.kind) == ("processed", "follow_up"), outcome.reason
    assert desk.ticket().state is State.NEW
    assert _counts(desk) == before  # nothing back to them, nothing relayed to staff
    [line] = _events(desk, "applicant_auto_reply")
    assert line.actor == sender


@pytest.mark.parametrize("path", _samples(OOO_TEXT), ids=_ids(_samples(OOO_TEXT)))
def test_the_applicants_out_of_office_text_while_data_is_awaited_answers_nothing(
    desk: Desk, path: Path
) -> None:
    raw = path.read_bytes()
    sender, name = _sender(raw)
    desk.deliver(request_mail(sender=sender, name=name, body="Nama: X\nPertanyaan: bagaimana ABK?\n"))
    assert desk.ticket().state is State.AWAITING_INFO
    before = _counts(desk)
    desk.deliver(_in_thread_of(raw, desk.last(sender, "missing_fields")))
    assert desk.ticket().state is State.AWAITING_INFO
    assert _counts(desk) == before


ASSIGNEE = "Pegawai Cuti"


def _desk_with_assignee(
    make_app: Callable[..., App], database_url: str, tmp_path: Path, address: str
) -> Desk:
    staff = STAFF + f'\n[[staff]]\nname = "{ASSIGNEE}"\nemails = ["{address}"]\nrole = "consultant"\n'
    return Desk(
        make_app(
            database_url=database_url,
            mailbox_url=f"maildir://{tmp_path / 'md'}",
            smtp_url=f"file://{tmp_path / 'out'}",
            staff=staff,
        )
    )


@pytest.mark.parametrize("path", _samples(OOO_TEXT), ids=_ids(_samples(OOO_TEXT)))
def test_the_assignees_out_of_office_text_is_held_never_sent_as_the_answer(
    make_app: Callable[..., App], database_url: str, tmp_path: Path, path: Path
) -> None:
    raw = path.read_bytes()
    assignee, _ = _sender(raw)
    desk = _desk_with_assignee(make_app, database_url, tmp_path, assignee)
    desk.deliver(request_mail())
    desk.reply(desk.last(HEAD, "notify"), HEAD, f"ASSIGN {ASSIGNEE}")
    assert desk.ticket().state is State.ASSIGNED
    to_applicant = len(desk.outbox(APPLICANT))
    outcome = desk.deliver(_in_thread_of(raw, desk.last(assignee, "assign")))
    assert (outcome.status, outcome.kind) == ("processed", "staff_reply"), outcome.reason
    assert desk.ticket().state is State.ASSIGNED
    assert len(desk.outbox(APPLICANT)) == to_applicant  # "Saya sedang cuti …" is not the answer
    assert [line.actor for line in _events(desk, "staff_auto_reply")] == [assignee]
    # The assignee (read on their return) and the lead are told how to send it if it is the answer.
    assert len(desk.outbox(assignee, "answer_held")) == 1 and len(desk.outbox(HEAD, "answer_held")) == 1


@pytest.mark.parametrize("path", _samples(OOO_TEXT), ids=_ids(_samples(OOO_TEXT)))
def test_the_assignees_responder_answering_our_notice_is_not_a_loop(
    make_app: Callable[..., App], database_url: str, tmp_path: Path, path: Path
) -> None:
    """Their responder answers the held-answer notice too: that is not told again and again."""
    raw = path.read_bytes()
    assignee, _ = _sender(raw)
    desk = _desk_with_assignee(make_app, database_url, tmp_path, assignee)
    desk.deliver(request_mail())
    desk.reply(desk.last(HEAD, "notify"), HEAD, f"ASSIGN {ASSIGNEE}")
    desk.deliver(_in_thread_of(raw, desk.last(assignee, "assign")))
    for n in range(5):
        outcome = desk.deliver(_in_thread_of(_sent_again(raw, n), desk.last(assignee)))
        assert outcome.status == "processed", outcome.reason
    assert desk.outbox(APPLICANT, "answer") == []
    assert len(_events(desk, "staff_auto_reply")) == 6  # each one recorded
    # Told once: the notice waits in their mailbox until they are back.
    assert len(desk.outbox(assignee, "answer_held")) == 1 and len(desk.outbox(HEAD, "answer_held")) == 1


# --- human look-alikes ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", _samples(HUMAN), ids=_ids(_samples(HUMAN)))
def test_a_human_look_alike_gets_the_normal_handling(desk: Desk, path: Path) -> None:
    raw = path.read_bytes()
    sender, _ = _sender(raw)
    outcome = desk.deliver(raw)
    assert (outcome.status, outcome.kind) == ("processed", "new_request"), outcome.reason
    ticket = desk.ticket()
    assert ticket.applicant_email == sender and outcome.ticket_number == ticket.number
    assert [m.kind for m in desk.outbox(sender)] in (["ack"], ["missing_fields"])
    assert _events(desk, "reply_suppressed") == []
    assert send_all(desk.app).sent >= 1
