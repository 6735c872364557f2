"""The mbox export: read back by Python's mailbox and by a real mail program; memory stays flat."""

from __future__ import annotations

import email
import email.policy
import hashlib
import mailbox
import shutil
import subprocess
import sys
from datetime import timedelta
from email.utils import parseaddr
from pathlib import Path

import pytest
from sqlalchemy import insert, select

from mailbot.records.archive import mboxrd_quote, mboxrd_unquote
from mailbot.shell import models
from tests.conftest import HEAD, ROOT, request_mail
from tests.desk import Desk

APPLICANT = "rina.kartika@kemendesa.example.go.id"
PDF = b"%PDF-1.4\n" + bytes(range(256)) * 40 + b"\nFrom the binary\n%%EOF"


def _tricky_request() -> bytes:
    """A request whose body has 'From ' and '>From ' lines, with a binary attachment."""
    msg = email.message_from_bytes(request_mail(), policy=email.policy.default)
    body = str(msg.get_body(("plain",)).get_content())
    msg.set_content(body + "\nFrom the regional office, we add:\n>From a quoted line\nFrom here on.\n")
    msg.add_attachment(PDF, maintype="application", subtype="pdf", filename="bukti.pdf")
    return msg.as_bytes().replace(b"\n", b"\r\n")


def _export(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "mailbot",
            "--config",
            str(tmp_path / "mailbot.toml"),
            "export",
            "mbox",
            *args,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_quoting_round_trip() -> None:
    raw = b"a\nFrom x\n>From y\n>>From z\nFromage\n"
    assert mboxrd_quote(raw) == b"a\n>From x\n>>From y\n>>>From z\nFromage\n"
    assert mboxrd_unquote(mboxrd_quote(raw)) == raw


def test_export_reads_back_byte_identical(desk: Desk, tmp_path: Path) -> None:
    desk.deliver(_tricky_request())
    desk.reply(desk.last(HEAD, "notify"), HEAD, "ASSIGN Budi Santoso")
    desk.deliver(request_mail(sender="agus@example.go.id", name="Agus Salim", subject="Soal lain"))
    with desk.app.sessions() as s:
        inbound = list(s.execute(select(models.InboundMessage).order_by(models.InboundMessage.id)).scalars())
        outbound = list(
            s.execute(select(models.OutboundMessage).order_by(models.OutboundMessage.id)).scalars()
        )
        first = s.execute(select(models.Ticket).order_by(models.Ticket.id)).scalars().first()
    out = tmp_path / "arsip.mbox"
    result = _export(tmp_path, str(out))
    assert result.returncode == 0, result.stderr
    box = mailbox.mbox(out)
    messages = list(box)
    stored = [m.raw for m in inbound] + [m.raw for m in outbound]
    assert len(messages) == len(stored)
    exported = [mboxrd_unquote(box.get_bytes(key)) for key in box.keys()]  # noqa: SIM118 (mbox iterates messages)
    assert sorted(exported) == sorted(r.replace(b"\r\n", b"\n") for r in stored)
    # The first ticket's messages come first, in order, and keep their threading headers.
    first_thread = [
        m for m in messages if first.number in str(m["Subject"]) or m["Message-ID"] == first.root_message_id
    ]
    assert messages[0]["Message-ID"] == first.root_message_id
    assert all(
        m["In-Reply-To"]
        or m["Message-ID"] == first.root_message_id
        or "Permohonan disposisi" in m["Subject"]
        or "Penugasan" in m["Subject"]
        for m in first_thread
    )
    # 'From ' lines inside bodies are quoted in the file, and the attachment is byte-identical.
    text = out.read_bytes()
    assert b"\n>From the regional office" in text and b"\n>>From a quoted line" in text
    parsed = email.message_from_bytes(exported[0], policy=email.policy.default)
    [attachment] = list(parsed.iter_attachments())
    assert attachment.get_content() == PDF
    # The index lists the exported tickets.
    index = (tmp_path / "arsip.index.csv").read_text().splitlines()
    assert index[0].startswith("number,created,closed,state") and len(index) == 3


@pytest.mark.skipif(
    shutil.which("messages") is None, reason="mailutils not installed (./test.sh installs it)"
)
def test_a_real_mail_program_reads_the_export(desk: Desk, tmp_path: Path) -> None:
    desk.deliver(_tricky_request())
    desk.reply(desk.last(HEAD, "notify"), HEAD, "ASSIGN Budi Santoso")
    out = tmp_path / "arsip.mbox"
    assert _export(tmp_path, str(out), "--ticket", "KONS-2026-000001").returncode == 0
    with desk.app.sessions() as s:
        expected = len(list(s.execute(select(models.InboundMessage.id))))
        expected += len(list(s.execute(select(models.OutboundMessage.id))))
    count = subprocess.run(["messages", str(out)], capture_output=True, text=True, timeout=30, check=True)
    assert count.stdout.strip().endswith(f": {expected}")
    listing = subprocess.run(
        ["mail", "-N", "-H", "-f", str(out)],
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
        env={"HOME": str(tmp_path), "MAIL": str(out)},
    )
    assert listing.stdout.count("\n") == expected
    assert "Konsultasi penyusunan" in listing.stdout and "[KONS-2026-000001]" in listing.stdout
    # The mail program finds and decodes the attachment (byte identity is checked above with Python).
    save = subprocess.run(
        ["mail", "-N", "-f", str(out)],
        input=b"decode 1\nquit\n",
        capture_output=True,
        timeout=30,
        env={"HOME": str(tmp_path), "MAIL": str(out)},
    )
    assert b"%PDF-1.4" in save.stdout


def test_filters(desk: Desk, tmp_path: Path, clock) -> None:
    desk.deliver(request_mail())
    clock.advance(days=40)
    desk.deliver(request_mail(sender="agus@example.go.id", name="Agus Salim", subject="Soal Desember"))
    out = tmp_path / "des.mbox"
    assert _export(tmp_path, str(out), "--from", "2026-12-01", "--to", "2026-12-31").returncode == 0
    senders = {parseaddr(str(m["From"]))[1] for m in mailbox.mbox(out)}
    assert "agus@example.go.id" in senders and APPLICANT not in senders
    assert all(APPLICANT not in str(m["To"]) for m in mailbox.mbox(out))
    out2 = tmp_path / "new.mbox"
    assert _export(tmp_path, str(out2), "--state", "awaiting_info").returncode == 0
    assert len(mailbox.mbox(out2)) == 0


MEASURE = """
import resource, sys
from email.utils import parseaddr
from pathlib import Path
from zoneinfo import ZoneInfo
from mailbot.config import load_config
from mailbot.app import create_app
from mailbot.records.archive import Selection, export_mbox
app = create_app(load_config(Path(sys.argv[1])))
with app.sessions() as s:
    r = export_mbox(s, Path(sys.argv[2]), Selection(), ZoneInfo("Asia/Jakarta"))
print(r.messages, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def _fill(app, tickets: int, per_ticket: int, start: int, clock) -> None:
    raw = request_mail(body="Isi pesan arsip.\n" * 60)
    with app.sessions.begin() as s:
        s.execute(
            insert(models.Ticket),
            [
                {
                    "number": f"ARS-{start + i:06d}",
                    "profile": "sop-002",
                    "state": "closed",
                    "applicant_email": "a@x.go.id",
                    "applicant_name": "A",
                    "subject": "arsip",
                    "fields": {},
                    "issues": [],
                    "root_message_id": "",
                    "created_at": clock.now,
                    "updated_at": clock.now,
                    "version": 1,
                    "urgent": False,
                    "extension_days": 0,
                    "step": "",
                }
                for i in range(tickets)
            ],
        )
        ids = [t for (t,) in s.execute(select(models.Ticket.id).where(models.Ticket.number.like("ARS-%")))][
            -tickets:
        ]
        rows = []
        for n, tid in enumerate(ids):
            for k in range(per_ticket):
                rows.append(
                    {
                        "mailbox": "gen",
                        "uidvalidity": 1,
                        "uid": f"{start}-{n}-{k}",
                        "message_id": "",
                        "raw": raw,
                        "raw_sha256": hashlib.sha256(f"{start}-{n}-{k}".encode()).hexdigest(),
                        "content_hash": "",
                        "from_addr": "a@x.go.id",
                        "subject": "arsip",
                        "received_at": clock.now + timedelta(seconds=k),
                        "status": "processed",
                        "kind": "new_request",
                        "reason": "",
                        "ticket_id": tid,
                        "size": len(raw),
                    }
                )
        s.execute(insert(models.InboundMessage), rows)


def test_export_memory_is_flat_for_a_large_archive(make_app, sqlite_url, tmp_path, clock) -> None:
    app = make_app(
        database_url=sqlite_url,
        mailbox_url=f"maildir://{tmp_path / 'md'}",
        smtp_url=f"file://{tmp_path / 'out'}",
    )
    script = tmp_path / "measure.py"
    script.write_text(MEASURE)

    def peak() -> tuple[int, int]:
        out = subprocess.run(
            [sys.executable, str(script), str(tmp_path / "mailbot.toml"), str(tmp_path / "a.mbox")],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=600,
            check=True,
        )
        n, kib = out.stdout.split()
        return int(n), int(kib)

    _fill(app, 1000, 5, 0, clock)
    small_n, small_kib = peak()
    _fill(app, 3000, 5, 1000, clock)
    large_n, large_kib = peak()
    assert (small_n, large_n) == (5000, 20000)
    # Four times the messages; the peak may not grow with them (allow 25% for allocator noise).
    assert large_kib < small_kib * 1.25, (small_kib, large_kib)


def test_an_export_that_fails_leaves_the_archive_as_it_was(desk: Desk, tmp_path: Path, monkeypatch) -> None:
    """The disk fills (or the officer presses Ctrl-C) half-way: the archive written before is
    untouched and no part file is left beside it. The fault is injected: a real disk is not
    filled in a test."""
    from zoneinfo import ZoneInfo

    from mailbot.records import archive

    desk.deliver(request_mail())
    desk.deliver(request_mail(sender="agus@example.go.id", name="Agus Salim", subject="Soal lain"))
    out = tmp_path / "arsip" / "arsip.mbox"
    out.parent.mkdir()
    out.write_bytes(b"From the archive of last month\n")
    written = 0

    def entry(*args: object) -> bytes:
        nonlocal written
        written += 1
        if written == 3:
            raise OSError(28, "No space left on device")
        return b"From x\n\n"

    monkeypatch.setattr(archive, "mbox_entry", entry)
    with desk.app.sessions() as session, pytest.raises(OSError, match="No space left"):
        archive.export_mbox(session, out, archive.Selection(), ZoneInfo("Asia/Jakarta"))
    assert out.read_bytes() == b"From the archive of last month\n"
    assert [p.name for p in out.parent.iterdir()] == ["arsip.mbox"]
