"""The intake pipeline for backlogs: groups of messages per transaction, parsing in a worker
process. The same mail must come out the same as when each message is parsed in the intake thread."""

from __future__ import annotations

import mailbox
import os
import signal
from email.message import EmailMessage
from pathlib import Path

from sqlalchemy import func, inspect, select

from mailbot.app import App
from mailbot.core.compose import Envelope
from mailbot.pipeline.fetch import IntakeStats
from mailbot.shell import models, persist, store
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


class _Recording:
    """A mailbox source that notes each read and each mark, in order."""

    def __init__(self, source, calls: list[tuple[str, list[str]]]) -> None:
        self.source, self.calls = source, calls

    def __getattr__(self, name: str):
        return getattr(self.source, name)

    def fetch(self, uids):
        self.calls.append(("fetch", list(uids)))
        return self.source.fetch(uids)

    def mark_done(self, uids) -> None:
        self.calls.append(("mark", list(uids)))
        self.source.mark_done(uids)

    def quarantine(self, uids) -> None:
        self.calls.append(("mark", list(uids)))
        self.source.quarantine(uids)


def test_the_next_batch_is_read_while_the_current_one_is_stored(make_app, tmp_path) -> None:
    """Batches of eight in groups of four: the second batch is read (and parsed) before the first
    is marked; the last batch, a single message, is read when its turn comes. Every message is
    read once and marked once, and the result is that of parsing each message inline."""
    inline = _app(make_app, tmp_path, "inline", 0)
    _backlog(tmp_path / "inline")
    inline.run_intake_once()

    app = make_app(
        database_url=f"sqlite:///{tmp_path / 'ahead.db'}",
        mailbox_url=f"maildir://{tmp_path / 'ahead'}",
        smtp_url=f"file://{tmp_path / 'ahead-out'}",
        mailbox_extra="transaction_size = 4\nparse_workers = 1\nbatch_size = 8",
        extra="[limits]\nmax_attachments = 2",
    )
    _backlog(tmp_path / "ahead")
    calls: list[tuple[str, list[str]]] = []
    real = app.source_factory
    app.source_factory = lambda config: _Recording(real(config), calls)
    stats = app.run_intake_once()

    assert stats.fetched == 17 and stats.processed + stats.quarantined == 17
    assert _state(app) == _state(inline)
    fetched = [u for kind, uids in calls if kind == "fetch" for u in uids]
    marked = [u for kind, uids in calls if kind == "mark" for u in uids]
    assert len(fetched) == len(set(fetched)) == 17 and sorted(marked) == sorted(fetched)
    kinds = [kind for kind, _ in calls]
    assert [len(uids) for kind, uids in calls if kind == "fetch"] == [8, 8, 1]
    assert kinds.index("mark") > 1 and kinds[:2] == ["fetch", "fetch"]  # read ahead, then marked
    assert app._parser is not None
    left = real(app.config)
    left.connect()
    assert left.pending(100) == []  # nothing left waiting in the folder
    left.close()


def _tricky_backlog(md_path: Path) -> None:
    """Everything a group's lookups must get right without asking the database message by message."""
    md = mailbox.Maildir(md_path, create=True)
    same = request_mail(sender="sama@example.go.id", name="Sama Persis", message_id="<sama@example.go.id>")
    md.add(same)
    md.add(same)  # the same bytes again
    # The same Message-ID from the same sender, other bytes (a client re-sending): a duplicate;
    # from another sender: a message of its own.
    md.add(request_mail(sender="mid@example.go.id", name="Mid", message_id="<mid@example.go.id>"))
    md.add(
        request_mail(
            sender="mid@example.go.id", name="Mid", message_id="<mid@example.go.id>", subject="Ulang"
        )
    )
    md.add(request_mail(sender="lain@example.go.id", name="Lain", message_id="<mid@example.go.id>"))
    # The same request sent again under a new Message-ID: "same request sent again".
    for n in range(2):
        md.add(
            request_mail(sender="ulang@example.go.id", name="Ulang", message_id=f"<ulang{n}@example.go.id>")
        )
    # One sender, many requests in one hour: acknowledgments stop at the per-recipient limit.
    for n in range(23):
        md.add(
            request_mail(
                sender="banjir@example.go.id", name="Banjir", subject=f"Soal {n}", message_id=f"<b{n}@x.id>"
            )
        )
    # A follow-up in the same group to a request earlier in the group (threaded by its Message-ID).
    md.add(
        request_mail(
            sender="balas@example.go.id",
            name="Balas",
            message_id="<balas-root@example.go.id>",
            body="Nama Lengkap : Balas\nPermasalahan:\nBagaimana SKP disusun?\n",
        )
    )
    md.add(
        request_mail(
            sender="balas@example.go.id",
            subject="Re: data",
            body="NIP : 19860926 201505 2 001\nUnit Kerja : Biro Umum\n",
            headers="In-Reply-To: <balas-root@example.go.id>\r\n",
        )
    )


def test_a_group_transaction_decides_as_one_transaction_per_message(make_app, tmp_path) -> None:
    """One transaction per message (transaction_size = 1) asks the database before every message;
    a group reads its lookups once and keeps them current (persist.Known). Same backlog, same result."""
    apps = {}
    for name, size in (("alone", 1), ("group", 50)):
        app = make_app(
            database_url=f"sqlite:///{tmp_path / f'{name}.db'}",
            mailbox_url=f"maildir://{tmp_path / name}",
            smtp_url=f"file://{tmp_path / f'{name}-out'}",
            mailbox_extra=f"transaction_size = {size}\nparse_workers = 0",
        )
        # One earlier message, committed before the backlog: a copy of it in the backlog is known.
        early = request_mail(sender="awal@example.go.id", name="Awal", message_id="<awal@example.go.id>")
        mailbox.Maildir(tmp_path / name, create=True).add(early)
        app.run_intake_once()
        _tricky_backlog(tmp_path / name)
        mailbox.Maildir(tmp_path / name).add(early)
        stats = app.run_intake_once()
        assert stats.fetched == 33
        apps[name] = app
    assert _state(apps["group"]) == _state(apps["alone"])
    inbound, tickets, outbound = _state(apps["group"])
    reasons = [(r[0], r[3]) for r in inbound if r[1] == "duplicate"]
    assert sorted(reasons) == [
        ("awal@example.go.id", "same message already received"),
        ("mid@example.go.id", "same message already received"),
        ("sama@example.go.id", "same message already received"),
        ("ulang@example.go.id", "same request sent again"),
    ]
    assert sum(1 for t in tickets if t[0] == "lain@example.go.id") == 1
    assert [o for o in outbound if o == ("banjir@example.go.id", "ack")] == [
        ("banjir@example.go.id", "ack")
    ] * 20
    balas = [t for t in tickets if t[0] == "balas@example.go.id"]
    assert len(balas) == 1 and dict(balas[0][2])["unit"] == "Biro Umum"  # the follow-up completed it


def test_each_stored_batch_wakes_the_sender_and_the_pass_goes_on_to_the_end(make_app, tmp_path) -> None:
    app = make_app(
        database_url=f"sqlite:///{tmp_path / 'wake.db'}",
        mailbox_url=f"maildir://{tmp_path / 'wake'}",
        smtp_url=f"file://{tmp_path / 'wake-out'}",
        mailbox_extra="transaction_size = 2\nparse_workers = 0\nbatch_size = 4",
    )
    md = mailbox.Maildir(tmp_path / "wake", create=True)
    for i in range(9):
        md.add(request_mail(sender=f"p{i}@example.go.id", subject=f"Soal {i}", message_id=f"<w{i}@x.id>"))
    source = app.source_factory(app.config)
    source.connect()
    stats = IntakeStats()
    woken: list[int] = []
    try:
        app.drain_mailbox(source, stats, committed=lambda: woken.append(stats.processed))
    finally:
        source.close()
    assert stats.processed == 9
    assert woken == [4, 8, 9]  # after each batch is committed and marked, not only at the end


def _one_ticket(make_app, database_url: str, tmp_path) -> App:
    app = make_app(
        database_url=database_url,
        mailbox_url=f"maildir://{tmp_path / 'md'}",
        smtp_url=f"file://{tmp_path / 'out'}",
    )
    app.migrate()
    mailbox.Maildir(tmp_path / "md", create=True).add(request_mail())
    app.run_intake_once()
    return app


def _stored_lines(app: App, ticket_id: int) -> list[tuple[int, str, str]]:
    with app.sessions() as s:
        rows = s.execute(
            select(models.TicketEvent.id, models.TicketEvent.kind, models.TicketEvent.detail)
            .where(models.TicketEvent.ticket_id == ticket_id)
            .order_by(models.TicketEvent.id)
        )
        return [tuple(r) for r in rows]


def test_history_lines_reach_the_database_at_commit_when_nothing_else_changed(
    make_app, database_url, tmp_path
) -> None:
    """History lines (persist.Effects.record): a line recorded in a transaction that changes nothing
    else is still written, in order, and in the ticket's `events` at once; a rolled-back line is not."""
    app = _one_ticket(make_app, database_url, tmp_path)
    now = app.clock()
    with persist.unit(app.sessions) as (s, effects):
        ticket = s.scalars(select(models.Ticket)).one()
        before = [e.id for e in ticket.events]
        effects.record(ticket, "note", actor="x", now=now, detail="one")
        effects.record(ticket, "note", actor="x", now=now, detail="two")
        assert [e.detail for e in ticket.events][-2:] == ["one", "two"]
        ticket_id = ticket.id
    lines = _stored_lines(app, ticket_id)
    assert [line[0] for line in lines[: len(before)]] == before
    added = [(kind, detail) for _id, kind, detail in lines[len(before) :]]
    assert added == [("note", "one"), ("note", "two")]
    with app.sessions() as s, s.begin():
        ticket = s.get(models.Ticket, ticket_id)
        assert ticket is not None
        effects = persist.Effects()
        effects.record(ticket, "note", actor="x", now=now, detail="rolled back")
        persist.apply(s, effects)
        s.rollback()
    assert [line[2] for line in _stored_lines(app, ticket_id)][-1] == "two"


def test_a_written_history_line_is_a_persistent_object_a_later_change_updates(
    make_app, database_url, tmp_path
) -> None:
    """The privacy purge blanks history lines through the ORM: a line written earlier in the same
    session must be a persistent object, not a copy whose changes go nowhere."""
    app = _one_ticket(make_app, database_url, tmp_path)
    with app.sessions() as s:
        with s.begin():
            ticket = s.scalars(select(models.Ticket)).one()
            effects = persist.Effects()
            entry = effects.record(ticket, "note", actor="x", now=app.clock(), detail="private")
            persist.apply(s, effects)
            # Applied: a query in the same transaction sees it.
            seen = s.scalar(select(func.count()).where(models.TicketEvent.detail == "private"))
            assert seen == 1
            assert inspect(entry).persistent
        with s.begin():
            entry.detail = ""
        ticket_id = ticket.id
    assert ("note", "") in [(kind, detail) for _id, kind, detail in _stored_lines(app, ticket_id)]
    assert "private" not in [detail for _id, _kind, detail in _stored_lines(app, ticket_id)]


def test_queued_mail_is_seen_by_a_query_in_the_same_transaction_and_stored_at_commit(
    make_app, database_url, tmp_path
) -> None:
    """Queued mail (store.enqueue): the loop guard's query later in the same transaction counts it
    (in memory, not applied yet); the unit stores it with its history line."""
    app = _one_ticket(make_app, database_url, tmp_path)
    now = app.clock()
    with persist.unit(app.sessions) as (s, effects):
        ticket = s.scalars(select(models.Ticket)).one()
        before = store.thread_mail_times(
            s, effects, ticket.id, ticket.applicant_email, "ack", store.since(now, 1)
        )
        envelope = Envelope("<again@x.id>", "konsultasi@x.id", (ticket.applicant_email,), "Lagi", b"raw")
        mail = store.enqueue(s, effects, envelope, kind="ack", ticket=ticket, now=now)
        after = store.thread_mail_times(
            s, effects, ticket.id, ticket.applicant_email, "ack", store.since(now, 1)
        )
        assert len(after) == len(before) + 1
        ticket_id = ticket.id
    outbound_id = mail.id
    with app.sessions() as s:
        row = s.get(models.OutboundMessage, outbound_id)
        assert row is not None
        assert (row.status, row.raw, row.rcpt_to, row.recipient) == (
            "pending",
            b"raw",
            [envelope.rcpt_to[0]],
            envelope.rcpt_to[0].lower(),
        )
        queued = [e for e in s.get(models.Ticket, ticket_id).events if e.outbound_id == outbound_id]
        assert [e.kind for e in queued] == ["mail_queued"]
