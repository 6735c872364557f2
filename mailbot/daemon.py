"""The running service: the intake thread, the scheduler, the sending child, signals, systemd.

`App` (mailbot.app) wires the parts; this module runs them until SIGTERM or SIGINT:
the intake thread reads the mailbox (IDLE or polling) and decides, the scheduler sweeps
deadlines, and a child process (`run --sender-only`) or a loop here drains the outbox.
Under systemd (`Type=notify`, dist/mailbot.service) the daemon says when it is ready, when it
stops, what it has done (STATUS=) and that its event loop runs (WATCHDOG=1): mailbot/systemd.py.
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
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError

from mailbot.app import App
from mailbot.config import Config
from mailbot.core.workflow import OutboundStatus
from mailbot.pipeline.fetch import IntakeStats
from mailbot.shell import health, models
from mailbot.shell.mailbox import MailboxError, MailboxSource
from mailbot.shell.outbox import sleep_until
from mailbot.systemd import SYSTEMD_VARIABLES, ServiceStatus, SystemdNotifier, ping_watchdog, report_status

log = logging.getLogger(__name__)

OUTBOX_SWEEP_SECONDS = 60  # mail queued by another process (`outbox retry`, `replay`) goes out within this


def mail_due(app: App, within: timedelta) -> bool:
    """Whether mail is queued to go out within `within` (or a claim of a dead sender runs out):
    one look along the outbox's status index, for starting the sending child."""
    table = models.OutboundMessage
    with app.sessions() as session:
        row = session.execute(
            select(table.id)
            .where(
                table.status.in_((OutboundStatus.PENDING, OutboundStatus.SENDING)),
                table.next_attempt_at <= app.clock() + within,
            )
            .limit(1)
        ).first()
    return row is not None


def _ignore_pass(stats: IntakeStats | None, problem: str | None) -> None:
    return None


def intake_loop(
    app: App,
    wake_outbox: Callable[[], None],
    on_pass: Callable[[IntakeStats | None, str | None], None] = _ignore_pass,
) -> None:
    """The intake thread: connect, drain, wait (IDLE or poll); reconnect with backoff.

    `on_pass` hears of each pass (its counts) and each failure or standby (why no pass): the
    first call says that the mailbox has been tried, which is when the service is ready."""
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
                        on_pass(None, "standby (another process reads the mailbox)")
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
            on_pass(stats, None)
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
            on_pass(None, f"mailbox unavailable: {exc}")
            if source is not None:
                source.close()
            source = None
            app.stop_flag.wait(delay)
            delay = min(delay * 2, settings.reconnect_max_seconds)
        except (DBAPIError, OSError) as exc:
            log.error("intake paused: %s; retrying in %.0fs", exc, delay)
            health.record(app.sessions, "intake", app.clock(), f"{type(exc).__name__}: {exc}")
            on_pass(None, f"intake paused: {type(exc).__name__}")
            app.stop_flag.wait(delay)
            delay = min(delay * 2, settings.reconnect_max_seconds)
    if source is not None:
        source.close()
    app.fetch_lock.release()


def _on_stop_signals(loop: asyncio.AbstractEventLoop, stop: Callable[[], None]) -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop)


async def serve(app: App, notifier: SystemdNotifier | None = None) -> None:
    """The daemon: intake thread, scheduler and outbox until SIGTERM/SIGINT.

    With `smtp.sender_process` (the default) the outbox is drained by a child process of its
    own (`run --sender-only`), woken through a pipe whenever mail is queued: sending then runs
    on another core than intake. The child stops when the pipe closes, so it never outlives
    this process; if it dies, it is started again.

    systemd hears READY=1 once the schema is current (before this is called) and the mailbox
    has been tried once, STOPPING=1 at SIGTERM, WATCHDOG=1 from the event loop at half the
    watchdog interval while the intake thread lives, and a STATUS= line as work is done.
    """
    from apscheduler.schedulers.asyncio import AsyncIOScheduler  # the daemon's only: not `run --once`

    notifier = notifier or SystemdNotifier(os.environ)
    loop = asyncio.get_running_loop()
    wake = asyncio.Event()
    stopping = asyncio.Event()
    tried = asyncio.Event()  # the intake thread has tried the mailbox once
    service = ServiceStatus()
    child = (
        SenderProcess(app.config)
        if app.config.settings.smtp.sender_process and app._own_sender and app.config.source
        else None
    )

    def request_stop() -> None:
        log.info("stopping: finishing the message in hand")
        notifier.notify("STOPPING=1", "STATUS=stopping: finishing the message in hand")
        app.stop_flag.set()
        stopping.set()
        wake.set()
        tried.set()
        if child is not None:
            child.poke()

    _on_stop_signals(loop, request_stop)

    def wake_outbox() -> None:
        if child is not None:
            child.wake()
        else:
            loop.call_soon_threadsafe(wake.set)

    def on_pass(stats: IntakeStats | None, problem: str | None) -> None:  # in the intake thread
        def note() -> None:
            service.add(stats, problem)
            tried.set()

        loop.call_soon_threadsafe(note)

    scheduler = AsyncIOScheduler(event_loop=loop)
    scheduler.add_job(wake_outbox, "interval", seconds=OUTBOX_SWEEP_SECONDS, id="outbox-sweep")

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
    intake = asyncio.create_task(asyncio.to_thread(intake_loop, app, wake_outbox, on_pass))
    systemd = (
        [
            asyncio.create_task(ping_watchdog(notifier, intake, stopping)),
            asyncio.create_task(report_status(app, notifier, service, tried, stopping)),
        ]
        if notifier.enabled
        else []
    )

    async def outbox_due() -> bool:
        # Mail due within the outbox sweep's minute: the sweep looks again after that.
        return await asyncio.to_thread(mail_due, app, timedelta(seconds=OUTBOX_SWEEP_SECONDS))

    try:
        if child is not None:
            await child.supervise(stopping, outbox_due)
        else:
            await send_loop(app, wake, stopping)
    finally:
        app.stop_flag.set()
        await intake
        scheduler.shutdown(wait=False)
        if child is not None:
            await asyncio.to_thread(child.stop)
        for task in systemd:
            task.cancel()
        await asyncio.gather(*systemd, return_exceptions=True)
        notifier.close()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    log.info("stopped")


async def serve_sender(app: App, wake_fd: int | None = None, idle_exit: float | None = None) -> None:
    """Only the outbox loop (the daemon's sending child, or an extra sender by hand): woken
    by a byte on `wake_fd`, stopped by SIGTERM/SIGINT or when the writer closes the pipe, or
    after `idle_exit` seconds with nothing to send."""
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
        await send_loop(app, wake, stopping, idle_exit)
    finally:
        if wake_fd is not None:
            loop.remove_reader(wake_fd)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


async def send_loop(
    app: App, wake: asyncio.Event, stopping: asyncio.Event, idle_exit: float | None = None
) -> None:
    """Drain the outbox whenever woken or mail falls due. With `idle_exit` (the daemon's sending
    child) return once nothing has been due for that many seconds: the daemon starts the child
    again when mail is queued, and an idle service holds one process, not two."""
    delay = 1.0
    busy_at = time.monotonic()
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
        if idle_exit is not None:
            if result.sent or result.retried or result.dead or wait <= idle_exit:
                busy_at = time.monotonic()
            idle_left = idle_exit - (time.monotonic() - busy_at)
            if idle_left <= 0:
                log.info("sender: nothing to send for %.0fs; exiting until mail is queued", idle_exit)
                return
            wait = min(wait, idle_left)
        await sleep_until(wake, min(max(wait, 0.05), 60.0))


class SenderProcess:
    """The daemon's sending child: `mailbot run --sender-only`, woken through a pipe.

    Started when mail is queued (or found due), it exits by itself after
    `smtp.sender_idle_seconds` with nothing to send (status 0) and is started again at the next
    mail; one that dies otherwise is started again with backoff."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.proc: subprocess.Popen[bytes] | None = None
        self._wake_fd: int | None = None
        self._lock = threading.Lock()
        self._look: Callable[[], None] | None = None  # asks `supervise` to look for mail

    def start(self) -> None:
        read_fd, write_fd = os.pipe()
        cmd = [sys.executable, "-m", "mailbot", "--config", str(self.config.source)]
        if logging.getLogger().isEnabledFor(logging.DEBUG):
            cmd.append("-v")
        cmd += ["run", "--sender-only", "--wake-fd", str(read_fd)]
        try:
            # Our own interpreter and module, our own config path: no outside input in the command.
            self.proc = subprocess.Popen(  # noqa: S603
                cmd,
                pass_fds=(read_fd,),
                stdin=subprocess.DEVNULL,
                env={k: v for k, v in os.environ.items() if k not in SYSTEMD_VARIABLES},
            )
        finally:
            os.close(read_fd)
        os.set_blocking(write_fd, False)
        with self._lock:
            self._wake_fd = write_fd
        log.info("sender process %s started", self.proc.pid)

    def wake(self) -> None:
        """Tell the child there is mail (any thread; a full pipe already says so). Without a
        child, or with one just exiting idle, the supervisor looks whether to start one."""
        with self._lock:
            if self._wake_fd is not None:
                try:
                    os.write(self._wake_fd, b"\x01")
                    return
                except BlockingIOError:
                    return
                except BrokenPipeError:
                    pass
            look = self._look
        if look is not None:
            look()

    async def supervise(self, stopping: asyncio.Event, mail_due: Callable[[], Awaitable[bool]]) -> None:
        """Until the daemon stops: start the child when `mail_due` says so (asked at start and
        at each wake without a child); start it again when it dies, with backoff."""
        loop = asyncio.get_running_loop()
        look = asyncio.Event()

        def look_now() -> None:  # from any thread
            loop.call_soon_threadsafe(look.set)

        self._look = look_now
        look.set()  # mail may be waiting from before this start
        delay = 1.0
        while not stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(look.wait(), timeout=1.0)
            if stopping.is_set():
                break
            code = self.proc.poll() if self.proc is not None else None
            if code is not None:
                self._close_pipe()
                self.proc = None
                if code == 0:
                    log.info("sender process exited with nothing to send")
                    look.set()  # mail queued while it was leaving goes out now
                else:
                    log.error("sender process exited with status %s; starting it again in %.0fs", code, delay)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stopping.wait(), timeout=delay)
                    delay = min(delay * 2, 60.0)
                    if not stopping.is_set():
                        self.start()
                    continue
            if not look.is_set():
                continue
            look.clear()
            if self.proc is not None:
                continue  # running: the pipe told it
            try:
                due = await mail_due()
            except (DBAPIError, OSError) as exc:  # cannot tell: the child copes with the database
                log.debug("outbox not checked: %s", exc)
                due = True
            if due and not stopping.is_set():
                self.start()

    def poke(self) -> None:
        """Have the supervisor look now (at stop: it then returns at once)."""
        if self._look is not None:
            self._look()

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
