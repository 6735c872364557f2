"""Configuration: every problem reported at once with its key; URLs from the environment win."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mailbot.config import load_config, parse_connection_url
from mailbot.core.durations import parse_duration
from mailbot.settings import ConfigError
from tests.conftest import PROFILES, ROOT, write_config
from tests.servers import ImapAccount, SmtpServer, free_port, start_smtp


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mailbot", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        env=env,
    )


def test_example_configs_are_valid(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MAILBOT_SECRET", "x" * 32)
    config = load_config(ROOT / "config" / "mailbot.toml", create_secret=False)
    assert config.profile.id == "sop-002"
    assert config.mailbox.scheme == "maildir" and config.smtp.scheme == "file"
    assert config.database_url == f"sqlite:///{ROOT / 'var' / 'mailbot.db'}"
    prod = load_config(ROOT / "config" / "example-production.toml", create_secret=False)
    assert prod.mailbox.scheme == "imaps" and prod.smtp.scheme == "smtp+starttls"


def test_every_problem_is_reported_with_its_key(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(
        f"""
profiles_dir = "{PROFILES}"
colour = "blue"
[service]
address = "not an address"
timezone = "Asia/Atlantis"
profile = "sop-999"
[mailbox]
url = "pop3://mail.example.go.id"
batch_size = 0
[smtp]
url = "smtp://"
[[staff]]
name = "X"
emails = ["x@@example"]
role = "boss"
"""
    )
    with pytest.raises(ConfigError) as err:
        load_config(path)
    keys = {key for key, _ in err.value.problems}
    assert {
        "colour",
        "service.address",
        "service.timezone",
        "mailbox.batch_size",
        "staff.0.emails.0",
        "staff.0.role",
    } <= keys
    assert dict(err.value.problems)["colour"] == "unknown key"


def test_second_pass_problems_name_their_keys(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(
        f"""
profiles_dir = "{PROFILES}"
[service]
profile = "sop-999"
[mailbox]
url = "pop3://mail.example.go.id"
[smtp]
url = "smtp://"
"""
    )
    with pytest.raises(ConfigError) as err:
        load_config(path)
    problems = dict(err.value.problems)
    assert "no profile 'sop-999'" in problems["service.profile"]
    assert "unsupported scheme 'pop3'" in problems["mailbox.url"]
    assert "names no host" in problems["smtp.url"]


def test_environment_urls_override_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_config(
        tmp_path, database_url="sqlite:///x.db", mailbox_url="maildir:///tmp/x", smtp_url="file:///tmp/out"
    )
    monkeypatch.setenv("MAILBOT_DATABASE_URL", "postgresql+psycopg://u:p@db.example:5433/helpdesk")
    monkeypatch.setenv(
        "MAILBOT_MAILBOX_URL", "imap+starttls://kons%40x.go.id:rahasia@mail.x.go.id/INBOX.Konsultasi"
    )
    monkeypatch.setenv("MAILBOT_SMTP_URL", "smtps://relay.x.go.id")
    config = load_config(path)
    assert config.database_url == "postgresql+psycopg://u:p@db.example:5433/helpdesk"
    assert (config.mailbox.scheme, config.mailbox.host, config.mailbox.port) == (
        "imap+starttls",
        "mail.x.go.id",
        143,
    )
    assert (config.mailbox.user, config.mailbox.password, config.mailbox.path) == (
        "kons@x.go.id",
        "rahasia",
        "INBOX.Konsultasi",
    )
    assert (config.smtp.scheme, config.smtp.port) == ("smtps", 465)
    assert "rahasia" not in config.mailbox.redacted()


def test_bad_environment_url_names_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_config(
        tmp_path, database_url="sqlite:///x.db", mailbox_url="maildir:///tmp/x", smtp_url="file:///tmp/out"
    )
    monkeypatch.setenv("MAILBOT_SMTP_URL", "http://relay")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert [k for k, _ in err.value.problems] == ["MAILBOT_SMTP_URL"]


def test_password_from_environment_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_config(
        tmp_path,
        database_url="sqlite:///x.db",
        mailbox_url="imaps://kons@mail.x.go.id/INBOX",
        smtp_url="smtp+starttls://kons@mail.x.go.id",
    )
    monkeypatch.setenv("MAILBOT_IMAP_PASSWORD", "imap-secret")
    monkeypatch.setenv("MAILBOT_SMTP_PASSWORD", "smtp-secret")
    config = load_config(path)
    assert config.mailbox.password == "imap-secret" and config.smtp.password == "smtp-secret"


def test_connection_url_forms() -> None:
    base = Path("/srv/mailbot")
    md = parse_connection_url("maildir://var/mailbox", {"maildir": None}, base)
    assert md.path == "/srv/mailbot/var/mailbox"
    assert parse_connection_url("maildir:///abs/box", {"maildir": None}, base).path == "/abs/box"
    with pytest.raises(ValueError, match="bad port"):
        parse_connection_url("imap://h:99999/INBOX", {"imap": 143}, base)


def test_check_config_reports_unreachable_servers_with_their_keys(tmp_path: Path) -> None:
    dead = free_port()
    path = write_config(
        tmp_path,
        database_url="postgresql+psycopg://nobody@127.0.0.1:1/none",
        mailbox_url=f"imap://u:p@127.0.0.1:{dead}/INBOX",
        smtp_url=f"smtp://127.0.0.1:{dead}",
    )
    out = _run("--config", str(path), "check-config")
    assert out.returncode == 1
    assert "database.url: cannot connect" in out.stderr
    assert "mailbox.url: cannot connect" in out.stderr
    assert "smtp.url: cannot connect" in out.stderr


def test_check_config_ok_on_embedded_default(tmp_path: Path) -> None:
    path = write_config(
        tmp_path,
        database_url=f"sqlite:///{tmp_path / 'db.sqlite'}",
        mailbox_url=f"maildir://{tmp_path / 'md'}",
        smtp_url=f"file://{tmp_path / 'out'}",
    )
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "secret.key").write_text("s" * 32)
    out = _run("--config", str(path), "check-config")
    assert out.returncode == 0, out.stderr
    assert "configuration OK" in out.stdout


def test_check_config_lists_file_problems(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[service]\naddress = "nope"\nfoo = 1\n')
    out = _run("--config", str(path), "check-config")
    assert out.returncode == 1
    assert "service.address" in out.stderr and "service.foo: unknown key" in out.stderr


def _tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


def test_check_config_creates_nothing_and_notes_what_the_first_run_creates(tmp_path: Path) -> None:
    """The embedded default before its first run: no secret, database, Maildir nor outbox yet.
    Those are notes (exit 0), and the data folder stays as it was: nothing is created."""
    config = tmp_path / "config" / "mailbot.toml"
    config.parent.mkdir()
    config.write_text((ROOT / "config" / "mailbot.toml").read_text())
    data = tmp_path / "var"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILBOT_")}
    out = _run("--config", str(config), "check-config", env=env)
    assert out.returncode == 0, out.stderr
    assert "configuration OK" in out.stdout
    for note in (
        "NOTE: security.secret_file: no secret in $MAILBOT_SECRET, and the secret file "
        f"{data / 'secret.key'} does not exist yet; the first run creates it",
        f"NOTE: database.url: the SQLite database {data / 'mailbot.db'} does not exist yet",
        f"NOTE: mailbox.url: the Maildir {data / 'mailbox'} does not exist yet",
        f"NOTE: smtp.url: the outbox folder {data / 'outbox'} does not exist yet",
    ):
        assert note in out.stdout, out.stdout
    assert not data.exists()
    # A data folder that exists stays untouched too.
    data.mkdir()
    assert _run("--config", str(config), "check-config", env=env).returncode == 0
    assert _tree(data) == []
    # After a first run there is nothing left to note, and still nothing is added.
    assert _run("--config", str(config), "run", "--once", env=env).returncode == 0
    before = _tree(data)
    assert {"mailbot.db", "secret.key", "mailbox", "outbox"} <= set(before)
    again = _run("--config", str(config), "check-config", env=env)
    assert again.returncode == 0 and "NOTE" not in again.stdout, again.stdout
    assert _tree(data) == before


def test_check_config_lists_every_layer_at_once(tmp_path: Path) -> None:
    """Unknown keys, bad values, a missing profiles folder and servers that do not answer, in one
    run: the schema's problems do not keep the profiles and the servers from being tried."""
    closed = free_port()
    path = tmp_path / "mailbot.toml"
    path.write_text(
        f"""
profiles_dir = "{tmp_path / "no-such-profiles"}"
[service]
address = "nope"
colour = "blue"
data_dir = "{tmp_path / "var"}"
[database]
url = "sqlite:///{tmp_path / "var" / "m.db"}"
[mailbox]
url = "imap://u:p@127.0.0.1:{closed}/INBOX"
poll_interval = -3
[smtp]
url = "smtp://127.0.0.1:{closed}"
"""
    )
    out = _run("--config", str(path), "check-config")
    assert out.returncode == 1
    problems = out.stderr.splitlines()
    assert problems[0] == "configuration has 6 problem(s):"
    assert problems[1:] == [
        "  service.address: Value error, not an email address: 'nope'",
        "  service.colour: unknown key",
        "  mailbox.poll_interval: Input should be greater than 0",
        f"  profiles_dir: {tmp_path / 'no-such-profiles'} is not a folder",
        f"  mailbox.url: cannot connect to 127.0.0.1:{closed}: connection refused",
        f"  smtp.url: cannot connect to 127.0.0.1:{closed}: connection refused",
    ]
    assert not (tmp_path / "var").exists()


def _smtp_with_login(user: str, password: str) -> SmtpServer:
    """aiosmtpd offering AUTH (without TLS, on loopback) for one user: 535 for anything else."""
    from aiosmtpd.smtp import AuthResult, LoginPassword

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
            user.encode(),
            password.encode(),
        )
        return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535 itself

    return start_smtp(authenticator=authenticator, auth_require_tls=False)


@pytest.mark.imap
def test_check_config_tells_a_refused_login_from_a_server_not_reached(dovecot, imap, tmp_path: Path) -> None:
    closed = free_port()
    wrong = ImapAccount(imap.host, imap.port, imap.user, "wrong-password")
    smtp = _smtp_with_login("mailbot", "rahasia")
    try:
        cases = {
            "imap-wrong-password": (wrong.url(), f"smtp://mailbot:salah@127.0.0.1:{smtp.port}"),
            "closed-ports": (f"imap://u:p@127.0.0.1:{closed}/INBOX", f"smtp://127.0.0.1:{closed}"),
            "tls-not-trusted": (imap.url(scheme="imaps"), f"smtp+starttls://127.0.0.1:{smtp.port}"),
        }
        out = {}
        for name, (mailbox_url, smtp_url) in cases.items():
            folder = tmp_path / name
            folder.mkdir()
            config = write_config(
                folder,
                database_url=f"sqlite:///{folder / 'm.db'}",
                mailbox_url=mailbox_url,
                smtp_url=smtp_url,
            )
            out[name] = _run("--config", str(config), "check-config")
            assert out[name].returncode == 1
    finally:
        smtp.controller.stop()
    refused = out["imap-wrong-password"].stderr
    assert (
        f"mailbox.url: login refused for {imap.user} at 127.0.0.1:{imap.port}: "
        "[AUTHENTICATIONFAILED] Authentication failed." in refused
    ), refused
    assert (
        f"smtp.url: login refused for mailbot at 127.0.0.1:{smtp.port}: "
        "535 5.7.8 Authentication credentials invalid" in refused
    ), refused
    assert "cannot connect" not in refused
    closed_ports = out["closed-ports"].stderr
    assert f"mailbox.url: cannot connect to 127.0.0.1:{closed}: connection refused" in closed_ports
    assert f"smtp.url: cannot connect to 127.0.0.1:{closed}: connection refused" in closed_ports
    assert "login refused" not in closed_ports
    tls = out["tls-not-trusted"].stderr
    assert f"mailbox.url: cannot connect to 127.0.0.1:{imap.tls_port}: TLS certificate not trusted" in tls, (
        tls
    )
    assert f"smtp.url: cannot connect to 127.0.0.1:{smtp.port}" in tls, tls  # no STARTTLS offered


@pytest.mark.imap
def test_check_config_passes_a_good_account_and_creates_no_folder(dovecot, imap, tmp_path: Path) -> None:
    smtp = _smtp_with_login("mailbot", "rahasia")
    try:
        config = write_config(
            tmp_path,
            database_url=f"sqlite:///{tmp_path / 'var' / 'm.db'}",
            mailbox_url=imap.url(),
            smtp_url=f"smtp://mailbot:rahasia@127.0.0.1:{smtp.port}",
        )
        out = _run("--config", str(config), "check-config")
    finally:
        smtp.controller.stop()
    assert out.returncode == 0, out.stderr
    assert "configuration OK" in out.stdout
    assert f"NOTE: mailbox.url: no folder 'Processed' at 127.0.0.1:{imap.port} yet" in out.stdout
    assert f"NOTE: mailbox.url: no folder 'Quarantine' at 127.0.0.1:{imap.port} yet" in out.stdout
    client = imap.client()
    try:
        assert not client.folder_exists("Processed") and not client.folder_exists("Quarantine")
    finally:
        client.logout()
    assert not (tmp_path / "var").exists()


@pytest.mark.parametrize(
    ("text", "amount", "unit", "working"),
    [
        # Minutes and hours are office minutes and hours (issue #20); "x 24 jam" is the wall clock.
        ("10 menit", 10, "minutes", True),
        ("1 x 24 jam", 24, "hours", False),
        ("2 x 24 jam", 48, "hours", False),
        ("1 hari kerja", 1, "days", True),
        ("3 hari kerja", 3, "days", True),
        ("3 hari", 3, "days", True),
        ("setengah hari", 0.5, "days", True),
        ("2 jam", 2, "hours", True),
        ("2 jam kerja", 2, "hours", True),
        ("3 working days", 3, "days", True),
        ("30m", 30, "minutes", True),
        # As the SOPs write them: any case, halves, ranges (the upper bound).
        ("1 Hari Kerja", 1, "days", True),
        ("1 HARI KERJA", 1, "days", True),
        ("1/2 hari", 0.5, "days", True),
        ("½ hari", 0.5, "days", True),
        ("1 – 2 jam", 2, "hours", True),
        ("1-2 jam", 2, "hours", True),
        ("1 x 24 Jam", 24, "hours", False),
    ],
)
def test_step_durations(text: str, amount: float, unit: str, working: bool) -> None:
    d = parse_duration(text)
    assert (d.amount, d.unit, d.working) == (amount, unit, working)


@pytest.mark.parametrize("text", ["", "segera", "3 minggu", "0 menit", "x jam", "2 – 1 jam", "1/0 hari"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def _profile_with(tmp_path: Path, steps: str) -> Path:
    folder = tmp_path / "profiles"
    folder.mkdir()
    (folder / "p.toml").write_text(f'id = "sop-x"\ntitle = "X"\n{steps}')
    return folder


def test_an_unreadable_duration_names_the_step_and_the_profile(tmp_path: Path) -> None:
    from mailbot.config import load_profiles

    folder = _profile_with(
        tmp_path,
        '[[steps]]\nid = "assign"\ntitle = "A"\nactor = "head"\nduration = "1 Hari Kerja"\n'
        '[[steps]]\nid = "review"\ntitle = "B"\nactor = "consultant"\nduration = "segera"\n',
    )
    profiles, problems = load_profiles(folder)
    assert not profiles and len(problems) == 1
    key, message = problems[0]
    assert key == "p.toml: steps.1.duration"
    assert "step 'review' of profile 'sop-x'" in message and "segera" in message


def test_every_shipped_sop_time_reads_as_the_sop_writes_it() -> None:
    from mailbot.config import load_profiles

    profiles, problems = load_profiles(PROFILES)
    assert not problems
    review = {p: {s.id: s.deadline for s in prof.steps} for p, prof in profiles.items()}
    assert review["sop-004"]["review"].text == "1 – 2 jam" and review["sop-004"]["review"].amount == 2
    assert review["sop-001"]["archive"].amount == 0.5 and review["sop-001"]["archive"].working
    assert not review["sop-000"]["review"].working  # 1 x 24 jam
    assert all(
        d.working for p, steps in review.items() for s, d in steps.items() if (p, s) != ("sop-000", "review")
    )


def test_a_step_can_run_on_the_wall_clock() -> None:
    from mailbot.settings import Step

    step = Step(id="x", title="X", actor="head", duration="2 jam", clock="wall")
    assert not step.deadline.working and step.deadline.wall_clock().total_seconds() == 7200


def test_office_hours_and_dated_periods(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from datetime import date, datetime, time
    from zoneinfo import ZoneInfo

    from mailbot.shell.holiday_cache import work_calendar

    monkeypatch.setenv("MAILBOT_SECRET", "x" * 32)
    path = write_config(
        tmp_path,
        database_url="sqlite:///:memory:",
        mailbox_url=f"maildir://{tmp_path / 'md'}",
        smtp_url=f"file://{tmp_path / 'out'}",
        extra="""
[office_hours]
days = ["senin", "selasa", "rabu", "kamis", "jumat", "sabtu"]
hours = ["08:00", "16:00"]
breaks = [["12:00", "13:00"]]
friday_hours = ["08:00", "16:30"]
friday_breaks = [["11:30", "13:00"]]

[[office_hours.periods]]
name = "Test period"
source = "a circular"
first_day = 2027-02-08
last_day = 2027-02-12
hours = ["09:00", "14:00"]
""",
    )
    config = load_config(path, create_secret=False)
    cal = work_calendar(config)
    wib = ZoneInfo("Asia/Jakarta")
    assert cal.hours_on(date(2026, 11, 16))[0] == ((time(8), time(12)), (time(13), time(16)))
    assert cal.is_working_day(date(2026, 11, 21))  # this office opens on Saturdays
    assert not cal.is_open(datetime(2026, 11, 16, 7, 45, tzinfo=wib))
    assert not cal.is_open(datetime(2026, 11, 20, 12, 30, tzinfo=wib))  # Friday's longer break
    assert cal.is_open(datetime(2027, 2, 9, 13, 30, tzinfo=wib))  # no break in the period
    assert not cal.is_open(datetime(2027, 2, 9, 14, 30, tzinfo=wib))
    # The office's own hours without Friday hours: Friday is like the other days.
    path.write_text(
        path.read_text()
        .replace('friday_hours = ["08:00", "16:30"]\n', "")
        .replace('friday_breaks = [["11:30", "13:00"]]\n', "")
    )
    cal = work_calendar(load_config(path, create_secret=False))
    assert cal.is_open(datetime(2026, 11, 20, 11, 45, tzinfo=wib))


@pytest.mark.parametrize(
    ("table", "needle"),
    [
        ('hours = ["16:00", "08:00"]', "the end must come after the start"),
        ('breaks = [["07:00", "09:00"]]', "must lie inside the hours"),
        ('days = ["someday"]', "office_hours.days.0"),
        (
            '[[office_hours.periods]]\nname = "a"\nfirst_day = 2027-02-08\nlast_day = 2027-02-10\n'
            'hours = ["08:00", "15:00"]\n[[office_hours.periods]]\nname = "b"\n'
            'first_day = 2027-02-10\nlast_day = 2027-02-12\nhours = ["08:00", "15:00"]',
            "overlap",
        ),
    ],
)
def test_bad_office_hours(tmp_path: Path, table: str, needle: str) -> None:
    path = write_config(
        tmp_path,
        database_url="sqlite:///:memory:",
        mailbox_url=f"maildir://{tmp_path / 'md'}",
        smtp_url=f"file://{tmp_path / 'out'}",
        extra=f"[office_hours]\n{table}\n",
    )
    with pytest.raises(ConfigError) as err:
        load_config(path, create_secret=False)
    assert needle in str(err.value)


def test_an_empty_or_short_secret_is_refused_with_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An empty secret file (a crash while it was written, a hand edit) signed every token with
    nothing and every staff command then failed without a word."""
    monkeypatch.delenv("MAILBOT_SECRET", raising=False)
    path = write_config(
        tmp_path,
        database_url=f"sqlite:///{tmp_path / 'db.sqlite'}",
        mailbox_url=f"maildir://{tmp_path / 'md'}",
        smtp_url=f"file://{tmp_path / 'out'}",
    )
    secret = tmp_path / "var" / "secret.key"
    secret.parent.mkdir(parents=True)
    secret.write_text("\n")
    with pytest.raises(ConfigError) as refused:
        load_config(path)
    [(key, message)] = refused.value.problems
    assert key == "security.secret_file" and "holds 0 bytes" in message and "remove it" in message
    secret.unlink()
    made = load_config(path).secret  # made afresh, whole, 0600
    assert len(made) == 64 and secret.stat().st_mode & 0o777 == 0o600
    assert not [p for p in secret.parent.iterdir() if p.name.startswith(".secret")]
    monkeypatch.setenv("MAILBOT_SECRET", "kurang")
    with pytest.raises(ConfigError) as short:
        load_config(path)
    assert short.value.problems[0][0] == "MAILBOT_SECRET"


def test_a_relative_sqlite_path_under_a_folder_named_with_url_characters(tmp_path: Path) -> None:
    """A data folder named "hash#q?x" or "50%": the database lies in it, not beside it."""
    from sqlalchemy.engine import make_url

    for name in ("hash#q?x", "50% lebih"):
        folder = tmp_path / name
        folder.mkdir()
        path = write_config(
            folder,
            database_url="sqlite:///var/mailbot.db",
            mailbox_url=f"maildir://{folder / 'md'}",
            smtp_url=f"file://{folder / 'out'}",
        )
        config = load_config(path, create_secret=False)
        assert make_url(config.database_url).database == str(folder / "var" / "mailbot.db")


@pytest.mark.parametrize("command", [["tickets", "list"], ["run", "--once"], ["check-config", "--offline"]])
def test_a_folder_given_as_the_configuration_says_so(tmp_path: Path, command: list[str], capsys) -> None:
    """`--config DIR` instead of `--config DIR/mailbot.toml`: the problem and the file meant, not
    '[Errno 21] Is a directory'."""
    from mailbot.cli import main

    (tmp_path / "mailbot.toml").write_text("")
    assert main(["--config", str(tmp_path), *command]) == 1
    err = capsys.readouterr().err
    meant = tmp_path / "mailbot.toml"
    assert f"{tmp_path} is a folder, not the configuration file; did you mean {meant}?" in err
    assert "Errno" not in err
