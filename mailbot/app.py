"""The one place that wires database, mailbox, intake, outbox and scheduler together."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing import get_context
from pathlib import Path

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from mailbot.config import Config
from mailbot.core.message import InboundMessage, UnreadableMessage, parse_many
from mailbot.core.workflow import InboundStatus, next_inbound
from mailbot.pipeline.intake import Intake, Outcome, Source
from mailbot.pipeline.replies import Replies
from mailbot.pipeline.sweep import Clocks, Deadlines, SweepStats
from mailbot.shell import health, models
from mailbot.shell.db import make_engine, migrate, session_factory
from mailbot.shell.fetch_lock import FetchLock
from mailbot.shell.mailbox import MailboxError, MailboxSource, open_source
from mailbot.shell.outbox import DrainResult, Outbox, Sender, make_sender, sleep_until

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


Parsed = InboundMessage | UnreadableMessage


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
        self.replies = Replies(config)
        self.clocks = Clocks(config)
        self.intake = Intake(config, self.replies, self.clocks)
        self.deadlines = Deadlines(config, self.replies, self.clocks, self.sessions)
        smtp = config.settings.smtp
        self.outbox = Outbox(
            self.sessions,
            sender or [make_sender(config.smtp, smtp) for _ in range(smtp.connections)],
            config.settings.smtp,
            clock,
            journal=config.data_dir / "outbox-sent.journal",
        )
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
        if pipelined:
            batch.groups.extend((group, self._submit_parse(group)) for group in batch.stream)
        batches.append(batch)
        return batch

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
        size = self.config.settings.mailbox.transaction_size
        group: list[tuple[Source, bytes]] = []
        for uid, raw in source.fetch(uids):
            if self.stop_flag.is_set():
                return
            stats.fetched += 1
            group.append((Source(source.name, uidvalidity, uid), raw))
            if len(group) >= size:
                yield group
                group = []
        if group:
            yield group

    def _parse_workers(self) -> ProcessPoolExecutor | None:
        """The parse worker process, started at the first backlog (none with parse_workers = 0)."""
        count = self.config.settings.mailbox.parse_workers
        if count and self._parser is None:
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

    def intake_loop(self, wake_outbox: Callable[[], None]) -> None:
        """The intake thread: connect, drain, wait (IDLE or poll); reconnect with backoff."""
        settings = self.config.settings.mailbox
        delay = 1.0
        source: MailboxSource | None = None
        standby_logged = False
        while not self.stop_flag.is_set():
            try:
                if source is None:
                    if not self.fetch_lock.acquire():
                        if not standby_logged:
                            log.info("standby: another mailbot process reads the mailbox; this one sends")
                            standby_logged = True
                        self.stop_flag.wait(min(settings.poll_interval, 5.0))
                        continue
                    log.info("fetch lock taken: this process reads the mailbox")
                    standby_logged = False
                    source = self.source_factory(self.config)
                    source.connect()
                    delay = 1.0
                elif not self.fetch_lock.still_held():
                    log.warning("fetch lock lost with its database session; reading stops until retaken")
                    source.close()
                    source = None
                    continue
                stats = IntakeStats()
                self.drain_mailbox(source, stats, wake_outbox)
                health.record(self.sessions, "intake", self.clock())
                if stats.fetched:
                    log.info(
                        "intake: %s fetched, %s processed, %s duplicates, %s machine, %s quarantined",
                        stats.fetched,
                        stats.processed,
                        stats.duplicates,
                        stats.machine,
                        stats.quarantined,
                    )
                    wake_outbox()
                source.wait(settings.idle_timeout, self.stop_flag)
            except MailboxError as exc:
                log.warning("mailbox error: %s; reconnecting in %.0fs", exc, delay)
                health.record(self.sessions, "intake", self.clock(), str(exc))
                if source is not None:
                    source.close()
                source = None
                self.stop_flag.wait(delay)
                delay = min(delay * 2, settings.reconnect_max_seconds)
            except (DBAPIError, OSError) as exc:
                log.error("intake paused: %s; retrying in %.0fs", exc, delay)
                health.record(self.sessions, "intake", self.clock(), f"{type(exc).__name__}: {exc}")
                self.stop_flag.wait(delay)
                delay = min(delay * 2, settings.reconnect_max_seconds)
        if source is not None:
            source.close()
        self.fetch_lock.release()

    # --- daemon ------------------------------------------------------------------------

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

    def _on_stop_signals(self, loop: asyncio.AbstractEventLoop, stop: Callable[[], None]) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop)

    async def run(self) -> None:
        """The daemon: intake thread, scheduler and outbox until SIGTERM/SIGINT.

        With `smtp.sender_process` (the default) the outbox is drained by a child process of its
        own (`run --sender-only`), woken through a pipe whenever mail is queued: sending then runs
        on another core than intake. The child stops when the pipe closes, so it never outlives
        this process; if it dies, it is started again.
        """
        loop = asyncio.get_running_loop()
        wake = asyncio.Event()
        stopping = asyncio.Event()

        def request_stop() -> None:
            log.info("stopping: finishing the message in hand")
            self.stop_flag.set()
            stopping.set()
            wake.set()

        self._on_stop_signals(loop, request_stop)
        child = (
            SenderProcess(self.config)
            if self.config.settings.smtp.sender_process and self._own_sender and self.config.source
            else None
        )

        def wake_outbox() -> None:
            if child is not None:
                child.wake()
            else:
                loop.call_soon_threadsafe(wake.set)

        scheduler = AsyncIOScheduler(event_loop=loop)
        scheduler.add_job(wake_outbox, "interval", seconds=60, id="outbox-sweep")

        async def deadline_sweep() -> None:
            try:
                if (await asyncio.to_thread(self.sweep_deadlines)).total:
                    wake_outbox()
            except (DBAPIError, OSError) as exc:  # the database away: the next sweep catches up
                log.error("deadline sweep failed: %s", exc)

        scheduler.add_job(
            deadline_sweep,
            "interval",
            seconds=self.config.settings.calendar.sweep_seconds,
            id="deadline-sweep",
            next_run_time=self.clock(),
            max_instances=1,
            coalesce=True,
        )
        scheduler.start()
        intake = asyncio.create_task(asyncio.to_thread(self.intake_loop, wake_outbox))
        try:
            if child is not None:
                await child.supervise(stopping)
            else:
                await self._send_loop(wake, stopping)
        finally:
            self.stop_flag.set()
            await intake
            scheduler.shutdown(wait=False)
            if child is not None:
                await asyncio.to_thread(child.stop)
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
        log.info("stopped")

    async def run_sender(self, wake_fd: int | None = None) -> None:
        """Only the outbox loop (the daemon's sending child, or an extra sender by hand): woken
        by a byte on `wake_fd`, stopped by SIGTERM/SIGINT or when the writer closes the pipe."""
        loop = asyncio.get_running_loop()
        wake = asyncio.Event()
        stopping = asyncio.Event()

        def request_stop() -> None:
            stopping.set()
            wake.set()

        self._on_stop_signals(loop, request_stop)
        if wake_fd is not None:
            os.set_blocking(wake_fd, False)

            def readable() -> None:
                try:
                    data = os.read(wake_fd, 4096)
                except BlockingIOError:
                    return
                if not data:  # the daemon is gone: finish what is in hand, then stop
                    loop.remove_reader(wake_fd)
                    request_stop()
                wake.set()

            loop.add_reader(wake_fd, readable)
        try:
            await self._send_loop(wake, stopping)
        finally:
            if wake_fd is not None:
                loop.remove_reader(wake_fd)
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)

    async def _send_loop(self, wake: asyncio.Event, stopping: asyncio.Event) -> None:
        delay = 1.0
        while not stopping.is_set():
            wake.clear()
            try:
                result = await self.send_pending()
                next_due = self.outbox.next_due()
            except (DBAPIError, OSError) as exc:
                # The database is away: claims hold nothing sent but unrecorded for longer than
                # their lease, and the journal covers those. Try again with backoff.
                log.error("outbox paused: %s; retrying in %.0fs", exc, delay)
                await sleep_until(stopping, delay)
                delay = min(delay * 2, self.config.settings.mailbox.reconnect_max_seconds)
                continue
            delay = 1.0
            if result.sent or result.dead:
                log.info("outbox: %s sent, %s deferred, %s dead", result.sent, result.retried, result.dead)
            wait = 60.0 if next_due is None else (next_due - self.clock()).total_seconds()
            await sleep_until(wake, min(max(wait, 0.05), 60.0))

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


class SenderProcess:
    """The daemon's sending child: `mailbot run --sender-only`, woken through a pipe."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.proc: subprocess.Popen[bytes] | None = None
        self._wake_fd: int | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        read_fd, write_fd = os.pipe()
        cmd = [sys.executable, "-m", "mailbot", "--config", str(self.config.source)]
        if logging.getLogger().isEnabledFor(logging.DEBUG):
            cmd.append("-v")
        cmd += ["run", "--sender-only", "--wake-fd", str(read_fd)]
        try:
            # Our own interpreter and module, our own config path: no outside input in the command.
            self.proc = subprocess.Popen(cmd, pass_fds=(read_fd,), stdin=subprocess.DEVNULL)  # noqa: S603
        finally:
            os.close(read_fd)
        os.set_blocking(write_fd, False)
        with self._lock:
            self._wake_fd = write_fd
        log.info("sender process %s started", self.proc.pid)

    def wake(self) -> None:
        """Tell the child there is mail (any thread; a full pipe already says so)."""
        with self._lock:
            if self._wake_fd is None:
                return
            with contextlib.suppress(BlockingIOError, BrokenPipeError):
                os.write(self._wake_fd, b"\x01")

    async def supervise(self, stopping: asyncio.Event) -> None:
        """Start the child; start it again when it dies, until the daemon stops."""
        delay = 1.0
        self.start()
        while not stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), timeout=1.0)
            assert self.proc is not None
            code = self.proc.poll()
            if code is None or stopping.is_set():
                continue
            log.error("sender process exited with status %s; starting it again in %.0fs", code, delay)
            self._close_pipe()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), timeout=delay)
            delay = min(delay * 2, 60.0)
            if not stopping.is_set():
                self.start()

    def _close_pipe(self) -> None:
        with self._lock:
            fd, self._wake_fd = self._wake_fd, None
        if fd is not None:
            os.close(fd)

    def stop(self, timeout: float = 60.0) -> None:
        """Close the pipe (the child finishes its batch and exits); wait for it."""
        self._close_pipe()
        if self.proc is None:
            return
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            log.error("sender process %s did not stop in %.0fs; terminating it", self.proc.pid, timeout)
            self.proc.terminate()
            self.proc.wait(timeout=10)
