"""OAuth2 access tokens for XOAUTH2 logins (IMAP and SMTP), from three sources, cached and renewed.

Microsoft 365 accepts only OAuth2 for IMAP and retires basic SMTP AUTH; Google Workspace takes
passwords only as app passwords. A token comes from:

- `provider = "microsoft"`: the client-credentials grant of an Entra ID app registration (msal),
  with the tenant id, client id and client secret from the environment;
- `provider = "google"`: a service account with domain-wide delegation acting as the mailbox
  user (google-auth), from its JSON key file;
- `command`: a program, run without a shell, that prints a token on its first line.

Each process keeps one `TokenSource` per configured login (`token_source`): the intake thread
reconnects with a new IMAP client and the sender opens several SMTP connections, and all of
them share the token until it is `refresh_margin` seconds from expiring. A token that a server
refuses is forgotten, so the next login fetches a new one. Failures to get a token raise
`TokenError`; the protocol modules map it, and the server's refusal, to their own errors.
The providers' libraries are imported when a token is first needed, not at start-up.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from mailbot.config import OAuth2Login

MICROSOFT_SCOPE = "https://outlook.office365.com/.default"  # IMAP.AccessAsApp, SMTP.SendAsApp
GOOGLE_SCOPE = "https://mail.google.com/"  # the only scope Gmail's IMAP and SMTP accept
HTTP_TIMEOUT = 30.0  # seconds, for a provider's token endpoint
USER_VARIABLE = "MAILBOT_OAUTH2_USER"  # set for a `command`: the mailbox user it prints a token for
STDOUT_MAX = 64 * 1024  # of a command's output: an access token is a few KB (Entra ID's about 3)
STDERR_KEPT = 4096  # of a command's stderr, its end: the error message

# (access token, seconds it stays valid from now)
Fetched = tuple[str, float]


class TokenError(Exception):
    """No token could be had: a secret or the key file is missing, the provider refused or was not
    reached, or the command failed. The message names the source, then says why."""


class TokenSource:
    """One configured source and its current token; safe to share between threads."""

    def __init__(
        self,
        fetch: Callable[[], Fetched],
        description: str,
        margin: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.description = description  # "provider microsoft (tenant ..., client ...)"
        self._fetch = fetch
        self._margin = margin
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires_at = 0.0

    def token(self) -> str:
        """The cached token, or a new one when it is within the margin of its expiry."""
        with self._lock:
            now = self._clock()
            if self._token is None or now >= self._expires_at - self._margin:
                try:
                    token, lifetime = self._fetch()
                except TokenError as exc:
                    raise TokenError(f"{self.description}: {exc}") from exc.__cause__
                self._token, self._expires_at = token, now + lifetime
            return self._token

    def forget(self, token: str) -> None:
        """A server refused `token` (revoked, or the permissions changed): fetch anew next time."""
        with self._lock:
            if self._token == token:
                self._token = None


def make_source(login: OAuth2Login, clock: Callable[[], float] = time.monotonic) -> TokenSource:
    settings = login.settings
    if settings.provider == "microsoft":
        fetch, description = _microsoft(login)
    elif settings.provider == "google":
        fetch, description = _google(login)
    else:
        fetch, description = _command(login)
    return TokenSource(fetch, description, settings.refresh_margin, clock)


_sources: dict[OAuth2Login, TokenSource] = {}
_sources_lock = threading.Lock()


def token_source(login: OAuth2Login) -> TokenSource:
    """This process's one source for a configured login (equal logins share it, as
    `config.tls_context` shares a TLS context): every reconnect and connection reuses its token."""
    with _sources_lock:
        source = _sources.get(login)
        if source is None:
            source = _sources[login] = make_source(login)
        return source


def describe(login: OAuth2Login) -> str:
    """What `check-config` says about a login: the source, without its secrets."""
    return make_source(login).description


# --- the sources ------------------------------------------------------------------------------


def _microsoft(login: OAuth2Login) -> tuple[Callable[[], Fetched], str]:
    """Client credentials (msal): the app's own token for the tenant. Exchange decides which
    mailboxes it opens (the service principal's mailbox permissions), not the token."""
    settings = login.settings
    wanted = (
        (settings.tenant_id_env, login.tenant_id),
        (settings.client_id_env, login.client_id),
        (settings.client_secret_env, login.client_secret),
    )
    missing = [f"${name}" for name, value in wanted if not value]
    authority = f"{settings.authority.rstrip('/')}/{login.tenant_id}"
    scope = settings.scope or MICROSOFT_SCOPE
    description = f"provider microsoft (tenant {login.tenant_id or '?'}, client {login.client_id or '?'})"
    app: Any = None

    def fetch() -> Fetched:
        nonlocal app
        if missing:
            raise TokenError(f"{' and '.join(missing)} not set (named by {login.key}.*_env)")
        import msal  # type: ignore[import-untyped]

        try:
            if app is None:
                # The authority is the office's own setting: msal's instance discovery (a question
                # to login.microsoftonline.com about authorities it does not know) is not wanted.
                app = msal.ConfidentialClientApplication(
                    login.client_id,
                    client_credential=login.client_secret,
                    authority=authority,
                    instance_discovery=False,
                    timeout=HTTP_TIMEOUT,
                )
            result = app.acquire_token_for_client(scopes=[scope])
        except (ValueError, OSError) as exc:  # requests' errors are OSErrors
            raise TokenError(f"{authority}: {type(exc).__name__}: {_one_line(str(exc))}") from exc
        if not isinstance(result, dict) or "access_token" not in result:
            result = result if isinstance(result, dict) else {}
            error = result.get("error", "no token")
            raise TokenError(f"{authority}: {error}: {_one_line(str(result.get('error_description', '')))}")
        return str(result["access_token"]), float(result.get("expires_in", 3600))

    return fetch, description


def _google(login: OAuth2Login) -> tuple[Callable[[], Fetched], str]:
    """A service account's JWT grant with `sub` = the mailbox user (domain-wide delegation)."""
    settings = login.settings
    scope = settings.scope or GOOGLE_SCOPE
    key_file = str(login.key_file)
    description = f"provider google (service account key {key_file}, as {login.user})"

    def fetch() -> Fetched:
        from google.auth.exceptions import GoogleAuthError
        from google.auth.transport.requests import Request
        from google.oauth2 import service_account

        try:
            credentials = service_account.Credentials.from_service_account_file(  # type: ignore[no-untyped-call]
                key_file, scopes=[scope], subject=login.user
            )
        except (OSError, ValueError) as exc:  # unreadable, not JSON, not a service account key
            raise TokenError(f"cannot use the key file {key_file}: {_one_line(str(exc))}") from exc
        try:
            credentials.refresh(Request())
        except GoogleAuthError as exc:
            # RefreshError carries (message, response body): the message says it.
            reason = exc.args[0] if exc.args else exc
            raise TokenError(_one_line(str(reason))) from exc
        expiry = credentials.expiry  # naive UTC
        lifetime = (expiry - datetime.now(UTC).replace(tzinfo=None)).total_seconds() if expiry else 3600.0
        return str(credentials.token), lifetime

    return fetch, description


def _command(login: OAuth2Login) -> tuple[Callable[[], Fetched], str]:
    """A program that prints a token: run without a shell, with a timeout, its stderr kept for
    the error. It learns the mailbox user from $MAILBOT_OAUTH2_USER. Its description names the
    program only: the arguments may carry a secret."""
    settings = login.settings
    try:
        argv = shlex.split(settings.command)
        problem = ""
    except ValueError as exc:  # an unbalanced quote: said when a token is asked for
        argv, problem = settings.command.split()[:1], f"cannot be split into words: {exc}"
    description = f"command {argv[0]}"

    def fetch() -> Fetched:
        if problem:
            raise TokenError(problem)
        env = {**os.environ, USER_VARIABLE: login.user}
        returncode, stdout, stderr_bytes = _run(argv, env, settings.command_timeout)
        stderr = _one_line(stderr_bytes.decode("utf-8", "replace"))[-500:]
        if returncode != 0:
            raise TokenError(f"exited with status {returncode}: {stderr or '(no stderr)'}")
        lines = [line.strip() for line in stdout.decode("utf-8", "replace").splitlines()]
        token = next((line for line in lines if line), "")
        if not token:
            raise TokenError(f"printed no token{': ' + stderr if stderr else ''}")
        if len(token.split()) > 1 or not token.isprintable():
            raise TokenError("printed more than a token on its first line")
        return token, settings.token_lifetime

    return fetch, description


def _run(argv: list[str], env: dict[str, str], timeout: float) -> tuple[int, bytes, bytes]:
    """Run the command: its exit status, its output (at most STDOUT_MAX bytes, or TokenError)
    and the end of its stderr. `subprocess.run` held all it printed: `yes` filled 2 GB in 3 s.
    It runs in a session of its own, so that what it started ends with it on a timeout."""
    try:
        proc = subprocess.Popen(  # noqa: S603 - the configured command, as argv, no shell
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            start_new_session=True,
        )
    except OSError as exc:
        raise TokenError(f"cannot run it: {exc.strerror or exc}") from exc
    assert proc.stdout is not None and proc.stderr is not None
    stdout, stderr = bytearray(), bytearray()
    deadline = time.monotonic() + timeout
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(proc.stdout, selectors.EVENT_READ, stdout)
            selector.register(proc.stderr, selectors.EVENT_READ, stderr)
            while selector.get_map():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TokenError(f"did not finish within {timeout:g}s")
                for key, _ in selector.select(left):
                    chunk = os.read(key.fd, 65536)
                    if not chunk:
                        selector.unregister(key.fileobj)
                    elif key.data is stdout:
                        stdout += chunk
                        if len(stdout) > STDOUT_MAX:
                            raise TokenError(f"printed more than {STDOUT_MAX} bytes")
                    else:
                        stderr += chunk
                        del stderr[:-STDERR_KEPT]
        try:
            returncode = proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired as exc:
            raise TokenError(f"did not finish within {timeout:g}s") from exc
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    return returncode, bytes(stdout), bytes(stderr)


def _one_line(text: str) -> str:
    return " ".join(text.split())
