"""The outbox against a real aiosmtpd: temporary failures retried in order, permanent ones dead-lettered."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from mailbot.config import SMTP_SCHEMES, ConnectionUrl, parse_connection_url
from mailbot.pipeline.intake import Source
from mailbot.settings import SmtpSettings
from mailbot.shell import models
from mailbot.shell.smtp import SendError, SmtpSender
from tests.conftest import HEAD, request_mail, send_all
from tests.servers import SmtpServer, free_port, start_smtp

APPLICANT = "rina.kartika@kemendesa.example.go.id"


def _app(make_app, sqlite_url, tmp_path, smtp_url):
    return make_app(database_url=sqlite_url, mailbox_url=f"maildir://{tmp_path / 'md'}", smtp_url=smtp_url)


def _outbound(app):
    with app.sessions() as s:
        return list(s.execute(select(models.OutboundMessage).order_by(models.OutboundMessage.id)).scalars())


def test_temporary_failure_is_retried_after_backoff_in_order_per_ticket(
    make_app, sqlite_url, tmp_path, smtp, clock
):
    app = _app(make_app, sqlite_url, tmp_path, smtp.url)
    app.process_raw(Source("t", 1, "1"), request_mail())  # queues ack (applicant) then notify (head)
    smtp.handler.replies = ["451 4.3.0 try again later"]

    first = send_all(app)
    assert (first.sent, first.retried) == (0, 1)
    assert smtp.handler.received == []  # the head's mail waits behind the applicant's
    ack, notify = _outbound(app)
    assert ack.status == "pending" and ack.attempts == 1 and "451" in ack.last_error
    assert notify.status == "pending" and notify.attempts == 0

    assert send_all(app).sent == 0  # not due yet: nothing goes out before the backoff
    clock.advance(seconds=61)
    assert send_all(app).sent == 2
    assert [r.rcpt_tos for r in smtp.handler.received] == [[APPLICANT], [HEAD]]
    assert all(o.status == "sent" for o in _outbound(app))
    assert send_all(app).sent == 0  # nothing twice


def test_permanent_failure_is_dead_lettered_with_the_reason(make_app, sqlite_url, tmp_path, smtp):
    app = _app(make_app, sqlite_url, tmp_path, smtp.url)
    app.process_raw(Source("t", 1, "1"), request_mail())
    smtp.handler.replies = ["550 5.1.1 mailbox unknown"]
    result = send_all(app)
    assert (result.sent, result.dead) == (1, 1)
    ack, notify = _outbound(app)
    assert ack.status == "dead" and "550" in ack.last_error
    assert notify.status == "sent"
    with app.sessions() as s:
        events = s.scalars(
            select(models.TicketEvent.detail).where(models.TicketEvent.kind == "mail_dead")
        ).all()
    assert len(events) == 1 and "permanent failure" in events[0] and "550" in events[0]
    assert result.unavailable == []  # a refusal of one mail: the server itself is there


def test_server_unreachable_then_back(make_app, sqlite_url, tmp_path, clock):
    port = free_port()
    app = _app(make_app, sqlite_url, tmp_path, f"smtp://127.0.0.1:{port}")
    app.process_raw(Source("t", 1, "1"), request_mail())
    down = send_all(app)
    assert down.sent == 0 and down.retried == 1 and "connection" in down.errors[0].lower()
    assert down.unavailable == down.errors  # by type: the server was not reached

    from aiosmtpd.controller import Controller

    from tests.servers import RecordingHandler

    handler = RecordingHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        clock.advance(minutes=5)
        assert send_all(app).sent == 2
        assert [r.rcpt_tos for r in handler.received] == [[APPLICANT], [HEAD]]
    finally:
        controller.stop()


def test_gives_up_after_max_attempts(make_app, sqlite_url, tmp_path, smtp, clock):
    app = _app(
        make_app,
        sqlite_url,
        tmp_path,
        smtp.url,
    )
    app.process_raw(Source("t", 1, "1"), request_mail())
    attempts = app.config.settings.smtp.max_attempts
    for _ in range(attempts):
        smtp.handler.replies = ["421 4.7.0 busy"]
        send_all(app)
        clock.advance(hours=2)
    ack = _outbound(app)[0]
    assert ack.status == "dead" and ack.attempts == attempts


def test_folder_sender_writes_eml_files(make_app, sqlite_url, tmp_path):
    app = _app(make_app, sqlite_url, tmp_path, f"file://{tmp_path / 'out'}")
    app.process_raw(Source("t", 1, "1"), request_mail())
    assert send_all(app).sent == 2
    files = sorted((tmp_path / "out").glob("*.eml"))
    assert len(files) == 2
    assert {f.read_bytes() for f in files} == {o.raw for o in _outbound(app)}


def test_claim_of_a_dead_process_is_resolved_by_the_send_journal(make_app, sqlite_url, tmp_path, smtp, clock):
    """A process died after the server's 250 but before its commit: the journal says sent."""
    from sqlalchemy import update

    app = _app(make_app, sqlite_url, tmp_path, smtp.url)
    app.process_raw(Source("t", 1, "1"), request_mail())
    ack, _notify = _outbound(app)
    with app.sessions.begin() as s:
        s.execute(update(models.OutboundMessage).values(status="sending", next_attempt_at=clock.now))
    assert app.outbox.journal is not None
    app.outbox.journal.record(ack.id)  # the server accepted the ack; the notify was in doubt
    clock.advance(seconds=1)
    result = send_all(app)
    assert result.sent == 1 and [r.rcpt_tos for r in smtp.handler.received] == [[HEAD]]
    assert all(o.status == "sent" for o in _outbound(app))
    with app.sessions() as s:
        sent_lines = s.scalars(
            select(models.TicketEvent.detail).where(models.TicketEvent.kind == "mail_sent")
        ).all()
    assert sorted(sent_lines) == sorted([f"ack → {APPLICANT} (send journal)", f"notify → {HEAD}"])


def test_batches_over_several_connections_keep_each_tickets_mail_in_order(
    make_app, sqlite_url, tmp_path, smtp
):
    """Small batches spread over three connections: every mail once, each ticket's in order."""
    app = make_app(
        database_url=sqlite_url,
        mailbox_url=f"maildir://{tmp_path / 'md'}",
        smtp_url=smtp.url,
        smtp_extra="batch_size = 4\nconnections = 3",
    )
    assert len(app.outbox.senders) == 3
    senders = [f"p{i}@instansi.example.go.id" for i in range(12)]
    for i, sender in enumerate(senders):
        app.process_raw(Source("t", 1, str(i)), request_mail(sender=sender, subject=f"Soal {i}"))
    result = send_all(app)
    assert result.sent == 24 and result.retried == 0
    assert len({r.peer for r in smtp.handler.received}) == 3  # the work was spread
    outbound = _outbound(app)
    assert all(o.status == "sent" and o.attempts == 1 for o in outbound)
    by_id = {o.message_id: o for o in outbound}
    order: dict[int | None, list[int]] = {}
    for r in smtp.handler.received:
        row = by_id[r.message["Message-ID"].strip()]
        order.setdefault(row.ticket_id, []).append(row.id)
    assert len(order) == 12 and all(ids == sorted(ids) and len(ids) == 2 for ids in order.values())
    with app.sessions() as s:
        sent = s.execute(
            select(models.TicketEvent, models.Ticket.state)
            .join(models.Ticket, models.TicketEvent.ticket_id == models.Ticket.id)
            .where(models.TicketEvent.kind == "mail_sent")
        ).all()
    assert len(sent) == 24
    # Each line names its ticket, the mail it is about (one of that ticket's) and the ticket's state,
    # though the sending side loads neither the tickets nor their histories.
    mails = {o.id: o for o in outbound}
    assert {line.outbound_id for line, _ in sent} == set(mails)
    assert all(mails[line.outbound_id].ticket_id == line.ticket_id for line, _ in sent)
    assert all(line.state == state.value for line, state in sent)


def test_mail_of_a_ticket_in_another_processs_hands_is_not_overtaken(
    make_app, sqlite_url, tmp_path, smtp, clock
):
    """Another process holds the claim on a ticket's first mail: its second waits; others go."""
    from sqlalchemy import update

    app = _app(make_app, sqlite_url, tmp_path, smtp.url)
    app.process_raw(Source("t", 1, "1"), request_mail())
    app.process_raw(Source("t", 1, "2"), request_mail(sender="agus@example.go.id", subject="Soal lain"))
    first_ack = _outbound(app)[0]
    with app.sessions.begin() as s:
        s.execute(
            update(models.OutboundMessage)
            .where(models.OutboundMessage.id == first_ack.id)
            .values(status="sending", next_attempt_at=clock.now + timedelta(minutes=10))
        )
    result = send_all(app)
    assert result.sent == 2
    assert [r.rcpt_tos for r in smtp.handler.received] == [["agus@example.go.id"], [HEAD]]
    statuses = [o.status for o in _outbound(app)]
    assert statuses[:2] == ["sending", "pending"]  # the first ticket's head notice waits its turn


def test_refused_recipient_is_dead_lettered_and_the_connection_goes_on(make_app, sqlite_url, tmp_path, smtp):
    """RCPT TO refused for good: that mail is a dead letter with the server's reason; the
    envelope is reset and the next mail goes out over the same connection."""
    app = _app(make_app, sqlite_url, tmp_path, smtp.url)
    app.process_raw(Source("t", 1, "1"), request_mail())
    smtp.handler.rcpt_replies[APPLICANT] = "550 5.1.1 no such mailbox"
    result = send_all(app)
    assert (result.sent, result.dead) == (1, 1)
    ack, notify = _outbound(app)
    assert ack.status == "dead" and f"{APPLICANT}: 550 5.1.1 no such mailbox" in ack.last_error
    assert notify.status == "sent" and [r.rcpt_tos for r in smtp.handler.received] == [[HEAD]]
    service = app.config.service.address
    assert smtp.handler.commands == [
        f"MAIL {service} SIZE={len(ack.raw)}",
        f"RCPT {APPLICANT}",
        f"MAIL {service} SIZE={len(notify.raw)}",  # no "503 nested MAIL": the envelope was reset
        f"RCPT {HEAD}",
    ]


def test_temporary_refusals_of_sender_or_recipient_are_retried(make_app, sqlite_url, tmp_path, smtp, clock):
    app = _app(make_app, sqlite_url, tmp_path, smtp.url)
    app.process_raw(Source("t", 1, "1"), request_mail())
    smtp.handler.mail_replies = ["451 4.3.0 sender check failed, try later"]
    assert (send_all(app).sent, _outbound(app)[0].status) == (0, "pending")
    assert "451" in _outbound(app)[0].last_error
    clock.advance(seconds=61)
    smtp.handler.rcpt_replies[APPLICANT] = "450 4.2.1 mailbox busy"
    assert send_all(app).retried == 1
    assert "450 4.2.1 mailbox busy" in _outbound(app)[0].last_error
    del smtp.handler.rcpt_replies[APPLICANT]
    clock.advance(hours=1)
    assert send_all(app).sent == 2
    assert [o.attempts for o in _outbound(app)] == [3, 1]
    assert [r.rcpt_tos for r in smtp.handler.received] == [[APPLICANT], [HEAD]]


@pytest.mark.parametrize(
    "address",
    [
        "rina@example.go.id> SIZE=1",
        "rina kartika@example.go.id",
        "rina@example.go.id\r\nRSET",
        "",
        " ",
        "<rina@example.go.id",
        "rina\u00a0kartika@example.go.id",  # a no-break space
        "rina@example.go.id\u2028RSET",  # a Unicode line separator
        "rina\x00@example.go.id",
    ],
)
def test_an_address_that_could_change_the_smtp_command_is_refused_before_sending(smtp, address):
    sender = SmtpSender(_url(smtp), SmtpSettings())
    with pytest.raises(SendError, match="not an address for the SMTP envelope") as caught:
        asyncio.run(_send_and_close(sender, "konsultasi@bpsdm.example.go.id", [address]))
    assert caught.value.permanent
    assert smtp.handler.commands == [] and smtp.handler.received == []


def test_a_non_ascii_address_needs_the_servers_smtputf8():
    mail, service, address = (
        b"Subject: uji\r\n\r\nisi\r\n",
        "konsultasi@bpsdm.example.go.id",
        "rína@contoh.id",
    )
    plain, utf8 = start_smtp(enable_SMTPUTF8=False), start_smtp(enable_SMTPUTF8=True)
    try:
        with pytest.raises(SendError, match="SMTPUTF8") as caught:
            asyncio.run(_send_and_close(_sender(plain), service, [address]))
        assert caught.value.permanent and plain.handler.commands == []
        asyncio.run(_send_and_close(_sender(utf8), service, [address], mail))
        assert utf8.handler.commands[0].endswith("SMTPUTF8")
        assert [(r.rcpt_tos, r.data) for r in utf8.handler.received] == [([address], mail)]
        # Only the domain outside ASCII: the server without SMTPUTF8 gets its IDNA form.
        asyncio.run(_send_and_close(_sender(plain), service, ["rina@bücher.example"], mail))
        assert [r.rcpt_tos for r in plain.handler.received] == [["rina@xn--bcher-kva.example"]]
    finally:
        plain.controller.stop()
        utf8.controller.stop()


def _url(server: SmtpServer) -> ConnectionUrl:
    return parse_connection_url(server.url, SMTP_SCHEMES, Path("."))


def _sender(server: SmtpServer) -> SmtpSender:
    return SmtpSender(_url(server), SmtpSettings())


async def _send_and_close(
    sender: SmtpSender, mail_from: str, rcpt_to: list[str], raw: bytes = b"x\r\n"
) -> None:
    try:
        await sender.send(mail_from, rcpt_to, raw)
    finally:
        await sender.close()
