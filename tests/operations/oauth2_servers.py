"""OAuth2 peers for tests: a local authorization server (token introspection for Dovecot,
Microsoft's client-credentials grant as msal speaks it, Google's service-account grant) and an
aiosmtpd that takes only XOAUTH2, checking tokens with that server."""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import ssl
import sys
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from tests.servers import RecordingHandler, SmtpServer, free_port, make_certificate


class TokenServer:
    """A local OAuth2 authorization server, over HTTP and HTTPS on loopback ports:

    - `POST /introspect` (RFC 7662, as Dovecot's oauth2 passdb asks): active, and whose;
    - Microsoft's client-credentials grant as msal speaks it (HTTPS only, as msal insists):
      `GET /TENANT/v2.0/.well-known/openid-configuration`, `POST /TENANT/oauth2/v2.0/token`;
    - Google's service-account grant: `POST /google/token` with a JWT signed by the key of a
      registered service account, whose `sub` is a user it may act for.

    Tokens come from `grant` (what a `command` prints) or from those grants; `revoke` ends one."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        make_certificate(root)
        self.ca_file = root / "cert.pem"
        self.lock = threading.Lock()
        self.tokens: dict[str, str] = {}  # access token -> the user it opens
        self.introspected: list[str] = []  # tokens Dovecot asked about
        self.grants: list[dict[str, str]] = []  # the token requests answered, with their forms
        self.clients: dict[tuple[str, str], tuple[str, str]] = {}  # (tenant, client) -> (secret, user)
        self.service_accounts: dict[str, tuple[Any, set[str]]] = {}  # email -> (public key, users)
        self.lifetime = 3600
        handler = type("Handler", (_TokenHandler,), {"tokens": self})
        self.http = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.https = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(root / "cert.pem", root / "key.pem")
        self.https.socket = context.wrap_socket(self.https.socket, server_side=True)
        for server in (self.http, self.https):
            threading.Thread(target=server.serve_forever, daemon=True).start()

    @property
    def introspection_url(self) -> str:
        return f"http://127.0.0.1:{self.http.server_port}/introspect"

    @property
    def google_token_uri(self) -> str:
        return f"http://127.0.0.1:{self.http.server_port}/google/token"

    @property
    def microsoft_authority(self) -> str:
        return f"https://127.0.0.1:{self.https.server_port}"

    def grant(self, user: str) -> str:
        token = "tok-" + secrets.token_urlsafe(24)
        with self.lock:
            self.tokens[token] = user
        return token

    def revoke(self, token: str) -> None:
        with self.lock:
            self.tokens.pop(token, None)

    def user_of(self, token: str) -> str | None:
        with self.lock:
            return self.tokens.get(token)

    def stop(self) -> None:
        for server in (self.http, self.https):
            server.shutdown()
            server.server_close()


class _TokenHandler(BaseHTTPRequestHandler):
    tokens: TokenServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet test output
        return

    def _reply(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _form(self) -> dict[str, str]:
        length = int(self.headers.get("Content-Length") or 0)
        fields = parse_qs(self.rfile.read(length).decode())
        return {k: v[0] for k, v in fields.items()}

    def do_GET(self) -> None:
        parts = self.path.split("?")[0].strip("/").split("/")
        if len(parts) == 4 and parts[1:] == ["v2.0", ".well-known", "openid-configuration"]:
            base = f"{self.tokens.microsoft_authority}/{parts[0]}"
            self._reply(
                200,
                {
                    "issuer": f"{base}/v2.0",
                    "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                    "token_endpoint": f"{base}/oauth2/v2.0/token",
                },
            )
            return
        self._reply(404, {"error": "not_found"})

    def do_POST(self) -> None:
        form = self._form()
        server = self.tokens
        path = self.path.split("?")[0]
        if path == "/introspect":
            token = form.get("token", "")
            with server.lock:
                server.introspected.append(token)
            user = server.user_of(token)
            self._reply(200, {"active": True, "username": user} if user else {"active": False})
            return
        with server.lock:
            server.grants.append({"path": path, **form})
        if path == "/google/token":
            self._google(form)
        elif path.endswith("/oauth2/v2.0/token"):
            self._microsoft(path.strip("/").split("/")[0], form)
        else:
            self._reply(404, {"error": "not_found"})

    def _issue(self, user: str) -> None:
        token = self.tokens.grant(user)
        self._reply(200, {"access_token": token, "token_type": "Bearer", "expires_in": self.tokens.lifetime})

    def _microsoft(self, tenant: str, form: dict[str, str]) -> None:
        known = self.tokens.clients.get((tenant, form.get("client_id", "")))
        if form.get("grant_type") != "client_credentials" or known is None:
            self._reply(400, {"error": "unauthorized_client", "error_description": "AADSTS700016: unknown"})
        elif form.get("client_secret") != known[0]:
            self._reply(
                401,
                {
                    "error": "invalid_client",
                    "error_description": "AADSTS7000215: Invalid client secret provided.",
                },
            )
        else:
            self._issue(known[1])

    def _google(self, form: dict[str, str]) -> None:
        """The JWT bearer grant (RFC 7523) as Google's token endpoint checks it: signed by the
        service account's key, `sub` a user it may act for (domain-wide delegation)."""
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        try:
            head, body, signature = form["assertion"].split(".")
            claims = json.loads(_unb64(body))
            key, users = self.tokens.service_accounts[claims["iss"]]
            key.verify(_unb64(signature), f"{head}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256())
        except (KeyError, ValueError, InvalidSignature, binascii.Error):
            self._reply(400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."})
            return
        if claims.get("sub") not in users or claims.get("scope") != "https://mail.google.com/":
            self._reply(
                401,
                {
                    "error": "unauthorized_client",
                    "error_description": "Client is unauthorized to retrieve access tokens using this "
                    "method, or client not authorized for any of the scopes requested.",
                },
            )
            return
        self._issue(claims["sub"])


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class XOAuth2Handler(RecordingHandler):
    """The recording handler of an SMTP server that takes only XOAUTH2, checking tokens with the
    token server; a wrong token gets Google's sequence: a 334 with a base64 JSON error, then,
    after the client's empty reply, 535."""

    token_server: TokenServer | None = None
    logins: list[str] = field(default_factory=list)

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, mail_options: list[str]
    ) -> str:
        # aiosmtpd's own auth_required warns when TLS is not required too (loopback here).
        if not session.authenticated:
            return "530 5.7.0 Authentication required"
        return await super().handle_MAIL(server, session, envelope, address, mail_options)

    async def auth_XOAUTH2(self, server: Any, args: list[str]) -> AuthResult:
        blob = args[1] if len(args) > 1 else ""
        try:
            fields = dict(
                part.split("=", 1) for part in base64.b64decode(blob).decode().split("\x01") if part
            )
            user, token = fields["user"], fields["auth"].removeprefix("Bearer ")
        except (ValueError, KeyError, binascii.Error):
            return AuthResult(success=False, handled=False, message="501 5.5.2 Cannot decode response")
        assert self.token_server is not None
        if self.token_server.user_of(token) == user:
            with self.lock:
                self.logins.append(user)
            return AuthResult(success=True, auth_data=user)
        error = {"status": "401", "schemes": "bearer", "scope": "https://mail.google.com/"}
        await server.challenge_auth(json.dumps(error))
        return AuthResult(
            success=False, handled=False, message="535 5.7.8 Username and Password not accepted."
        )


def start_smtp_xoauth2(token_server: TokenServer) -> SmtpServer:
    """aiosmtpd that offers only AUTH XOAUTH2 (without TLS: loopback) and requires it for MAIL."""
    handler = XOAuth2Handler(token_server=token_server)
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=free_port(),
        auth_require_tls=False,
        auth_exclude_mechanism=["PLAIN", "LOGIN"],
    )
    controller.start()
    return SmtpServer(controller, handler)


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
