"""The running service: the intake thread, the scheduler, the sending child and signals.

`App` (mailbot.app) wires the parts; this module runs them until SIGTERM or SIGINT:
the intake thread reads the mailbox (IDLE or polling) and decides, the scheduler sweeps
deadlines, and a child process (`run --sender-only`) or a loop here drains the outbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy.exc import DBAPIError

from mailbot.app import App, IntakeStats
from mailbot.config import Config
from mailbot.shell import health
from mailbot.shell.mailbox import MailboxError, MailboxSource
from mailbot.shell.outbox import sleep_until

log = logging.getLogger(__name__)


def intake_loop(app: App, wake_outbox: Callable[[], None]) -> None:
    """The intake thread: connect, drain, wait (IDLE or poll); reconnect with backoff."""
    settings = app.config.settings.mailbox
    delay = 1.0
    source: MailboxSource | None = None
    standby_logged = False
    while not app.stop_flag.is_set():
        try:
            if source is None:
                if not app.fetch_lock.acquire():
                    if not standby_logged:
                        log.info("standby: another mailbot process reads the mailbox; this one sends")
                        standby_logged = True
                    app.stop_flag.wait(min(settings.poll_interval, 5.0))
                    continue
                log.info("fetch lock taken: this process reads the mailbox")
                standby_logged = False
                source = app.source_factory(app.config)
                source.connect()
                delay = 1.0
            elif not app.fetch_lock.still_held():
                log.warning("fetch lock lost with its database session; reading stops until retaken")
                source.close()
                source = None
                continue
            stats = IntakeStats()
            app.drain_mailbox(source, stats, wake_outbox)
            health.record(app.sessions, "intake", app.clock())
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
            source.wait(settings.idle_timeout, app.stop_flag)
        except MailboxError as exc:
            log.warning("mailbox error: %s; reconnecting in %.0fs", exc, delay)
            health.record(app.sessions, "intake", app.clock(), str(exc))
            if source is not None:
                source.close()
            source = None
            app.stop_flag.wait(delay)
            delay = min(delay * 2, settings.reconnect_max_seconds)
        except (DBAPIError, OSError) as exc:
            log.error("intake paused: %s; retrying in %.0fs", exc, delay)
            health.record(app.sessions, "intake", app.clock(), f"{type(exc).__name__}: {exc}")
            app.stop_flag.wait(delay)
            delay = min(delay * 2, settings.reconnect_max_seconds)
    if source is not None:
        source.close()
    app.fetch_lock.release()


def _on_stop_signals(loop: asyncio.AbstractEventLoop, stop: Callable[[], None]) -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop)


async def serve(app: App) -> None:
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
        app.stop_flag.set()
        stopping.set()
        wake.set()

    _on_stop_signals(loop, request_stop)
    child = (
        SenderProcess(app.config)
        if app.config.settings.smtp.sender_process and app._own_sender and app.config.source
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
            if (await asyncio.to_thread(app.sweep_deadlines)).total:
                wake_outbox()
        except (DBAPIError, OSError) as exc:  # the database away: the next sweep catches up
            log.error("deadline sweep failed: %s", exc)

    scheduler.add_job(
        deadline_sweep,
        "interval",
        seconds=app.config.settings.calendar.sweep_seconds,
        id="deadline-sweep",
        next_run_time=app.clock(),
        max_instances=1,
        coalesce=True,
    )
    scheduler.start()
    intake = asyncio.create_task(asyncio.to_thread(intake_loop, app, wake_outbox))
    try:
        if child is not None:
            await child.supervise(stopping)
        else:
            await send_loop(app, wake, stopping)
    finally:
        app.stop_flag.set()
        await intake
        scheduler.shutdown(wait=False)
        if child is not None:
            await asyncio.to_thread(child.stop)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    log.info("stopped")


async def serve_sender(app: App, wake_fd: int | None = None) -> None:
    """Only the outbox loop (the daemon's sending child, or an extra sender by hand): woken
    by a byte on `wake_fd`, stopped by SIGTERM/SIGINT or when the writer closes the pipe."""
    loop = asyncio.get_running_loop()
    wake = asyncio.Event()
    stopping = asyncio.Event()

    def request_stop() -> None:
        stopping.set()
        wake.set()

    _on_stop_signals(loop, request_stop)
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
        await send_loop(app, wake, stopping)
    finally:
        if wake_fd is not None:
            loop.remove_reader(wake_fd)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


async def send_loop(app: App, wake: asyncio.Event, stopping: asyncio.Event) -> None:
    delay = 1.0
    while not stopping.is_set():
        wake.clear()
        try:
            result = await app.send_pending()
            next_due = app.outbox.next_due()
        except (DBAPIError, OSError) as exc:
            # The database is away: claims hold nothing sent but unrecorded for longer than
            # their lease, and the journal covers those. Try again with backoff.
            log.error("outbox paused: %s; retrying in %.0fs", exc, delay)
            await sleep_until(stopping, delay)
            delay = min(delay * 2, app.config.settings.mailbox.reconnect_max_seconds)
            continue
        delay = 1.0
        if result.sent or result.dead:
            log.info("outbox: %s sent, %s deferred, %s dead", result.sent, result.retried, result.dead)
        wait = 60.0 if next_due is None else (next_due - app.clock()).total_seconds()
        await sleep_until(wake, min(max(wait, 0.05), 60.0))


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
