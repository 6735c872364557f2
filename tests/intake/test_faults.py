"""Faults a real server produces: database locked, IMAP server restarted, login refused."""

from __future__ import annotations

import mailbox
import secrets
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import pytest
from sqlalchemy import func, select

from mailbot import daemon
from mailbot.shell import models
from tests.conftest import HEAD, ROOT, request_mail, write_config
from tests.servers import Dovecot, free_port, start_daemon, wait_until

APPLICANT = "rina.kartika@kemendesa.example.go.id"


def test_database_locked_pauses_intake_without_flagging(make_app, tmp_path) -> None:
    db = tmp_path / "locked.db"
    app = make_app(
        database_url=f"sqlite:///{db}",
        mailbox_url=f"maildir://{tmp_path / 'md'}",
        smtp_url=f"file://{tmp_path / 'out'}",
    )
    mailbox.Maildir(tmp_path / "md", create=True).add(request_mail())
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another process holds the database
    worker = threading.Thread(target=app.run_intake_once)
    worker.start()
    time.sleep(1.5)  # intake is blocked on the lock meanwhile
    assert worker.is_alive()
    assert len(list((tmp_path / "md" / "new").iterdir())) == 1  # not moved: nothing was committed
    assert not list((tmp_path / "md" / ".Processed" / "cur").iterdir())
    holder.execute("ROLLBACK")
    holder.close()
    worker.join(timeout=60)
    assert not worker.is_alive()
    assert len(list((tmp_path / "md" / ".Processed" / "cur").iterdir())) == 1
    with app.sessions() as s:
        assert s.scalar(select(func.count()).select_from(models.Ticket)) == 1


@pytest.mark.imap
def test_login_refused_is_a_clear_error(imap, smtp, sqlite_url, tmp_path) -> None:
    bad = imap.url().replace(f":{imap.password}@", ":wrong-password@")
    config = write_config(
        tmp_path, database_url=sqlite_url, mailbox_url=bad, smtp_url=smtp.url, daily_digest=False
    )
    out = subprocess.run(
        [sys.executable, "-m", "mailbot", "--config", str(config), "run", "--once"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 75
    assert "mailbox unavailable: IMAP login failed" in out.stderr
    status = subprocess.run(
        [sys.executable, "-m", "mailbot", "--config", str(config), "status", "--failing-after", "0"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert status.returncode == 1 and "FAILING: intake" in status.stdout


@pytest.mark.imap
def test_imap_server_restart_is_survived_without_restarting_mailbot(
    dovecot: Dovecot, imap, smtp, sqlite_url, tmp_path
) -> None:
    config = write_config(
        tmp_path, database_url=sqlite_url, mailbox_url=imap.url(), smtp_url=smtp.url, daily_digest=False
    )
    log = tmp_path / "daemon.log"
    proc = start_daemon(config, log)
    try:
        wait_until(lambda: "IDLE True" in log.read_text())
        imap.deliver(request_mail())
        wait_until(lambda: len(smtp.handler.to(HEAD)) == 1)
        dovecot.kick(imap.user)  # the connection is cut under an open IDLE …
        dovecot.stop()  # … and the server goes away
        wait_until(lambda: "mailbox error" in log.read_text())
        dovecot.start_again()
        imap.deliver(request_mail(sender="agus@example.go.id", name="Agus Salim", subject="Setelah restart"))
        wait_until(lambda: len(smtp.handler.to(HEAD)) == 2, timeout=60)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    text = log.read_text()
    assert "reconnecting in" in text and "Traceback" not in text
    assert len(smtp.handler.to(APPLICANT)) == 1  # nothing processed twice across the reconnect
    assert imap.count("INBOX") == 0 and imap.count("Processed") == 2


@pytest.mark.imap
def test_sigterm_during_a_backlog_leaves_nothing_half_done(imap, smtp, sqlite_url, tmp_path) -> None:
    config = write_config(
        tmp_path, database_url=sqlite_url, mailbox_url=imap.url(), smtp_url=smtp.url, daily_digest=False
    )
    imap.deliver(
        *[request_mail(sender=f"p{i}@example.go.id", name="Pemohon", subject=f"Soal {i}") for i in range(300)]
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "mailbot", "--config", str(config), "run"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_until(lambda: imap.count("Processed") >= 20)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    from mailbot.config import load_config
    from mailbot.shell.db import make_engine

    engine = make_engine(load_config(config).database_url)
    with engine.connect() as conn:
        stored = conn.scalar(select(func.count()).select_from(models.InboundMessage))
        tickets = conn.scalar(select(func.count()).select_from(models.Ticket))
    engine.dispose()
    moved, waiting = imap.count("Processed"), imap.count("INBOX")
    assert moved + waiting == 300 and waiting > 0  # it stopped before the end …
    assert stored == moved == tickets  # … and what it took in is complete: stored, processed, moved


def test_dead_letters_listed_and_retried_by_command(make_app, sqlite_url, tmp_path, smtp) -> None:
    from mailbot.pipeline.intake import Source
    from tests.conftest import send_all

    app = make_app(database_url=sqlite_url, mailbox_url=f"maildir://{tmp_path / 'md'}", smtp_url=smtp.url)
    app.process_raw(Source("t", 1, "1"), request_mail())
    smtp.handler.replies = ["550 5.1.1 no such user"]
    send_all(app)
    cli = [sys.executable, "-m", "mailbot", "--config", str(tmp_path / "mailbot.toml")]
    listing = subprocess.run(
        [*cli, "outbox", "list", "--dead"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert "dead" in listing.stdout and "550 5.1.1 no such user" in listing.stdout
    show = subprocess.run(
        [*cli, "tickets", "show", "KONS-2026-000001"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert "dead" in show.stdout and "550" in show.stdout
    retry = subprocess.run(
        [*cli, "outbox", "retry", "--all"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert "1 dead letter queued again" in retry.stdout and "1 sent" in retry.stdout
    assert len(smtp.handler.to(APPLICANT)) == 1
    # Asked again by its id: it was sent now, so there is nothing to retry, and it says so.
    with app.sessions() as s:
        sent_id = s.scalars(
            select(models.OutboundMessage.id).where(models.OutboundMessage.recipient == APPLICANT)
        ).first()
    again = subprocess.run(
        [*cli, "outbox", "retry", str(sent_id), "999999"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert f"outgoing mail #{sent_id} is sent, not a dead letter: nothing to retry" in again.stderr
    assert "outgoing mail #999999 does not exist" in again.stderr
    assert len(smtp.handler.to(APPLICANT)) == 1


@pytest.mark.imap
def test_connection_cut_mid_fetch_loses_nothing_and_repeats_nothing(imap, smtp, sqlite_url, make_app) -> None:
    from mailbot.shell.mailbox import MailboxError
    from tests.conftest import send_all
    from tests.servers import CuttingProxy

    imap.deliver(
        *[
            request_mail(
                sender=f"p{i}@example.go.id",
                name="Pemohon",
                subject=f"Soal {i}",
                body=(
                    "Nama: Pemohon\nNIP: 19860926 201505 2 001\nUnit Kerja: Biro Umum\nJabatan: Analis\n"
                    "No HP: 081234567890\n"
                    "Pertanyaan: " + "panjang sekali " * 300 + "\n"
                ),
            )
            for i in range(40)
        ]
    )
    proxy = CuttingProxy(imap.port, cut_after=60_000)  # well inside the first FETCH of 40 messages
    try:
        url = imap.url().replace(f":{imap.port}/", f":{proxy.port}/")
        app = make_app(database_url=sqlite_url, mailbox_url=url, smtp_url=smtp.url)
        with pytest.raises(MailboxError, match="IMAP"):
            app.run_intake_once()
        assert imap.count("INBOX") == 40  # nothing moved: nothing of the cut batch was committed
        stats = app.run_intake_once()  # a new connection (the proxy cuts only the first)
        send_all(app)
    finally:
        proxy.close()
    assert stats.processed == 40 and stats.already_done == 0
    assert imap.count("INBOX") == 0 and imap.count("Processed") == 40
    assert len(smtp.handler.received) == 80  # one acknowledgment and one notification each


@pytest.fixture
def postgres_behind_forwarder():
    """A fresh PostgreSQL database reached through a TCP forwarder the test can take down."""
    import os

    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from tests.servers import Forwarder

    admin = os.environ.get("MAILBOT_TEST_DATABASE_URL")
    if not admin:
        pytest.skip("MAILBOT_TEST_DATABASE_URL not set: no PostgreSQL for this run")
    url = make_url(admin).set(drivername="postgresql+psycopg")
    name = f"mailbot_down_{os.getpid()}_{secrets.token_hex(3)}"
    admin_engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin_engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    forwarder = Forwarder(url.port or 5432)
    try:
        via = url.set(host="127.0.0.1", port=forwarder.port, database=name)
        yield via.render_as_string(hide_password=False), forwarder
    finally:
        forwarder.down()
        with admin_engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin_engine.dispose()


def test_database_unreachable_pauses_intake_then_resumes(
    make_app, tmp_path, postgres_behind_forwarder
) -> None:
    via, forwarder = postgres_behind_forwarder
    app = make_app(
        database_url=via, mailbox_url=f"maildir://{tmp_path / 'md'}", smtp_url=f"file://{tmp_path / 'o'}"
    )
    md = mailbox.Maildir(tmp_path / "md", create=True)
    md.add(request_mail())
    forwarder.down()  # the database server is unreachable
    worker = threading.Thread(target=daemon.intake_loop, args=(app, lambda: None), daemon=True)
    worker.start()
    time.sleep(3)  # intake tries, fails and backs off meanwhile
    assert len(list((tmp_path / "md" / "new").iterdir())) == 1  # nothing flagged or moved
    forwarder.up()
    processed = tmp_path / "md" / ".Processed" / "cur"
    wait_until(lambda: processed.is_dir() and len(list(processed.iterdir())) == 1, timeout=60)
    app.stop_flag.set()
    worker.join(timeout=30)
    with app.sessions() as s:
        assert s.scalar(select(func.count()).select_from(models.Ticket)) == 1
    app.close()


def test_database_unreachable_pauses_sending_then_resumes(
    make_app, tmp_path, postgres_behind_forwarder, caplog
) -> None:
    """The sending loop (the daemon's child runs it) backs off while the database is away."""
    import asyncio

    from mailbot.pipeline.intake import Source

    via, forwarder = postgres_behind_forwarder
    out = tmp_path / "o"
    app = make_app(database_url=via, mailbox_url=f"maildir://{tmp_path / 'md'}", smtp_url=f"file://{out}")
    app.process_raw(Source("t", 1, "1"), request_mail())  # an acknowledgment and a notification queued
    forwarder.down()

    async def outage() -> None:
        wake, stopping = asyncio.Event(), asyncio.Event()
        loop = asyncio.create_task(daemon.send_loop(app, wake, stopping))
        await asyncio.sleep(3)  # tries, fails, backs off
        assert not list(out.glob("*.eml")) and not loop.done()
        forwarder.up()
        for _ in range(300):
            if len(list(out.glob("*.eml"))) == 2:
                break
            await asyncio.sleep(0.1)
        stopping.set()
        wake.set()
        await loop

    asyncio.run(outage())
    assert len(list(out.glob("*.eml"))) == 2
    assert "outbox paused" in caplog.text
    app.close()


def test_a_failure_inside_a_group_rolls_it_back_and_each_message_goes_alone(
    make_app, database_url, tmp_path, caplog
) -> None:
    """Messages share a transaction in groups; a fault in one (a mock: a database error on one
    particular message, once) undoes the group, and every message is then processed on its own."""
    from sqlalchemy.exc import OperationalError

    app = make_app(
        database_url=database_url,
        mailbox_url=f"maildir://{tmp_path / 'md'}",
        smtp_url=f"file://{tmp_path / 'out'}",
        mailbox_extra="transaction_size = 4",
    )
    md = mailbox.Maildir(tmp_path / "md", create=True)
    for i in range(10):
        md.add(request_mail(sender=f"p{i}@example.go.id", name=f"Pemohon {i}", subject=f"Soal {i}"))
    real = app.intake.process_message
    failed: list[str] = []

    def flaky(session, effects, source, raw, now, parsed=None, **kw):
        if b"p6@example.go.id" in raw and not failed:
            failed.append(source.uid)
            raise OperationalError("INSERT", {}, Exception("disk I/O error"))
        return real(session, effects, source, raw, now, parsed)

    app.intake.process_message = flaky  # type: ignore[method-assign]
    caplog.set_level("INFO", logger="mailbot.app")
    stats = app.run_intake_once()
    assert failed and stats.processed == 10 and stats.fetched == 10
    assert "rolled back (OperationalError" in caplog.text
    with app.sessions() as s:
        numbers = sorted(s.scalars(select(models.Ticket.number)))
        senders = s.scalars(select(models.Ticket.applicant_email)).all()
        assert s.scalar(select(func.count()).select_from(models.InboundMessage)) == 10
        assert s.scalar(select(func.count()).select_from(models.OutboundMessage)) == 20
    assert sorted(senders) == sorted(f"p{i}@example.go.id" for i in range(10))  # each once
    assert numbers == [f"KONS-2026-{n:06d}" for n in range(1, 11)]  # the undone group left no gap
    assert not list((tmp_path / "md" / "new").iterdir())
    assert len(list((tmp_path / "md" / ".Processed" / "cur").iterdir())) == 10


def test_the_same_mail_twice_in_one_group_opens_one_ticket(make_app, tmp_path) -> None:
    app = make_app(
        database_url=f"sqlite:///{tmp_path / 'm.db'}",
        mailbox_url=f"maildir://{tmp_path / 'md'}",
        smtp_url=f"file://{tmp_path / 'out'}",
    )
    md = mailbox.Maildir(tmp_path / "md", create=True)
    raw = request_mail()
    md.add(raw)
    md.add(raw)
    stats = app.run_intake_once()
    assert (stats.fetched, stats.processed, stats.duplicates) == (2, 1, 1)
    with app.sessions() as s:
        assert s.scalar(select(func.count()).select_from(models.Ticket)) == 1


def test_a_defect_met_by_one_message_quarantines_it_and_intake_goes_on(
    make_app, tmp_path, monkeypatch, caplog
) -> None:
    """A bug hit by one message (a mock: the classifier raising for it) must not stop intake or
    lose the message: it is quarantined with the reason, the others are processed, and once the
    defect is gone `replay` processes it like any other."""
    import mailbot.pipeline.intake
    from mailbot.pipeline.intake import Source

    app = make_app(
        database_url=f"sqlite:///{tmp_path / 'm.db'}",
        mailbox_url=f"maildir://{tmp_path / 'md'}",
        smtp_url=f"file://{tmp_path / 'out'}",
    )
    md = mailbox.Maildir(tmp_path / "md", create=True)
    md.add(request_mail(sender="a@example.go.id", subject="Soal A"))
    poisoned = request_mail(sender="b@example.go.id", subject="Soal B memicu cacat")
    md.add(poisoned)
    md.add(request_mail(sender="c@example.go.id", subject="Soal C"))
    real = mailbot.pipeline.intake.classify

    def defective(msg, **kwargs):
        if "cacat" in msg.subject:
            raise RuntimeError("a defect")
        return real(msg, **kwargs)

    monkeypatch.setattr(mailbot.pipeline.intake, "classify", defective)
    stats = app.run_intake_once()
    assert (stats.processed, stats.quarantined) == (2, 1)
    assert "processing failed: RuntimeError: a defect" in caplog.text
    assert len(list((tmp_path / "md" / ".Quarantine" / "cur").iterdir())) == 1
    with app.sessions() as s:
        row = s.scalars(
            select(models.InboundMessage).where(models.InboundMessage.status == "quarantined")
        ).one()
        assert row.reason == "processing failed: RuntimeError: a defect" and row.raw == poisoned
        assert sorted(s.scalars(select(models.Ticket.applicant_email))) == [
            "a@example.go.id",
            "c@example.go.id",
        ]
    monkeypatch.setattr(mailbot.pipeline.intake, "classify", real)  # the defect is fixed
    outcome = app.process_raw(Source("replay", 0, f"inbound:{row.id}:0"), row.raw)
    assert outcome.status == "processed" and outcome.ticket_number is not None


@pytest.mark.parametrize(
    "command",
    [["run", "--once"], ["run"], ["report", "ikm", "--from", "2026-11-01", "--to", "2026-11-30"]],
    ids=["run-once", "daemon", "report"],
)
def test_a_database_away_at_start_is_a_clear_error_and_try_again(tmp_path, command: list[str]) -> None:
    """PostgreSQL down (or not yet up) when a command starts: one line saying so and exit 75
    (EX_TEMPFAIL: systemd's Restart=on-failure and cron try again), no traceback, nothing read
    from the mailbox."""
    config = write_config(
        tmp_path,
        database_url=f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/test",
        mailbox_url=f"maildir://{tmp_path / 'md'}",
        smtp_url=f"file://{tmp_path / 'out'}",
        daily_digest=False,
    )
    mailbox.Maildir(tmp_path / "md", create=True).add(request_mail())
    out = subprocess.run(
        [sys.executable, "-m", "mailbot", "--config", str(config), *command],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 75, out.stderr
    assert "database unavailable:" in out.stderr and "Connection refused" in out.stderr
    assert "Traceback" not in out.stderr
    assert len(list((tmp_path / "md" / "new").iterdir())) == 1  # the request waits, unread
