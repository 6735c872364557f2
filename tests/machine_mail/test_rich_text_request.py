"""A person's request from Outlook in Rich Text Format (a winmail.dat, application/ms-tnef)
is a request, not machine mail (core/classify.py)."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage

from mailbot.shell.models import InboundStatus
from tests.conftest import request_mail
from tests.desk import APPLICANT, HEAD, Desk


def test_a_request_sent_from_outlook_in_rich_text_opens_a_ticket(desk: Desk) -> None:
    msg = email.message_from_bytes(request_mail(), policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    # Outlook's rich text travels as TNEF beside the plain text (Exchange within one organisation).
    tnef = b"\x78\x9f\x3e\x22" + bytes(200)
    msg.add_attachment(tnef, maintype="application", subtype="ms-tnef", filename="winmail.dat")
    msg["X-MS-TNEF-Correlator"] = "<00000000ABCDEF@kemendesa.example.go.id>"

    outcome = desk.deliver(msg.as_bytes())

    assert outcome.status is InboundStatus.PROCESSED, outcome.reason  # it was dropped as machine mail
    assert outcome.ticket_number == "KONS-2026-000001"
    assert desk.last(APPLICANT, "ack") and desk.last(HEAD, "notify")
