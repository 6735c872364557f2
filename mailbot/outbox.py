"""The durable outbox, drained with aiosmtplib (or into a folder for the embedded default).

A mail is sent at least once and marked sent right after the server accepts it;
its Message-ID was fixed when it was queued. Temporary failures (4xx, no
connection) are retried with exponential backoff, in order per ticket;
permanent ones (5xx) become dead letters with the server's reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, cast

import aiosmtplib
from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session, sessionmaker

from mailbot import models
from mailbot.config import ConnectionUrl, SmtpSettings, tls_context

log = logging.getLogger(__name__)


class SendError(Exception):
    """Sending failed. `permanent` means retrying cannot help (a 5xx reply)."""

    def __init__(self, message: str, *, permanent: bool, code: int | None = None) -> None:
        self.permanent = permanent
        self.code = code
        super().__init__(message)


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
            if self.url.user:
                await client.login(self.url.user, self.url.password)
        except aiosmtplib.SMTPResponseException as exc:
            await _close(client)
            raise SendError(f"SMTP {exc.code} {exc.message}", permanent=False, code=exc.code) from exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            await _close(client)
            raise SendError(f"SMTP connection failed: {exc}", permanent=False) from exc
        self.client = client

    async def send(self, mail_from: str, rcpt_to: list[str], raw: bytes) -> None:
        await self.open()
        assert self.client is not None
        try:
            errors, _ = await self.client.sendmail(mail_from, rcpt_to, raw)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            permanent = all(500 <= c < 600 for c in codes)
            raise SendError(
                "recipients refused: "
                + "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in exc.recipients),
                permanent=permanent,
                code=codes[0] if codes else None,
            ) from exc
        except aiosmtplib.SMTPResponseException as exc:
            raise SendError(
                f"SMTP {exc.code} {exc.message}", permanent=500 <= exc.code < 600, code=exc.code
            ) from exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            await self.close()
            raise SendError(f"SMTP connection failed: {exc}", permanent=False) from exc
        if errors:
            raise SendError(f"some recipients refused: {errors}", permanent=False)

    async def close(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            await _close(client)


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
            raise SendError(f"cannot write {final}: {exc}", permanent=False) from exc

    async def close(self) -> None:
        return None


JOURNAL_TRIM_BYTES = 256 * 1024


class SentJournal:
    """Ids of mail the SMTP server accepted, appended and fsynced right after its 250.

    The database write that marks a mail sent can wait on another writer; a process killed in
    that wait would otherwise send the mail again when its claim runs out. The journal closes
    that window to the moment between the server's reply and one append.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def record(self, out_id: int) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="ascii") as fh:
            fh.write(f"{out_id}\n")
            fh.flush()
            os.fsync(fh.fileno())

    def accepted(self) -> set[int]:
        try:
            text = self.path.read_text(encoding="ascii", errors="replace")
        except FileNotFoundError:
            return set()
        return {int(line) for line in text.split() if line.isdigit()}

    def size(self) -> int:
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def trim(self, keep: set[int]) -> None:
        """Rewrite the journal with only the ids still in doubt (called when it grows)."""
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("".join(f"{i}\n" for i in sorted(keep)), encoding="ascii")
        os.replace(tmp, self.path)


def make_sender(url: ConnectionUrl, settings: SmtpSettings) -> Sender:
    if url.scheme == "file":
        return FolderSender(url.path)
    return SmtpSender(url, settings)


@dataclass
class DrainResult:
    sent: int = 0
    retried: int = 0
    dead: int = 0
    skipped: int = 0
    errors: list[str] = field(default_factory=list)


def backoff(attempts: int, settings: SmtpSettings) -> timedelta:
    return timedelta(
        seconds=min(settings.retry_max_seconds, settings.retry_base_seconds * 2 ** max(0, attempts - 1))
    )


class Outbox:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        sender: Sender,
        settings: SmtpSettings,
        clock: Callable[[], datetime],
        journal: Path | None = None,
    ) -> None:
        self.sessions = sessions
        self.sender = sender
        self.settings = settings
        self.clock = clock
        self.journal = SentJournal(journal) if journal is not None else None

    def _due(self, now: datetime) -> list[tuple[int, int | None, bool]]:
        """(id, ticket id, due?) of every pending mail, oldest first."""
        with self.sessions.begin() as s:
            # Claims whose lease ran out belong to a process that died mid-send. What the send
            # journal shows as accepted by the server is sent; the rest goes out again.
            stale = list(
                s.execute(
                    select(models.OutboundMessage).where(
                        models.OutboundMessage.status == "sending",
                        models.OutboundMessage.next_attempt_at < now,
                    )
                ).scalars()
            )
            accepted = self.journal.accepted() if self.journal is not None and stale else set()
            for row in stale:
                if row.id in accepted:
                    row.status, row.sent_at, row.attempts = "sent", now, row.attempts + 1
                    _history(
                        s, row, "mail_sent", now, f"{row.kind} → {', '.join(row.rcpt_to)} (send journal)"
                    )
                else:
                    row.status = "pending"
            if self.journal is not None and self.journal.size() > JOURNAL_TRIM_BYTES:
                in_doubt = set(
                    s.execute(
                        select(models.OutboundMessage.id).where(models.OutboundMessage.status == "sending")
                    ).scalars()
                )
                self.journal.trim(self.journal.accepted() & in_doubt)
        with self.sessions() as s:
            rows = s.execute(
                select(
                    models.OutboundMessage.id,
                    models.OutboundMessage.ticket_id,
                    models.OutboundMessage.next_attempt_at,
                )
                .where(models.OutboundMessage.status == "pending")
                .order_by(models.OutboundMessage.id)
                .limit(self.settings.batch_size * 10)
            ).all()
        return [(r[0], r[1], r[2] <= now) for r in rows]

    def next_due(self) -> datetime | None:
        with self.sessions() as s:
            return s.execute(
                select(models.OutboundMessage.next_attempt_at)
                .where(models.OutboundMessage.status == "pending")
                .order_by(models.OutboundMessage.next_attempt_at)
                .limit(1)
            ).scalar_one_or_none()

    async def drain(self) -> DrainResult:
        """Send every due mail once; stop at the first connection failure (the server is away)."""
        result = DrainResult()
        while True:
            now = self.clock()
            batch = self._due(now)
            blocked: set[int] = set()
            sent_any = False
            for out_id, ticket_id, due in batch:
                if ticket_id is not None and ticket_id in blocked:
                    result.skipped += 1
                    continue
                if not due:
                    if ticket_id is not None:
                        blocked.add(ticket_id)  # a later mail of this ticket waits for it
                    continue
                status, connection_down = await self._send_one(out_id, result)
                if status == "sent":
                    sent_any = True
                elif status == "deferred" and ticket_id is not None:
                    blocked.add(ticket_id)  # keep the ticket's mail in order
                if connection_down:
                    await self.sender.close()
                    return result
            if not sent_any:
                break
        await self.sender.close()
        return result

    async def _send_one(self, out_id: int, result: DrainResult) -> tuple[str, bool]:
        """Send one mail: ("sent" | "deferred" | "dead" | "gone", whether the connection is down)."""
        # Claim the mail first: with several processes on one database, the one whose UPDATE
        # matched sends it. The claim is a lease: a process that dies while sending leaves a
        # `sending` row that the next drain puts back once the lease has run out.
        lease_until = self.clock() + timedelta(seconds=self.settings.claim_lease_seconds)
        with self.sessions.begin() as s:
            claim = cast(
                CursorResult[Any],
                s.execute(
                    update(models.OutboundMessage)
                    .where(models.OutboundMessage.id == out_id, models.OutboundMessage.status == "pending")
                    .values(status="sending", next_attempt_at=lease_until)
                ),
            )
            claimed = claim.rowcount
            if claimed != 1:
                return "gone", False
            row = s.get(models.OutboundMessage, out_id)
            assert row is not None
            mail_from, rcpt_to, raw = row.mail_from, list(row.rcpt_to), row.raw
        error: SendError | None = None
        try:
            await self.sender.send(mail_from, rcpt_to, raw)
            if self.journal is not None:
                # The server has it: say so on disk before anything else can go wrong.
                self.journal.record(out_id)
        except SendError as exc:
            error = exc
        now = self.clock()
        with self.sessions.begin() as s:
            row = s.get(models.OutboundMessage, out_id)
            assert row is not None
            row.attempts += 1
            if error is None:
                row.status, row.sent_at, row.last_error = "sent", now, ""
                result.sent += 1
                _history(s, row, "mail_sent", now, f"{row.kind} → {', '.join(row.rcpt_to)}")
                return "sent", False
            row.last_error = str(error)[:2000]
            if error.permanent or row.attempts >= self.settings.max_attempts:
                status = "dead"
                row.status = "dead"
                result.dead += 1
                why = "permanent failure" if error.permanent else f"gave up after {row.attempts} attempts"
                _history(
                    s,
                    row,
                    "mail_dead",
                    now,
                    f"{row.kind} → {', '.join(row.rcpt_to)}: {why}: {error}",
                )
                log.error("outbound #%s dead-lettered: %s", row.id, error)
            else:
                status = "deferred"
                row.status = "pending"
                row.next_attempt_at = now + backoff(row.attempts, self.settings)
                result.retried += 1
                log.warning("outbound #%s deferred (attempt %s): %s", row.id, row.attempts, error)
            result.errors.append(str(error))
        connection_down = not error.permanent and error.code is None
        return status, connection_down


def _history(session: Session, row: models.OutboundMessage, kind: str, now: datetime, detail: str) -> None:
    if row.ticket_id is None:
        return
    ticket = session.get(models.Ticket, row.ticket_id)
    if ticket is None:
        return
    session.add(
        models.TicketEvent(
            ticket_id=ticket.id,
            at=now,
            actor="system",
            kind=kind,
            state=ticket.state.value,
            detail=detail,
            outbound_id=row.id,
            data={},
        )
    )


async def sleep_until(event: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), timeout=max(0.0, seconds))
