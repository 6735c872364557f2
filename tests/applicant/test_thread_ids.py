"""Threading headers built from ids taken from outside (compose.ticket_thread and the
header writer), and strangers who thread their mail into someone's ticket."""

from __future__ import annotations

import email
import email.policy
import re
from email.message import EmailMessage

from sqlalchemy import select

from mailbot.core.workflow import State
from mailbot.shell import models
from tests.conftest import request_mail
from tests.desk import APPLICANT, BUDI, HEAD, Desk, reply_bytes

_ID = re.compile(r"<[!-;=?-~]+>")


def _threading(raw: bytes) -> tuple[str, list[str]]:
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    for name in ("In-Reply-To", "References"):
        assert "=?" not in str(msg.get(name, ""))  # no encoded words: a msg-id is never one
    return str(msg.get("In-Reply-To", "")), str(msg.get("References", "")).split()


def test_a_request_id_outside_ascii_does_not_turn_every_threading_header_into_encoded_words(
    desk: Desk,
) -> None:
    desk.deliver(request_mail(message_id="<pesan\u202e\u00e9@kemendesa.example.go.id>"))
    ack = desk.last(APPLICANT, "ack")
    in_reply_to, references = _threading(ack.raw)
    assert in_reply_to == "" and references == []  # nothing of it can be written in a 7-bit mail
    notify = desk.last(HEAD, "notify")
    # The head's command and the transcript still thread by our own ids.
    refs = " ".join(f"<r{i}@mail.example.go.id>" for i in range(5000))
    desk.reply(notify, HEAD, "ASSIGN Budi Santoso", headers={"References": refs})
    in_reply_to, references = _threading(desk.last(HEAD, "transcript").raw)
    assert _ID.fullmatch(in_reply_to) and all(_ID.fullmatch(r) for r in references)
    assert len(references) <= 20  # a References header does not grow with the thread
    assert desk.last(BUDI, "assign")


def test_an_encoded_line_break_in_a_message_id_writes_no_header(desk: Desk) -> None:
    desk.deliver(request_mail(message_id="=?utf-8?q?<a=0D=0ABcc:_x@evil.example>?="))
    ack = desk.last(APPLICANT, "ack")
    msg = email.message_from_bytes(ack.raw, policy=email.policy.compat32)
    assert msg.get_all("Bcc") is None and b"evil.example" not in ack.raw


def test_a_stranger_who_names_a_tickets_request_is_recorded_and_acts_for_no_one(desk: Desk) -> None:
    desk.deliver(request_mail())
    ticket = desk.ticket()
    desk.reply(desk.last(HEAD, "notify"), HEAD, "ASSIGN Budi Santoso")
    before = len(desk.outbox())
    stranger = EmailMessage()
    stranger["From"] = "orang.lain@example.com"
    stranger["To"] = "konsultasi@bpsdm.example.go.id"
    stranger["Subject"] = f"Re: [{ticket.number}] Konsultasi"
    stranger["Message-ID"] = "<x1@example.com>"
    stranger["In-Reply-To"] = ticket.root_message_id
    stranger["References"] = ticket.root_message_id
    stranger.set_content("TUTUP\nJAWAB jawaban palsu\n1. 4\n2. 4\nTerima kasih")
    desk.deliver(stranger.as_bytes())
    assert desk.ticket().state is State.ASSIGNED
    assert len(desk.outbox()) == before  # no mail to the stranger, nothing relayed as the applicant's
    with desk.app.sessions() as s:
        kinds = [e.kind for e in s.execute(select(models.TicketEvent)).scalars()]
    assert kinds[-1] == "third_party"
    # The same stranger answering the assignee's mail (a forwarded copy) is no assignee either.
    desk.deliver(reply_bytes(desk.last(BUDI, "assign"), "orang.lain@example.com", "Jawaban palsu."))
    assert desk.ticket().state is State.ASSIGNED and len(desk.outbox()) == before
