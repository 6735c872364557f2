"""The CLI's report skm and the calendar warnings of check-config and status."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from mailbot.cli import main
from mailbot.cli.warnings import calendar_warnings
from mailbot.config import load_config
from tests.conftest import ROOT, write_config


def test_report_skm_as_json_and_html(tmp_path, capsys) -> None:
    config = write_config(
        tmp_path,
        database_url=f"sqlite:///{tmp_path / 'm.db'}",
        mailbox_url=f"maildir://{tmp_path / 'md'}",
        smtp_url=f"file://{tmp_path / 'out'}",
    )
    assert main(["--config", str(config), "report", "skm", "--from", "2026-07-01", "--to", "2026-12-31",
                 "--format", "json"]) == 0  # fmt: skip
    data = json.loads(capsys.readouterr().out)
    assert isinstance(data, dict)
    out = tmp_path / "skm.html"
    assert main(["--config", str(config), "report", "skm", "--from", "2026-07-01", "--to", "2026-12-31",
                 "-o", str(out)]) == 0  # fmt: skip
    assert "<html" in out.read_text().lower()


def test_a_year_without_cuti_bersama_is_warned_about(tmp_path) -> None:
    config = load_config(
        write_config(
            tmp_path,
            database_url=f"sqlite:///{tmp_path / 'm.db'}",
            mailbox_url=f"maildir://{tmp_path / 'md'}",
            smtp_url=f"file://{tmp_path / 'out'}",
        )
    )
    zone = ZoneInfo(config.service.timezone)
    assert calendar_warnings(zone, datetime(2026, 12, 4, tzinfo=UTC)) == []  # 2026 and 2027 known
    [warning] = calendar_warnings(zone, datetime(2027, 6, 1, tzinfo=UTC))  # 2028's SKB: not yet
    assert "2028" in warning and "closed_days" in warning


def test_tickets_list_shows_the_subject_at_80_columns_and_office_time(tmp_path) -> None:
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT, request_mail

    config = write_config(
        tmp_path,
        database_url=f"sqlite:///{tmp_path / 'm.db'}",
        mailbox_url=f"maildir://{tmp_path / 'md'}",
        smtp_url=f"file://{tmp_path / 'out'}",
    )
    import mailbox

    mailbox.Maildir(tmp_path / "md", create=True).add(request_mail(subject="Penyusunan ABK jabatan baru"))
    assert main(["--config", str(config), "run", "--once"]) == 0
    env = {**os.environ, "COLUMNS": "80"}
    out = subprocess.run(
        [sys.executable, "-m", "mailbot", "--config", str(config), "tickets", "list"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    ).stdout.splitlines()
    assert all(len(line) <= 80 for line in out)
    assert "CREATED (WIB)" in out[0]
    assert "Penyusunan ABK" in out[1]
    show = subprocess.run(
        [sys.executable, "-m", "mailbot", "--config", str(config), "tickets", "show", out[1].split()[0]],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    ).stdout
    assert " WIB" in show and " UTC" not in show


def test_profile_show_reads_each_step_with_its_clock(capsys) -> None:
    from tests.conftest import ROOT

    config = str(ROOT / "config" / "mailbot.toml")
    assert main(["--config", config, "profile", "show", "sop-000", "--json"]) == 0
    rows = {r["step"]: r for r in json.loads(capsys.readouterr().out)["steps"]}
    answer = next(r for r in rows.values() if "24 jam" in r["time"])
    assert answer["clock"] == "wall" and answer["runs_in"]  # the normative answer's 1 x 24 jam
    assert all(r["clock"] == "working" for r in rows.values() if "menit" in r["time"])
    assert main(["--config", config, "profile", "show", "sop-004"]) == 0
    text = capsys.readouterr().out
    assert "assigned (subhead)" in text and "CLOCK" in text
    assert main(["--config", config, "profile", "show", "nope"]) == 1


def test_the_playground_plays_the_head_and_the_consultant(tmp_path, capsys) -> None:
    """request -> ASSIGN -> answer -> survey, with `mailbot reply` writing each reply."""
    import mailbox

    from sqlalchemy import select

    from mailbot.app import create_app
    from mailbot.shell import models
    from tests.conftest import CONSULTANT, HEAD, request_mail

    config = write_config(
        tmp_path,
        database_url=f"sqlite:///{tmp_path / 'm.db'}",
        mailbox_url=f"maildir://{tmp_path / 'md'}",
        smtp_url=f"file://{tmp_path / 'out'}",
    )
    mailbox.Maildir(tmp_path / "md", create=True).add(request_mail())
    cli = ["--config", str(config)]

    def last_to(recipient: str, kind: str) -> int:
        app = create_app(load_config(config))
        try:
            with app.sessions() as s:
                return s.scalars(
                    select(models.OutboundMessage.id)
                    .where(models.OutboundMessage.recipient == recipient, models.OutboundMessage.kind == kind)
                    .order_by(models.OutboundMessage.id.desc())
                ).first()
        finally:
            app.close()

    def state() -> str:
        app = create_app(load_config(config))
        try:
            with app.sessions() as s:
                return s.scalars(select(models.Ticket.state)).one().value
        finally:
            app.close()

    assert main([*cli, "run", "--once"]) == 0
    capsys.readouterr()
    assert (
        main([*cli, "reply", str(last_to(HEAD, "notify")), "--as", HEAD, "--text", "tugaskan Budi Santoso"])
        == 0
    )
    assert f"--config {config} run --once" in capsys.readouterr().out  # a command to type again
    assert main([*cli, "run", "--once"]) == 0
    assert state() == "assigned"
    answer = "ABK disusun per jabatan.\\nSalam, Budi"
    assert (
        main([*cli, "reply", str(last_to(CONSULTANT, "assign")), "--as", CONSULTANT, "--text", answer]) == 0
    )
    assert main([*cli, "run", "--once"]) == 0
    assert state() == "answered"
    applicant = "rina.kartika@kemendesa.example.go.id"
    assert (
        main(
            [
                *cli,
                "reply",
                str(last_to(applicant, "answer")),
                "--as",
                applicant,
                "--text",
                "4 4 3 4 4 4 4 3 4",
            ]
        )
        == 0
    )
    assert main([*cli, "run", "--once"]) == 0
    assert state() == "closed"


def test_a_closed_pipe_gives_no_traceback(tmp_path) -> None:
    import subprocess
    import sys

    from tests.conftest import ROOT

    config = write_config(
        tmp_path,
        database_url=f"sqlite:///{tmp_path / 'm.db'}",
        mailbox_url=f"maildir://{tmp_path / 'md'}",
        smtp_url=f"file://{tmp_path / 'out'}",
    )
    import mailbox

    from tests.conftest import request_mail

    md = mailbox.Maildir(tmp_path / "md", create=True)
    for i in range(300):
        md.add(request_mail(sender=f"p{i}@example.go.id", subject=f"Soal nomor {i}"))
    assert main(["--config", str(config), "run", "--once"]) in (0, 75)
    # `mailbot tickets list --json | head -c 1`: far more than a pipe holds; the reader goes at once.
    proc = subprocess.Popen(
        [sys.executable, "-m", "mailbot", "--config", str(config), "tickets", "list", "--json"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        bufsize=0,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.read(1)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.wait(timeout=60)
    assert "Traceback" not in err


def test_json_logs_stay_masked(tmp_path) -> None:
    import subprocess
    import sys

    from tests.conftest import ROOT

    config = write_config(
        tmp_path,
        database_url=f"sqlite:///{tmp_path / 'm.db'}",
        mailbox_url=f"maildir://{tmp_path / 'md'}",
        smtp_url=f"file://{tmp_path / 'out'}",
    )
    # The daemon's logging set-up as `--log-format json` makes it, and one record with a NIK.
    probe = (
        "import logging\n"
        "from mailbot.cli import build_parser\nfrom mailbot.cli.common import _setup_logging\n"
        "args = build_parser().parse_args(['--log-format', 'json', 'status'])\n"
        "_setup_logging(args.verbose, args.log_format)\n"
        "logging.getLogger('mailbot.test').warning('NIK %s masuk', '3273014101900001')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe, str(config)], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    [line] = [x for x in out.stderr.splitlines() if x.startswith("{")]
    entry = json.loads(line)
    assert entry["level"] == "WARNING" and entry["logger"] == "mailbot.test"
    assert entry["message"] == "NIK 3273********0001 masuk"
    assert "3273014101900001" not in out.stderr


def test_version_is_printed_without_a_command() -> None:
    import subprocess
    import sys
    from importlib.metadata import version

    out = subprocess.run(
        [sys.executable, "-m", "mailbot", "--version"], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"mailbot {version('mailbot')}"
