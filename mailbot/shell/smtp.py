"""Handing a mail to the SMTP server (aiosmtplib), or to a folder in its place (the embedded default).

One connection per sender, reused across a drain: EHLO, the login (password or OAuth2), the
server's SIZE, and MAIL / RCPT / DATA. The errors of aiosmtplib and the OS are mapped to
`SendError` and its kinds once, here at the boundary; the outbox decides what they mean for a mail.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
from datetime import datetime
from pathlib import Path
from typing import Protocol

import aiosmtplib
from aiosmtplib import SMTPResponse, SMTPStatus

from mailbot.config import ConnectionUrl, OAuth2Login, tls_context
from mailbot.settings import SmtpSettings
from mailbot.shell.oauth2 import TokenError, token_source


class SendError(Exception):
    """Sending failed. `permanent` means retrying cannot help (a 5xx reply).

    The errors of aiosmtplib and the OS are mapped to these once, here at the boundary:

        SendError                 the server refused this mail (4xx: later; 5xx: permanent)
         +-- TooLarge             larger than the server takes (its SIZE, or a 552 reply)
         +-- ServerUnavailable    the server could not be reached or talked to, or the
              |                   outbox folder not written: sending as a whole is failing
              +-- LoginRefused    the server refused our login (password or OAuth2 token), or
                                  no OAuth2 token could be had
    """

    def __init__(self, message: str, *, permanent: bool, code: int | None = None) -> None:
        self.permanent = permanent
        self.code = code
        super().__init__(message)


class TooLarge(SendError):
    """The mail is larger than the server takes: over the SIZE of its EHLO (RFC 1870), checked
    before sending, or refused with 552 (RFC 5321 s. 4.2.2). The outbox sends it again without
    its files and with a note (core/withheld.py). `limit`: the server's SIZE; None: none named."""

    def __init__(self, message: str, limit: int | None) -> None:
        super().__init__(message, permanent=True, code=552)
        self.limit = limit


class ServerUnavailable(SendError):
    """No SMTP conversation (connection refused, dropped, timed out, TLS failed) or no outbox folder."""

    def __init__(self, message: str) -> None:
        super().__init__(message, permanent=False)


class LoginRefused(ServerUnavailable):
    """The login failed: nothing can be sent until the credentials or the token source are fixed."""


class Sender(Protocol):
    async def open(self) -> None: ...
    async def send(self, mail_from: str, rcpt_to: list[str], raw: bytes) -> None: ...
    async def close(self) -> None: ...


class SmtpSender:
    """One reused SMTP connection per drain; errors mapped to SendError at this boundary."""

    def __init__(self, url: ConnectionUrl, settings: SmtpSettings) -> None:
        self.url = url
        self.settings = settings
        self.client: aiosmtplib.SMTP | None = None

    async def open(self) -> None:
        if self.client is not None and self.client.is_connected:
            return
        client = aiosmtplib.SMTP(
            hostname=self.url.host,
            port=self.url.port,
            use_tls=self.url.scheme == "smtps",
            start_tls=self.url.scheme == "smtp+starttls",
            timeout=self.settings.timeout,
            tls_context=tls_context(self.settings.ca_file),
        )
        try:
            await client.connect()
            if client.is_ehlo_or_helo_needed:  # what `sendmail` would do: its extensions below
                try:
                    await client.ehlo()
                except aiosmtplib.SMTPHeloError:
                    await client.helo()
            if self.url.oauth2 is not None:
                await self._xoauth2(client, self.url.oauth2)
            elif self.url.user:
                await client.login(self.url.user, self.url.password)
        except LoginRefused:
            await _close(client)
            raise
        except aiosmtplib.SMTPAuthenticationError as exc:
            await _close(client)
            where = f"SMTP {self.url.host}:{self.url.port}"
            raise LoginRefused(
                f"{where} refused the login of {self.url.user}: {exc.code} {exc.message}"
            ) from exc
        except aiosmtplib.SMTPResponseException as exc:
            await _close(client)
            raise SendError(f"SMTP {exc.code} {exc.message}", permanent=False, code=exc.code) from exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            await _close(client)
            raise ServerUnavailable(f"SMTP connection failed: {exc}") from exc
        self.client = client

    async def _xoauth2(self, client: aiosmtplib.SMTP, login: OAuth2Login) -> None:
        """AUTH XOAUTH2 with a token of the configured source, sent as a plain command (aiosmtplib
        has `auth_xoauth2` only from 5.1). A refused token is forgotten: the next connection
        fetches anew. Google's refusal is a 334 with a base64 JSON error, then 535 after an
        empty reply; Microsoft's a 535 at once."""
        source = token_source(login)
        where = f"SMTP {self.url.host}:{self.url.port}"
        if "xoauth2" not in client.server_auth_methods:
            offered = " ".join(client.server_auth_methods).upper() or "no AUTH"
            raise LoginRefused(f"{where} does not offer AUTH XOAUTH2 (it offers {offered})")
        try:
            token = await asyncio.to_thread(source.token)
        except TokenError as exc:
            raise LoginRefused(f"{where}: no OAuth2 token from {exc}") from exc
        sasl = base64.b64encode(f"user={login.user}\x01auth=Bearer {token}\x01\x01".encode())
        reply = await client.execute_command(b"AUTH", b"XOAUTH2", sasl)
        if reply.code == SMTPStatus.auth_continue:
            reply = await client.execute_command(b"")
        if reply.code != SMTPStatus.auth_successful:
            source.forget(token)
            # The error aiosmtplib's own auth_xoauth2 raises: a refused login, by its type.
            refusal = aiosmtplib.SMTPAuthenticationError(reply.code, reply.message)
            raise LoginRefused(
                f"{where} refused the OAuth2 token from {source.description} for {login.user}: "
                f"{reply.code} {reply.message}"
            ) from refusal

    async def send(self, mail_from: str, rcpt_to: list[str], raw: bytes) -> None:
        await self.open()
        client = self.client
        assert client is not None
        limit = server_size(client)
        if limit is not None and len(raw) > limit:
            raise TooLarge(f"{len(raw)} bytes, over the server's SIZE {limit}", limit)
        try:
            await self._transaction(client, mail_from, rcpt_to, raw)
        except aiosmtplib.SMTPResponseException as exc:
            await _reset(client)
            if exc.code == SMTPStatus.storage_exceeded:  # 552 to MAIL (RFC 1870) or to DATA
                raise TooLarge(f"SMTP {exc.code} {exc.message}", None) from exc
            raise SendError(
                f"SMTP {exc.code} {exc.message}", permanent=500 <= exc.code < 600, code=exc.code
            ) from exc
        except SendError:
            await _reset(client)
            raise
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            await self.close()
            raise ServerUnavailable(f"SMTP connection failed: {exc}") from exc

    async def _transaction(
        self, client: aiosmtplib.SMTP, mail_from: str, rcpt_to: list[str], raw: bytes
    ) -> None:
        """MAIL, RCPT and DATA with aiosmtplib's own commands. Its `sendmail` does the same after
        parsing each address with `email.utils.parseaddr` twice (a fifth of the sending
        process's work per mail); ours are bare addresses, checked by `envelope_address`."""
        sender = envelope_address(mail_from)
        recipients = [envelope_address(r) for r in rcpt_to]
        if not recipients:
            raise SendError("no recipients", permanent=True)
        options = [b"SIZE=%d" % len(raw)] if client.supports_extension("size") else []
        if not all(a.isascii() for a in (sender, *recipients)):
            if client.supports_extension("smtputf8"):
                options.append(b"SMTPUTF8")  # RFC 6531
            else:
                # No SMTPUTF8: a domain can still be written in its ASCII form (IDNA, RFC 5891);
                # a local part outside ASCII cannot.
                ascii_forms = [idna_address(a) for a in (sender, *recipients)]
                if any(a is None for a in ascii_forms):
                    raise SendError("a non-ASCII address, and the server has no SMTPUTF8", permanent=True)
                sender, *recipients = (a for a in ascii_forms if a is not None)
        reply = await client.execute_command(b"MAIL", b"FROM:<" + sender + b">", *options)
        if reply.code != SMTPStatus.completed:
            raise aiosmtplib.SMTPSenderRefused(reply.code, reply.message, mail_from)
        refused: list[tuple[str, SMTPResponse]] = []
        for address, encoded in zip(rcpt_to, recipients, strict=True):
            reply = await client.execute_command(b"RCPT", b"TO:<" + encoded + b">")
            if reply.code not in (SMTPStatus.completed, SMTPStatus.will_forward):
                refused.append((address, reply))
        if refused:
            # Queued mail has one recipient (compose.build_mail): all or nothing.
            raise SendError(
                "recipients refused: " + "; ".join(f"{a}: {r.code} {r.message}" for a, r in refused),
                permanent=all(500 <= r.code < 600 for _, r in refused),
                code=refused[0][1].code,
            )
        await client.data(raw)

    async def close(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            await _close(client)


def server_size(client: aiosmtplib.SMTP) -> int | None:
    """The largest mail the server takes, from the SIZE of its EHLO (RFC 1870 s. 4); None when it
    names none (no SIZE, or SIZE 0: no fixed maximum)."""
    value = client.esmtp_extensions.get("size", "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else None


def idna_address(address: bytes) -> bytes | None:
    """The ASCII form of an address whose domain only is outside ASCII (`user@bücher.example` ->
    `user@xn--bcher-kva.example`); None when the local part is not ASCII."""
    local, _, domain = address.decode("utf-8").rpartition("@")
    if not local.isascii():
        return None
    try:
        return f"{local}@{domain.encode('idna').decode('ascii')}".encode()
    except UnicodeError:
        return None


def envelope_address(address: str) -> bytes:
    """An address as it goes on MAIL FROM / RCPT TO: a bare addr-spec, or a permanent error for
    anything that could end the command line or add parameters to it."""
    address = address.strip()
    # Every space but the ASCII one is unprintable too (str.isprintable): one test in C.
    if not address or not address.isprintable() or any(c in address for c in " <>"):
        raise SendError(f"not an address for the SMTP envelope: {address!r}", permanent=True)
    return address.encode("utf-8")


async def _reset(client: aiosmtplib.SMTP) -> None:
    """After a refusal the envelope is still open on the server: reset it for the next mail."""
    with contextlib.suppress(aiosmtplib.SMTPException, OSError, TimeoutError):
        await client.rset()


async def _close(client: aiosmtplib.SMTP) -> None:
    try:
        if client.is_connected:
            await client.quit()
    except (aiosmtplib.SMTPException, OSError, TimeoutError):
        client.close()


class FolderSender:
    """The embedded default: each mail written as an .eml file (atomically) into a folder."""

    def __init__(self, directory: str) -> None:
        self.directory = Path(directory)

    async def open(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)

    async def send(self, mail_from: str, rcpt_to: list[str], raw: bytes) -> None:
        await self.open()
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S-%f")
        safe_rcpt = "".join(c if c.isalnum() or c in "@._-" else "_" for c in rcpt_to[0])[:80]
        final = self.directory / f"{stamp}-{safe_rcpt}.eml"
        tmp = self.directory / f".{final.name}.tmp"
        try:
            tmp.write_bytes(raw)
            os.replace(tmp, final)
        except OSError as exc:
            raise ServerUnavailable(f"cannot write {final}: {exc}") from exc

    async def close(self) -> None:
        return None


def make_sender(url: ConnectionUrl, settings: SmtpSettings) -> Sender:
    if url.scheme == "file":
        return FolderSender(url.path)
    return SmtpSender(url, settings)
