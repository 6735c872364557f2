"""Loops: another auto-responder, a second helpdesk that answers everything, bounces of our own mail."""

from __future__ import annotations

import email
import email.policy
import secrets

from sqlalchemy import select

from mailbot.core.workflow import State
from mailbot.shell import models
from tests.conftest import HEAD, SERVICE_ADDRESS, request_mail
from tests.desk import APPLICANT, BUDI, STAFF, Desk, text_of

OTHER = "helpdesk@instansi-lain.example.go.id"


def _their_auto_answer(ours: models.OutboundMessage, *, headers: str = "") -> bytes:
    """A second helpdesk that answers everything, with no automatic-mail header at all."""
    msg = email.message_from_bytes(ours.raw, policy=email.policy.default)
    return (
        f"From: Helpdesk Instansi Lain <{OTHER}>\r\nTo: {SERVICE_ADDRESS}\r\n"
        f"Subject: Re: {msg['Subject']}\r\n"
        f"Message-ID: <{secrets.token_hex(6)}@instansi-lain.example.go.id>\r\n"
        f"In-Reply-To: {msg['Message-ID']}\r\nReferences: {msg['Message-ID']}\r\n{headers}"
        "Content-Type: text/plain; charset=utf-8\r\n\r\n"
        "Terima kasih, pesan Anda sudah kami terima dan akan segera kami tindak lanjuti.\r\n"
    ).encode()


def test_a_helpdesk_that_answers_everything_gets_a_bounded_conversation(desk: Desk) -> None:
    desk.deliver(request_mail(sender=OTHER, name="Helpdesk", body="Mohon informasi prosedur mutasi.\n"))
    assert desk.ticket().state is State.AWAITING_INFO
    for _ in range(10):
        ours = desk.outbox(OTHER)
        desk.deliver(_their_auto_answer(ours[-1]))
    mails = desk.outbox(OTHER)
    # The first ask, one "still missing" for their first (new) text, then nothing: they repeat themselves.
    assert [m.kind for m in mails] == ["missing_fields", "missing_fields"]
    with desk.app.sessions() as s:
        suppressed = (
            s.execute(select(models.TicketEvent.detail).where(models.TicketEvent.kind == "reply_suppressed"))
            .scalars()
            .all()
        )
    assert len(suppressed) == 9 and all("repeats an earlier one" in d for d in suppressed)


def test_their_replies_to_our_acknowledgment_go_to_staff_not_back(desk: Desk) -> None:
    desk.deliver(request_mail(sender=OTHER, name="Helpdesk Instansi"))
    assert desk.ticket().state is State.NEW
    for _ in range(5):
        desk.deliver(_their_auto_answer(desk.last(OTHER)))
    assert [m.kind for m in desk.outbox(OTHER)] == ["ack"]
    assert len(desk.outbox(HEAD, "notify")) == 1


def test_out_of_office_and_bounce_of_our_acknowledgment(desk: Desk) -> None:
    desk.deliver(request_mail())
    ack = desk.last("rina.kartika@kemendesa.example.go.id", "ack")
    ooo = _their_auto_answer(ack, headers="Auto-Submitted: auto-replied\r\n")
    desk.deliver(ooo)
    bounce = (
        "From: Mail Delivery System <MAILER-DAEMON@mx.kemendesa.example.go.id>\r\n"
        f"To: {SERVICE_ADDRESS}\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        "Message-ID: <bounce-1@mx.kemendesa.example.go.id>\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        "--B\r\nContent-Type: text/plain\r\n\r\nThe mail could not be delivered.\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Final-Recipient: rfc822; x@y\r\nAction: failed\r\n"
        "Status: 5.1.1\r\n\r\n--B\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        + ack.raw.split(b"\r\n\r\n", 1)[0].decode()
        + "\r\n\r\n--B--\r\n"
    ).encode()
    outcome = desk.deliver(bounce)
    assert outcome.status == "machine" and outcome.ticket_number == "KONS-2026-000001"
    with desk.app.sessions() as s:
        kinds = [
            e.kind for e in s.execute(select(models.TicketEvent).order_by(models.TicketEvent.id)).scalars()
        ]
    assert kinds.count("machine_mail") == 2  # the out-of-office and the bounce, both on the ticket
    assert (
        len(desk.outbox("rina.kartika@kemendesa.example.go.id")) == 1
    )  # the ack only; nothing answered them
    assert desk.outbox("MAILER-DAEMON@mx.kemendesa.example.go.id".lower()) == []


def test_rate_limit_per_recipient(make_app, database_url, tmp_path) -> None:
    # The daily cap of new tickets per sender (tests/applicant/test_replies.py) is off: this is the hourly
    # limit of automatic mail to one recipient, met by one person's 25 distinct requests.
    desk = Desk(
        make_app(
            database_url=database_url,
            mailbox_url=f"maildir://{tmp_path / 'md'}",
            smtp_url=f"file://{tmp_path / 'out'}",
            extra="[limits]\nnew_tickets_per_sender_per_day = 0\n",
        )
    )
    for i in range(25):
        desk.deliver(
            request_mail(subject=f"Pertanyaan {i}", body=f"Nama: Rina\nPertanyaan nomor {i} saya apa?\n")
        )
    assert len(desk.outbox("rina.kartika@kemendesa.example.go.id")) == 20
    with desk.app.sessions() as s:
        held = s.execute(
            select(models.TicketEvent).where(models.TicketEvent.kind == "mail_suppressed")
        ).scalars()
        assert len(list(held)) == 5


def test_what_staff_send_is_never_held_by_the_loop_guard_or_the_rate_limit(
    make_app, database_url, tmp_path
) -> None:
    """The guards keep mailbot from answering a machine; they never hold back what a person decided
    to send. A shared mailbox that sent many requests within the hour still gets the disposition's
    notice and the answer; the same applicant asking again and again the same day still gets
    every answer."""
    desk = Desk(
        make_app(
            database_url=database_url,
            mailbox_url=f"maildir://{tmp_path / 'md'}",
            smtp_url=f"file://{tmp_path / 'out'}",
            staff=STAFF,
            extra="[limits]\nnew_tickets_per_sender_per_day = 0\nauto_replies_per_recipient_per_hour = 3\n"
            "same_reply_per_day = 1\n",
        )
    )
    for i in range(5):
        desk.deliver(request_mail(subject=f"Konsultasi ABK bagian {i}"))
    with desk.app.sessions() as s:
        first = s.scalars(select(models.Ticket).order_by(models.Ticket.id)).first()
        assert first is not None
        number = first.number
    notify = next(m for m in desk.outbox(HEAD, "notify") if number in m.subject)
    desk.reply(notify, HEAD, "ASSIGN budi santoso")
    assigned = [m for m in desk.outbox(APPLICANT, "assigned") if number in m.subject]
    assert len(assigned) == 1  # over the hourly limit of automatic mail, sent all the same
    assignment = desk.last(BUDI, "assign")
    desk.reply(assignment, BUDI, "Jawaban pertama.")
    answers = [m for m in desk.outbox(APPLICANT, "answer") if number in m.subject]
    assert len(answers) == 1
    # The applicant asks again; the second answer the same day goes out too (same_reply_per_day 1).
    desk.reply(answers[0], APPLICANT, "Pak, bagaimana kalau jabatannya fungsional tertentu?")
    relay = desk.last(BUDI, "follow_up")
    desk.reply(relay, BUDI, "Jawaban kedua.")
    answers = [m for m in desk.outbox(APPLICANT, "answer") if number in m.subject]
    assert len(answers) == 2 and "Jawaban kedua." in text_of(answers[-1])
