"""The one place that wires database, mailbox, intake, outbox and scheduler together.

The stages are built when first used, and their modules imported then: `tickets list` and
`status` need the database only, the sending child the outbox only, and `run --once` on an
empty mailbox no parser (start-up time and memory, bench/footprint.py).
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from mailbot.config import Config
from mailbot.core.workflow import InboundStatus, next_inbound
from mailbot.pipeline.fetch import IntakeStats, MailboxPass, Parsed, note_uidvalidity
from mailbot.shell import health, models, persist
from mailbot.shell.db import make_engine, migrate, session_factory
from mailbot.shell.fetch_lock import FetchLock
from mailbot.shell.mailbox import MailboxError, MailboxSource, open_source

if TYPE_CHECKING:
    from concurrent.futures import ProcessPoolExecutor

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


def utcnow() -> datetime:
    return datetime.now(UTC)


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

        return Deadlines(self.config, lambda: self._stage("replies"), self._stage("clocks"), self.sessions)

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
                with persist.unit(self.sessions) as (session, effects):
                    return self.intake.process_message(
                        session, effects, source, raw, self.clock(), release=release
                    )
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
        are processed one by one, each in its own transaction with its own retries. The group has
        one `Effects`, applied once before the commit (and where a message reads rows the group
        wrote: `Intake`); its messages' lookups count what it holds (`Known`, in memory).
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
                with persist.unit(self.sessions) as (session, effects):
                    self.intake.prefetch(session, items, parsed, self.clock())
                    return [
                        self.intake.process_message(session, effects, source, raw, self.clock(), parsed[i])
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
        """Process everything now waiting in the folder, batch by batch (pipeline/fetch.py);
        `committed` is called after each batch (the outbox can start on its mail while the next
        batch is read)."""
        uidvalidity = source.uidvalidity()
        with self.sessions.begin() as session:
            note_uidvalidity(session, source.name, uidvalidity, self.clock())
        MailboxPass(
            source,
            uidvalidity,
            stats,
            self.config.settings,
            self.stop_flag,
            store=self.process_batch,
            parse_workers=self._parse_workers,
            drop_parse_workers=self._drop_parse_workers,
            after_commit=self.after_commit,
        ).run(committed)

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

    def _drop_parse_workers(self, exc: BaseException) -> None:
        log.warning("parse worker failed (%s: %s); parsing in the intake thread", type(exc).__name__, exc)
        if self._parser is not None:
            self._parser.shutdown(wait=False, cancel_futures=True)
            self._parser = None

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

    def outbox_has_work(self) -> bool:
        """Whether `send_pending` has anything to do now (shell/store.outbox_has_work)."""
        from mailbot.shell.store import outbox_has_work

        with self.sessions.begin() as session:
            return outbox_has_work(session, self.clock())

    def outbox_idle(self) -> None:
        """What `send_pending` records when it finds nothing to send, without starting the sending
        side: the outbox is healthy."""
        health.record(self.sessions, "outbox", self.clock())

    async def send_pending(self) -> DrainResult:
        import asyncio

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
