"""Size before reading (#18 item 2): a message over `limits.max_message_bytes` is never read
whole. Its size comes from RFC822.SIZE (IMAP) or the file (Maildir); only its header block is
fetched; it is quarantined with the reason and the person gets the polite refusal."""

from __future__ import annotations

import mailbox

import pytest
from sqlalchemy import select

from mailbot.shell import models
from mailbot.shell.mailbox import Oversized, open_source
from tests.conftest import request_mail, send_all

LIMIT = "[limits]\nmax_message_bytes = 200000\n"
SENDER = "rina.kartika@kemendesa.example.go.id"


def _check(app, size: int) -> None:
    with app.sessions() as s:
        [row] = s.scalars(select(models.InboundMessage)).all()
        assert row.status == "quarantined" and row.reason.startswith("message too large")
        assert row.size == size  # the whole message's size, as the server or the file says
        assert len(row.raw) < 10_000  # only the header block was read and stored
        assert s.scalars(select(models.Ticket)).all() == []
        [refusal] = s.scalars(
            select(models.OutboundMessage).where(models.OutboundMessage.kind == "refused")
        ).all()
        assert refusal.recipient == SENDER


def test_maildir_reads_the_size_from_the_file(make_app, sqlite_url, tmp_path) -> None:
    app = make_app(
        database_url=sqlite_url,
        mailbox_url=f"maildir://{tmp_path / 'md'}",
        smtp_url=f"file://{tmp_path / 'out'}",
        extra=LIMIT,
    )
    huge = request_mail(body="x" * 3_000_000, subject="Lampiran besar")
    mailbox.Maildir(tmp_path / "md", create=True).add(huge)
    source = open_source(app.config)
    source.connect()
    [(_uid, raw)] = list(source.fetch(source.pending(10)))
    assert isinstance(raw, Oversized) and raw.size == len(huge) and len(raw) < 10_000
    source.close()
    stats = app.run_intake_once()
    assert stats.quarantined == 1
    _check(app, len(huge))
    assert len(list(mailbox.Maildir(tmp_path / "md" / ".Quarantine", factory=None, create=False))) == 1


@pytest.mark.imap
def test_imap_reads_rfc822_size_and_fetches_only_the_header(imap, smtp, sqlite_url, make_app) -> None:
    app = make_app(database_url=sqlite_url, mailbox_url=imap.url(), smtp_url=smtp.url, extra=LIMIT)
    huge = request_mail(body="x" * 3_000_000, subject="Lampiran besar")
    imap.deliver(huge, request_mail(sender="kecil@example.go.id", subject="Biasa"))
    stats = app.run_intake_once()
    send_all(app)
    assert stats.quarantined == 1 and stats.processed == 1
    assert imap.count("Quarantine") == 1 and imap.count("INBOX") == 0
    assert any("Lampiran besar" in r.subject for r in smtp.handler.to(SENDER))
