"""The one place that wires database, mailbox, intake, outbox and scheduler together.

The stages are built when first used, and their modules imported then: `tickets list` and
`status` need the database only, the sending child the outbox only, and `run --once` on an
empty mailbox no parser (start-up time and memory, bench/footprint.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias, cast

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from mailbot.config import Config
from mailbot.core.workflow import InboundStatus, next_inbound
from mailbot.shell import health, models
from mailbot.shell.db import make_engine, migrate, session_factory
from mailbot.shell.fetch_lock import FetchLock
from mailbot.shell.mailbox import MailboxError, MailboxSource, open_source

if TYPE_CHECKING:
    from concurrent.futures import Future, ProcessPoolExecutor

    from mailbot.core.message import InboundMessage, UnreadableMessage
    from mailbot.pipeline.clocks import Clocks
    from mailbot.pipeline.intake import Intake, Outcome, Source
    from mailbot.pipeline.replies import Replies
    from mailbot.pipeline.sweep import Deadlines, SweepStats
    from mailbot.shell.outbox import DrainResult, Outbox
    from mailbot.shell.smtp import Sender

log = logging.getLogger(__name__)


def _init_parse_worker(parent: int) -> None:
    """A parse worker logs through the same masking filter as the daemon (no NIK in its logs)
    and exits when the daemon is gone."""
    from mailbot.core.masking import setup_worker_logging

    setup_worker_logging()
    exit_with_parent(parent)


def exit_with_parent(parent: int, interval: float = 1.0) -> None:
    """In a parse worker: exit when the daemon that started it is gone. A pool worker holds both
    ends of its call queue's pipe, so it would wait for work forever after a SIGKILL of the daemon
    (or the OOM killer's); an orphan is given to another parent, and that is what is watched."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


Parsed: TypeAlias = "InboundMessage | UnreadableMessage"


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class IntakeStats:
    fetched: int = 0
    processed: int = 0
    already_done: int = 0
    duplicates: int = 0
    machine: int = 0
    quarantined: int = 0
    ignored: int = 0
    standby: bool = False  # another process holds the fetch lock
    tickets: dict[str, None] = field(default_factory=dict)  # in order, each once (an ordered set)

    def count(self, outcome: Outcome) -> None:
        if outcome.already_done:
            self.already_done += 1
        elif outcome.status == "duplicate":
            self.duplicates += 1
        elif outcome.status == "machine":
            self.machine += 1
        elif outcome.status == "quarantined":
            self.quarantined += 1
        elif outcome.status == "ignored":
            self.ignored += 1
        else:
            self.processed += 1
            if outcome.ticket_number:
                self.tickets[outcome.ticket_number] = None


@dataclass
class _Batch:
    """Messages read in one round trip, stored group by group, marked together."""

    uids: list[str]
    pipelined: bool  # its groups went to the parse worker at once
    stream: Iterator[list[tuple[Source, bytes]]]  # groups as they are read
    groups: deque[tuple[list[tuple[Source, bytes]], Future[list[Parsed]] | None]] = field(
        default_factory=deque
    )
    done: list[str] = field(default_factory=list)
    quarantined: list[str] = field(default_factory=list)
    read_all: bool = False  # its stream is exhausted

    def held_bytes(self) -> int:
        """Bytes of mail read and not yet stored: what a backlog holds in memory."""
        return sum(len(raw) for group, _ in self.groups for _, raw in group)


class App:
    """Built by `create_app`; tests get a fresh one per test with their own config and clock."""

    def __init__(
        self,
        config: Config,
        *,
        engine: Engine | None = None,
        clock: Callable[[], datetime] = utcnow,
        sender: Sender | None = None,
        source_factory: Callable[[Config], MailboxSource] = open_source,
    ) -> None:
        self.config = config
        self.clock = clock
        self.engine = engine or make_engine(config.database_url, echo=config.settings.database.echo)
        self.sessions: sessionmaker[Session] = session_factory(self.engine)
        self._stages: dict[str, Any] = {}  # replies, clocks, intake, deadlines: see _stage
        self._outbox: Outbox | None = None
        self._sender = sender
        self._building = threading.RLock()
        self.source_factory = source_factory
        self._own_sender = sender is None
        self._parser: ProcessPoolExecutor | None = None
        self._read_up_to: str | None = None  # a pass's last UID read: the next search starts there
        self.fetch_lock = FetchLock(self.engine, config.data_dir, config.mailbox.redacted())
        self.stop_flag = threading.Event()
        # A hook for fault-injection tests: called between commit and marking in the mailbox.
        self.after_commit: Callable[[Outcome], None] | None = None

    def migrate(self) -> None:
        migrate(self.engine)

    # --- the stages, built at their first use (in any thread) ---------------------------

    def _stage(self, name: str) -> Any:
        """A stage by name, built at its first use (by whichever thread gets there first)."""
        with self._building:
            stage = self._stages.get(name)
            if stage is None:
                stage = self._stages[name] = self._build(name)
            return stage

    def _build(self, name: str) -> Any:
        if name == "replies":
            from mailbot.pipeline.replies import Replies

            return Replies(self.config)
        if name == "clocks":
            from mailbot.pipeline.clocks import Clocks

            return Clocks(self.config)
        if name == "intake":
            from mailbot.pipeline.intake import Intake

            return Intake(self.config, self._stage("replies"), self._stage("clocks"))
        from mailbot.pipeline.sweep import Deadlines

        return Deadlines(self.config, self._stage("replies"), self._stage("clocks"), self.sessions)

    @property
    def replies(self) -> Replies:
        return cast("Replies", self._stage("replies"))

    @property
    def clocks(self) -> Clocks:
        return cast("Clocks", self._stage("clocks"))

    @property
    def intake(self) -> Intake:
        return cast("Intake", self._stage("intake"))

    @property
    def deadlines(self) -> Deadlines:
        return cast("Deadlines", self._stage("deadlines"))

    @property
    def outbox(self) -> Outbox:
        with self._building:
            if self._outbox is None:
                from mailbot.shell.outbox import Outbox
                from mailbot.shell.smtp import make_sender

                smtp = self.config.settings.smtp
                self._outbox = Outbox(
                    self.sessions,
                    self._sender or [make_sender(self.config.smtp, smtp) for _ in range(smtp.connections)],
                    smtp,
                    self.clock,
                    journal=self.config.data_dir / "outbox-sent.journal",
                    templates_dir=self.config.templates_dir,
                )
            return self._outbox

    # --- intake ------------------------------------------------------------------------

    def process_raw(self, source: Source, raw: bytes, *, release: bool = False) -> Outcome:
        """Store and process one message in its own transaction, retrying on a lost race."""
        delay = 0.2
        for attempt in range(1, 8):
            try:
                with self.sessions.begin() as session:
                    return self.intake.process_message(session, source, raw, self.clock(), release=release)
            except (IntegrityError, StaleDataError):
                # Another process stored the same source key, took the same counter, or changed
                # the same ticket first: run the message again against what it committed.
                if attempt >= 3:
                    raise
            except OperationalError as exc:
                # Database locked or away: nothing was flagged. Wait a little and try again; after
                # that the caller pauses intake (the message stays unflagged in the mailbox).
                if attempt >= 4 or self.stop_flag.is_set():
                    raise
                log.warning("database unavailable (%s); retrying in %.1fs", exc.orig, delay)
                time.sleep(delay)
                delay = min(delay * 2, 30)
        raise AssertionError("the loop returns or raises")

    def process_batch(
        self, items: list[tuple[Source, bytes]], parsed: list[Parsed] | None = None
    ) -> list[Outcome]:
        """Several messages in one transaction: the common case, and much cheaper than one
        transaction each. If anything goes wrong, the whole group is rolled back and its messages
        are processed one by one, each in its own transaction with its own retries.
        `parsed`: the messages already parsed by the parse worker, in the same order."""
        if len(items) > 1 and not self.stop_flag.is_set():
            try:
                if parsed is None:
                    from mailbot.core.message import parse_many

                    limits = self.config.settings.limits
                    parsed = parse_many(
                        [raw for _, raw in items],
                        limits.max_message_bytes,
                        limits.max_mime_depth,
                        limits.max_attachments,
                    )
                with self.sessions.begin() as session:
                    self.intake.prefetch(session, items, parsed, self.clock())
                    return [
                        self.intake.process_message(session, source, raw, self.clock(), parsed[i])
                        for i, (source, raw) in enumerate(items)
                    ]
            except Exception as exc:  # the one-by-one path below reports it, or raises it
                log.debug("group rolled back", exc_info=True)
                log.info(
                    "a group of %s messages was rolled back (%s: %s); processing them one by one",
                    len(items),
                    type(exc).__name__,
                    exc,
                )
        return [self._process_alone(source, raw) for source, raw in items]

    def _process_alone(self, source: Source, raw: bytes) -> Outcome:
        """One message in its own transaction. A failure that is not the database's is a defect
        this message ran into: the message is quarantined with the reason (`mailbot replay` runs
        it again once fixed) and intake goes on with the next one."""
        try:
            return self.process_raw(source, raw)
        except DBAPIError:
            raise  # the database is away or refusing: intake pauses, nothing is marked
        except Exception as exc:
            from mailbot.pipeline.intake import Outcome

            reason = f"processing failed: {type(exc).__name__}: {exc}"[:2000]
            log.exception("%s UID %s quarantined: %s", source.mailbox, source.uid, reason)
            with self.sessions.begin() as session:
                row = models.InboundMessage(
                    mailbox=source.mailbox,
                    uidvalidity=source.uidvalidity,
                    uid=source.uid,
                    raw_sha256=hashlib.sha256(raw).hexdigest(),
                    received_at=self.clock(),
                    status=next_inbound(None, InboundStatus.QUARANTINED),
                    kind="error",
                    reason=reason,
                    size=len(raw),
                    raw=raw,
                )
                session.add(row)
                session.flush()
                return Outcome(row, row.status, "error", reason, None)

    def drain_mailbox(
        self, source: MailboxSource, stats: IntakeStats, committed: Callable[[], None] | None = None
    ) -> None:
        """Process everything now waiting in the folder, batch by batch; `committed` is called
        after each batch (the outbox can start on its mail while the next batch is read).

        A batch is processed in groups of `transaction_size`, one transaction each. With a
        backlog (two groups or more) every group of a batch goes to the parse worker at once, and
        the next batch is read as soon as the first group of the current one is stored: the worker
        parses it while this thread stores the rest, so neither waits at a batch's start."""
        uidvalidity = source.uidvalidity()
        self._note_uidvalidity(source.name, uidvalidity)
        batches: deque[_Batch] = deque()  # read, not yet marked: the current one and one ahead
        self._read_up_to = None
        try:
            while not self.stop_flag.is_set():
                if not batches and self._read_batch(source, uidvalidity, stats, batches) is None:
                    return
                batch = batches[0]
                if not batch.pipelined:
                    # A few messages: each group is stored as soon as it is read.
                    for group in batch.stream:
                        self._process_group(group, None, stats, batch.done, batch.quarantined)
                first = True
                while batch.groups and not self.stop_flag.is_set():
                    self._process_group(*batch.groups.popleft(), stats, batch.done, batch.quarantined)
                    if first and batch.pipelined and len(batches) == 1:
                        self._read_batch(source, uidvalidity, stats, batches)
                    first = False
                    self._read_ahead(batches)
                if self.stop_flag.is_set():
                    return
                batches.popleft()
                stored, handled = bool(batch.done), len(batch.done) + len(batch.quarantined)
                self._settle_batch(source, batch)
                if committed is not None and stored:
                    committed()
                if not handled and not batches:
                    return
        finally:
            # Only what is committed is marked; a crash before this line re-reads those
            # messages, and their (mailbox, UIDVALIDITY, UID) key makes that harmless.
            for batch in batches:
                self._settle_batch(source, batch)

    def _read_batch(
        self, source: MailboxSource, uidvalidity: int, stats: IntakeStats, batches: deque[_Batch]
    ) -> _Batch | None:
        """Read the next batch of messages not already read (appended to `batches`); with a
        backlog its groups are handed to the parse worker. None when nothing more is waiting."""
        settings = self.config.settings.mailbox
        reading = {uid for b in batches for uid in b.uids}
        candidates = source.pending(settings.batch_size + len(reading), after=self._read_up_to)
        uids = [u for u in candidates if u not in reading][: settings.batch_size]
        if not uids:
            return None
        self._read_up_to = uids[-1]
        pipelined = len(uids) >= 2 * settings.transaction_size and self._parse_workers() is not None
        batch = _Batch(uids, pipelined, self._groups(source, uids, uidvalidity, stats))
        batches.append(batch)
        if pipelined:
            self._read_ahead(batches)
        return batch

    def _read_ahead(self, batches: deque[_Batch]) -> None:
        """Hand the parse worker the next groups of the pipelined batches, while the mail read
        and not yet stored stays within `limits.max_message_bytes` (at least one group each):
        a backlog of large mail is read as it is stored, never a whole batch at once."""
        budget = self.config.settings.limits.max_message_bytes
        held = sum(b.held_bytes() for b in batches)
        for batch in batches:
            while batch.pipelined and not batch.read_all and (held < budget or not batch.groups):
                group = next(batch.stream, None)
                if group is None:
                    batch.read_all = True
                    break
                batch.groups.append((group, self._submit_parse(group)))
                held += sum(len(raw) for _, raw in group)

    @staticmethod
    def _settle_batch(source: MailboxSource, batch: _Batch) -> None:
        done, quarantined = batch.done, batch.quarantined
        batch.done, batch.quarantined = [], []
        if done:
            source.mark_done(done)
        if quarantined:
            source.quarantine(quarantined)

    def _groups(
        self, source: MailboxSource, uids: list[str], uidvalidity: int, stats: IntakeStats
    ) -> Iterator[list[tuple[Source, bytes]]]:
        from mailbot.pipeline.intake import Source

        # A group is one transaction: at most `transaction_size` messages and at most
        # `limits.max_message_bytes` of mail (one message at least): large mail is stored a few at
        # a time.
        size = self.config.settings.mailbox.transaction_size
        budget = self.config.settings.limits.max_message_bytes
        group: list[tuple[Source, bytes]] = []
        held = 0
        for uid, raw in source.fetch(uids):
            if self.stop_flag.is_set():
                return
            stats.fetched += 1
            if group and held + len(raw) > budget:
                yield group
                group, held = [], 0
            group.append((Source(source.name, uidvalidity, uid), raw))
            held += len(raw)
            if len(group) >= size:
                yield group
                group, held = [], 0
        if group:
            yield group

    def _parse_workers(self) -> ProcessPoolExecutor | None:
        """The parse worker process, started at the first backlog (none with parse_workers = 0)."""
        count = self.config.settings.mailbox.parse_workers
        if count and self._parser is None:
            from concurrent.futures import ProcessPoolExecutor
            from multiprocessing import get_context

            self._parser = ProcessPoolExecutor(
                max_workers=count,
                mp_context=get_context("spawn"),
                initializer=_init_parse_worker,
                initargs=(os.getpid(),),
            )
        return self._parser

    def _submit_parse(self, group: list[tuple[Source, bytes]]) -> Future[list[Parsed]] | None:
        workers = self._parser  # None once it failed: parsed here until the next batch
        if workers is None:
            return None
        from concurrent.futures.process import BrokenProcessPool

        from mailbot.core.message import parse_many

        limits = self.config.settings.limits
        try:
            return workers.submit(
                parse_many,
                [raw for _, raw in group],
                limits.max_message_bytes,
                limits.max_mime_depth,
                limits.max_attachments,
            )
        except (BrokenProcessPool, RuntimeError) as exc:
            self._drop_parse_workers(exc)
            return None

    def _drop_parse_workers(self, exc: BaseException) -> None:
        log.warning("parse worker failed (%s: %s); parsing in the intake thread", type(exc).__name__, exc)
        if self._parser is not None:
            self._parser.shutdown(wait=False, cancel_futures=True)
            self._parser = None

    def _process_group(
        self,
        group: list[tuple[Source, bytes]],
        future: Future[list[Parsed]] | None,
        stats: IntakeStats,
        done: list[str],
        quarantined: list[str],
    ) -> None:
        parsed: list[Parsed] | None = None
        if future is not None:
            try:
                parsed = future.result()
            except Exception as exc:  # a dead or broken worker: this thread parses instead
                self._drop_parse_workers(exc)
        outcomes = self.process_batch(group, parsed)
        for (src, _raw), outcome in zip(group, outcomes, strict=True):
            if self.after_commit is not None:
                self.after_commit(outcome)
            stats.count(outcome)
            (quarantined if outcome.quarantined else done).append(src.uid)

    def _note_uidvalidity(self, mailbox: str, uidvalidity: int) -> None:
        """Remember the folder's UIDVALIDITY; a change is logged (RFC 3501 s. 2.3.1.1).

        Nothing is re-ingested because of it: the new UIDs are new keys, and the
        same bytes / Message-ID dedupe finds every message already handled.
        """
        with self.sessions.begin() as session:
            state = session.get(models.MailboxState, mailbox)
            if state is None:
                session.add(
                    models.MailboxState(mailbox=mailbox, uidvalidity=uidvalidity, updated_at=self.clock())
                )
            elif state.uidvalidity != uidvalidity:
                log.warning(
                    "UIDVALIDITY of %s changed from %s to %s: messages already handled are "
                    "recognised by content and Message-ID, not processed again",
                    mailbox,
                    state.uidvalidity,
                    uidvalidity,
                )
                state.uidvalidity = uidvalidity
                state.updated_at = self.clock()

    def run_intake_once(self) -> IntakeStats:
        stats = IntakeStats()
        if not self.fetch_lock.acquire():
            log.info("another mailbot process reads the mailbox: intake skipped")
            stats.standby = True
            return stats
        try:
            return self._intake_once(stats)
        finally:
            self.fetch_lock.release()

    def _intake_once(self, stats: IntakeStats) -> IntakeStats:
        source = self.source_factory(self.config)
        try:
            source.connect()
            self.drain_mailbox(source, stats)
        except MailboxError as exc:
            health.record(self.sessions, "intake", self.clock(), str(exc))
            raise
        finally:
            source.close()
        health.record(self.sessions, "intake", self.clock())
        return stats

    def sweep_deadlines(self) -> SweepStats:
        """Reminders, escalations, survey reminders, auto-close, digests that are due now."""
        return self.deadlines.sweep(self.clock())

    async def send_pending(self) -> DrainResult:
        result = await self.outbox.drain()
        # A server not reached means sending is failing; a refusal of one mail does not.
        down = result.unavailable
        await asyncio.to_thread(
            health.record,
            self.sessions,
            "outbox",
            self.clock(),
            down[-1] if down and not result.sent else None,
        )
        return result

    def close(self) -> None:
        if self._parser is not None:
            self._parser.shutdown(wait=False, cancel_futures=True)
            self._parser = None
        self.engine.dispose()


def create_app(config: Config, **kwargs: object) -> App:
    app = App(config, **kwargs)  # type: ignore[arg-type]
    app.migrate()
    return app


def data_path(config: Config, *parts: str) -> Path:
    return config.data_dir.joinpath(*parts)
