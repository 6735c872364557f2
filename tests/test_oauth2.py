"""OAuth2 (XOAUTH2) logins against real servers: a Dovecot whose oauth2 passdb asks a local
token-introspection endpoint, an aiosmtpd that takes only XOAUTH2, and the three token sources
(a command; msal and google-auth against local token endpoints)."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from sqlalchemy import select

from mailbot.app import create_app
from mailbot.config import OAuth2Login, load_config
from mailbot.core.workflow import OutboundStatus
from mailbot.settings import OAuth2Settings
from mailbot.shell import models
from mailbot.shell.mailbox import MailboxError
from mailbot.shell.mailbox.imap import ImapSource
from mailbot.shell.oauth2 import TokenError, make_source
from mailbot.shell.outbox import LoginRefused, SmtpSender
from tests.conftest import ROOT, Clock, request_mail, send_all, write_config
from tests.oauth2_servers import TokenServer, start_smtp_xoauth2
from tests.servers import Dovecot, ImapAccount, SmtpServer, start_daemon, wait_until

APPLICANT = "rina.kartika@kemendesa.example.go.id"

# Prints the token in its first argument's file (or fails with its text when that starts with
# FAIL); every run adds the user it was asked for ($MAILBOT_OAUTH2_USER) to the second file.
TOKEN_COMMAND = """\
import os, pathlib, sys
token_file, calls = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
with calls.open("a") as out:
    out.write(os.environ.get("MAILBOT_OAUTH2_USER", "?") + "\\n")
text = token_file.read_text()
if text.startswith("FAIL"):
    sys.stderr.write(text)
    sys.exit(3)
print(text)
"""


@pytest.fixture(scope="module")
def token_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TokenServer]:
    server = TokenServer(tmp_path_factory.mktemp("oauth2"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def oauth2_dovecot(token_server: TokenServer) -> Iterator[Dovecot]:
    if not (shutil.which("dovecot") or Path("/usr/sbin/dovecot").exists()):
        if os.environ.get("CI"):
            pytest.fail("dovecot is not installed; the test command installs it (./test.sh)")
        pytest.skip("dovecot is not installed (./test.sh installs it)")
    root = Path(f"/tmp/mailbot-dovecot-{secrets.token_hex(4)}")  # short: socket path limits
    root.mkdir()
    server = Dovecot(root, introspection_url=token_server.introspection_url)
    server.start()
    yield server
    server.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def account(oauth2_dovecot: Dovecot) -> ImapAccount:
    return oauth2_dovecot.new_account()


@pytest.fixture
def xsmtp(token_server: TokenServer) -> Iterator[SmtpServer]:
    server = start_smtp_xoauth2(token_server)
    yield server
    server.controller.stop()


class Command:
    """The `command` token source of a test: a token file it prints, a file counting its runs."""

    def __init__(self, directory: Path, name: str = "token") -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.script = directory / "print_token.py"
        self.script.write_text(TOKEN_COMMAND)
        self.token_file = directory / f"{name}.txt"
        self.calls_file = directory / f"{name}.calls"
        self.token_file.write_text("FAIL no token yet\n")

    @property
    def line(self) -> str:
        return f'"{sys.executable}" "{self.script}" "{self.token_file}" "{self.calls_file}"'

    def prints(self, token: str) -> None:
        self.token_file.write_text(token + "\n")

    def calls(self) -> list[str]:
        return self.calls_file.read_text().split() if self.calls_file.exists() else []

    def toml(self, section: str, extra: str = "") -> str:
        return f"auth = \"xoauth2\"\n[{section}.oauth2]\ncommand = '{self.line}'\n{extra}"


def _urls(account: ImapAccount, smtp: SmtpServer) -> dict[str, str]:
    user = quote(account.user)
    return {
        "mailbox_url": f"imap://{user}@127.0.0.1:{account.port}/INBOX",
        "smtp_url": f"smtp://{user}@127.0.0.1:{smtp.port}",
    }


def _run(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mailbot", "--config", str(config), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


# --- a good token reads and sends; a wrong one fails cleanly ---------------------------------


@pytest.mark.imap
def test_a_good_token_reads_and_sends_through_mailbots_own_source_and_sender(
    account, xsmtp, token_server, make_app, sqlite_url, tmp_path
) -> None:
    command = Command(tmp_path / "cmd")
    token = token_server.grant(account.user)
    command.prints(token)
    app = make_app(
        database_url=sqlite_url,
        mailbox_extra=command.toml("mailbox"),
        smtp_extra=command.toml("smtp"),
        **_urls(account, xsmtp),
    )
    account.deliver(request_mail())

    stats = app.run_intake_once()
    result = send_all(app)

    assert stats.processed == 1 and result.sent >= 1 and not result.errors
    assert len(xsmtp.handler.to(APPLICANT)) == 1  # the acknowledgment, sent with the token
    assert set(xsmtp.handler.logins) == {account.user}
    assert account.count("INBOX") == 0 and account.count("Processed") == 1
    assert token in token_server.introspected  # Dovecot asked the introspection endpoint
    # IMAP and both SMTP connections share one token of one source: the command ran once, and
    # learnt whose token it was asked for.
    assert command.calls() == [account.user]


@pytest.mark.imap
def test_a_refused_imap_token_is_a_named_error_exit_75_and_the_mail_stays(
    account, xsmtp, token_server, sqlite_url, tmp_path
) -> None:
    command = Command(tmp_path / "cmd")
    command.prints("tok-revoked-long-ago")
    config = write_config(
        tmp_path,
        database_url=sqlite_url,
        mailbox_extra=command.toml("mailbox"),
        daily_digest=False,
        **_urls(account, xsmtp),
    )
    account.deliver(request_mail())

    out = _run(config, "run", "--once")

    assert out.returncode == 75, out.stderr
    assert (
        f"mailbox unavailable: IMAP 127.0.0.1:{account.port} refused the OAuth2 token from "
        f"command {sys.executable} for {account.user}: [AUTHENTICATIONFAILED]"
    ) in out.stderr
    assert "Traceback" not in out.stderr
    assert account.count("INBOX") == 1  # nothing read, nothing lost
    status = _run(config, "status", "--failing-after", "0")
    assert status.returncode == 1 and "FAILING: intake" in status.stdout


@pytest.mark.imap
def test_a_refused_smtp_token_keeps_the_mail_queued_until_a_good_one(
    account, xsmtp, token_server, sqlite_url, tmp_path
) -> None:
    imap_command, smtp_command = Command(tmp_path / "imap"), Command(tmp_path / "smtp")
    imap_command.prints(token_server.grant(account.user))
    smtp_command.prints("tok-wrong")
    config = write_config(
        tmp_path,
        database_url=sqlite_url,
        mailbox_extra=imap_command.toml("mailbox"),
        smtp_extra=smtp_command.toml("smtp"),
        daily_digest=False,
        **_urls(account, xsmtp),
    )
    account.deliver(request_mail())

    out = _run(config, "run", "--once")

    assert out.returncode == 75, out.stderr
    # (The log masks digit runs, those of the test account's address too: matched around it.)
    assert re.search(
        f"SMTP 127.0.0.1:{xsmtp.port} refused the OAuth2 token from command {re.escape(sys.executable)} "
        r"for \S+: 535 5.7.8 Username and Password not accepted",
        out.stderr,
    )
    assert xsmtp.handler.received == [] and account.count("Processed") == 1

    # The grant is fixed; past the retry time the queued mail goes out, none of it dead.
    smtp_command.prints(token_server.grant(account.user))
    app = create_app(load_config(config), clock=Clock(datetime.now(UTC) + timedelta(minutes=5)))
    try:
        with app.sessions() as session:
            statuses = set(session.scalars(select(models.OutboundMessage.status)))
        assert statuses == {OutboundStatus.PENDING}
        result = send_all(app)
    finally:
        app.close()
    assert result.dead == 0 and not result.errors
    assert len(xsmtp.handler.to(APPLICANT)) == 1


@pytest.mark.imap
def test_a_refused_token_is_forgotten_and_the_next_connect_fetches_anew(
    account, xsmtp, token_server, tmp_path, sqlite_url
) -> None:
    command = Command(tmp_path / "cmd")
    command.prints("tok-wrong")
    path = write_config(
        tmp_path,
        database_url=sqlite_url,
        mailbox_extra=command.toml("mailbox"),
        smtp_extra=command.toml("smtp"),
        **_urls(account, xsmtp),
    )
    config = load_config(path)
    source = ImapSource(config.mailbox, config.settings.mailbox)
    with pytest.raises(MailboxError, match="refused the OAuth2 token") as refused:
        source.connect()
    assert refused.value.transient is False
    sender = SmtpSender(config.smtp, config.settings.smtp)
    with pytest.raises(LoginRefused, match="refused the OAuth2 token"):
        asyncio.run(sender.open())

    command.prints(token_server.grant(account.user))
    source.connect()  # the daemon's reconnect: a new token, not the refused one again
    source.close()
    asyncio.run(_open_and_close(sender))
    assert len(command.calls()) == 3  # the IMAP refusal, the SMTP refusal, the good one (shared)


async def _open_and_close(sender: SmtpSender) -> None:
    await sender.open()
    await sender.close()


@pytest.mark.imap
def test_the_daemon_reconnects_with_backoff_and_reads_once_the_token_is_good(
    account, xsmtp, token_server, sqlite_url, tmp_path
) -> None:
    command = Command(tmp_path / "cmd")
    command.prints("tok-not-yet-consented")
    config = write_config(
        tmp_path,
        database_url=sqlite_url,
        mailbox_extra=command.toml("mailbox"),
        smtp_extra=command.toml("smtp"),
        daily_digest=False,
        **_urls(account, xsmtp),
    )
    account.deliver(request_mail())
    log = tmp_path / "daemon.log"
    proc = start_daemon(config, log)
    try:
        wait_until(lambda: log.read_text().count("refused the OAuth2 token") >= 2)
        assert account.count("INBOX") == 1
        command.prints(token_server.grant(account.user))  # the admin fixes the grant
        wait_until(lambda: len(xsmtp.handler.to(APPLICANT)) == 1, timeout=60)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    text = log.read_text()
    assert "reconnecting in" in text and "Traceback" not in text
    assert account.count("INBOX") == 0 and account.count("Processed") == 1


@pytest.mark.imap
def test_a_server_without_xoauth2_is_named(imap, smtp, tmp_path, sqlite_url) -> None:
    command = Command(tmp_path / "cmd")
    command.prints("tok-unused")
    path = write_config(
        tmp_path,
        database_url=sqlite_url,
        mailbox_url=f"imap://{quote(imap.user)}@127.0.0.1:{imap.port}/INBOX",
        smtp_url=f"smtp://{quote(imap.user)}@127.0.0.1:{smtp.port}",
        mailbox_extra=command.toml("mailbox"),
        smtp_extra=command.toml("smtp"),
    )
    config = load_config(path)
    with pytest.raises(MailboxError, match=r"does not offer XOAUTH2 \(it offers AUTH=PLAIN AUTH=LOGIN\)"):
        ImapSource(config.mailbox, config.settings.mailbox).connect()
    with pytest.raises(LoginRefused, match="does not offer AUTH XOAUTH2"):
        asyncio.run(SmtpSender(config.smtp, config.settings.smtp).open())
    assert command.calls() == []  # no token fetched for a server that cannot take it


# --- the cache ------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _command_login(command: Command, **settings: float) -> OAuth2Login:
    return OAuth2Login(
        user="konsultasi@example.go.id", settings=OAuth2Settings(command=command.line, **settings)
    )


def test_a_token_near_expiry_is_replaced_before_it_expires(tmp_path) -> None:
    command = Command(tmp_path)
    clock = FakeClock()
    source = make_source(_command_login(command, token_lifetime=600, refresh_margin=300), clock)
    command.prints("tok-1")
    assert source.token() == "tok-1"
    command.prints("tok-2")
    clock.now += 299
    assert source.token() == "tok-1"  # cached: more than the margin left
    clock.now += 1
    assert source.token() == "tok-2"  # 300 s left = the margin: replaced before it expires
    assert source.token() == "tok-2"
    assert len(command.calls()) == 2
    source.forget("tok-1")  # an old token: nothing happens
    assert source.token() == "tok-2" and len(command.calls()) == 2
    source.forget("tok-2")  # the current one refused by a server
    assert source.token() == "tok-2" and len(command.calls()) == 3


@pytest.mark.parametrize(
    ("token_file", "settings", "message"),
    [
        (
            "FAIL consent missing for this app\n",
            {},
            "exited with status 3: FAIL consent missing for this app",
        ),
        ("\n\n", {}, "printed no token"),
        ("Bearer tok\n", {}, "printed more than a token on its first line"),
    ],
)
def test_a_failing_command_is_reported_with_its_stderr(tmp_path, token_file, settings, message) -> None:
    command = Command(tmp_path)
    command.token_file.write_text(token_file)
    with pytest.raises(TokenError, match=f"^command {sys.executable}: {message}"):
        make_source(_command_login(command, **settings)).token()


def test_a_command_that_hangs_or_is_missing_is_reported(tmp_path) -> None:
    hangs = OAuth2Settings(
        command=f'"{sys.executable}" -c "import time; time.sleep(30)"', command_timeout=0.5
    )
    with pytest.raises(TokenError, match=r"did not finish within 0.5s"):
        make_source(OAuth2Login(user="u@example.go.id", settings=hangs)).token()
    missing = OAuth2Settings(command=str(tmp_path / "no-such-program"))
    with pytest.raises(TokenError, match="cannot run it: No such file or directory"):
        make_source(OAuth2Login(user="u@example.go.id", settings=missing)).token()
