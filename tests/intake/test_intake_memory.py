"""Taking in a backlog of large mail holds a bounded amount of it in memory (#18 item 2): groups,
the parse worker's read-ahead and IMAP FETCHes are cut by bytes (`limits.max_message_bytes`), not
only by count. Before, 40 mails of 20 MiB reached 1 GB in one `run --once`."""

from __future__ import annotations

import mailbox
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from imapclient import IMAPClient
from sqlalchemy import func, select

from mailbot.app import create_app
from mailbot.config import load_config
from mailbot.core.workflow import InboundStatus
from mailbot.shell import models
from tests.conftest import ROOT, write_config
from tests.records.test_export_memory import MIB, _request_with_file
from tests.servers import Dovecot

LIMIT = "max_message_bytes = 9437184"  # 9 MiB: each 6 MiB file (8 MiB as base64) fits, two do not


def _peak_of_run_once(config: Path) -> float:
    """`mailbot run --once` in a process of its own, which reports its peak (VmHWM) as it exits."""
    probe = (
        "import runpy, sys\n"
        "sys.argv = ['mailbot', '--config', sys.argv[1], 'run', '--once']\n"
        "try:\n"
        "    runpy.run_module('mailbot', run_name='__main__')\n"
        "except SystemExit:\n"
        "    pass\n"
        "finally:\n"
        "    hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')][0].split()[1]\n"
        "    print('PEAK', hwm, file=sys.stderr)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe, str(config)], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert "PEAK" in out.stderr, out.stderr
    return int(out.stderr.rsplit("PEAK", 1)[1].split()[0]) / 1024


def test_a_backlog_of_large_mail_is_taken_in_with_bounded_memory(tmp_path: Path) -> None:
    md = mailbox.Maildir(tmp_path / "md", create=True)
    for i in range(24):  # 192 MiB of mail waiting: two batches' worth of groups for the worker
        md.add(_request_with_file(i, 6 * MIB))
    config = write_config(
        tmp_path,
        database_url=f"sqlite:///{tmp_path / 'm.db'}",
        mailbox_url=f"maildir://{tmp_path / 'md'}",
        smtp_url=f"file://{tmp_path / 'out'}",
        mailbox_extra="batch_size = 12\ntransaction_size = 6",
        extra=f"\n[limits]\n{LIMIT}\n",
    )
    peak_mib = _peak_of_run_once(config)
    app = create_app(load_config(config))
    try:
        with app.sessions() as session:
            stored = session.scalar(select(func.count()).select_from(models.InboundMessage))
            processed = session.scalar(
                select(func.count())
                .select_from(models.InboundMessage)
                .where(models.InboundMessage.status == InboundStatus.PROCESSED)
            )
    finally:
        app.close()
    assert stored == processed == 24
    assert (
        len(list((tmp_path / "md" / "cur").iterdir())) + len(list((tmp_path / "md" / "new").iterdir())) == 0
    )
    # Cut by count only (a group of six 8 MiB mails, the worker's read-ahead of a whole batch and
    # the next one) this took 311 MiB; cut by bytes, 207 MiB: a mail or two in flight and their
    # parsed copies above the interpreter's own 85 MiB.
    assert peak_mib < 255, f"peak {peak_mib:.0f} MiB"


def test_imap_fetches_large_mail_a_few_at_a_time_and_takes_each_once(
    tmp_path: Path, dovecot: Dovecot, monkeypatch: pytest.MonkeyPatch
) -> None:
    bodies: list[int] = []  # how many whole messages each FETCH asked the real server for
    real_fetch = IMAPClient.fetch

    def counting_fetch(self: IMAPClient, messages: Any, data: Any, *args: Any, **kwargs: Any) -> Any:
        if "BODY.PEEK[]" in data:
            bodies.append(len(messages))
        return real_fetch(self, messages, data, *args, **kwargs)

    monkeypatch.setattr(IMAPClient, "fetch", counting_fetch)
    imap = dovecot.new_account()
    imap.deliver(*(_request_with_file(i, 3 * MIB) for i in range(7)))  # 4 MiB each as base64
    config = write_config(
        tmp_path,
        database_url=f"sqlite:///{tmp_path / 'm.db'}",
        mailbox_url=imap.url(),
        smtp_url=f"file://{tmp_path / 'out'}",
        mailbox_extra="transaction_size = 50",
        extra=f"\n[limits]\n{LIMIT}\n",
    )
    app = create_app(load_config(config))
    try:
        stats = app.run_intake_once()
        assert stats.fetched == 7 and stats.processed == 7
        assert bodies == [2, 2, 2, 1], bodies  # two 4 MiB mails fit in 9 MiB, three do not
        assert imap.count("INBOX") == 0 and imap.count("Processed") == 7
        with app.sessions() as session:
            uids = session.scalars(select(models.InboundMessage.uid)).all()
        assert sorted(uids, key=int) == [str(u) for u in range(1, 8)]
        assert app.run_intake_once().fetched == 0
    finally:
        app.close()
