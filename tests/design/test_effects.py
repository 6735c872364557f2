"""Decisions record effects; one explicit persist step writes them (#17 item 2, STYLE.md habit 9):
nothing recorded is dropped unnoticed, `persist.apply` writes lines and mail with their ids and
links, and the counts a transaction makes before applying match what the database holds after."""

from __future__ import annotations

import pytest
from sqlalchemy import func, orm, select

from mailbot.app import App
from mailbot.core.compose import Envelope
from mailbot.shell import models, persist, store
from tests.intake.test_pipeline import _one_ticket


def _envelope(ticket: models.Ticket, message_id: str) -> Envelope:
    return Envelope(message_id, "konsultasi@x.id", (ticket.applicant_email,), "Lagi", b"raw")


def _counts(app: App) -> tuple[int, int]:
    with app.sessions() as s:
        lines = s.scalar(select(func.count()).select_from(models.TicketEvent))
        mails = s.scalar(select(func.count()).select_from(models.OutboundMessage))
        return int(lines or 0), int(mails or 0)


def test_the_session_writes_nothing_on_its_own() -> None:
    """No hidden hook: mailbot's Session does not override the flush or the commit."""
    for name in ("flush", "commit", "_flush"):
        assert name not in vars(persist.Session)
    assert persist.Session.flush is orm.Session.flush


def test_recording_outside_a_scope_raises_instead_of_dropping(make_app, database_url, tmp_path) -> None:
    app = _one_ticket(make_app, database_url, tmp_path)
    before = _counts(app)
    now = app.clock()
    with pytest.raises(persist.EffectsOutsideUnit), app.sessions.begin() as s:
        ticket = s.scalars(select(models.Ticket)).one()
        store.record_event(s, ticket, "note", actor="x", now=now, detail="lost?")
    with pytest.raises(persist.EffectsOutsideUnit), app.sessions.begin() as s:
        ticket = s.scalars(select(models.Ticket)).one()
        store.enqueue(s, _envelope(ticket, "<lost@x.id>"), kind="ack", ticket=None, now=now)
    with app.sessions() as s, s.begin(), persist.recording(s) as outer:
        ticket = s.scalars(select(models.Ticket)).one()
        with persist.recording(s) as inner:  # joins: the outer scope applies
            store.record_event(s, ticket, "note", actor="x", now=now, detail="joined")
        assert inner is outer and len(outer.lines) == 1
    before = (before[0] + 1, before[1])
    assert _counts(app) == before


def test_a_scope_that_fails_writes_nothing(make_app, database_url, tmp_path) -> None:
    app = _one_ticket(make_app, database_url, tmp_path)
    before = _counts(app)
    with pytest.raises(LookupError), persist.unit(app.sessions) as s:
        ticket = s.scalars(select(models.Ticket)).one()
        store.enqueue(s, _envelope(ticket, "<failed@x.id>"), kind="ack", ticket=ticket, now=app.clock())
        raise LookupError("a decision failed")
    assert _counts(app) == before


def test_apply_writes_mail_and_lines_with_ids_and_links(make_app, database_url, tmp_path) -> None:
    app = _one_ticket(make_app, database_url, tmp_path)
    now = app.clock()
    with app.sessions.begin() as s, persist.recording(s) as effects:
        ticket = s.scalars(select(models.Ticket)).one()
        mail = store.enqueue(s, _envelope(ticket, "<linked@x.id>"), kind="ack", ticket=ticket, now=now)
        note = store.record_event(s, ticket, "note", actor="x", now=now, detail="after the mail")
        queued = next(line.entry for line in effects.lines if line.outbound is mail)
        assert (mail.id, queued.id, note.id) == (None, None, None)
        assert len(effects.mails) == 1 and len(effects.lines) == 2
        persist.apply(s)
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
    with persist.unit(app.sessions) as s:
        ticket = s.scalars(select(models.Ticket)).one()
        who = ticket.applicant_email.lower()
        for i in range(3):
            store.enqueue(s, _envelope(ticket, f"<count{i}@x.id>"), kind="ack", ticket=ticket, now=now)
        pending = (
            store.auto_mail_count(s, who, since),
            len(store.thread_mail_times(s, ticket.id, who, "ack", since)),
        )
        persist.apply(s)
        applied = (
            store.auto_mail_count(s, who, since),
            len(store.thread_mail_times(s, ticket.id, who, "ack", since)),
        )
        ticket_id = ticket.id
    with app.sessions() as s:
        stored = (
            store.auto_mail_count(s, who, since),
            len(store.thread_mail_times(s, ticket_id, who, "ack", since)),
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
    with persist.unit(app.sessions) as s:
        ref = persist.TicketRef(ticket_id, state)
        store.record_event(s, ref, "mail_sent", actor="system", now=app.clock(), detail="ack → a@b.id")
        assert not [o for o in s.identity_map.values() if isinstance(o, models.Ticket)]
    with app.sessions() as s:
        ticket = s.get(models.Ticket, ticket_id)
        assert ticket is not None
        last = ticket.events[-1]
        assert (last.kind, last.state, last.detail) == ("mail_sent", state.value, "ack → a@b.id")
        assert len(ticket.events) == before + 1
