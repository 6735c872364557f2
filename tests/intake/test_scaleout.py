"""Two `mailbot run` processes on one PostgreSQL database and one mailbox: one reads at a time, both
send; kill the reader and the other takes over; nothing is handled twice, nothing is lost."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections import Counter

import pytest
from sqlalchemy import func, select

from mailbot.config import load_config
from mailbot.shell import models
from mailbot.shell.db import make_engine
from tests.conftest import ROOT, request_mail, write_config
from tests.servers import wait_until

pytestmark = pytest.mark.imap


def test_two_processes_one_reader_failover_on_kill(imap, smtp, database_url, tmp_path) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("scale-out is the PostgreSQL deployment")
    config = write_config(
        tmp_path,
        database_url=database_url,
        mailbox_url=imap.url(),
        smtp_url=smtp.url,
        smtp_extra="claim_lease_seconds = 3",
        mailbox_extra="batch_size = 20",
        daily_digest=False,
    )
    total = 600
    imap.deliver(
        *[
            request_mail(sender=f"p{i}@example.go.id", name="Pemohon", subject=f"Soal {i}")
            for i in range(total)
        ]
    )
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    procs = []
    for log in logs:
        with log.open("w") as fh:
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "mailbot", "--config", str(config), "run"],
                    cwd=ROOT,
                    stdout=fh,
                    stderr=subprocess.STDOUT,
                )
            )
    try:
        wait_until(lambda: any("fetch lock taken" in log.read_text() for log in logs))
        wait_until(
            lambda: all("standby" in log.read_text() or "fetch lock taken" in log.read_text() for log in logs)
        )
        leader = next(i for i, log in enumerate(logs) if "fetch lock taken" in log.read_text())
        other = 1 - leader
        assert "standby" in logs[other].read_text()  # one reader at a time
        wait_until(lambda: imap.count("Processed") >= 50)
        procs[leader].send_signal(signal.SIGKILL)  # the reader dies mid-backlog
        procs[leader].wait(timeout=30)
        wait_until(lambda: "fetch lock taken" in logs[other].read_text())
        wait_until(lambda: imap.count("INBOX") == 0, timeout=300)
        wait_until(
            lambda: len({r.message["Message-ID"] for r in smtp.handler.received}) >= 2 * total, timeout=300
        )
        procs[other].send_signal(signal.SIGTERM)
        assert procs[other].wait(timeout=60) == 0
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    engine = make_engine(load_config(config).database_url)
    with engine.connect() as conn:
        inbound = conn.scalar(select(func.count()).select_from(models.InboundMessage))
        tickets = conn.scalar(select(func.count()).select_from(models.Ticket))
        kinds = Counter(conn.execute(select(models.OutboundMessage.kind)).scalars())
    engine.dispose()
    assert imap.count("Processed") == total and inbound == total and tickets == total
    assert kinds == {"ack": total, "notify": total}
    delivered = Counter("".join(str(r.message["Message-ID"]).split()) for r in smtp.handler.received)
    repeats = sum(n - 1 for n in delivered.values())
    print(f"\nscale-out: {total} requests, leader killed once, {len(delivered)} mails, {repeats} repeated")
    assert len(delivered) == 2 * total and repeats <= 1
