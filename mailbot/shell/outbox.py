"""The durable outbox: claims queued mail in batches, sends it (shell/smtp.py), records what became of it.

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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.orm import Session, sessionmaker

from mailbot.core.workflow import OutboundStatus, next_outbound
from mailbot.settings import SmtpSettings
from mailbot.shell import models
from mailbot.shell.smtp import Sender, SendError, ServerUnavailable, TooLarge

if TYPE_CHECKING:  # composing (Jinja2, the parser) is loaded only for a mail too large to send
    from mailbot.core.compose import Withheld

log = logging.getLogger(__name__)


JOURNAL_TRIM_BYTES = 256 * 1024


class SentJournal:
    """Ids of mail the SMTP server accepted, appended right after its 250 reply.

    The database write that marks a batch sent can wait on another writer; a process killed in
    that wait would otherwise send those mails again when their claim runs out. Each id is
    written to the file as soon as the server accepts the mail (a write that survives the death
    of the process), and the file is fsynced once per batch, before the batch is marked sent
    (which is what survives a power cut). That leaves repeats only in the moment between the
    server's reply and one write.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def record(self, out_id: int) -> None:
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.write(self._fd, f"{out_id}\n".encode("ascii"))

    def sync(self) -> None:
        if self._fd is not None:
            os.fsync(self._fd)

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.fsync(fd)
            os.close(fd)

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
        self.close()
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("".join(f"{i}\n" for i in sorted(keep)), encoding="ascii")
        os.replace(tmp, self.path)


@dataclass
class DrainResult:
    sent: int = 0
    retried: int = 0
    dead: int = 0
    skipped: int = 0
    errors: list[str] = field(default_factory=list)
    unavailable: list[str] = field(default_factory=list)  # errors of a server not reached


def backoff(attempts: int, settings: SmtpSettings) -> timedelta:
    return timedelta(
        seconds=min(settings.retry_max_seconds, settings.retry_base_seconds * 2 ** max(0, attempts - 1))
    )


@dataclass
class Claimed:
    """A mail this process has claimed (status `sending`, under a lease) and is about to send."""

    id: int
    ticket_id: int | None
    kind: str
    mail_from: str
    rcpt_to: list[str]
    raw: bytes
    attempts: int
    # Sent without files the server would not take with them: which, and why (see `_send`).
    withheld: tuple[Withheld, ...] = ()
    over: str = ""


# What became of a claimed mail: None = accepted by the server; a SendError; or RELEASED, not
# attempted (its connection went down first, or an earlier mail of its ticket was deferred).
RELEASED = "released"
Attempt = SendError | None | str


class Outbox:
    """Sends in batches: one transaction claims a batch, the batch goes out over `connections`
    SMTP connections (mails of one ticket always on the same one, in order), one transaction
    records the results. The send journal is fsynced once per batch, before that record."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        sender: Sender | list[Sender],
        settings: SmtpSettings,
        clock: Callable[[], datetime],
        journal: Path | None = None,
        templates_dir: Path | None = None,
    ) -> None:
        self.sessions = sessions
        self.templates_dir = templates_dir  # the office's own templates (the note on withheld files)
        self.senders = sender if isinstance(sender, list) else [sender]
        self.settings = settings
        self.clock = clock
        self.journal = SentJournal(journal) if journal is not None else None

    def _recover(self, now: datetime) -> None:
        """Claims whose lease ran out belong to a process that died mid-send. What the send
        journal shows as accepted by the server is sent; the rest goes out again."""
        with self.sessions.begin() as s:
            stale = list(
                s.execute(
                    select(models.OutboundMessage).where(
                        models.OutboundMessage.status == OutboundStatus.SENDING,
                        models.OutboundMessage.next_attempt_at < now,
                    )
                ).scalars()
            )
            accepted = self.journal.accepted() if self.journal is not None and stale else set()
            lines = []
            for row in stale:
                if row.id in accepted:
                    row.status = next_outbound(row.status, OutboundStatus.SENT)
                    row.sent_at, row.attempts = now, row.attempts + 1
                    detail = f"{row.kind} → {', '.join(row.rcpt_to)} (send journal)"
                    lines.append((row.ticket_id, row.id, "mail_sent", detail, None))
                else:
                    row.status = next_outbound(row.status, OutboundStatus.PENDING)
            _history(s, lines, now)
            if self.journal is not None and self.journal.size() > JOURNAL_TRIM_BYTES:
                in_doubt = set(
                    s.execute(
                        select(models.OutboundMessage.id).where(
                            models.OutboundMessage.status == OutboundStatus.SENDING
                        )
                    ).scalars()
                )
                self.journal.trim(self.journal.accepted() & in_doubt)

    def _claim(self, now: datetime) -> list[Claimed]:
        with self.sessions.begin() as s:
            return self._claim_in(s, now)

    def _claim_in(self, s: Session, now: datetime) -> list[Claimed]:
        """Claim up to `batch_size` due mails, oldest first, never overtaking an earlier mail of
        the same ticket that is not due yet or is in another process's hands.

        On PostgreSQL the candidates are locked with SKIP LOCKED, so processes draining one
        outbox take disjoint batches without waiting for each other; a row another process has
        locked blocks its ticket here. On SQLite, BEGIN IMMEDIATE already makes claims serial.
        """
        out = models.OutboundMessage
        window = self.settings.batch_size * 10
        pending = s.execute(
            select(out.id, out.ticket_id, out.next_attempt_at <= now)
            .where(out.status == OutboundStatus.PENDING)
            .order_by(out.id)
            .limit(window)
        ).all()
        if not pending:
            return []
        if s.get_bind().dialect.name == "sqlite":
            # BEGIN IMMEDIATE: no other process holds a row of the outbox; every due row is free.
            lockable = {out_id for out_id, _, due in pending if due}
        else:
            lockable = set(
                s.execute(
                    select(out.id)
                    .where(
                        out.status == OutboundStatus.PENDING,
                        out.next_attempt_at <= now,
                        out.id <= pending[-1][0],
                    )
                    .order_by(out.id)
                    .limit(window)
                    .with_for_update(skip_locked=True)
                ).scalars()
            )
        blocked = {
            t
            for t in s.execute(
                select(out.ticket_id)
                .where(out.status == OutboundStatus.SENDING, out.ticket_id.is_not(None))
                .distinct()
            ).scalars()
            if t is not None
        }
        chosen: list[int] = []
        for out_id, ticket_id, due in pending:
            if ticket_id is not None and ticket_id in blocked:
                continue
            if out_id not in lockable or not due:
                if ticket_id is not None:
                    blocked.add(ticket_id)  # a later mail of this ticket waits for it
                continue
            chosen.append(out_id)
            if len(chosen) >= self.settings.batch_size:
                break
        if not chosen:
            return []
        lease_until = now + timedelta(seconds=self.settings.claim_lease_seconds)
        s.execute(
            update(out)
            .where(out.id.in_(chosen), out.status == OutboundStatus.PENDING)
            .values(status=OutboundStatus.SENDING, next_attempt_at=lease_until)
        )
        rows = s.execute(
            select(out.id, out.ticket_id, out.kind, out.mail_from, out.rcpt_to, out.raw, out.attempts)
            .where(out.id.in_(chosen))
            .order_by(out.id)
        ).all()
        return [Claimed(r[0], r[1], r[2], r[3], list(r[4]), r[5], r[6]) for r in rows]

    def next_due(self) -> datetime | None:
        with self.sessions() as s:
            return s.execute(
                select(models.OutboundMessage.next_attempt_at)
                .where(models.OutboundMessage.status == OutboundStatus.PENDING)
                .order_by(models.OutboundMessage.next_attempt_at)
                .limit(1)
            ).scalar_one_or_none()

    async def drain(self) -> DrainResult:
        """Send every due mail once; stop at the first connection failure (the server is away)."""
        result = DrainResult()
        self._recover(self.clock())
        try:
            claimed = self._claim(self.clock())
            while claimed:
                attempts, down = await self._send_batch(claimed)
                if self.journal is not None:
                    self.journal.sync()
                # One transaction records this batch and claims the next: on SQLite every
                # transaction waits for its turn at the write lock (one intake group at most).
                with self.sessions.begin() as s:
                    self._settle(s, claimed, attempts, result)
                    claimed = [] if down else self._claim_in(s, self.clock())
        finally:
            if self.journal is not None:
                self.journal.close()
            for sender in self.senders:
                await sender.close()
        return result

    async def _send_batch(self, claimed: list[Claimed]) -> tuple[dict[int, Attempt], bool]:
        """Send a claimed batch over the connections; whether a connection went down."""
        lanes: list[list[Claimed]] = [[] for _ in self.senders]
        for mail in claimed:
            key = mail.ticket_id if mail.ticket_id is not None else mail.id
            lanes[key % len(lanes)].append(mail)
        attempts: dict[int, Attempt] = {}
        done = await asyncio.gather(
            *(
                self._send_lane(sender, lane, attempts)
                for sender, lane in zip(self.senders, lanes, strict=True)
            )
        )
        return attempts, any(done)

    async def _send_lane(self, sender: Sender, lane: list[Claimed], attempts: dict[int, Attempt]) -> bool:
        """One connection's share of a batch, in order; True when the connection went down."""
        deferred: set[int] = set()
        down = False
        for mail in lane:
            if down or (mail.ticket_id is not None and mail.ticket_id in deferred):
                attempts[mail.id] = RELEASED
                continue
            try:
                await self._send(sender, mail)
            except SendError as exc:
                attempts[mail.id] = exc
                if not exc.permanent:
                    if mail.ticket_id is not None:
                        deferred.add(mail.ticket_id)  # keep the ticket's mail in order
                    down = exc.code is None
                continue
            attempts[mail.id] = None
            if self.journal is not None:
                # The server has it: say so before anything else can go wrong.
                self.journal.record(mail.id)
        return down

    async def _send(self, sender: Sender, mail: Claimed) -> None:
        """Send one mail. One larger than the server takes (TooLarge) goes again without the
        largest of its files and with a note saying where they are, instead of becoming a dead
        letter (#21 item 3); `mail` then holds what went out. Without files to leave out, or still
        too large, it is refused as before."""
        try:
            await sender.send(mail.mail_from, mail.rcpt_to, mail.raw)
        except TooLarge as exc:
            from mailbot.core.withheld import shrink

            smaller = await asyncio.to_thread(shrink, mail.raw, exc.limit, self.templates_dir)
            if smaller is None or not smaller.withheld:
                raise
            await sender.send(mail.mail_from, mail.rcpt_to, smaller.raw)
            mail.raw, mail.withheld, mail.over = smaller.raw, smaller.withheld, str(exc)

    def _settle(
        self, s: Session, claimed: list[Claimed], attempts: dict[int, Attempt], result: DrainResult
    ) -> None:
        """Record a batch's results and their history lines, in the caller's transaction."""
        now = self.clock()
        changes: list[dict[str, Any]] = []
        history: list[tuple[Claimed, str, str, dict[str, Any] | None]] = []
        for mail in claimed:
            outcome = attempts.get(mail.id, RELEASED)
            to = f"{mail.kind} → {', '.join(mail.rcpt_to)}"
            if outcome == RELEASED:
                changes.append({"id": mail.id, "status": OutboundStatus.PENDING, "next_attempt_at": now})
                continue
            tries = mail.attempts + 1
            if outcome is None:
                changes.append(
                    {
                        "id": mail.id,
                        "status": OutboundStatus.SENT,
                        "sent_at": now,
                        "last_error": "",
                        "attempts": tries,
                        # Sent without some files: the archive keeps the mail as it went out.
                        **({"raw": mail.raw} if mail.withheld else {}),
                    }
                )
                if mail.withheld:
                    from mailbot.core.withheld import withheld_text

                    files = withheld_text(mail.withheld)
                    names = [w.filename for w in mail.withheld]
                    facts: dict[str, Any] = {"mail": mail.kind, "to": to, "files": names, "over": mail.over}
                    history.append((mail, "files_withheld", f"{to}: {files} left out: {mail.over}", facts))
                history.append((mail, "mail_sent", to, None))
                result.sent += 1
                continue
            assert isinstance(outcome, SendError)
            change: dict[str, Any] = {"id": mail.id, "attempts": tries, "last_error": str(outcome)[:2000]}
            if outcome.permanent or tries >= self.settings.max_attempts:
                why = "permanent failure" if outcome.permanent else f"gave up after {tries} attempts"
                change["status"] = OutboundStatus.DEAD
                facts = {
                    "mail": mail.kind,
                    "to": to,
                    "error": str(outcome)[:300],
                    "permanent": outcome.permanent,
                    "tries": tries,
                }
                history.append((mail, "mail_dead", f"{to}: {why}: {outcome}", facts))
                result.dead += 1
                log.error("outbound #%s dead-lettered: %s", mail.id, outcome)
            else:
                change["status"] = OutboundStatus.PENDING
                change["next_attempt_at"] = now + backoff(tries, self.settings)
                result.retried += 1
                log.warning("outbound #%s deferred (attempt %s): %s", mail.id, tries, outcome)
            result.errors.append(str(outcome))
            if isinstance(outcome, ServerUnavailable):
                result.unavailable.append(str(outcome))
            changes.append(change)
        # Core statements, one executemany per shape of change: the ORM's bulk update by primary
        # key did the same work with a mapper's bookkeeping for every row.
        table = cast(Table, models.OutboundMessage.__table__)
        for keys, group in _by_keys(changes).items():
            stmt = (
                update(table)
                .where(table.c.id == bindparam("out_id"))
                .values({k: bindparam(k) for k in keys if k != "id"})
            )
            s.execute(stmt, [{"out_id": row.pop("id"), **row} for row in group])
        _history(s, [(m.ticket_id, m.id, kind, detail, data) for m, kind, detail, data in history], now)


def _by_keys(rows: list[dict[str, Any]]) -> dict[tuple[str, ...], list[dict[str, Any]]]:
    """Group bulk-update parameter sets by their keys (one executemany per shape)."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(sorted(row)), []).append(row)
    return groups


def _history(
    session: Session, lines: Sequence[tuple[int | None, int, str, str, dict[str, Any] | None]], now: datetime
) -> None:
    """History lines of outgoing mail, (ticket id, outbound id, kind, detail, data) each, through the one
    writer of history lines, and written by the persist step at once; each carries its ticket's
    current state. Mail of no ticket has none."""
    # Imported here: this helper is the outbox's only writer of history lines.
    from mailbot.shell import persist

    wanted = {line[0] for line in lines if line[0] is not None}
    if not wanted:
        return
    # The tickets by id and state, not loaded: nothing here reads or changes their histories.
    tickets = {
        ticket_id: persist.TicketRef(ticket_id, state)
        for ticket_id, state in session.execute(
            select(models.Ticket.id, models.Ticket.state).where(models.Ticket.id.in_(wanted))
        )
    }
    effects = persist.Effects()
    for ticket_id, out_id, kind, detail, data in lines:
        ticket = tickets.get(ticket_id) if ticket_id is not None else None
        if ticket is not None:
            effects.record(
                ticket, kind, actor="system", now=now, detail=detail, outbound_id=out_id, data=data
            )
    persist.apply(session, effects)


async def sleep_until(event: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), timeout=max(0.0, seconds))
