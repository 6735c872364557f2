"""Personal data (UU 27/2022): masking in logs, the export of one person, the purge."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import zipfile
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from mailbot.core.masking import MaskingFilter, mask_number, mask_text
from mailbot.shell import models
from tests.applicant.test_answer_survey import reply_from_applicant
from tests.conftest import CONSULTANT, HEAD, ROOT, request_mail
from tests.desk import Desk

APPLICANT = "rina.kartika@kemendesa.example.go.id"
NIP = "198609262015052001"


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mailbot", "--config", str(tmp_path / "mailbot.toml"), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_masking() -> None:
    assert mask_number("3273014101900001") == "3273********0001"
    assert mask_number("+6281234567890") == "+6281*****7890"
    assert (
        mask_text("NIK 3273 0141 0190 0001 dan HP 0812-3456-7890")
        == "NIK 3273********0001 dan HP 0812****7890"
    )
    record = logging.LogRecord(
        "x", logging.INFO, __file__, 1, "subject %s", ("NIP 19860926 201505 2 001",), None
    )
    MaskingFilter().filter(record)
    assert record.getMessage() == "subject NIP 1986**********2001"


def test_personal_numbers_never_reach_the_log(tmp_path: Path) -> None:
    """The daemon logs a machine mail's subject; the NIK in it comes out masked."""
    from tests.conftest import write_config

    config = write_config(
        tmp_path,
        database_url=f"sqlite:///{tmp_path / 'db.sqlite'}",
        mailbox_url=f"maildir://{tmp_path / 'md'}",
        smtp_url=f"file://{tmp_path / 'out'}",
    )
    import mailbox

    md = mailbox.Maildir(tmp_path / "md", create=True)
    md.add(request_mail(subject="Automatic reply: NIK 3273014101900001 HP 081234567890"))
    out = subprocess.run(
        [sys.executable, "-m", "mailbot", "--config", str(config), "-v", "run", "--once"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "machine mail" in out.stderr
    assert "3273014101900001" not in out.stderr and "081234567890" not in out.stderr
    assert "3273********0001" in out.stderr


def _served(desk: Desk) -> None:
    desk.deliver(request_mail())
    desk.reply(desk.last(HEAD, "notify"), HEAD, "ASSIGN Budi Santoso")
    desk.reply(desk.last(CONSULTANT, "assign"), CONSULTANT, "Jawaban.")
    desk.deliver(reply_from_applicant(desk.last(APPLICANT, "answer").raw, "4 4 3 4 4 4 4 3 4\nKomentar: oke"))


def test_export_everything_about_a_person(desk: Desk, tmp_path: Path) -> None:
    _served(desk)
    other = (
        request_mail().decode().split("\r\n\r\n", 1)[1].replace("19860926 201505 2 001", "3273014101900001")
    )
    desk.deliver(request_mail(sender="lain@example.go.id", name="Orang Lain", subject="lain", body=other))
    for who in (APPLICANT, NIP, "1986 0926 2015 05 2 001"):
        bundle = tmp_path / "rina.zip"
        out = _cli(tmp_path, "privacy", "export", who, "-o", str(bundle))
        assert out.returncode == 0, out.stderr
        with zipfile.ZipFile(bundle) as z:
            person = json.loads(z.read("person.json"))
            names = z.namelist()
        assert [t["number"] for t in person["tickets"]] == ["KONS-2026-000001"]
        assert person["tickets"][0]["fields"]["id_number"] == NIP
        assert person["tickets"][0]["survey"]["comment"] == "oke"
        # Her request, her survey reply, and every mail sent to her; none to staff, none of the other person.
        assert sum(n.startswith("messages/KONS-2026-000001/in-") for n in names) == 2
        assert (
            sum(n.startswith("messages/KONS-2026-000001/out-") for n in names) == 4
        )  # ack, assigned, answer, thanks
    assert _cli(tmp_path, "privacy", "export", "12345").returncode == 2


def test_purge_keeps_the_figures_and_removes_the_person(desk: Desk, tmp_path: Path, clock) -> None:
    _served(desk)
    desk.deliver(request_mail(sender="baru@example.go.id", name="Baru", subject="masih terbuka"))
    before = _cli(tmp_path, "report", "ikm", "--from", "2026-11-01", "--to", "2026-11-30", "--json").stdout
    # A dry run says what a purge would take and changes nothing.
    dry = _cli(tmp_path, "privacy", "purge", "--older-than", "0", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "dry run: would purge personal data of 1 closed or rejected ticket and" in dry.stdout
    # Shorter than the retention period (1825 days here) without --yes: refused, nothing changed
    # (checked below with the dry run's); a negative age is refused outright.
    unconfirmed = _cli(tmp_path, "privacy", "purge", "--older-than", "0")
    assert unconfirmed.returncode == 2
    assert "shorter than the retention period (privacy.retention_days = 1825)" in unconfirmed.stderr
    assert "--dry-run" in unconfirmed.stderr and "--yes" in unconfirmed.stderr
    negative = _cli(tmp_path, "privacy", "purge", "--older-than", "-1", "--yes")
    assert negative.returncode == 2 and "0 or more" in negative.stderr
    with desk.app.sessions() as s:
        assert (
            s.execute(select(models.Ticket).order_by(models.Ticket.id)).scalars().first().fields["id_number"]
            == NIP
        )
    clock.advance(days=400)
    with desk.app.sessions.begin() as s:
        from mailbot.records.personal_data import purge

        result = purge(s, older_than=timedelta(days=365), now=clock.now)
    assert result.tickets == 1 and result.messages > 0
    with desk.app.sessions() as s:
        closed, still_open = s.execute(select(models.Ticket).order_by(models.Ticket.id)).scalars().all()
        assert closed.fields == {"unit": "Biro Perencanaan, Kementerian Desa PDTT"}
        assert closed.applicant_email.endswith("@purged.invalid") and closed.applicant_name == ""
        assert all(e.detail == "" or e.kind == "purged" for e in closed.events)
        assert closed.events[-1].kind == "purged"
        raws = s.execute(
            select(models.InboundMessage.raw).where(models.InboundMessage.ticket_id == closed.id)
        )
        assert all(r == b"" for (r,) in raws)
        survey = s.execute(select(models.Survey)).scalar_one()
        assert survey.comment == "" and survey.scores["1"] == 4
        assert still_open.fields["id_number"] == NIP  # an open ticket keeps its data
    after = _cli(tmp_path, "report", "ikm", "--from", "2026-11-01", "--to", "2026-11-30", "--json").stdout
    assert json.loads(after) == json.loads(before)  # the anonymous figures survive
    again = _cli(tmp_path, "privacy", "purge", "--older-than", "365", "--yes")
    assert again.returncode == 0, again.stderr
    assert "purged personal data of 0 closed or rejected tickets" in again.stdout


def test_a_spawned_worker_logs_masked() -> None:
    """A parse worker is a spawned process: without set-up its warnings reach stderr through
    logging's last resort, unmasked. setup_worker_logging masks them."""
    code = (
        "import logging, sys\n"
        "if sys.argv[1] == 'masked':\n"
        "    from mailbot.core.masking import setup_worker_logging; setup_worker_logging()\n"
        "logging.getLogger('mailbot.core.message').warning('parser failed: %s', 'NIK 3273014101900001')\n"
    )
    for mode, seen in (("bare", "3273014101900001"), ("masked", "3273********0001")):
        out = subprocess.run(
            [sys.executable, "-c", code, mode], cwd=ROOT, capture_output=True, text=True, timeout=60
        )
        assert seen in out.stderr and "parser failed" in out.stderr


def test_export_finds_a_person_by_the_second_number_given(desk: Desk, tmp_path: Path) -> None:
    """`NIP / NIK` in one field: the NIP is the identity number, the NIK is kept beside it and
    finds the person too (an access request may name either)."""
    body = (
        request_mail()
        .decode()
        .split("\r\n\r\n", 1)[1]
        .replace("19860926 201505 2 001", "198609262015052001 / 3273016609860001")
    )
    desk.deliver(request_mail(body=body))
    bundle = tmp_path / "rina.zip"
    out = _cli(tmp_path, "privacy", "export", "3273016609860001", "-o", str(bundle))
    assert out.returncode == 0, out.stderr
    with zipfile.ZipFile(bundle) as z:
        person = json.loads(z.read("person.json"))
    assert [t["number"] for t in person["tickets"]] == ["KONS-2026-000001"]
