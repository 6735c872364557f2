"""The sweep looks at every open ticket once per configuration, then only at the tickets whose
`next_check_at` has come: a `run --once` from cron every minute does not recompute them all each
time, and a changed calendar or profile, or a database from before `next_check_at`, still gets
every deadline recomputed."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta

from sqlalchemy import update

from mailbot.app import create_app
from mailbot.config import load_config
from mailbot.shell import models
from tests.conftest import ROOT, request_mail, write_config
from tests.desk import Desk


def _desk(tmp_path, database_url: str, clock, **kwargs) -> Desk:
    path = write_config(
        tmp_path,
        database_url=database_url,
        mailbox_url=f"maildir://{tmp_path / 'md'}",
        smtp_url=f"file://{tmp_path / 'out'}",
        daily_digest=False,
        **kwargs,
    )
    return Desk(create_app(load_config(path), clock=clock))


def test_every_open_ticket_once_per_configuration(tmp_path, database_url, clock) -> None:
    first = _desk(tmp_path, database_url, clock)
    for n in range(3):
        first.deliver(request_mail(sender=f"pemohon{n}@desa.example.id"))
    assert first.app.sweep_deadlines().checked == 3  # a new database: every open ticket
    assert first.app.sweep_deadlines().checked == 0  # then only what has come due
    first.app.close()

    again = _desk(tmp_path, database_url, clock)  # another process, the same configuration
    assert again.app.sweep_deadlines().checked == 0
    clock.advance(minutes=8)  # 8 of the 10 minutes to assign: the reminders' time has come
    stats = again.app.sweep_deadlines()
    assert (stats.checked, stats.reminder) == (3, 3)
    again.app.close()

    # Office hours changed: deadlines move, so the next process looks at every open ticket.
    changed = _desk(tmp_path, database_url, clock, extra='[office_hours]\nhours = ["08:00", "16:00"]\n')
    assert changed.app.config.settings != again.app.config.settings
    assert changed.app.sweep_deadlines().checked == 3
    assert changed.app.sweep_deadlines().checked == 0
    changed.app.close()


def test_tickets_without_a_next_check_are_swept_on_the_first_run(tmp_path, database_url, clock) -> None:
    """A database from before `next_check_at`: its tickets have none, and no full sweep is on
    record; the first sweep finds them and sets it."""
    desk = _desk(tmp_path, database_url, clock)
    desk.deliver(request_mail())
    with desk.app.sessions.begin() as session:
        session.execute(update(models.Ticket).values(next_check_at=None))
        session.execute(models.Notice.__table__.delete())
    clock.advance(minutes=8)
    stats = desk.app.sweep_deadlines()
    assert (stats.checked, stats.reminder) == (1, 1)
    assert desk.ticket().next_check_at == clock.now + timedelta(minutes=2)  # the escalation's time
    desk.app.close()


def test_an_idle_run_once_composes_nothing(tmp_path) -> None:
    """`run --once` with nothing waiting and nothing due brings in neither the templates, the
    mail composition nor the sending side (what keeps it short: bench/footprint.py), checked by
    what it imported."""
    path = write_config(
        tmp_path,
        database_url=f"sqlite:///{tmp_path / 'm.db'}",
        mailbox_url=f"maildir://{tmp_path / 'md'}",
        smtp_url=f"file://{tmp_path / 'out'}",
        daily_digest=False,
    )
    probe = (
        "import sys\n"
        "from mailbot.cli import main\n"
        f"code = main(['--config', {str(path)!r}, 'run', '--once'])\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('jinja2', 'aiosmtplib') or m in "
        "('mailbot.pipeline.replies', 'mailbot.pipeline.reminders', 'mailbot.core.compose', "
        "'mailbot.shell.outbox'))\n"
        "print('EXIT', code, 'HEAVY', heavy)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def run_once() -> str:
        done = subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    import mailbox

    mailbox.Maildir(tmp_path / "md", create=True).add(request_mail())
    first = run_once()
    assert "EXIT 0 HEAVY ['aiosmtplib" in first and "'jinja2" in first  # composed and sent
    assert "'mailbot.shell.outbox'" in first
    assert "EXIT 0 HEAVY []" in run_once()  # nothing new, the ticket not due yet


def test_a_ticket_lost_in_the_full_sweep_keeps_the_full_sweep_owed(
    tmp_path, database_url, clock, monkeypatch
):
    """A ticket of the full sweep whose transaction is rolled back (its row changed meanwhile by
    the sender's history line or by intake: StaleDataError) keeps the deadline it had under the
    configuration before, or none at all: the full sweep is not on record until every open ticket
    was looked at, so the next sweep looks at them all again."""
    from sqlalchemy.orm.exc import StaleDataError

    from mailbot.pipeline.reminders import TicketNotices

    desk = _desk(tmp_path, database_url, clock)
    for n in range(2):
        desk.deliver(request_mail(sender=f"pemohon{n}@desa.example.id"))
    with desk.app.sessions.begin() as session:  # as a database from before next_check_at left them
        session.execute(update(models.Ticket).values(next_check_at=None))
        session.execute(models.Notice.__table__.delete())
    run = TicketNotices.run
    lost: list[int] = []

    def racing(self, session, effects, ticket_id, now):
        if not lost:
            lost.append(ticket_id)
            raise StaleDataError("the ticket's row was changed by another transaction")
        return run(self, session, effects, ticket_id, now)

    monkeypatch.setattr(TicketNotices, "run", racing)
    assert desk.app.sweep_deadlines().checked == 2
    assert desk.app.sweep_deadlines().checked == 2  # the lost ticket is looked at again, with all
    with desk.app.sessions() as session:
        assert session.get(models.Ticket, lost[0]).next_check_at is not None
    assert desk.app.sweep_deadlines().checked == 0  # now on record
    desk.app.close()


def test_the_fingerprint_follows_mailbot_s_code(tmp_path, database_url, clock, monkeypatch) -> None:
    """The version stays 0.1.0 from one wheel or checkout to the next; a changed deadline rule
    in the code is a new configuration all the same (it was, when every start swept fully)."""
    import shutil

    from mailbot.pipeline import sweep

    desk = _desk(tmp_path, database_url, clock)
    before = desk.app.deadlines.fingerprint()
    assert _desk(tmp_path, database_url, clock).app.deadlines.fingerprint() == before  # stable
    copy = tmp_path / "mailbot"
    shutil.copytree(ROOT / "mailbot", copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(sweep, "PACKAGE", copy)
    assert desk.app.deadlines.fingerprint() == before  # the same code, found elsewhere
    changed = tmp_path / "changed" / "mailbot"  # read once a process: another folder, another read
    shutil.copytree(copy, changed)
    rule = changed / "core" / "working_time.py"
    rule.write_text(rule.read_text(encoding="utf-8") + "\n# a changed rule\n", encoding="utf-8")
    monkeypatch.setattr(sweep, "PACKAGE", changed)
    assert desk.app.deadlines.fingerprint() != before
    desk.app.close()


def test_the_outbox_has_work_when_mail_is_due_or_a_claim_ran_out(tmp_path, database_url, clock) -> None:
    """What lets `run --once` skip the sending side: mail due now, or a claim whose lease ran out
    (a process died mid-send: `run --once` must still recover and send it); not mail deferred to
    later, nor mail sent."""
    from mailbot.core.workflow import OutboundStatus

    desk = _desk(tmp_path, database_url, clock)
    assert not desk.app.outbox_has_work()
    desk.deliver(request_mail())
    assert desk.app.outbox_has_work()  # the acknowledgment and the disposition request

    def set_all(status: OutboundStatus, minutes: int) -> None:
        with desk.app.sessions.begin() as session:
            session.execute(
                update(models.OutboundMessage).values(
                    status=status, next_attempt_at=clock.now + timedelta(minutes=minutes)
                )
            )

    set_all(OutboundStatus.PENDING, 5)  # deferred (a server said 4xx): not yet
    assert not desk.app.outbox_has_work()
    set_all(OutboundStatus.SENDING, 5)  # another process holds them under a lease
    assert not desk.app.outbox_has_work()
    set_all(OutboundStatus.SENDING, -1)  # the lease ran out: recover and send
    assert desk.app.outbox_has_work()
    import asyncio

    result = asyncio.run(desk.app.send_pending())
    assert result.sent == 2
    assert not desk.app.outbox_has_work()
    clock.advance(minutes=30)
    assert not desk.app.outbox_has_work()  # sent mail never becomes due again
    desk.app.close()
