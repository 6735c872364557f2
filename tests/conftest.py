"""Fixtures: real Dovecot and aiosmtpd on free loopback ports, SQLite and (when
MAILBOT_TEST_DATABASE_URL is set) PostgreSQL databases, a fresh app per test, one movable clock."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from mailbot.app import App, create_app
from mailbot.config import Config, load_config
from mailbot.shell.outbox import DrainResult
from tests.servers import Dovecot, ImapAccount, SmtpServer, start_smtp

ROOT = Path(__file__).resolve().parent.parent
PROFILES = ROOT / "mailbot" / "profiles"
DATA = Path(__file__).resolve().parent / "data"
CORPUS = Path(os.environ.get("MAILBOT_CORPUS", ROOT.parent / "shared" / "corpus"))

pytest_plugins = ["tests.desk"]  # the `desk` fixture

SERVICE_ADDRESS = "konsultasi@bpsdm.example.go.id"
HEAD = "kabag.umum@bpsdm.example.go.id"
CONSULTANT = "budi.santoso@bpsdm.example.go.id"


@dataclass
class Clock:
    """The one time source of a test: moved, never slept on."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


_UMASK = os.umask(0o022)
os.umask(_UMASK)


@pytest.fixture(autouse=True)
def _umask_as_the_suite_began() -> Iterator[None]:
    """A command run in-process tightens the process's umask (cli/common.private_files): the next
    test, and the servers its fixtures start, begin with the umask the suite began with."""
    yield
    os.umask(_UMASK)


@pytest.fixture
def clock() -> Clock:
    # Monday 16 November 2026, 09:00 WIB.
    return Clock(datetime(2026, 11, 16, 2, 0, tzinfo=UTC))


# --- databases ---------------------------------------------------------------------------


def _postgres_admin_url() -> str | None:
    return os.environ.get("MAILBOT_TEST_DATABASE_URL") or None


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'mailbot.db'}"
        return
    admin = _postgres_admin_url()
    if not admin:
        pytest.skip("MAILBOT_TEST_DATABASE_URL not set: no PostgreSQL for this run")
    url = make_url(admin)
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    name = f"mailbot_test_{secrets.token_hex(6)}"
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'mailbot.db'}"


# --- servers -----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def dovecot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dovecot]:
    if not (shutil.which("dovecot") or Path("/usr/sbin/dovecot").exists()):
        if os.environ.get("CI"):
            pytest.fail("dovecot is not installed; the test command installs it (./test.sh)")
        pytest.skip("dovecot is not installed (./test.sh installs it)")
    # A short path under /tmp: Dovecot's socket paths have a length limit.
    root = Path(f"/tmp/mailbot-dovecot-{secrets.token_hex(4)}")
    root.mkdir()
    server = Dovecot(root)
    server.start()
    yield server
    server.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def imap(dovecot: Dovecot) -> ImapAccount:
    return dovecot.new_account()


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = start_smtp()
    yield server
    server.controller.stop()


# --- configuration and app -----------------------------------------------------------------

STAFF_TOML = f"""
[[staff]]
name = "Siti Rahmawati"
aliases = ["Kabag Umum"]
emails = ["{HEAD}"]
role = "head"

[[staff]]
name = "Budi Santoso"
emails = ["{CONSULTANT}"]
role = "consultant"
"""


def write_config(
    tmp_path: Path,
    *,
    database_url: str,
    mailbox_url: str,
    smtp_url: str,
    extra: str = "",
    staff: str = STAFF_TOML,
    mailbox_extra: str = "",
    smtp_extra: str = "",
    profile: str = "sop-002",
    profiles_dir: Path = PROFILES,
    daily_digest: bool = True,
    service_extra: str = "",
) -> Path:
    """A configuration for tests. `daily_digest=False` for a `mailbot run` process on the wall
    clock: after 07:30 WIB on a working day its first sweep mails each head a digest."""
    path = tmp_path / "mailbot.toml"
    path.write_text(
        f"""
profiles_dir = "{profiles_dir}"

[service]
name = "Layanan Konsultasi Online"
office = "BPSDM Kementerian Desa PDTT"
address = "{SERVICE_ADDRESS}"
timezone = "Asia/Jakarta"
profile = "{profile}"
data_dir = "{tmp_path / "var"}"
{service_extra}

[database]
url = "{database_url}"

[mailbox]
url = "{mailbox_url}"
poll_interval = 0.2
idle_timeout = 5
reconnect_max_seconds = 2
{mailbox_extra}

[smtp]
url = "{smtp_url}"
retry_base_seconds = 60
{smtp_extra}

[calendar]
daily_digest = {"true" if daily_digest else "false"}

[security]
secret_file = "{tmp_path / "var" / "secret.key"}"
{extra}
{staff}
"""
    )
    return path


@pytest.fixture
def make_app(tmp_path: Path, clock: Clock) -> Iterator[Callable[..., App]]:
    apps: list[App] = []

    def factory(*, database_url: str, mailbox_url: str, smtp_url: str, **kwargs: Any) -> App:
        path = write_config(
            tmp_path, database_url=database_url, mailbox_url=mailbox_url, smtp_url=smtp_url, **kwargs
        )
        config = load_config(path)
        app = create_app(config, clock=clock)
        apps.append(app)
        return app

    yield factory
    for app in apps:
        app.close()


def load_test_config(path: Path) -> Config:
    return load_config(path)


def send_all(app: App) -> DrainResult:
    return asyncio.run(app.send_pending())


def request_mail(
    *,
    sender: str = "rina.kartika@kemendesa.example.go.id",
    name: str = "Rina Kartika",
    subject: str = "Konsultasi penyusunan Analisis Beban Kerja",
    message_id: str | None = None,
    body: str | None = None,
    headers: str = "",
) -> bytes:
    """A real RFC 5322 request as an applicant's client would send it."""
    message_id = message_id or f"<{secrets.token_hex(8)}@kemendesa.example.go.id>"
    if body is None:
        body = (
            "Yth. Tim Sekretariat,\n\n"
            f"Nama Lengkap : {name}\n"
            "NIP          : 19860926 201505 2 001\n"
            "Unit Kerja   : Biro Perencanaan, Kementerian Desa PDTT\n"
            "Jabatan      : Analis Kebijakan Ahli Muda\n"
            "No. HP       : 0812-3456-7890\n\n"
            "Permasalahan:\n"
            "Bagaimana tata cara penyusunan Analisis Beban Kerja untuk jabatan\n"
            "fungsional yang baru dibentuk?\n\n"
            "Hormat saya,\nRina\n"
        )
    return (
        f"From: {name} <{sender}>\r\n"
        f"To: {SERVICE_ADDRESS}\r\n"
        f"Subject: {subject}\r\n"
        "Date: Mon, 16 Nov 2026 09:12:00 +0700\r\n"
        f"Message-ID: {message_id}\r\n"
        f"{headers}"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n"
        "\r\n" + body.replace("\n", "\r\n")
    ).encode("utf-8")
