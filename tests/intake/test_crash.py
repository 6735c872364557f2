"""SIGKILL at random moments during a backlog of 2,000 mixed messages, 20 times: every message is
processed exactly once, no ticket doubled, nothing missing; the counts are printed."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest
from sqlalchemy import func, select

from mailbot.config import load_config
from mailbot.shell import models
from mailbot.shell.db import make_engine
from tests.conftest import HEAD, ROOT, SERVICE_ADDRESS, request_mail, write_config

pytestmark = [pytest.mark.imap, pytest.mark.slow]

COMPLETE, INCOMPLETE, FOLLOW_UPS, DUPLICATES, MACHINE, COMMANDS = 1200, 200, 200, 150, 150, 100
KILLS = 20


def _name(i: int) -> str:
    """A person's name for number i (names carry no digits)."""
    letters = ""
    while True:
        letters = "abcdefghijklmnopqrstuvwxyz"[i % 26] + letters
        i //= 26
        if not i:
            return "Pemohon " + letters.capitalize()


def _backlog() -> list[bytes]:
    rng = random.Random(7)
    mails: list[bytes] = []
    complete = [
        request_mail(
            sender=f"a{i}@instansi.example.go.id",
            name=_name(i),
            subject=f"Soal {i}",
            message_id=f"<req-{i}@instansi.example.go.id>",
        )
        for i in range(COMPLETE)
    ]
    mails += complete
    mails += [
        request_mail(
            sender=f"b{i}@instansi.example.go.id",
            name=_name(i),
            subject=f"Tanya {i}",
            body=f"Nama: {_name(i)}\nPertanyaan: bagaimana prosedur nomor {i}?\n",
        )
        for i in range(INCOMPLETE)
    ]
    mails += [
        request_mail(
            sender=f"a{i}@instansi.example.go.id",
            name=_name(i),
            subject=f"Re: Soal {i}",
            body=f"Tambahan keterangan nomor {i}.\n",
            headers=f"In-Reply-To: <req-{i}@instansi.example.go.id>\r\n",
        )
        for i in rng.sample(range(COMPLETE), FOLLOW_UPS)
    ]
    mails += [complete[i] for i in rng.sample(range(COMPLETE), DUPLICATES)]
    mails += [
        request_mail(
            sender=f"c{i}@instansi.example.go.id",
            subject=f"Automatic reply: cuti {i}",
            headers="Auto-Submitted: auto-replied\r\n",
        )
        for i in range(MACHINE)
    ]
    mails += [
        request_mail(sender=HEAD, name="Siti", subject=f"perintah {i}", body="HELP\n")
        for i in range(COMMANDS)
    ]
    rng.shuffle(mails[COMPLETE:])  # requests first (so follow-ups find them), the rest mixed
    return mails


def test_sigkill_twenty_times_during_a_backlog(imap, smtp, sqlite_url, tmp_path) -> None:
    config = write_config(
        tmp_path,
        database_url=sqlite_url,
        mailbox_url=imap.url(),
        smtp_url=smtp.url,
        smtp_extra="claim_lease_seconds = 2",
        daily_digest=False,
    )
    mails = _backlog()
    assert len(mails) == 2000
    imap.deliver(*mails)
    rng = random.Random(11)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    killed_while_sending = 0
    for _ in range(KILLS):
        proc = subprocess.Popen(
            [sys.executable, "-m", "mailbot", "--config", str(config), "run"],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        time.sleep(rng.uniform(0.8, 3.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        killed_while_sending += 1
    time.sleep(2.5)  # let the claims of mail killed mid-send run out
    for _ in range(5):
        done = subprocess.run(
            [sys.executable, "-m", "mailbot", "--config", str(config), "run", "--once"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stderr
        if imap.count("INBOX") == 0 and "0 fetched" in done.stdout and " 0 sent" not in done.stdout:
            continue
        if imap.count("INBOX") == 0:
            break

    engine = make_engine(load_config(config).database_url)
    with engine.connect() as conn:
        inbound = conn.scalar(select(func.count()).select_from(models.InboundMessage))
        tickets = conn.scalar(select(func.count()).select_from(models.Ticket))
        per_applicant = conn.execute(
            select(models.Ticket.applicant_email, func.count()).group_by(models.Ticket.applicant_email)
        ).all()
        outbound = conn.execute(
            select(
                models.OutboundMessage.message_id,
                models.OutboundMessage.kind,
                models.OutboundMessage.status,
                models.OutboundMessage.ticket_id,
            )
        ).all()
        statuses = Counter(conn.execute(select(models.InboundMessage.status)).scalars())
    engine.dispose()

    assert imap.count("INBOX") == 0 and imap.count("Processed") == 2000
    assert inbound == 2000
    assert statuses["duplicate"] == DUPLICATES and statuses["machine"] == MACHINE
    assert tickets == COMPLETE + INCOMPLETE
    assert all(n == 1 for _, n in per_applicant)  # no ticket doubled
    kinds = Counter(k for _, k, _, _ in outbound)
    assert kinds["ack"] == COMPLETE and kinds["notify"] == COMPLETE  # one head in the test staff
    assert kinds["missing_fields"] == INCOMPLETE and kinds["transcript"] == COMMANDS
    assert all(status == "sent" for _, _, status, _ in outbound)
    # Every queued mail reached the SMTP server; a kill between the server's 250 and our commit
    # can repeat that one mail (same Message-ID): at most one per kill.
    received = Counter("".join(str(r.message["Message-ID"]).split()) for r in smtp.handler.received)
    assert set(received) == {mid for mid, _, _, _ in outbound}
    repeated = sum(n - 1 for n in received.values())
    print(
        f"\ncrash test: {KILLS} SIGKILLs, 2000 messages ({dict(statuses)}), {tickets} tickets, "
        f"{len(outbound)} mails queued once each, {len(smtp.handler.received)} deliveries, "
        f"{repeated} repeated deliveries"
    )
    assert repeated <= killed_while_sending
    assert SERVICE_ADDRESS not in {r.rcpt_tos[0] for r in smtp.handler.received}
