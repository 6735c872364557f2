"""OAuth2 settings and token sources without mail servers: the [*.oauth2] keys and their
problems, the secrets from the environment, the cache's renewal before expiry, and the
`command` source's failures (real subprocesses). The logins themselves: tests/operations/test_oauth2.py."""

from __future__ import annotations

import re
import sys

import pytest

from mailbot.config import OAuth2Login, load_config
from mailbot.settings import ConfigError, OAuth2Settings
from mailbot.shell.oauth2 import TokenError, make_source
from tests.conftest import ROOT, write_config
from tests.operations.oauth2_servers import Command

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


def test_microsoft_without_its_secrets_names_the_variables(tmp_path, monkeypatch) -> None:
    for name in ("MAILBOT_OAUTH2_TENANT_ID", "MAILBOT_OAUTH2_CLIENT_ID", "MAILBOT_OAUTH2_CLIENT_SECRET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MAILBOT_OAUTH2_TENANT_ID", "contoso")
    path = write_config(
        tmp_path,
        database_url=f"sqlite:///{tmp_path / 'm.db'}",
        mailbox_url="imaps://konsultasi%40contoso.example@outlook.office365.com/INBOX",
        smtp_url=f"file://{tmp_path / 'out'}",
        mailbox_extra='auth = "xoauth2"\n[mailbox.oauth2]\nprovider = "microsoft"\n',
    )
    login = load_config(path).mailbox.oauth2
    assert login is not None and login.tenant_id == "contoso"
    with pytest.raises(TokenError) as caught:
        make_source(login).token()  # before any network: nothing to ask with
    assert str(caught.value) == (
        "provider microsoft (tenant contoso, client ?): $MAILBOT_OAUTH2_CLIENT_ID and "
        "$MAILBOT_OAUTH2_CLIENT_SECRET not set (named by mailbox.oauth2.*_env)"
    )


# --- configuration ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mailbox_extra", "key", "message"),
    [
        ('auth = "xoauth2"', "mailbox", 'auth = "xoauth2" needs an oauth2 table'),
        ('[mailbox.oauth2]\ncommand = "get-token"', "mailbox", "used only with auth"),
        (
            'auth = "xoauth2"\n[mailbox.oauth2]\nprovider = "microsoft"\ncommand = "get-token"',
            "mailbox.oauth2",
            "set either provider",
        ),
        ('auth = "xoauth2"\n[mailbox.oauth2]', "mailbox.oauth2", "set either provider"),
        ('auth = "xoauth2"\n[mailbox.oauth2]\nprovider = "google"', "mailbox.oauth2", "needs key_file"),
        ('auth = "xoauth2"\n[mailbox.oauth2]\nprovider = "yahoo"', "mailbox.oauth2.provider", "'microsoft'"),
        (
            'auth = "xoauth2"\n[mailbox.oauth2]\ncommand = "t"\ntoken_lifetime = 300',
            "mailbox.oauth2",
            "token_lifetime must be longer than refresh_margin",
        ),
        # Secrets never sit in the file: only the names of the variables that hold them.
        (
            'auth = "xoauth2"\n[mailbox.oauth2]\nprovider = "microsoft"\nclient_secret = "s3cret"',
            "mailbox.oauth2.client_secret",
            "unknown key",
        ),
    ],
)
def test_oauth2_settings_problems_name_their_key(tmp_path, mailbox_extra, key, message) -> None:
    path = write_config(
        tmp_path,
        database_url=f"sqlite:///{tmp_path / 'm.db'}",
        mailbox_url="imaps://konsultasi%40kantor.go.id@mail.kantor.go.id/INBOX",
        smtp_url=f"file://{tmp_path / 'out'}",
        mailbox_extra=mailbox_extra,
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert any(k == key and message in m for k, m in caught.value.problems), caught.value.problems


def test_xoauth2_needs_the_mailbox_address_as_the_urls_user(tmp_path) -> None:
    path = write_config(
        tmp_path,
        database_url=f"sqlite:///{tmp_path / 'm.db'}",
        mailbox_url=f"maildir://{tmp_path / 'md'}",
        smtp_url="smtp+starttls://smtp.office365.com:587",
        smtp_extra='auth = "xoauth2"\n[smtp.oauth2]\ncommand = "get-token"',
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.problems == [
        ("smtp.url", 'auth = "xoauth2" needs the mailbox address as the URL\'s user')
    ]


def test_the_login_carries_the_environments_secrets_and_the_resolved_key_file(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MAILBOT_OAUTH2_TENANT_ID", "contoso-tenant")
    monkeypatch.setenv("MAILBOT_OAUTH2_CLIENT_ID", "app-id")
    monkeypatch.setenv("MAILBOT_OAUTH2_CLIENT_SECRET", "s3cret-value")
    path = write_config(
        tmp_path,
        database_url=f"sqlite:///{tmp_path / 'm.db'}",
        mailbox_url="imaps://konsultasi%40contoso.example@outlook.office365.com/INBOX",
        smtp_url="smtp+starttls://konsultasi%40kantor.go.id@smtp.gmail.com:587",
        mailbox_extra='auth = "xoauth2"\n[mailbox.oauth2]\nprovider = "microsoft"',
        smtp_extra='auth = "xoauth2"\n[smtp.oauth2]\nprovider = "google"\nkey_file = "keys/sa.json"',
    )
    config = load_config(path)
    mailbox, smtp = config.mailbox.oauth2, config.smtp.oauth2
    assert mailbox is not None and smtp is not None
    assert (mailbox.user, mailbox.tenant_id, mailbox.client_id) == (
        "konsultasi@contoso.example",
        "contoso-tenant",
        "app-id",
    )
    assert mailbox.client_secret == "s3cret-value" and "s3cret-value" not in repr(config)
    assert smtp.user == "konsultasi@kantor.go.id" and smtp.key_file == tmp_path / "keys" / "sa.json"
    assert smtp.client_secret == ""  # the Microsoft variables are read for Microsoft only
    assert make_source(mailbox).description == "provider microsoft (tenant contoso-tenant, client app-id)"


def test_the_commented_example_of_example_production_loads(tmp_path, monkeypatch) -> None:
    """config/example-production.toml's commented Microsoft 365 lines, uncommented, are valid."""
    wanted = re.compile(
        r"# (auth = |\[(mailbox|smtp)\.oauth2\]|provider = \"microsoft\"|"
        r"(tenant_id|client_id|client_secret)_env = |authority = |scope = |refresh_margin = )"
    )
    text = (ROOT / "config" / "example-production.toml").read_text()
    lines = [line[2:] if wanted.match(line) else line for line in text.splitlines()]
    path = tmp_path / "mailbot.toml"
    path.write_text("\n".join(lines).replace("/var/lib/mailbot", str(tmp_path)))
    monkeypatch.setenv("MAILBOT_OAUTH2_CLIENT_SECRET", "from-the-environment")
    config = load_config(path, create_secret=False)
    assert config.mailbox.oauth2 is not None and config.mailbox.oauth2 == config.smtp.oauth2
    assert config.mailbox.oauth2.client_secret == "from-the-environment"
