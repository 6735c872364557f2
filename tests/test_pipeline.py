"""The intake pipeline for backlogs: groups of messages per transaction, parsing in a worker
process. The same mail must come out the same as when each message is parsed in the intake thread."""

from __future__ import annotations

import mailbox
import os
import signal
from email.message import EmailMessage
from pathlib import Path

from sqlalchemy import select

from mailbot import models
from tests.conftest import request_mail


def _too_many_attachments() -> bytes:
    msg = EmailMessage()
    msg["From"] = "Banyak Lampiran <banyak@example.go.id>"
    msg["To"] = "konsultasi@bpsdm.example.go.id"
    msg["Subject"] = "Lampiran banyak"
    msg["Message-ID"] = "<banyak@example.go.id>"
    msg.set_content("Mohon diperiksa.")
    for i in range(3):
        msg.add_attachment(b"%d" % i, maintype="application", subtype="pdf", filename=f"l{i}.pdf")
    return msg.as_bytes()


def _backlog(md_path: Path) -> None:
    md = mailbox.Maildir(md_path, create=True)
    for i in range(14):
        md.add(
            request_mail(
                sender=f"p{i}@example.go.id",
                name=f"Pemohon {i}",
                subject=f"Soal {i}",
                message_id=f"<soal{i}@example.go.id>",
            )
        )
    md.add(b"\x00\x01 not a mail at all \xff")  # unreadable: quarantined with the reason
    md.add(_too_many_attachments())  # over the limit: quarantined, and the sender is told
    # A reply in the same backlog: its quotes are stripped in the intake thread, when asked for.
    md.add(
        request_mail(
            sender="p3@example.go.id",
            subject="Re: Soal 3",
            body="Terima kasih.\n\n> kutipan\n",
            headers="In-Reply-To: <soal3@example.go.id>\r\n",
        )
    )


def _state(app) -> list[tuple]:
    with app.sessions() as s:
        inbound = [
            (r.from_addr, r.status, r.kind, r.reason.split(" (inbound")[0], r.subject)
            for r in s.scalars(
                select(models.InboundMessage).order_by(
                    models.InboundMessage.from_addr, models.InboundMessage.subject
                )
            )
        ]
        tickets = [
            (t.applicant_email, t.state.value, sorted(t.fields.items()), t.issues)
            for t in s.scalars(select(models.Ticket).order_by(models.Ticket.applicant_email))
        ]
        outbound = sorted((o.recipient, o.kind) for o in s.scalars(select(models.OutboundMessage)))
    return [inbound, tickets, outbound]


def _app(make_app, tmp_path: Path, name: str, workers: int):
    return make_app(
        database_url=f"sqlite:///{tmp_path / f'{name}.db'}",
        mailbox_url=f"maildir://{tmp_path / name}",
        smtp_url=f"file://{tmp_path / f'{name}-out'}",
        mailbox_extra=f"transaction_size = 4\nparse_workers = {workers}",
        extra="[limits]\nmax_attachments = 2",
    )


def test_parse_worker_gives_the_same_result_as_parsing_inline(make_app, tmp_path) -> None:
    inline = _app(make_app, tmp_path, "inline", 0)
    _backlog(tmp_path / "inline")
    inline.run_intake_once()
    assert inline._parser is None

    worker = _app(make_app, tmp_path, "worker", 1)
    _backlog(tmp_path / "worker")
    stats = worker.run_intake_once()
    assert worker._parser is not None  # the backlog went through the worker
    assert stats.fetched == 17 and stats.quarantined == 2
    assert _state(worker) == _state(inline)
    states = _state(worker)
    assert len(states[1]) == 14  # fourteen tickets; the reply joined its ticket
    assert sorted(r[3] for r in states[0] if r[1] == "quarantined") == [
        "3 attachments, limit 2",
        "not an RFC 5322 message: no header at the start",
    ]
    assert ("banyak@example.go.id", "refused") in states[2]  # the person was told
    assert ("p3@example.go.id", "follow_up") in {(r[0], r[2]) for r in states[0]}


def test_a_dead_parse_worker_leaves_the_parsing_to_the_intake_thread(make_app, tmp_path, caplog) -> None:
    app = _app(make_app, tmp_path, "md", 1)
    workers = app._parse_workers()
    assert workers is not None
    workers.submit(os.getpid).result()  # the worker process is up
    for pid in list(workers._processes):  # type: ignore[attr-defined]
        os.kill(pid, signal.SIGKILL)
    _backlog(tmp_path / "md")
    caplog.set_level("WARNING", logger="mailbot.app")
    stats = app.run_intake_once()
    assert stats.fetched == 17 and stats.processed + stats.quarantined == 17
    assert "parse worker failed" in caplog.text
    with app.sessions() as s:
        assert len(s.scalars(select(models.Ticket)).all()) == 14
