"""Real servers for tests: a throwaway Dovecot (IMAP; also with an oauth2 passdb) and an aiosmtpd
SMTP peer that records and can be told to fail (the way aiosmtplib's own tests do it). The
OAuth2 token server and the XOAUTH2 SMTP peer are in tests/operations/oauth2_servers.py."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any
from urllib.parse import quote

from aiosmtpd.controller import Controller
from imapclient import IMAPClient

DOVECOT_CONF = """\
protocols = imap
listen = 127.0.0.1
base_dir = {tmp}/run
state_dir = {tmp}/run/state
log_path = {tmp}/dovecot.log
ssl = yes
ssl_cert = <{tmp}/cert.pem
ssl_key = <{tmp}/key.pem
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:{tmp}/mail/%u
default_internal_user = dovecot
default_internal_group = dovecot
default_login_user = dovenull
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {tls_port}
  }}
}}
service anvil {{
  chroot =
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {tmp}/users
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home={tmp}/mail/%u
}}
"""


# The oauth2 variant (TESTING.md): XOAUTH2 and OAUTHBEARER checked by asking the token server's
# introspection endpoint; the passwd-file passdb stays for PLAIN and LOGIN (tests deliver mail
# with the password, the honest way: IMAP APPEND).
OAUTH2_PASSDB = """
passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {tmp}/dovecot-oauth2.conf.ext
}}
"""
OAUTH2_EXT = """\
introspection_mode = post
introspection_url = {url}
username_attribute = username
active_attribute = active
active_value = true
"""


def make_certificate(directory: Path) -> None:
    """A self-signed certificate for 127.0.0.1 (cert.pem doubles as the CA file)."""
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-keyout",
            str(directory / "key.pem"),
            "-out",
            str(directory / "cert.pem"),
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    os.chmod(directory / "key.pem", 0o644)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def children(pid: int) -> list[int]:
    """A process's child processes (the daemon's sender and parse worker), started from any thread."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            found += [int(c) for c in (task / "children").read_text().split()]
    return found


def start_daemon(config: Path, log: Path) -> subprocess.Popen[bytes]:
    """`mailbot run` as a real process from the project folder, its output in `log`."""
    import sys

    with log.open("w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "mailbot", "--config", str(config), "run"],
            cwd=Path(__file__).resolve().parent.parent,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def wait_until(predicate: Any, timeout: float = 30.0) -> None:
    """Wait for something a real server or process reports (never a sleep standing in for a deadline)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def wait_for_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"port {port} did not open within {timeout}s")


@dataclass
class ImapAccount:
    host: str
    port: int
    user: str
    password: str
    tls_port: int = 0

    def url(self, folder: str = "INBOX", scheme: str = "imap") -> str:
        port = self.tls_port if scheme == "imaps" else self.port
        return f"{scheme}://{quote(self.user)}:{self.password}@{self.host}:{port}/{folder}"

    def client(self) -> IMAPClient:
        c = IMAPClient(self.host, port=self.port, ssl=False, timeout=10)
        c.login(self.user, self.password)
        return c

    def deliver(self, *raws: bytes, folder: str = "INBOX") -> None:
        """Put mail in the mailbox the honest way: IMAP APPEND."""
        c = self.client()
        try:
            for raw in raws:
                c.append(folder, raw)
        finally:
            c.logout()

    def count(self, folder: str = "INBOX") -> int:
        c = self.client()
        try:
            if not c.folder_exists(folder):
                return 0
            c.select_folder(folder, readonly=True)
            return len(c.search(["NOT", "DELETED"]))
        finally:
            c.logout()

    def messages(self, folder: str) -> list[bytes]:
        c = self.client()
        try:
            c.select_folder(folder, readonly=True)
            uids = c.search(["NOT", "DELETED"])
            data = c.fetch(uids, ["BODY.PEEK[]"]) if uids else {}
            return [bytes(data[u][b"BODY[]"]) for u in sorted(data)]
        finally:
            c.logout()


class Dovecot:
    def __init__(self, root: Path, extra_conf: str = "", introspection_url: str = "") -> None:
        self.root = root
        self.extra_conf = extra_conf  # e.g. an `imap_capability` without MOVE or UIDPLUS
        # The oauth2 variant: XOAUTH2 logins checked at this token-introspection endpoint.
        self.introspection_url = introspection_url
        self.port = free_port()
        self.tls_port = free_port()
        self.ca_file = root / "cert.pem"
        self.conf = root / "dovecot.conf"
        self.users = root / "users"

    def start(self) -> None:
        binary = shutil.which("dovecot") or "/usr/sbin/dovecot"
        for sub in ("run", "mail"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o755)
        for parent in self.root.parents:
            if parent == Path("/"):
                break
            os.chmod(parent, os.stat(parent).st_mode | 0o055)
        shutil.chown(self.root / "mail", "nobody", "nogroup")
        # All accounts exist before the server starts: Dovecot re-reads a changed passwd-file
        # only when its mtime moves, which has one-second resolution.
        self._accounts = [
            (f"u{i:04d}-{secrets.token_hex(3)}@example.go.id", secrets.token_hex(8)) for i in range(400)
        ]
        self.users.write_text("".join(f"{u}:{{PLAIN}}{p}\n" for u, p in self._accounts))
        # Read by Dovecot's auth process (user dovecot), whatever umask the tests run under (the
        # CLI run in-process tightens it: cli/common.private_files).
        os.chmod(self.users, 0o644)
        make_certificate(self.root)
        conf = DOVECOT_CONF.format(tmp=self.root, port=self.port, tls_port=self.tls_port)
        if self.introspection_url:
            conf = conf.replace(
                "auth_mechanisms = plain login", "auth_mechanisms = plain login xoauth2 oauthbearer"
            ).replace("  driver = passwd-file\n", "  driver = passwd-file\n  mechanisms = plain login\n")
            # Refused tokens are what these tests make: no delay after a failed login, and no
            # growing penalty for the address that failed (anvil's, up to 15 s a login).
            conf = conf.replace(
                "service anvil {\n  chroot =\n}",
                "service anvil {\n  chroot =\n  unix_listener anvil-auth-penalty {\n    mode = 0\n  }\n}",
            )
            conf += "auth_failure_delay = 0\n" + OAUTH2_PASSDB.format(tmp=self.root)
            (self.root / "dovecot-oauth2.conf.ext").write_text(OAUTH2_EXT.format(url=self.introspection_url))
            os.chmod(self.root / "dovecot-oauth2.conf.ext", 0o644)
        self.conf.write_text(conf + self.extra_conf)
        subprocess.run(
            [binary, "-c", str(self.conf)],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=30,
        )
        wait_for_port(self.port)

    def kick(self, user: str) -> None:
        """Disconnect a user's open IMAP sessions (a cut connection, as the client sees it)."""
        doveadm = shutil.which("doveadm") or "/usr/bin/doveadm"
        subprocess.run(
            [doveadm, "-c", str(self.conf), "kick", user],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=30,
            check=False,
        )

    def start_again(self) -> None:
        """Start the same server (same port, same mail) after `stop`."""
        binary = shutil.which("dovecot") or "/usr/sbin/dovecot"
        for _ in range(100):
            if (
                subprocess.run(
                    [binary, "-c", str(self.conf)],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    timeout=30,
                    check=False,
                ).returncode
                == 0
            ):
                break
            time.sleep(0.1)  # the old master is still shutting down
        wait_for_port(self.port)

    def stop(self) -> None:
        doveadm = shutil.which("doveadm") or "/usr/bin/doveadm"
        subprocess.run(
            [doveadm, "-c", str(self.conf), "stop"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=30,
            check=False,
        )

    def new_account(self) -> ImapAccount:
        user, password = self._accounts.pop(0)
        return ImapAccount("127.0.0.1", self.port, user, password, self.tls_port)

    def log(self) -> str:
        path = self.root / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    peer: Any = None  # the client's (host, port): which connection brought it

    @property
    def message(self) -> Message:
        return message_from_bytes(self.data)

    @property
    def subject(self) -> str:
        return str(self.message["Subject"] or "")

    def text(self) -> str:
        msg = self.message
        for part in msg.walk():
            if part.get_content_type() == "text/plain":
                payload = part.get_payload(decode=True)
                if isinstance(payload, bytes):
                    return payload.decode(part.get_content_charset() or "utf-8")
        return ""


@dataclass
class RecordingHandler:
    """Records every accepted mail; `replies` queues responses to DATA (e.g. "451 try later") to
    inject, `mail_replies` responses to MAIL FROM, `rcpt_replies` the response to RCPT TO of an
    address (every time it is asked)."""

    received: list[Received] = field(default_factory=list)
    replies: list[str] = field(default_factory=list)
    mail_replies: list[str] = field(default_factory=list)
    rcpt_replies: dict[str, str] = field(default_factory=dict)
    commands: list[str] = field(default_factory=list)  # MAIL and RCPT arguments as the server read them
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, mail_options: list[str]
    ) -> str:
        with self.lock:
            self.commands.append(f"MAIL {address} {' '.join(mail_options)}".strip())
            if self.mail_replies:
                return self.mail_replies.pop(0)
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        with self.lock:
            self.commands.append(f"RCPT {address}")
            if address in self.rcpt_replies:
                return self.rcpt_replies[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            if self.replies:
                return self.replies.pop(0)
            self.received.append(
                Received(
                    envelope.mail_from,
                    list(envelope.rcpt_tos),
                    bytes(envelope.original_content),
                    tuple(session.peer) if session.peer else None,
                )
            )
        return "250 OK"

    def to(self, address: str) -> list[Received]:
        return [r for r in self.received if address in r.rcpt_tos]


@dataclass
class SmtpServer:
    controller: Controller
    handler: RecordingHandler

    @property
    def port(self) -> int:
        return int(self.controller.port)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"


def start_smtp(**options: Any) -> SmtpServer:
    """aiosmtpd on a free loopback port; `options` go to its SMTP class (e.g. enable_SMTPUTF8)."""
    handler = RecordingHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port(), **options)
    controller.start()
    return SmtpServer(controller, handler)


def iter_corpus(directory: Path) -> Iterator[tuple[str, str]]:
    for line in (directory / "EXPECTED.tsv").read_text().splitlines()[1:]:
        if line.strip():
            name, expected = line.split("\t")
            yield name, expected


class CuttingProxy:
    """A TCP proxy to a real server that cuts the first connection after `cut_after` bytes from the
    server: a connection lost mid-fetch, which a healthy server cannot be asked to produce."""

    def __init__(self, target_port: int, cut_after: int) -> None:
        self.target_port = target_port
        self.cut_after = cut_after
        self.port = free_port()
        self.connections = 0
        self._server = socket.create_server(("127.0.0.1", self.port))
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            self.connections += 1
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            limit = self.cut_after if self.connections == 1 else None
            threading.Thread(target=self._pipe, args=(client, upstream, None), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, limit), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket, limit: int | None) -> None:
        sent = 0
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if limit is not None and sent + len(data) >= limit:
                    dst.sendall(data[: max(0, limit - sent)])
                    break
                dst.sendall(data)
                sent += len(data)
        except OSError:
            pass
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._server.shutdown(socket.SHUT_RDWR)
        self._server.close()


class Forwarder:
    """A TCP forwarder to a real server that can be taken down and brought back on the same port:
    the server unreachable for a while, as the client sees it."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self._sockets: list[socket.socket] = []
        self._server: socket.socket | None = None
        self.up()

    def up(self) -> None:
        self._server = socket.create_server(("127.0.0.1", self.port), reuse_port=True)
        threading.Thread(target=self._accept, args=(self._server,), daemon=True).start()

    def down(self) -> None:
        if self._server is not None:
            # shutdown() first: a close() alone leaves the socket listening under a blocked accept().
            with contextlib.suppress(OSError):
                self._server.shutdown(socket.SHUT_RDWR)
            self._server.close()
            self._server = None
        for s in self._sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()
        self._sockets.clear()

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            self._sockets += [client, upstream]
            threading.Thread(target=CuttingProxy._pipe, args=(client, upstream, None), daemon=True).start()
            threading.Thread(target=CuttingProxy._pipe, args=(upstream, client, None), daemon=True).start()
