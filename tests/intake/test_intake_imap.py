"""End to end against a real Dovecot and a real aiosmtpd, on SQLite and on PostgreSQL."""

from __future__ import annotations

import email
import email.policy
import itertools
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from mailbot.core.workflow import State
from mailbot.shell import models
from tests.conftest import CONSULTANT, HEAD, ROOT, SERVICE_ADDRESS, request_mail, send_all, write_config

pytestmark = pytest.mark.imap

APPLICANT = "rina.kartika@kemendesa.example.go.id"


def _tickets(app):
    with app.sessions() as s:
        return list(s.execute(select(models.Ticket).order_by(models.Ticket.id)).scalars())


def _reply(original: bytes, sender: str, body: str, subject_prefix: str = "Re: ") -> bytes:
    """The applicant's client replying to one of our mails: threading headers, quoted text below."""
    msg = email.message_from_bytes(original, policy=email.policy.default)
    quoted = "\n".join("> " + line for line in str(msg.get_body(("plain",)).get_content()).splitlines())
    return (
        f"From: Rina Kartika <{sender}>\r\n"
        f"To: {SERVICE_ADDRESS}\r\n"
        f"Subject: {subject_prefix}{msg['Subject']}\r\n"
        f"Message-ID: <reply-{os.urandom(4).hex()}@kemendesa.example.go.id>\r\n"
        f"In-Reply-To: {msg['Message-ID']}\r\n"
        f"References: {msg.get('References', '')} {msg['Message-ID']}\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\n"
        + (body + "\n\nPada Sen, 16 Nov 2026 pukul 09.15, Layanan Konsultasi menulis:\n" + quoted).replace(
            "\n", "\r\n"
        )
    ).encode()


def test_complete_request_becomes_ticket_ack_and_head_notification(imap, smtp, database_url, make_app):
    app = make_app(database_url=database_url, mailbox_url=imap.url(), smtp_url=smtp.url)
    imap.deliver(request_mail())

    stats = app.run_intake_once()
    result = send_all(app)

    assert stats.processed == 1 and list(stats.tickets) == ["KONS-2026-000001"]
    [ticket] = _tickets(app)
    assert ticket.state is State.NEW
    assert ticket.fields["id_number"] == "198609262015052001"
    assert ticket.fields["phone"] == "+6281234567890"
    assert result.sent == 2
    [ack] = smtp.handler.to(APPLICANT)
    [notify] = smtp.handler.to(HEAD)
    assert "KONS-2026-000001" in ack.subject
    assert ack.message["In-Reply-To"] == ticket.root_message_id
    assert ack.message["Auto-Submitted"] == "auto-replied"
    assert ack.message["X-Auto-Response-Suppress"] == "All"
    assert ack.message["X-Mailbot-Loop"] == SERVICE_ADDRESS
    assert "Penelaahan" in ack.text() and "3 hari kerja" in ack.text()
    # The head's mail has the summary and how to reply; personal numbers are masked.
    assert "ASSIGN Budi Santoso" in notify.text()
    assert "Bagaimana tata cara penyusunan" in notify.text()
    assert "198609262015052001" not in notify.text() and "1986**********2001" in notify.text()
    assert notify.message["Auto-Submitted"] == "auto-generated"
    # Stored and committed, then moved out of INBOX.
    assert imap.count("INBOX") == 0 and imap.count("Processed") == 1
    with app.sessions() as s:
        row = s.execute(select(models.InboundMessage)).scalar_one()
        assert row.raw == imap.messages("Processed")[0]
        kinds = [e.kind for e in s.get(models.Ticket, ticket.id).events]
    assert kinds[0] == "request_complete" and kinds.count("mail_sent") == 2


def test_incomplete_request_is_completed_by_reply_in_thread(imap, smtp, database_url, make_app):
    app = make_app(database_url=database_url, mailbox_url=imap.url(), smtp_url=smtp.url)
    body = (
        "Selamat pagi,\n\nNama: Rina Kartika\nJabatan: Analis Kebijakan\nNIP: 1986 0926 2015\n\n"
        "Pertanyaan: Apakah ada batas usia untuk sertifikasi pendamping desa?\n"
    )
    imap.deliver(request_mail(body=body))
    app.run_intake_once()
    send_all(app)

    [ticket] = _tickets(app)
    assert ticket.state is State.AWAITING_INFO
    assert {i["field"]: i["code"] for i in ticket.issues} == {
        "id_number": "id_bad_length",
        "unit": "missing",
        "phone": "missing",
    }
    [ask] = smtp.handler.to(APPLICANT)
    assert smtp.handler.to(HEAD) == []
    text = ask.text()
    assert "NIP/NIK" in text and "harus 18 digit" in text
    assert "Unit Kerja/Instansi: belum dicantumkan" in text
    assert "Nomor Telepon: belum dicantumkan" in text

    # The applicant answers part of it: still incomplete, asked again, same ticket.
    imap.deliver(_reply(ask.data, APPLICANT, "Unit Kerja: Biro Umum\nNo HP: 62 812 1111 2222"))
    app.run_intake_once()
    send_all(app)
    [ticket] = _tickets(app)
    assert ticket.state is State.AWAITING_INFO
    assert [i["field"] for i in ticket.issues] == ["id_number"]
    second = smtp.handler.to(APPLICANT)[-1]
    assert "masih belum lengkap" in second.text()

    # Then the rest, unlabelled, with the ticket number only in the subject.
    late = request_mail(
        subject=f"NIP untuk tiket {ticket.number}", body="19860926 201505 2 001\n\nSalam,\nRina"
    )
    imap.deliver(late)
    app.run_intake_once()
    send_all(app)
    [ticket] = _tickets(app)
    assert ticket.state is State.NEW
    assert ticket.fields["unit"] == "Biro Umum" and ticket.fields["phone"] == "+6281211112222"
    assert ticket.fields["id_number"] == "198609262015052001"
    assert len(smtp.handler.to(HEAD)) == 1
    assert "telah kami terima" in smtp.handler.to(APPLICANT)[-1].subject
    with app.sessions() as s:
        assert s.scalar(select(func.count()).select_from(models.Ticket)) == 1
        states = [e.kind for e in s.get(models.Ticket, ticket.id).events if e.kind != "mail_queued"]
    assert states[:1] == ["request_incomplete"] and "request_complete" in states


def test_request_sent_twice_opens_one_ticket(imap, smtp, database_url, make_app):
    app = make_app(database_url=database_url, mailbox_url=imap.url(), smtp_url=smtp.url)
    same = request_mail(message_id="<same@kemendesa.example.go.id>")
    # Same Message-ID delivered twice, and the same request resent with a new Message-ID.
    imap.deliver(same, same, request_mail())
    stats = app.run_intake_once()
    send_all(app)
    assert stats.fetched == 3 and stats.processed == 1 and stats.duplicates == 2
    assert len(_tickets(app)) == 1
    assert len(smtp.handler.to(APPLICANT)) == 1 and len(smtp.handler.to(HEAD)) == 1
    assert imap.count("INBOX") == 0 and imap.count("Processed") == 3


def test_machine_mail_gets_no_reply_and_no_ticket(imap, smtp, sqlite_url, make_app):
    app = make_app(database_url=sqlite_url, mailbox_url=imap.url(), smtp_url=smtp.url)
    imap.deliver(
        request_mail(subject="Automatic reply: Konsultasi", headers="Auto-Submitted: auto-replied\r\n"),
        request_mail(subject="Balasan otomatis: Konsultasi"),  # Exchange OOF without headers
        request_mail(headers="List-Id: <pegawai.example.go.id>\r\nPrecedence: list\r\n"),
    )
    stats = app.run_intake_once()
    send_all(app)
    assert stats.machine == 3 and _tickets(app) == [] and smtp.handler.received == []


def test_person_writing_through_a_list_gets_a_ticket_but_no_automatic_answer(
    imap, smtp, sqlite_url, make_app
):
    app = make_app(database_url=sqlite_url, mailbox_url=imap.url(), smtp_url=smtp.url)
    imap.deliver(request_mail(headers="Precedence: bulk\r\n"))
    app.run_intake_once()
    send_all(app)
    [ticket] = _tickets(app)
    assert smtp.handler.to(APPLICANT) == [] and len(smtp.handler.to(HEAD)) == 1
    with app.sessions() as s:
        details = [e.detail for e in s.get(models.Ticket, ticket.id).events if e.kind == "reply_suppressed"]
    assert details == [f"ack to {APPLICANT} not sent: Precedence: bulk"]


def test_unreadable_mail_is_quarantined_and_replayable(imap, smtp, sqlite_url, make_app, tmp_path):
    app = make_app(database_url=sqlite_url, mailbox_url=imap.url(), smtp_url=smtp.url)
    imap.deliver(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 200, request_mail())
    stats = app.run_intake_once()
    assert stats.quarantined == 1 and stats.processed == 1
    assert imap.count("Quarantine") == 1 and imap.count("INBOX") == 0
    with app.sessions() as s:
        q = s.execute(
            select(models.InboundMessage).where(models.InboundMessage.status == "quarantined")
        ).scalar_one()
        assert "Outlook .msg" in q.reason
    # Replay by id goes through the CLI; a still-unreadable message stays quarantined (exit 2).
    config = tmp_path / "mailbot.toml"
    out = subprocess.run(
        [sys.executable, "-m", "mailbot", "--config", str(config), "replay", str(q.id)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert out.returncode == 2, out.stderr
    assert "quarantined" in out.stdout


def test_sigkill_between_commit_and_flag_loses_nothing_and_doubles_nothing(
    imap, smtp, database_url, tmp_path
):
    config = write_config(
        tmp_path, database_url=database_url, mailbox_url=imap.url(), smtp_url=smtp.url, daily_digest=False
    )
    imap.deliver(request_mail())
    crash = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("crash_runner.py")), str(config), "after_commit"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert crash.returncode == -9, crash.stderr  # killed by SIGKILL right after the commit
    assert imap.count("INBOX") == 1  # stored, but not yet moved
    assert smtp.handler.received == []  # the acknowledgment waits in the outbox

    again = subprocess.run(
        [sys.executable, "-m", "mailbot", "--config", str(config), "run", "--once"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 0, again.stderr
    assert "1 already done" in again.stdout
    assert imap.count("INBOX") == 0 and imap.count("Processed") == 1
    assert len(smtp.handler.to(APPLICANT)) == 1 and len(smtp.handler.to(HEAD)) == 1
    from mailbot.config import load_config
    from mailbot.shell.db import make_engine

    engine = make_engine(load_config(config).database_url)
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(models.Ticket)) == 1
        assert conn.scalar(select(func.count()).select_from(models.InboundMessage)) == 1
    engine.dispose()


def test_head_assigns_by_replying_to_the_notification(imap, smtp, database_url, make_app):
    app = make_app(database_url=database_url, mailbox_url=imap.url(), smtp_url=smtp.url)
    imap.deliver(request_mail())
    app.run_intake_once()
    send_all(app)
    [notify] = smtp.handler.to(HEAD)
    imap.deliver(_reply(notify.data, HEAD, "ASSIGN budi santoso\nTolong ditindaklanjuti."))
    app.run_intake_once()
    send_all(app)
    [ticket] = _tickets(app)
    assert ticket.state is State.ASSIGNED and ticket.assignee_email == CONSULTANT
    [transcript] = smtp.handler.to(HEAD)[1:]
    assert "DILAKSANAKAN: ditugaskan kepada Budi Santoso" in transcript.text()
    [assignment] = smtp.handler.to(CONSULTANT)
    assert "Penugasan (Surat Tugas)" in assignment.subject and "Riwayat konsultasi" in assignment.text()
    assert "sedang ditangani" in smtp.handler.to(APPLICANT)[-1].subject


def test_uidvalidity_change_reprocesses_nothing(imap, smtp, sqlite_url, make_app, caplog):
    """Folder deleted and recreated (new UIDVALIDITY) with the same mail in it: no second ticket."""
    c = imap.client()
    c.create_folder("Konsultasi")
    c.logout()
    app = make_app(
        database_url=sqlite_url,
        mailbox_url=imap.url("Konsultasi"),
        smtp_url=smtp.url,
        mailbox_extra='after = "flag"',
    )
    mails = [
        request_mail(),
        request_mail(sender="agus@example.go.id", name="Agus Salim", subject="Dana Desa"),
    ]
    imap.deliver(*mails, folder="Konsultasi")
    first = app.run_intake_once()
    send_all(app)
    assert first.processed == 2 and len(smtp.handler.received) == 4
    assert imap.count("Konsultasi") == 2  # flag mode: the mail stays, marked $MailbotDone

    c = imap.client()
    c.delete_folder("Konsultasi")
    c.create_folder("Konsultasi")
    c.logout()
    imap.deliver(*mails, folder="Konsultasi")
    second = app.run_intake_once()
    send_all(app)
    assert second.fetched == 2 and second.duplicates == 2 and second.processed == 0
    assert len(_tickets(app)) == 2 and len(smtp.handler.received) == 4
    assert "UIDVALIDITY of" in caplog.text and "changed" in caplog.text
    assert app.run_intake_once().fetched == 0  # flagged: not fetched again


def test_pending_searches_only_above_the_uid_given(imap, smtp, sqlite_url, make_app):
    """Dovecot answers "UID n:*" with the highest UID even when that is below n (RFC 3501
    s. 6.4.8): what is above the last UID read is nothing then, not that message again."""
    app = make_app(database_url=sqlite_url, mailbox_url=imap.url(), smtp_url=smtp.url)
    imap.deliver(request_mail(message_id="<a@x.id>"), request_mail(message_id="<b@x.id>"))
    source = app.source_factory(app.config)
    source.connect()
    try:
        first, second = source.pending(10)
        assert source.pending(10, after=first) == [second]
        assert source.pending(10, after=second) == []
    finally:
        source.close()


@pytest.mark.parametrize("after", ["move", "flag"])
def test_a_backlog_in_batches_searches_on_from_the_last_uid_read(imap, smtp, sqlite_url, make_app, after):
    app = make_app(
        database_url=sqlite_url,
        mailbox_url=imap.url(),
        smtp_url=smtp.url,
        mailbox_extra=f'batch_size = 3\ntransaction_size = 1\nparse_workers = 0\nafter = "{after}"',
    )
    imap.deliver(
        *(
            request_mail(sender=f"p{i}@example.go.id", subject=f"Soal {i}", message_id=f"<s{i}@x.id>")
            for i in range(7)
        )
    )
    searches: list[tuple[str | None, list[str]]] = []
    real = app.source_factory

    def recording(config):
        source = real(config)
        pending = source.pending

        def noted(limit: int, after: str | None = None) -> list[str]:
            found = pending(limit, after)
            searches.append((after, found))
            return found

        source.pending = noted
        return source

    app.source_factory = recording
    stats = app.run_intake_once()

    assert stats.processed == 7 and len(_tickets(app)) == 7, searches
    assert [len(found) for _, found in searches] == [3, 3, 1, 0]
    assert searches[0][0] is None
    for (_, before), (cursor, found) in itertools.pairwise(searches):
        assert cursor == before[-1] and all(int(u) > int(cursor) for u in found)
    assert app.run_intake_once().fetched == 0  # nothing left waiting
