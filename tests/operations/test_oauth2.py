"""OAuth2 (XOAUTH2) logins against real servers: a Dovecot whose oauth2 passdb asks a local
token-introspection endpoint, an aiosmtpd that takes only XOAUTH2, and the three token sources
(a command; msal and google-auth against local token endpoints)."""

from __future__ import annotations

import asyncio
import json
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
from mailbot.config import load_config
from mailbot.core.workflow import OutboundStatus
from mailbot.shell import models
from mailbot.shell.mailbox import MailboxError
from mailbot.shell.mailbox.imap import ImapSource
from mailbot.shell.smtp import LoginRefused, SmtpSender
from tests.conftest import ROOT, Clock, request_mail, send_all, write_config
from tests.operations.oauth2_servers import Command, TokenServer, start_smtp_xoauth2
from tests.servers import Dovecot, ImapAccount, SmtpServer, start_daemon, wait_until

APPLICANT = "rina.kartika@kemendesa.example.go.id"


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


# --- the providers, against local token endpoints ------------------------------------------------


def _provider_config(tmp_path: Path, account: ImapAccount, smtp: SmtpServer, table: str) -> Path:
    """mailbox and smtp log in as the account with the same provider table."""
    return write_config(
        tmp_path,
        database_url=f"sqlite:///{tmp_path / 'm.db'}",
        mailbox_extra=f'auth = "xoauth2"\n[mailbox.oauth2]\n{table}',
        smtp_extra=f'auth = "xoauth2"\n[smtp.oauth2]\n{table}',
        **_urls(account, smtp),
    )


def _login_and_send(path: Path) -> None:
    config = load_config(path)
    source = ImapSource(config.mailbox, config.settings.mailbox)
    source.connect()
    source.close()
    asyncio.run(_open_and_close(SmtpSender(config.smtp, config.settings.smtp)))


@pytest.fixture
def local_https(token_server: TokenServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """requests (under msal) trusts the token server's certificate, as an office behind a
    TLS-inspecting proxy trusts its CA, and goes to loopback directly."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(token_server.ca_file))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")


@pytest.mark.imap
@pytest.mark.usefixtures("local_https")
def test_microsoft_client_credentials_through_msal(
    account, xsmtp, token_server, tmp_path, monkeypatch
) -> None:
    tenant, client, secret = secrets.token_hex(4), secrets.token_hex(8), secrets.token_urlsafe(16)
    token_server.clients[(tenant, client)] = (secret, account.user)
    # The variables' names are the office's choice.
    monkeypatch.setenv("M365_TENANT", tenant)
    monkeypatch.setenv("M365_CLIENT", client)
    monkeypatch.setenv("M365_SECRET", secret)
    table = (
        f'provider = "microsoft"\nauthority = "{token_server.microsoft_authority}"\n'
        'tenant_id_env = "M365_TENANT"\nclient_id_env = "M365_CLIENT"\nclient_secret_env = "M365_SECRET"\n'
    )
    path = _provider_config(tmp_path, account, xsmtp, table)

    _login_and_send(path)

    grants = [g for g in token_server.grants if g.get("client_id") == client]
    assert len(grants) == 1  # one token for IMAP and SMTP
    assert grants[0]["grant_type"] == "client_credentials"
    assert grants[0]["scope"].split() == ["https://outlook.office365.com/.default"]
    assert grants[0]["path"] == f"/{tenant}/oauth2/v2.0/token"
    assert xsmtp.handler.logins == [account.user]

    monkeypatch.setenv("M365_SECRET", "expired-secret")
    config = load_config(path)
    with pytest.raises(MailboxError) as caught:
        ImapSource(config.mailbox, config.settings.mailbox).connect()
    assert str(caught.value).startswith(
        f"IMAP 127.0.0.1:{account.port}: no OAuth2 token from provider microsoft "
        f"(tenant {tenant}, client {client}): {token_server.microsoft_authority}/{tenant}: "
        "invalid_client: AADSTS7000215: Invalid client secret provided."
    )
    assert "expired-secret" not in str(caught.value) and "expired-secret" not in repr(config.mailbox)


def _service_account_key(token_server: TokenServer, directory: Path, users: set[str]) -> Path:
    """A service account's JSON key as the Google Cloud console writes it, its token_uri the
    local server's; the server knows its public key and whom it may act for (domain-wide
    delegation)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    email = f"mailbot-{secrets.token_hex(3)}@kantor-123.iam.gserviceaccount.com"
    token_server.service_accounts[email] = (key.public_key(), users)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    path = directory / "service-account.json"
    path.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": "kantor-123",
                "private_key_id": secrets.token_hex(20),
                "private_key": pem,
                "client_email": email,
                "client_id": "1" + "0" * 20,
                "auth_uri": "https://accounts.google.com/o/oauth2/auth",
                "token_uri": token_server.google_token_uri,
            }
        )
    )
    path.chmod(0o600)
    return path


@pytest.mark.imap
def test_google_service_account_with_domain_wide_delegation(
    oauth2_dovecot, account, xsmtp, token_server, tmp_path
) -> None:
    key_file = _service_account_key(token_server, tmp_path, {account.user})
    table = 'provider = "google"\nkey_file = "service-account.json"\n'  # relative to the config
    path = _provider_config(tmp_path, account, xsmtp, table)

    _login_and_send(path)

    assert xsmtp.handler.logins == [account.user]
    grants = [g for g in token_server.grants if g["path"] == "/google/token"]
    assert grants[-1]["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"

    # A mailbox the service account was not delegated for: Google's refusal, named.
    other = oauth2_dovecot.new_account()
    (tmp_path / "other").mkdir()
    absolute = f'provider = "google"\nkey_file = "{key_file}"\n'
    config = load_config(_provider_config(tmp_path / "other", other, xsmtp, absolute))
    with pytest.raises(MailboxError) as caught:
        ImapSource(config.mailbox, config.settings.mailbox).connect()
    assert str(caught.value).startswith(
        f"IMAP 127.0.0.1:{other.port}: no OAuth2 token from provider google "
        f"(service account key {key_file}, as {other.user}): unauthorized_client: Client is unauthorized"
    )
