"""Personal data is gone when the purge says so (#16 item 7): not only from the database but
from the mailbox's own copies (Maildir or a real Dovecot: processed, quarantined, flagged in
place) and from the .eml files of a file:// outbox; and the export of one person finds the
mail that was quarantined before its sender was read."""

from __future__ import annotations

import dataclasses
import email
import email.policy
import mailbox
import zipfile
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

import mailbot.pipeline.intake
from mailbot.app import App
from mailbot.cli import main
from mailbot.core.workflow import State
from mailbot.records.personal_data import PENDING_FILE, purge, remove_copies
from mailbot.shell import models
from tests.applicant.test_answer_survey import reply_from_applicant
from tests.conftest import CONSULTANT, HEAD, request_mail, send_all
from tests.desk import reply_bytes

APPLICANT = "rina.kartika@kemendesa.example.go.id"
NIK = "3273014101900001"
PHONE = "0812-3456-7890"
PERSONAL = (NIK.encode(), PHONE.encode(), b"3273 0141 0190 0001")


def _request(subject: str = "Konsultasi penyusunan Analisis Beban Kerja") -> bytes:
    body = (
        "Yth. Tim Sekretariat,\n\n"
        "Nama Lengkap : Rina Kartika\n"
        "NIK          : 3273 0141 0190 0001\n"
        "Unit Kerja   : Biro Perencanaan, Kementerian Desa PDTT\n"
        "Jabatan      : Analis Kebijakan Ahli Muda\n"
        f"No. HP       : {PHONE}\n\n"
        "Permasalahan:\n"
        f"Bagaimana tata cara penyusunan Analisis Beban Kerja? NIK saya {NIK}.\n\n"
        "Hormat saya,\nRina\n"
    )
    return request_mail(subject=subject, body=body)


def _has_personal(raw: bytes) -> bool:
    """The NIK or phone in the mail's bytes or in any of its decoded text parts."""
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    texts = [raw] + [
        str(part.get_content()).encode() for part in msg.walk() if part.get_content_maintype() == "text"
    ]
    return any(p in t for t in texts for p in PERSONAL)


def _last(app: App, to: str, kind: str) -> models.OutboundMessage:
    with app.sessions() as s:
        rows = s.execute(
            select(models.OutboundMessage)
            .where(models.OutboundMessage.recipient == to, models.OutboundMessage.kind == kind)
            .order_by(models.OutboundMessage.id)
        ).scalars()
        return list(rows)[-1]


def _serve(app: App, deliver: Callable[[bytes], None], monkeypatch: pytest.MonkeyPatch) -> None:
    """A request served to the end through the mailbox, and a second mail from the same person
    that meets a defect and is quarantined (the defect is a mock: no real server makes one)."""

    def through(raw: bytes) -> None:
        deliver(raw)
        app.run_intake_once()
        send_all(app)

    through(_request())
    through(reply_bytes(_last(app, HEAD, "notify"), HEAD, "ASSIGN Budi Santoso"))
    through(reply_bytes(_last(app, CONSULTANT, "assign"), CONSULTANT, "Jawaban atas pertanyaan Ibu."))
    through(reply_from_applicant(_last(app, APPLICANT, "answer").raw, "4 4 3 4 4 4 4 3 4\nKomentar: oke"))
    real = mailbot.pipeline.intake.classify

    def defective(msg, **kwargs):  # type: ignore[no-untyped-def]
        if "cacat" in msg.subject:
            raise RuntimeError("a defect")
        return real(msg, **kwargs)

    monkeypatch.setattr(mailbot.pipeline.intake, "classify", defective)
    through(_request(subject="Tambahan data, memicu cacat"))
    monkeypatch.setattr(mailbot.pipeline.intake, "classify", real)
    with app.sessions() as s:
        ticket = s.execute(select(models.Ticket)).scalars().one()
        assert ticket.state is State.CLOSED
        held = s.execute(
            select(models.InboundMessage).where(models.InboundMessage.status == "quarantined")
        ).scalar_one()
        assert held.from_addr == "" and held.ticket_id is None and _has_personal(held.raw)


def _other_person(sender: str, subject: str) -> bytes:
    body = request_mail().decode().split("\r\n\r\n", 1)[1].replace(PHONE, "0813-1111-2222")
    return request_mail(sender=sender, name="Orang Lain", subject=subject, body=body)


def _files(folder: Path) -> list[bytes]:
    return [p.read_bytes() for sub in ("new", "cur") for p in sorted((folder / sub).glob("*"))]


def test_export_finds_mail_quarantined_without_its_sender(
    make_app, database_url, tmp_path, monkeypatch, capsys
) -> None:
    app = make_app(
        database_url=database_url,
        mailbox_url=f"maildir://{tmp_path / 'md'}",
        smtp_url=f"file://{tmp_path / 'out'}",
    )
    md = mailbox.Maildir(tmp_path / "md", create=True)
    _serve(app, md.add, monkeypatch)
    bundle = tmp_path / "rina.zip"
    assert (
        main(["--config", str(tmp_path / "mailbot.toml"), "privacy", "export", APPLICANT, "-o", str(bundle)])
        == 0
    )
    with zipfile.ZipFile(bundle) as z:
        other = [n for n in z.namelist() if n.startswith("messages/other/")]
        assert len(other) == 1
        assert b"memicu cacat" in z.read(other[0])


def test_purge_removes_maildir_and_outbox_copies(
    make_app, database_url, tmp_path, clock, monkeypatch
) -> None:
    app = make_app(
        database_url=database_url,
        mailbox_url=f"maildir://{tmp_path / 'md'}",
        smtp_url=f"file://{tmp_path / 'out'}",
    )
    md = mailbox.Maildir(tmp_path / "md", create=True)
    _serve(app, md.add, monkeypatch)
    processed, quarantine = tmp_path / "md" / ".Processed", tmp_path / "md" / ".Quarantine"
    outbox = sorted((tmp_path / "out").glob("*.eml"))
    assert any(_has_personal(raw) for raw in _files(processed))
    assert [_has_personal(raw) for raw in _files(quarantine)] == [True]
    assert any(_has_personal(p.read_bytes()) for p in outbox)
    # Mail of someone else, still open: none of it may go.
    md.add(_other_person("baru@example.go.id", "masih terbuka"))
    app.run_intake_once()
    send_all(app)
    kept_in = [raw for raw in _files(processed) if b"baru@example.go.id" in raw]
    kept_out = [p for p in (tmp_path / "out").glob("*.eml") if b"baru@example.go.id" in p.read_bytes()]
    assert kept_in and kept_out

    clock.advance(days=400)
    with app.sessions.begin() as s:
        result = purge(s, older_than=timedelta(days=365), now=clock.now)
    assert result.tickets == 1
    removed = remove_copies(app.config, result)
    assert removed.errors == [] and removed.pending == 0
    assert removed.mailbox == 5 and removed.outbox == len(outbox)
    assert not any(_has_personal(raw) for raw in _files(processed) + _files(quarantine))
    assert not any(_has_personal(p.read_bytes()) for p in (tmp_path / "out").glob("*.eml"))
    assert [raw for raw in _files(processed) if b"baru@example.go.id" in raw] == kept_in
    assert all(p.exists() for p in kept_out)
    assert not (app.config.data_dir / PENDING_FILE).exists()


@pytest.mark.parametrize("after", ["move", "flag"])
def test_purge_removes_imap_copies(make_app, imap, smtp, sqlite_url, clock, monkeypatch, after) -> None:
    app = make_app(
        database_url=sqlite_url,
        mailbox_url=imap.url(),
        smtp_url=smtp.url,
        mailbox_extra=f'after = "{after}"',
    )
    _serve(app, imap.deliver, monkeypatch)
    folders = ["Processed", "Quarantine"] if after == "move" else ["INBOX"]
    before = [raw for f in folders for raw in imap.messages(f)]
    assert sum(_has_personal(raw) for raw in before) >= 2
    imap.deliver(_other_person("lain@example.go.id", "tidak disentuh"))
    app.run_intake_once()

    clock.advance(days=400)
    with app.sessions.begin() as s:
        result = purge(s, older_than=timedelta(days=365), now=clock.now)
    removed = remove_copies(app.config, result)
    assert removed.errors == [] and removed.pending == 0 and removed.mailbox == 5
    after_purge = [raw for f in folders for raw in imap.messages(f)]
    assert not any(_has_personal(raw) for raw in after_purge)
    assert any(b"lain@example.go.id" in raw for raw in after_purge)


def test_a_mailbox_away_is_tried_again(
    make_app, imap, smtp, sqlite_url, clock, monkeypatch, tmp_path, capsys
) -> None:
    """The database is purged; the IMAP server refuses the login: the copies wait in the data
    folder (keys and hashes, no personal data) and the next purge removes them."""
    app = make_app(database_url=sqlite_url, mailbox_url=imap.url(), smtp_url=smtp.url)
    _serve(app, imap.deliver, monkeypatch)
    clock.advance(days=400)
    with app.sessions.begin() as s:
        result = purge(s, older_than=timedelta(days=365), now=clock.now)
    refused = dataclasses.replace(
        app.config, mailbox=dataclasses.replace(app.config.mailbox, password="salah")
    )
    removed = remove_copies(refused, result)
    assert removed.pending == 5 and removed.errors
    pending = (app.config.data_dir / PENDING_FILE).read_text()
    assert NIK not in pending and APPLICANT not in pending
    # The next purge (nothing new to purge) removes what waited.
    assert main(["--config", str(tmp_path / "mailbot.toml"), "privacy", "purge", "--older-than", "3650"]) == 0
    assert "removed 5 copies from the mailbox" in capsys.readouterr().out
    assert not any(_has_personal(raw) for f in ("Processed", "Quarantine") for raw in imap.messages(f))
    assert not (app.config.data_dir / PENDING_FILE).exists()
