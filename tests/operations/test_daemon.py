"""`mailbot run` as a real process: IDLE pickup, the embedded default's first run, clean stop on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tests.conftest import HEAD, PROFILES, ROOT, request_mail, write_config
from tests.servers import children, start_daemon, wait_until

APPLICANT = "rina.kartika@kemendesa.example.go.id"


@pytest.mark.imap
def test_daemon_picks_up_new_mail_with_idle_and_stops_cleanly(imap, smtp, sqlite_url, tmp_path):
    config = write_config(
        tmp_path,
        database_url=sqlite_url,
        mailbox_url=imap.url(),
        smtp_url=smtp.url,
        mailbox_extra="",
        daily_digest=False,
    )
    proc = start_daemon(config, tmp_path / "daemon.log")
    try:
        wait_until(lambda: "IDLE True" in (tmp_path / "daemon.log").read_text())
        imap.deliver(request_mail())
        wait_until(lambda: len(smtp.handler.received) == 2)
        imap.deliver(request_mail(sender="agus@example.go.id", name="Agus Salim", subject="Pertanyaan kedua"))
        wait_until(lambda: len(smtp.handler.received) == 4)
        assert {r.rcpt_tos[0] for r in smtp.handler.received} == {APPLICANT, HEAD, "agus@example.go.id"}
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    text = (tmp_path / "daemon.log").read_text()
    assert "stopping: finishing the message in hand" in text and "stopped" in text
    assert "Traceback" not in text
    assert imap.count("INBOX") == 0 and imap.count("Processed") == 2


def _embedded_default(tmp_path: Path) -> Path:
    """The shipped embedded-default file in tmp_path/config, with its profiles found from there.
    No daily digest: on the wall clock, after 07:30 WIB on a working day, it would be a mail more."""
    config = tmp_path / "config" / "mailbot.toml"
    config.parent.mkdir()
    config.write_text(
        f'profiles_dir = "{PROFILES}"\n'
        + (ROOT / "config" / "mailbot.toml").read_text()
        + "\n[calendar]\ndaily_digest = false\n"
    )
    return config


def test_embedded_default_first_run_seeds_samples_and_says_where_to_look(tmp_path: Path):
    config = _embedded_default(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILBOT_")}
    out = subprocess.run(
        [sys.executable, "-m", "mailbot", "--config", str(config), "run", "--once"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    assert "Dropped 3 sample requests" in out.stdout
    year = datetime.now(ZoneInfo("Asia/Jakarta")).year  # the run numbers tickets on the wall clock
    assert f"tickets: KONS-{year}-000001, KONS-{year}-000002, KONS-{year}-000003" in out.stdout
    assert str(tmp_path / "var" / "outbox") in out.stdout
    # The hint is a command the officer can type again: this interpreter and this configuration.
    assert f"-m mailbot --config {config} tickets list" in out.stdout
    assert len(list((tmp_path / "var" / "outbox").glob("*.eml"))) == 5  # 2 acks, 2 head mails, 1 ask
    listing = subprocess.run(
        [sys.executable, "-m", "mailbot", "--config", str(config), "tickets", "list", "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    tickets = json.loads(listing.stdout)
    assert sorted(t["state"] for t in tickets) == ["awaiting_info", "new", "new"]
    for t in tickets:
        assert {"number", "state", "applicant_email", "created_at", "fields"} <= set(t)
    show = subprocess.run(
        [
            sys.executable,
            "-m",
            "mailbot",
            "--config",
            str(config),
            "tickets",
            "show",
            f"KONS-{year}-000003",
            "--json",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    detail = json.loads(show.stdout)
    assert detail["state"] == "awaiting_info"
    assert [m["direction"] for m in detail["messages"]] == ["in", "out"]
    assert detail["history"][0]["kind"] == "request_incomplete"
    # A second run does not seed again.
    again = subprocess.run(
        [sys.executable, "-m", "mailbot", "--config", str(config), "run", "--once"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert "Dropped" not in again.stdout and "0 fetched" in again.stdout
    assert "Where to look" not in again.stdout  # said once: a cron job mails every run's output


def test_samples_go_into_a_maildir_an_officer_made_by_hand(tmp_path: Path) -> None:
    """Only new/ exists (made by hand, or by a delivery agent that makes only new/) and holds a
    mail: the first run adds the samples beside it (the standard library would not make tmp/)."""
    import mailbox

    config = _embedded_default(tmp_path)
    new = tmp_path / "var" / "mailbox" / "new"
    new.mkdir(parents=True)
    (new / "1700000000.hand.eml").write_bytes(request_mail())
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILBOT_")}
    out = subprocess.run(
        [sys.executable, "-m", "mailbot", "--config", str(config), "run", "--once"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    assert "Dropped 3 sample requests" in out.stdout and "4 fetched" in out.stdout
    assert len(mailbox.Maildir(tmp_path / "var" / "mailbox", create=False)) == 0  # all moved on


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its parent) counts as gone.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(") ", 1)[1][:1] != "Z"


def test_sending_child_is_restarted_and_never_outlives_the_daemon(smtp, sqlite_url, tmp_path):
    """The daemon drains the outbox in a child process: killed, it comes back; the daemon killed,
    it finishes and goes (it reads the daemon's end of a pipe)."""
    import mailbox
    import re

    config = write_config(
        tmp_path,
        database_url=sqlite_url,
        mailbox_url=f"maildir://{tmp_path / 'md'}",
        smtp_url=smtp.url,
        daily_digest=False,
    )
    md = mailbox.Maildir(tmp_path / "md", create=True)
    log_path = tmp_path / "daemon.log"
    proc = start_daemon(config, log_path)

    def senders() -> list[int]:
        return [int(p) for p in re.findall(r"sender process (\d+) started", log_path.read_text())]

    try:
        md.add(request_mail())  # the child is started when there is mail to send
        wait_until(lambda: len(senders()) == 1)
        first = senders()[0]
        wait_until(lambda: len(smtp.handler.received) == 2)
        os.kill(first, signal.SIGKILL)
        wait_until(lambda: len(senders()) == 2, timeout=30)
        assert "sender process exited with status -9; starting it again" in log_path.read_text()
        md.add(request_mail(sender="agus@example.go.id", name="Agus Salim", subject="Pertanyaan kedua"))
        wait_until(lambda: len(smtp.handler.received) == 4)
        second = senders()[1]
        assert second != first and _pid_alive(second)
        proc.kill()  # no chance to stop its child
        proc.wait(timeout=10)
        wait_until(lambda: not _pid_alive(second), timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert {r.rcpt_tos[0] for r in smtp.handler.received} == {APPLICANT, HEAD, "agus@example.go.id"}
    assert len(smtp.handler.received) == 4  # nothing twice


def test_parse_worker_never_outlives_a_killed_daemon(smtp, sqlite_url, tmp_path):
    """A SIGKILL of the daemon (or the OOM killer) gives it no chance to stop its parse worker,
    which would otherwise wait for work forever: it notices it was orphaned and exits."""
    import mailbox

    config = write_config(
        tmp_path,
        database_url=sqlite_url,
        mailbox_url=f"maildir://{tmp_path / 'md'}",
        smtp_url=smtp.url,
        mailbox_extra="transaction_size = 2",
        daily_digest=False,
    )
    md = mailbox.Maildir(tmp_path / "md", create=True)
    for i in range(6):  # a backlog of three groups: the parse worker is started for it
        md.add(request_mail(sender=f"p{i}@example.go.id", name="Pemohon", subject=f"Soal {i}"))
    proc = start_daemon(config, tmp_path / "daemon.log")
    try:
        wait_until(lambda: len(smtp.handler.received) == 12)
        kids = children(proc.pid)
        workers = [k for k in kids if b"--sender-only" not in Path(f"/proc/{k}/cmdline").read_bytes()]
        assert workers, f"no parse worker among the daemon's children {kids}"
        proc.kill()
        proc.wait(timeout=10)
        for worker in workers:
            wait_until(lambda w=worker: not _pid_alive(w), timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()


def test_sending_child_starts_with_mail_and_leaves_when_idle(smtp, sqlite_url, tmp_path):
    """An idle daemon holds one process: the sending child is started when mail is queued and
    exits after smtp.sender_idle_seconds with nothing to send; the next mail starts it again."""
    import mailbox
    import re

    config = write_config(
        tmp_path,
        database_url=sqlite_url,
        mailbox_url=f"maildir://{tmp_path / 'md'}",
        smtp_url=smtp.url,
        smtp_extra="sender_idle_seconds = 1",
        daily_digest=False,
    )
    md = mailbox.Maildir(tmp_path / "md", create=True)
    log_path = tmp_path / "daemon.log"
    proc = start_daemon(config, log_path)

    def senders() -> list[int]:
        return [int(p) for p in re.findall(r"sender process (\d+) started", log_path.read_text())]

    try:
        wait_until(lambda: "fetch lock taken" in log_path.read_text())
        assert senders() == [] and children(proc.pid) == []  # nothing to send: no child
        md.add(request_mail())
        wait_until(lambda: len(smtp.handler.received) == 2)
        first = senders()[0]
        wait_until(lambda: "sender process exited with nothing to send" in log_path.read_text())
        wait_until(lambda: not _pid_alive(first))
        assert children(proc.pid) == []
        md.add(request_mail(sender="agus@example.go.id", name="Agus Salim", subject="Pertanyaan kedua"))
        wait_until(lambda: len(smtp.handler.received) == 4)
        assert len(senders()) == 2
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    text = log_path.read_text()
    assert "exited with status" not in text and "Traceback" not in text
    assert len(smtp.handler.received) == 4  # nothing twice
