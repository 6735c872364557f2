"""Fetch: one pass over the mailbox folder, batch by batch, each stored in groups of bounded count
and bytes; with a backlog the parse worker parses ahead; messages are marked only after their commit.

The pass reads and marks through a `MailboxSource` and hands each group to its owner's group
transaction (`App.process_batch`); the parse worker process is the owner's too (started at the
first backlog, stopped when the App closes). The stages are imported inside the functions: the
factory imports this module, and `tickets list` and the sending child need no parser.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, TypeAlias

from sqlalchemy.orm import Session

from mailbot.settings import Settings
from mailbot.shell import models
from mailbot.shell.mailbox import MailboxSource

if TYPE_CHECKING:
    from concurrent.futures import Future, ProcessPoolExecutor

    from mailbot.core.message import InboundMessage, UnreadableMessage
    from mailbot.pipeline.intake import Outcome, Source

log = logging.getLogger(__name__)

Parsed: TypeAlias = "InboundMessage | UnreadableMessage"


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
class Batch:
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


def note_uidvalidity(session: Session, mailbox: str, uidvalidity: int, now: datetime) -> None:
    """Remember the folder's UIDVALIDITY; a change is logged (RFC 3501 s. 2.3.1.1).

    Nothing is re-ingested because of it: the new UIDs are new keys, and the
    same bytes / Message-ID dedupe finds every message already handled.
    """
    state = session.get(models.MailboxState, mailbox)
    if state is None:
        session.add(models.MailboxState(mailbox=mailbox, uidvalidity=uidvalidity, updated_at=now))
    elif state.uidvalidity != uidvalidity:
        log.warning(
            "UIDVALIDITY of %s changed from %s to %s: messages already handled are "
            "recognised by content and Message-ID, not processed again",
            mailbox,
            state.uidvalidity,
            uidvalidity,
        )
        state.uidvalidity = uidvalidity
        state.updated_at = now


class MailboxPass:
    """Everything now waiting in one folder, processed batch by batch (`run`).

    A batch is processed in groups of `transaction_size`, one transaction each. With a
    backlog (two groups or more) every group of a batch goes to the parse worker at once, and
    the next batch is read as soon as the first group of the current one is stored: the worker
    parses it while this thread stores the rest, so neither waits at a batch's start."""

    def __init__(
        self,
        source: MailboxSource,
        uidvalidity: int,
        stats: IntakeStats,
        settings: Settings,
        stop_flag: threading.Event,
        *,
        store: Callable[[list[tuple[Source, bytes]], list[Parsed] | None], list[Outcome]],
        parse_workers: Callable[[], ProcessPoolExecutor | None],
        drop_parse_workers: Callable[[BaseException], None],
        after_commit: Callable[[Outcome], None] | None = None,
    ) -> None:
        self.source = source
        self.uidvalidity = uidvalidity
        self.stats = stats
        self.settings = settings
        self.stop_flag = stop_flag
        self.store = store  # one group in one transaction, with their parsed messages if any
        self.parse_workers = parse_workers  # the parse worker, started at the first backlog
        self.drop_parse_workers = drop_parse_workers
        self.after_commit = after_commit  # a hook for fault injection: between commit and marking
        self.workers: ProcessPoolExecutor | None = None  # None once it failed: parsed here
        self.read_up_to: str | None = None  # the last UID read: the next search starts there

    def run(self, committed: Callable[[], None] | None = None) -> None:
        """`committed` is called after each batch (the outbox can start on its mail while the
        next batch is read)."""
        batches: deque[Batch] = deque()  # read, not yet marked: the current one and one ahead
        try:
            while not self.stop_flag.is_set():
                if not batches and self._read_batch(batches) is None:
                    return
                batch = batches[0]
                if not batch.pipelined:
                    # A few messages: each group is stored as soon as it is read.
                    for group in batch.stream:
                        self._process_group(group, None, batch.done, batch.quarantined)
                first = True
                while batch.groups and not self.stop_flag.is_set():
                    self._process_group(*batch.groups.popleft(), batch.done, batch.quarantined)
                    if first and batch.pipelined and len(batches) == 1:
                        self._read_batch(batches)
                    first = False
                    self._read_ahead(batches)
                if self.stop_flag.is_set():
                    return
                batches.popleft()
                stored, handled = bool(batch.done), len(batch.done) + len(batch.quarantined)
                self._settle_batch(self.source, batch)
                if committed is not None and stored:
                    committed()
                if not handled and not batches:
                    return
        finally:
            # Only what is committed is marked; a crash before this line re-reads those
            # messages, and their (mailbox, UIDVALIDITY, UID) key makes that harmless.
            for batch in batches:
                self._settle_batch(self.source, batch)

    def _read_batch(self, batches: deque[Batch]) -> Batch | None:
        """Read the next batch of messages not already read (appended to `batches`); with a
        backlog its groups are handed to the parse worker. None when nothing more is waiting."""
        settings = self.settings.mailbox
        reading = {uid for b in batches for uid in b.uids}
        candidates = self.source.pending(settings.batch_size + len(reading), after=self.read_up_to)
        uids = [u for u in candidates if u not in reading][: settings.batch_size]
        if not uids:
            return None
        self.read_up_to = uids[-1]
        pipelined = len(uids) >= 2 * settings.transaction_size and self._start_workers()
        batch = Batch(uids, pipelined, self._groups(uids))
        batches.append(batch)
        if pipelined:
            self._read_ahead(batches)
        return batch

    def _start_workers(self) -> bool:
        self.workers = self.parse_workers()
        return self.workers is not None

    def _read_ahead(self, batches: deque[Batch]) -> None:
        """Hand the parse worker the next groups of the pipelined batches, while the mail read
        and not yet stored stays within `limits.max_message_bytes` (at least one group each):
        a backlog of large mail is read as it is stored, never a whole batch at once."""
        budget = self.settings.limits.max_message_bytes
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
    def _settle_batch(source: MailboxSource, batch: Batch) -> None:
        done, quarantined = batch.done, batch.quarantined
        batch.done, batch.quarantined = [], []
        if done:
            source.mark_done(done)
        if quarantined:
            source.quarantine(quarantined)

    def _groups(self, uids: list[str]) -> Iterator[list[tuple[Source, bytes]]]:
        from mailbot.pipeline.intake import Source

        # A group is one transaction: at most `transaction_size` messages and at most
        # `limits.max_message_bytes` of mail (one message at least): large mail is stored a few at
        # a time.
        size = self.settings.mailbox.transaction_size
        budget = self.settings.limits.max_message_bytes
        group: list[tuple[Source, bytes]] = []
        held = 0
        for uid, raw in self.source.fetch(uids):
            if self.stop_flag.is_set():
                return
            self.stats.fetched += 1
            if group and held + len(raw) > budget:
                yield group
                group, held = [], 0
            group.append((Source(self.source.name, self.uidvalidity, uid), raw))
            held += len(raw)
            if len(group) >= size:
                yield group
                group, held = [], 0
        if group:
            yield group

    def _submit_parse(self, group: list[tuple[Source, bytes]]) -> Future[list[Parsed]] | None:
        workers = self.workers  # None once it failed: parsed here until the next batch
        if workers is None:
            return None
        from concurrent.futures.process import BrokenProcessPool

        from mailbot.core.message import parse_many

        limits = self.settings.limits
        try:
            return workers.submit(
                parse_many,
                [raw for _, raw in group],
                limits.max_message_bytes,
                limits.max_mime_depth,
                limits.max_attachments,
            )
        except (BrokenProcessPool, RuntimeError) as exc:
            self._drop_workers(exc)
            return None

    def _drop_workers(self, exc: BaseException) -> None:
        self.workers = None
        self.drop_parse_workers(exc)

    def _process_group(
        self,
        group: list[tuple[Source, bytes]],
        future: Future[list[Parsed]] | None,
        done: list[str],
        quarantined: list[str],
    ) -> None:
        parsed: list[Parsed] | None = None
        if future is not None:
            try:
                parsed = future.result()
            except Exception as exc:  # a dead or broken worker: this thread parses instead
                self._drop_workers(exc)
        outcomes = self.store(group, parsed)
        for (src, _raw), outcome in zip(group, outcomes, strict=True):
            if self.after_commit is not None:
                self.after_commit(outcome)
            self.stats.count(outcome)
            (quarantined if outcome.quarantined else done).append(src.uid)
