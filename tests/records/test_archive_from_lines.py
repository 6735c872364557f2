"""The mboxrd export of a ticket whose mails have 'From ' lines in their bodies, among
them a mail to staff rebuilt without its largest file at send time (a server's smaller SIZE),
which carries a forwarded mail (7bit) with 'From ' lines of its own."""

from __future__ import annotations

import email
import email.policy
import mailbox
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import select

from mailbot.records.archive import mboxrd_unquote
from mailbot.shell import models
from tests.conftest import request_mail, send_all
from tests.desk import BUDI, HEAD, STAFF, Desk, attachment_names
from tests.records.test_archive import _export
from tests.servers import SmtpServer, start_smtp

FORWARDED = (
    b"From: Kepala Desa <kades@desa.example.id>\r\nTo: rina@kemendesa.example.go.id\r\n"
    b"Subject: Surat edaran\r\nMessage-ID: <se-1@desa.example.id>\r\n\r\n"
    b"Yth. Ibu Rina,\r\n\r\nFrom the village office: lampiran surat edaran.\r\n>From a quoted line\r\n"
    b">>From two levels\r\nFromage is no separator.\r\n"
)


def _request() -> bytes:
    msg = email.message_from_bytes(request_mail(), policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    body = msg.get_body(("plain",))
    assert body is not None
    msg.set_content(str(body.get_content()) + "\nFrom here on, the evidence:\n>From my notes\n")
    msg.add_attachment(email.message_from_bytes(FORWARDED, policy=email.policy.default))
    msg.add_attachment(
        b"%PDF-1.4\n" + b"\x00\x01" * 20_000, maintype="application", subtype="pdf", filename="scan.pdf"
    )
    return msg.as_bytes().replace(b"\n", b"\r\n")


@pytest.fixture
def small_server() -> Iterator[SmtpServer]:
    server = start_smtp(data_size_limit=30_000)
    yield server
    server.controller.stop()


def _mboxrd_messages(path: Path) -> list[bytes]:
    """The messages of an mboxrd file, read by its rule: a 'From ' line at the start of the file or
    after a blank line separates; one '>' is taken off every '>*From ' line."""
    data = path.read_bytes()
    assert data.startswith(b"From ")
    chunks = data.split(b"\n\nFrom ")
    out = []
    for i, chunk in enumerate(chunks):
        body = chunk.split(b"\n", 1)[1]
        if i == len(chunks) - 1:
            assert body.endswith(b"\n\n")
            body = body[:-1]
        else:
            body += b"\n"
        out.append(mboxrd_unquote(body))
    return out


def test_the_export_reads_back_byte_for_byte_after_a_rebuild_without_files(
    make_app, sqlite_url: str, tmp_path: Path, small_server: SmtpServer
) -> None:
    app = make_app(
        database_url=sqlite_url,
        mailbox_url=f"maildir://{tmp_path / 'md'}",
        smtp_url=small_server.url,
        staff=STAFF,
    )
    desk = Desk(app)
    desk.deliver(_request())
    desk.reply(desk.last(HEAD, "notify"), HEAD, "ASSIGN Budi Santoso")
    assert attachment_names(desk.last(BUDI, "assign")) == ["pesan-1.eml", "scan.pdf"]
    result = send_all(app)
    assert result.dead == 0 and not result.errors
    sent = desk.last(BUDI, "assign")
    assert attachment_names(sent) == ["pesan-1.eml"]  # rebuilt without the PDF, for SIZE 30000
    assert b"\r\nFrom the village office" in sent.raw  # the forwarded mail, 7bit, as it came

    out = tmp_path / "arsip.mbox"
    done = _export(tmp_path, str(out))
    assert done.returncode == 0, done.stderr

    with app.sessions() as s:
        stored = [
            m.raw
            for m in s.execute(select(models.InboundMessage).order_by(models.InboundMessage.id)).scalars()
        ]
        stored += [m.raw for m in s.execute(select(models.OutboundMessage)).scalars()]
    expected = sorted(r.replace(b"\r\n", b"\n") for r in stored)
    assert sorted(_mboxrd_messages(out)) == expected
    assert len(mailbox.mbox(out)) == len(stored)  # no body line read as a separator
    text = out.read_bytes()
    assert text.count(b"\n>From the village office") == 2  # in the request, and in the rebuilt mail
    assert text.count(b"\n>>>From two levels") == 2


def test_a_stored_mail_that_begins_with_an_mbox_from_line_exports_with_its_header(
    desk: Desk, tmp_path: Path
) -> None:
    # Some deliveries leave the mbox envelope line on top of a Maildir file; intake reads past it.
    mail = request_mail()
    desk.deliver(b"From rina@kemendesa.example.go.id Mon Nov 16 09:12:00 2026\r\n" + mail)
    assert desk.ticket() is not None
    out = tmp_path / "arsip.mbox"
    assert _export(tmp_path, str(out)).returncode == 0
    [first, *_] = list(mailbox.mbox(out))
    assert first["Subject"] == "Konsultasi penyusunan Analisis Beban Kerja"  # not a mail without a header
    assert _mboxrd_messages(out)[0] == mail.replace(b"\r\n", b"\n")
