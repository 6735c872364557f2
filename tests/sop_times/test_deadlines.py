"""Deadlines by moving the clock, with mail delivered to a real aiosmtpd; restarts; two schedulers."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from mailbot.app import create_app
from mailbot.config import load_config
from mailbot.core.workflow import State
from mailbot.shell import models
from tests.conftest import CONSULTANT, HEAD, ROOT, request_mail, send_all
from tests.desk import Desk

APPLICANT = "rina.kartika@kemendesa.example.go.id"


@pytest.fixture
def live(make_app, database_url, tmp_path, smtp) -> Desk:
    """A desk whose outbox goes to the real aiosmtpd."""
    app = make_app(database_url=database_url, mailbox_url=f"maildir://{tmp_path / 'md'}", smtp_url=smtp.url)
    return Desk(app)


def _subjects(smtp, to: str) -> list[str]:
    return [r.subject for r in smtp.handler.to(to)]


def test_disposition_reminder_then_escalation(live: Desk, smtp, clock) -> None:
    # Monday 16 Nov 2026 09:00 WIB: SOP 002 gives the head 10 minutes (wall clock) to assign.
    live.deliver(request_mail())
    ticket = live.ticket()
    assert ticket.step == "assign" and ticket.due_at == clock.now + timedelta(minutes=10)
    send_all(live.app)
    clock.advance(minutes=5)
    assert live.app.sweep_deadlines().reminder == 0
    clock.advance(minutes=3)  # 8 of 10 minutes: past the 75% mark
    assert live.app.sweep_deadlines().reminder == 1
    assert live.app.sweep_deadlines().total == 0  # once
    send_all(live.app)
    assert any(s.startswith("[KONS-2026-000001] Pengingat: batas waktu") for s in _subjects(smtp, HEAD))
    clock.advance(minutes=3)
    assert live.app.sweep_deadlines().escalation == 1
    send_all(live.app)
    escalations = [r for r in smtp.handler.to(HEAD) if "Melewati batas waktu" in r.subject]
    assert len(escalations) == 1 and "Penugasan Anggota Tim Pelaksana" in escalations[0].text()
    assert live.app.sweep_deadlines().total == 0


def test_review_deadline_in_working_days_pauses_while_waiting_and_extends(live: Desk, smtp, clock) -> None:
    live.deliver(request_mail())
    live.reply(live.last(HEAD, "notify"), HEAD, "ASSIGN Budi Santoso")
    ticket = live.ticket()
    assert ticket.step == "review"
    due = ticket.due_at
    assert due is not None and due.astimezone(live.app.deadlines.calendar.tz).day == 19  # Mon 09:00 + 3 days
    # The consultant asks the applicant; the clock stops while the ticket waits.
    live.reply(live.last(CONSULTANT, "assign"), CONSULTANT, "REQUEST-INFO Mohon kirim SK.")
    assert live.ticket().due_at is None and live.ticket().state is State.WAITING_APPLICANT
    clock.advance(days=7)  # a week later the applicant answers
    live.reply(live.last(APPLICANT, "request_info"), APPLICANT, "Terlampir SK.")
    resumed = live.ticket().due_at
    assert resumed is not None and resumed - due >= timedelta(days=7)
    # EXTEND moves the deadline by working days and says so in the history.
    live.reply(live.last(HEAD, "notify"), HEAD, "EXTEND 2")
    extended = live.ticket().due_at
    assert extended is not None and extended > resumed
    cal = live.app.deadlines.calendar
    assert cal.working_between(resumed, extended) == cal.day_length * 2


def test_survey_reminder_and_auto_close(live: Desk, smtp, clock) -> None:
    live.deliver(request_mail())
    live.reply(live.last(HEAD, "notify"), HEAD, "ASSIGN Budi Santoso")
    live.reply(live.last(CONSULTANT, "assign"), CONSULTANT, "Jawaban singkat.")
    assert live.ticket().state is State.ANSWERED
    clock.advance(days=1)
    assert live.app.sweep_deadlines().survey_reminder == 0
    clock.advance(days=1, hours=1)  # two working days after the answer (Mon → Wed)
    assert live.app.sweep_deadlines().survey_reminder == 1
    send_all(live.app)
    reminder = [r for r in smtp.handler.to(APPLICANT) if "mengisi Survei Kepuasan" in r.subject]
    assert len(reminder) == 1 and "U1. Persyaratan: ___" in reminder[0].text()
    clock.advance(days=5)
    assert live.app.sweep_deadlines().auto_close == 1
    assert live.ticket().state is State.CLOSED
    send_all(live.app)
    assert sum("Konsultasi telah selesai" in s for s in _subjects(smtp, APPLICANT)) == 1
    assert live.app.sweep_deadlines().auto_close == 0


def test_daily_digest_once_a_working_day(live: Desk, smtp, clock) -> None:
    live.deliver(request_mail())
    clock.advance(hours=1)  # 10:00 WIB, past the 07:30 digest time
    live.app.sweep_deadlines()
    live.app.sweep_deadlines()
    send_all(live.app)
    digests = [r for r in smtp.handler.to(HEAD) if r.subject.startswith("Ringkasan harian")]
    assert len(digests) == 1
    text = digests[0].text()
    assert "Menunggu disposisi (0)" not in text and "KONS-2026-000001" in text
    assert "Melewati batas waktu (1)" in text  # the 10-minute disposition step is overdue by now
    clock.advance(days=5)  # Saturday: no digest
    live.app.sweep_deadlines()
    send_all(live.app)
    assert len([r for r in smtp.handler.to(HEAD) if r.subject.startswith("Ringkasan harian")]) == 1


def test_daily_digest_can_be_turned_off(make_app, database_url, tmp_path, smtp, clock) -> None:
    app = make_app(
        database_url=database_url,
        mailbox_url=f"maildir://{tmp_path / 'md'}",
        smtp_url=smtp.url,
        daily_digest=False,
    )
    Desk(app).deliver(request_mail())
    clock.advance(hours=1)  # 10:00 WIB on a working day, past the digest time
    assert app.sweep_deadlines().digest == 0
    send_all(app)
    assert not [r for r in smtp.handler.to(HEAD) if r.subject.startswith("Ringkasan harian")]


def test_restart_after_the_deadline_sends_the_escalation_once(
    make_app, database_url, tmp_path, smtp, clock
) -> None:
    first = make_app(database_url=database_url, mailbox_url=f"maildir://{tmp_path / 'md'}", smtp_url=smtp.url)
    Desk(first).deliver(request_mail())
    send_all(first)
    first.close()  # the daemon stops before the deadline …
    clock.advance(hours=2)  # … and comes back long after it
    second = create_app(load_config(tmp_path / "mailbot.toml"), clock=clock)
    try:
        stats = second.sweep_deadlines()
        # The escalation; the reminder's moment passed with the deadline while the daemon was down.
        assert (stats.escalation, stats.reminder) == (1, 0)
        assert second.sweep_deadlines().total == 0
        send_all(second)
        third = create_app(load_config(tmp_path / "mailbot.toml"), clock=clock)  # and another restart
        assert third.sweep_deadlines().total == 0
        third.close()
    finally:
        second.close()
    assert len([r for r in smtp.handler.to(HEAD) if "Melewati batas waktu" in r.subject]) == 1


def test_two_schedulers_send_each_notice_once(make_app, database_url, tmp_path, smtp, clock) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("two processes on one database is the PostgreSQL deployment")
    a = make_app(database_url=database_url, mailbox_url=f"maildir://{tmp_path / 'md'}", smtp_url=smtp.url)
    desk = Desk(a)
    for i in range(10):
        desk.deliver(request_mail(sender=f"p{i}@example.go.id", name=f"Pemohon {i}", subject=f"Soal {i}"))
    send_all(a)
    b = create_app(load_config(tmp_path / "mailbot.toml"), clock=clock)
    try:
        clock.advance(minutes=30)
        counts: list[int] = []
        barrier = threading.Barrier(2)

        def sweep(app) -> None:
            barrier.wait()
            counts.append(app.sweep_deadlines().escalation)

        threads = [threading.Thread(target=sweep, args=(x,)) for x in (a, b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert sum(counts) == 10  # ten escalations between the two schedulers, none twice
        with a.sessions() as s:
            assert (
                s.scalar(
                    select(func.count()).select_from(models.Notice).where(models.Notice.kind == "escalation")
                )
                == 10
            )
        import asyncio

        async def both() -> None:
            await asyncio.gather(a.send_pending(), b.send_pending())

        asyncio.run(both())
    finally:
        b.close()
    escalations = [r for r in smtp.handler.to(HEAD) if "Melewati batas waktu" in r.subject]
    assert len(escalations) == 10 and len({r.message["Message-ID"] for r in escalations}) == 10


def test_tickets_show_has_the_deadline(live: Desk, tmp_path) -> None:
    live.deliver(request_mail())
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "mailbot",
            "--config",
            str(tmp_path / "mailbot.toml"),
            "tickets",
            "show",
            "KONS-2026-000001",
            "--json",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    shown = json.loads(out.stdout)
    assert shown["step"] == "assign" and shown["due_at"] == "2026-11-16T02:10:00+00:00"


def test_monthly_report_is_mailed_once_with_the_pdf(live: Desk, smtp, clock) -> None:
    live.deliver(request_mail())
    clock.now = clock.now.replace(month=12, day=1, hour=1)  # Tuesday 1 December, 08:00 WIB
    stats = live.app.sweep_deadlines()
    assert stats.monthly_report == 1
    assert live.app.sweep_deadlines().monthly_report == 0
    send_all(live.app)
    [mail] = [
        r for r in smtp.handler.to(HEAD) if r.subject.startswith("Laporan Hasil Layanan Konsultasi 11-2026")
    ]
    assert "Pengajuan diterima      : 1" in mail.text()
    [pdf] = [p for p in mail.message.walk() if p.get_content_type() == "application/pdf"]
    assert pdf.get_filename() == "laporan-konsultasi-2026-11.pdf"
    assert pdf.get_payload(decode=True).startswith(b"%PDF")


def test_sweep_reads_only_tickets_whose_time_has_come(live: Desk, smtp, clock) -> None:
    """A backlog of open tickets costs the minute's sweep nothing until one of them falls due."""
    for i in range(30):
        live.deliver(request_mail(sender=f"p{i}@example.go.id", name=f"Pemohon {i}", subject=f"Soal {i}"))
    first = live.app.sweep_deadlines()
    assert (first.checked, first.reminder, first.escalation) == (30, 0, 0)  # a starting process looks at all
    assert live.app.sweep_deadlines().checked == 0
    clock.advance(minutes=5)
    live.deliver(request_mail(sender="late@example.go.id", name="Terlambat", subject="Soal terakhir"))
    assert live.app.sweep_deadlines().checked == 0
    clock.advance(minutes=3)  # the 30 are past their reminder time, the late one is not
    swept = live.app.sweep_deadlines()
    assert (swept.checked, swept.reminder) == (30, 30)
    assert live.app.sweep_deadlines().checked == 0  # next stop: their deadline
    clock.advance(minutes=3)
    swept = live.app.sweep_deadlines()
    assert (swept.checked, swept.escalation) == (30, 30)
    assert live.app.sweep_deadlines().checked == 0  # escalated: nothing more until they change
    clock.advance(minutes=2)  # 7.5 minutes after the late one arrived
    swept = live.app.sweep_deadlines()
    assert (swept.checked, swept.reminder) == (1, 1)
    with live.app.sessions() as s:
        waiting = s.scalar(select(func.count()).where(models.Ticket.next_check_at.is_not(None)))
    assert waiting == 1  # the late ticket, until its own deadline


def test_a_restarted_daemon_looks_at_every_open_ticket_once(live: Desk, smtp, clock) -> None:
    """next_check_at lost (as for tickets from before it existed): the first sweep still finds them."""
    from sqlalchemy import update

    live.deliver(request_mail())
    with live.app.sessions.begin() as s:
        s.execute(update(models.Ticket).values(next_check_at=None))
    clock.advance(minutes=9)
    restarted = create_app(live.app.config, clock=clock)
    try:
        swept = restarted.sweep_deadlines()
        assert (swept.checked, swept.reminder) == (1, 1)
        assert restarted.sweep_deadlines().checked == 0
        clock.advance(minutes=2)
        assert restarted.sweep_deadlines().escalation == 1
    finally:
        restarted.close()
