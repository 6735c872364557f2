"""Decisions return effects; one explicit persist step writes them (#17 item 2, STYLE.md habit 9):
a decision's lines and mail are a value its caller hands to `persist.apply`, which writes them with
their ids and links; the counts a transaction makes before applying match the database's after."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import func, orm, select

from mailbot.app import App
from mailbot.core.compose import Envelope
from mailbot.pipeline.intake import Source
from mailbot.shell import models, persist, store
from tests.conftest import request_mail
from tests.intake.test_pipeline import _one_ticket


def _envelope(ticket: models.Ticket, message_id: str) -> Envelope:
    return Envelope(message_id, "konsultasi@x.id", (ticket.applicant_email,), "Lagi", b"raw")


def _counts(app: App) -> tuple[int, int]:
    with app.sessions() as s:
        return _counts_in(s)


def _counts_in(s: orm.Session) -> tuple[int, int]:
    lines = s.scalar(select(func.count()).select_from(models.TicketEvent))
    mails = s.scalar(select(func.count()).select_from(models.OutboundMessage))
    return int(lines or 0), int(mails or 0)


def test_the_session_writes_nothing_on_its_own() -> None:
    """No hidden hook: mailbot's Session does not override the flush or the commit."""
    for name in ("flush", "commit", "_flush"):
        assert name not in vars(persist.Session)
    assert persist.Session.flush is orm.Session.flush


def test_a_decision_returns_its_effects_and_only_apply_writes_them(make_app, database_url, tmp_path) -> None:
    """Intake's decision on a new request (open the ticket, acknowledge, notify the heads) is a
    value: its history lines and its mail are in the `Effects` the caller gave it and in no table
    until the caller hands them to `persist.apply`; effects never applied are never written."""
    app = _one_ticket(make_app, database_url, tmp_path)
    before = _counts(app)
    raw = request_mail(sender="lain@example.go.id", name="Pemohon Lain", subject="Soal lain")
    with app.sessions.begin() as s:
        effects = persist.Effects()
        outcome = app.intake.process_message(s, effects, Source("fx", 1, "1"), raw, app.clock())
        s.flush()
        assert outcome.ticket_number is not None
        kinds = [line.entry.kind for line in effects.lines]
        assert kinds[0] == "request_complete" and "mail_queued" in kinds
        assert {m.row["kind"] for m in effects.mails} >= {"ack"}
        assert all(m.id is None for m in effects.mails)
        assert _counts_in(s) == before  # decided, not written
        lines, mails = len(effects.lines), len(effects.mails)
        persist.apply(s, effects)
        assert not effects and _counts_in(s) == (before[0] + lines, before[1] + mails)
    assert _counts(app) == (before[0] + lines, before[1] + mails)
    # The same decision, its effects dropped: nothing of it is written.
    other = request_mail(sender="ketiga@example.go.id", name="Pemohon Ketiga", subject="Soal ketiga")
    with app.sessions.begin() as s:
        dropped = persist.Effects()
        app.intake.process_message(s, dropped, Source("fx", 1, "2"), other, app.clock())
        assert dropped.lines and dropped.mails
        s.rollback()
    assert _counts(app) == (before[0] + lines, before[1] + mails)


def test_a_line_naming_received_mail_not_stored_is_refused(make_app, database_url, tmp_path) -> None:
    app = _one_ticket(make_app, database_url, tmp_path)
    with app.sessions() as s:
        ticket = s.scalars(select(models.Ticket)).one()
        loose = models.InboundMessage(mailbox="x", uidvalidity=1, uid="1", raw_sha256="0", raw=b"")
        with pytest.raises(ValueError, match="stored"):
            persist.Effects().record(ticket, "note", actor="x", now=app.clock(), inbound=loose)


def test_history_and_outbox_rows_are_built_only_by_the_persist_step() -> None:
    """No stage writes a history line or an outbox row of its own: every one is an effect
    (persist.Effects.record, store.enqueue) written by persist.apply."""
    root = Path(__file__).resolve().parents[2] / "mailbot"
    builders = re.compile(r"models\.(TicketEvent|OutboundMessage)\(|insert\(")
    found = sorted(
        str(path.relative_to(root))
        for path in root.rglob("*.py")
        if builders.search(path.read_text(encoding="utf-8"))
    )
    assert found == ["shell/persist.py"], found


def test_a_scope_that_fails_writes_nothing(make_app, database_url, tmp_path) -> None:
    app = _one_ticket(make_app, database_url, tmp_path)
    before = _counts(app)
    with pytest.raises(LookupError), persist.unit(app.sessions) as (s, effects):
        ticket = s.scalars(select(models.Ticket)).one()
        store.enqueue(
            s, effects, _envelope(ticket, "<failed@x.id>"), kind="ack", ticket=ticket, now=app.clock()
        )
        raise LookupError("a decision failed")
    assert _counts(app) == before


def test_apply_writes_mail_and_lines_with_ids_and_links(make_app, database_url, tmp_path) -> None:
    app = _one_ticket(make_app, database_url, tmp_path)
    now = app.clock()
    with app.sessions.begin() as s:
        effects = persist.Effects()
        ticket = s.scalars(select(models.Ticket)).one()
        mail = store.enqueue(
            s, effects, _envelope(ticket, "<linked@x.id>"), kind="ack", ticket=ticket, now=now
        )
        note = effects.record(ticket, "note", actor="x", now=now, detail="after the mail")
        queued = next(line.entry for line in effects.lines if line.outbound is mail)
        assert (mail.id, queued.id, note.id) == (None, None, None)
        assert len(effects.mails) == 1 and len(effects.lines) == 2
        persist.apply(s, effects)
        assert not effects
        assert mail.id is not None and queued.id is not None and note.id is not None
        assert queued.outbound_id == mail.id and queued.ticket_id == note.ticket_id == ticket.id
        ticket_id = ticket.id
    with app.sessions() as s:
        row = s.get(models.OutboundMessage, mail.id)
        assert row is not None and (row.ticket_id, row.message_id) == (ticket_id, "<linked@x.id>")
        lines = s.scalars(
            select(models.TicketEvent)
            .where(models.TicketEvent.ticket_id == ticket_id)
            .order_by(models.TicketEvent.id)
        ).all()
        assert [(e.kind, e.outbound_id) for e in lines[-2:]] == [("mail_queued", mail.id), ("note", None)]


def test_counts_before_apply_match_the_database_after(make_app, database_url, tmp_path) -> None:
    """The loop guard's counts (auto_mail_count, thread_mail_times) include mail queued and not
    applied yet, in memory: the same numbers the database gives once it is written."""
    app = _one_ticket(make_app, database_url, tmp_path)
    now = app.clock()
    since = store.since(now, 1)
    with persist.unit(app.sessions) as (s, effects):
        ticket = s.scalars(select(models.Ticket)).one()
        who = ticket.applicant_email.lower()
        for i in range(3):
            store.enqueue(
                s, effects, _envelope(ticket, f"<count{i}@x.id>"), kind="ack", ticket=ticket, now=now
            )
        pending = (
            store.auto_mail_count(s, effects, who, since),
            len(store.thread_mail_times(s, effects, ticket.id, who, "ack", since)),
        )
        persist.apply(s, effects)
        applied = (
            store.auto_mail_count(s, effects, who, since),
            len(store.thread_mail_times(s, effects, ticket.id, who, "ack", since)),
        )
        ticket_id = ticket.id
    with app.sessions() as s:
        stored = (
            store.auto_mail_count(s, persist.Effects(), who, since),
            len(store.thread_mail_times(s, persist.Effects(), ticket_id, who, "ack", since)),
        )
    assert pending == applied == stored
    assert stored[1] >= 3


def test_a_line_for_a_ticket_named_by_reference_is_written_without_loading_it(
    make_app, database_url, tmp_path
) -> None:
    """The sending side names a ticket by id and state (persist.TicketRef): the line is written by
    the persist step with that state, and the ticket's history is neither loaded nor changed."""
    app = _one_ticket(make_app, database_url, tmp_path)
    with app.sessions() as s:
        ticket_id, state = s.execute(select(models.Ticket.id, models.Ticket.state)).one()
        before = s.scalar(select(func.count()).select_from(models.TicketEvent))
    with persist.unit(app.sessions) as (s, effects):
        ref = persist.TicketRef(ticket_id, state)
        effects.record(ref, "mail_sent", actor="system", now=app.clock(), detail="ack → a@b.id")
        assert not [o for o in s.identity_map.values() if isinstance(o, models.Ticket)]
    with app.sessions() as s:
        ticket = s.get(models.Ticket, ticket_id)
        assert ticket is not None
        last = ticket.events[-1]
        assert (last.kind, last.state, last.detail) == ("mail_sent", state.value, "ack → a@b.id")
        assert len(ticket.events) == before + 1


def test_every_effects_value_is_made_where_it_is_applied() -> None:
    """An `Effects` nobody applies would drop its lines and mail unsaid, so a value is made only by
    a transaction's owner that applies it: `persist.unit` (intake, the sweep, the CLI) and the two
    writers that are units of their own inside their caller's transaction (the privacy purge, the
    outbox's history lines). A stage gets its caller's."""
    root = Path(__file__).resolve().parents[2] / "mailbot"
    makers = {
        str(path.relative_to(root)): path.read_text(encoding="utf-8")
        for path in root.rglob("*.py")
        if re.search(r"\bEffects\(\)", path.read_text(encoding="utf-8"))
    }
    assert sorted(makers) == ["records/personal_data.py", "shell/outbox.py", "shell/persist.py"]
    for name, text in makers.items():
        assert text.count("Effects()") == len(re.findall(r"\bapply\(session, effects\)", text)), name
