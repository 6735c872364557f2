"""The `command` token source (shell/oauth2.py) under hostile or broken commands, the
token shared across threads, and no token in the logs of a real XOAUTH2 login."""

from __future__ import annotations

import base64
import logging
import os
import threading
import time
import tracemalloc
from pathlib import Path

import pytest

from mailbot.config import OAuth2Login
from mailbot.settings import OAuth2Settings
from mailbot.shell.oauth2 import TokenError, TokenSource, make_source
from tests.conftest import request_mail, send_all
from tests.operations.oauth2_servers import Command
from tests.operations.test_oauth2 import _urls, account, oauth2_dovecot, token_server, xsmtp  # noqa: F401

USER = "konsultasi@bpsdm.example.go.id"


def _source(command: str, timeout: float = 5.0) -> TokenSource:
    settings = OAuth2Settings(command=command, command_timeout=timeout)
    return make_source(OAuth2Login(user=USER, settings=settings, key="mailbox.oauth2"))


def test_a_command_that_prints_without_end_is_stopped_at_a_bound_not_at_the_timeout() -> None:
    tracemalloc.start()
    start = time.monotonic()
    try:
        with pytest.raises(TokenError, match=r"^command yes: printed more than 65536 bytes"):
            _source("yes", timeout=20).token()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.monotonic() - start < 5  # it held 2 GB after 3 s, and ran to the timeout
    assert peak < 5 * 1024 * 1024


def test_a_token_of_50_mb_is_not_a_token() -> None:
    with pytest.raises(TokenError, match="printed more than 65536 bytes"):
        _source("sh -c 'head -c 50000000 /dev/zero | tr \"\\\\0\" a; echo'").token()


def test_a_command_that_cannot_be_split_is_a_token_error_naming_it() -> None:
    source = _source("print-token 'mailbox --secret s3cr3t")  # an unbalanced quote
    with pytest.raises(
        TokenError, match=r"^command print-token: cannot be split into words: No closing"
    ) as bad:
        source.token()
    assert "s3cr3t" not in str(bad.value)  # the command's arguments may hold a secret


def test_what_a_timed_out_command_started_is_stopped_with_it(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    source = _source(f"sh -c 'sleep 60 & echo $! > {pid_file}; wait'", timeout=1)
    with pytest.raises(TokenError, match="did not finish within 1s"):
        source.token()
    pid = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_stderr_is_in_the_error_bounded_and_the_token_line_never(tmp_path: Path) -> None:
    script = "echo tok-secret-123; i=0; while [ $i -lt 3000 ]; do echo noise $i >&2; i=$((i+1)); done; exit 3"
    with pytest.raises(TokenError) as failed:
        _source(f"sh -c '{script}'").token()
    message = str(failed.value)
    assert message.startswith("command sh: exited with status 3: ") and message.endswith("noise 2999")
    assert "tok-secret-123" not in message and len(message) < 700


def test_a_token_line_ending_in_crlf_is_the_token_and_one_with_a_space_is_refused() -> None:
    assert _source("printf 'tok-abc\\r\\nsecond line\\n'").token() == "tok-abc"
    with pytest.raises(TokenError, match="printed more than a token"):
        _source("printf 'Bearer tok-abc\\n'").token()


def test_threads_share_one_run_of_the_command(tmp_path: Path) -> None:
    command = Command(tmp_path / "cmd")
    command.prints("tok-shared")
    source = _source(command.line)
    got: list[str] = []
    threads = [threading.Thread(target=lambda: got.append(source.token())) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got == ["tok-shared"] * 16 and command.calls() == [USER]


@pytest.mark.imap
def test_no_token_in_the_log_of_a_real_xoauth2_login_at_debug_level(
    account,  # noqa: F811
    xsmtp,  # noqa: F811
    token_server,  # noqa: F811
    make_app,
    sqlite_url,
    tmp_path,
    caplog,
) -> None:
    caplog.set_level(logging.DEBUG)
    # The CLI sets these to WARNING; here the worst case: someone debugging the protocol itself.
    for name in ("imapclient", "imapclient.imaplib", "aiosmtplib", "mailbot"):
        caplog.set_level(logging.DEBUG, logger=name)
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
    assert app.run_intake_once().processed == 1
    assert send_all(app).sent >= 1
    auth = base64.b64encode(f"user={account.user}\x01auth=Bearer {token}\x01\x01".encode()).decode()
    assert "AUTHENTICATE" in caplog.text  # imapclient logged the exchange, redacted
    assert token not in caplog.text and auth not in caplog.text and auth[:40] not in caplog.text
    assert os.environ.get("MAILBOT_OAUTH2_USER") is None  # given to the command only
