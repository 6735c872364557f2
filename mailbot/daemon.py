"""The running service: the intake thread, the scheduler, the sending child, signals, systemd.

`App` (mailbot.app) wires the parts; this module runs them until SIGTERM or SIGINT:
the intake thread reads the mailbox (IDLE or polling) and decides, the scheduler sweeps
deadlines, and a child process (`run --sender-only`) or a loop here drains the outbox.
Under systemd (`Type=notify`, dist/mailbot.service) the daemon says when it is ready, when it
stops, what it has done (STATUS=) and that its event loop runs (WATCHDOG=1).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError

from mailbot.app import App, IntakeStats
from mailbot.config import Config
from mailbot.core.workflow import OutboundStatus
from mailbot.shell import health, models
from mailbot.shell.mailbox import MailboxError, MailboxSource
from mailbot.shell.outbox import sleep_until

log = logging.getLogger(__name__)

SYSTEMD_VARIABLES = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")
OUTBOX_SWEEP_SECONDS = 60  # mail queued by another process (`outbox retry`, `replay`) goes out within this


class SystemdNotifier:
    """sd_notify(3), the protocol itself: one datagram of `KEY=value` lines to $NOTIFY_SOCKET, a
    path or, starting with '@', a name in the abstract namespace. Without the variable (not
    under systemd, or `Type=simple`) every call does nothing. The variables are taken out of the
    environment, so that the sending child and the parse workers never speak for the service
    (the unit's `NotifyAccess=main` would refuse them anyway)."""

    def __init__(self, environ: MutableMapping[str, str]) -> None:
        values = {name: environ.pop(name, "") for name in SYSTEMD_VARIABLES}
        address = values["NOTIFY_SOCKET"]
        self.address = "\0" + address[1:] if address.startswith("@") else address
        if not self.address.startswith(("/", "\0")):
            self.address = ""
        usec, pid = values["WATCHDOG_USEC"], values["WATCHDOG_PID"]
        # The watchdog is this process's when WATCHDOG_PID names it (or is absent).
        mine = not pid or pid == str(os.getpid())
        self.watchdog_seconds = int(usec) / 1e6 if usec.isdigit() and int(usec) > 0 and mine else None
        self._socket: socket.socket | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.address)

    def notify(self, *assignments: str) -> None:
        if not self.address:
            return
        try:
            if self._socket is None:
                self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._socket.sendto("\n".join(assignments).encode(), self.address)
        except OSError as exc:  # systemd gone or restarting: the service goes on regardless
            log.debug("sd_notify %s failed: %s", assignments, exc)

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


@dataclass
class ServiceStatus:
    """What `systemctl status mailbot` shows on its Status: line."""

    processed: int = 0
    quarantined: int = 0
    mailbox: str = ""  # empty while reading works; else why not
    sent: int = 0
    waiting: int = 0
    dead: int = 0

    def add(self, stats: IntakeStats | None, problem: str | None) -> None:
        if stats is not None:
            self.processed += stats.processed
            self.quarantined += stats.quarantined
        self.mailbox = problem or ""

    def count_outbox(self, counts: Mapping[OutboundStatus, int], sent_before: int) -> None:
        self.sent = counts.get(OutboundStatus.SENT, 0) - sent_before
        self.waiting = counts.get(OutboundStatus.PENDING, 0) + counts.get(OutboundStatus.SENDING, 0)
        self.dead = counts.get(OutboundStatus.DEAD, 0)

    def line(self) -> str:
        mailbox = f"{self.mailbox}; " if self.mailbox else ""
        dead = f", {self.dead} dead letters" if self.dead else ""
        return (
            f"{mailbox}intake: {self.processed} processed, {self.quarantined} quarantined; "
            f"outbox: {self.sent} sent, {self.waiting} waiting{dead}"
        )


def outbox_counts(app: App) -> dict[OutboundStatus, int]:
    """Queued mail by status (one count over the status index), whichever process sends it."""
    table = models.OutboundMessage
    with app.sessions() as session:
        rows = session.execute(select(table.status, func.count()).group_by(table.status)).all()
    return {OutboundStatus(status): int(n) for status, n in rows}


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
            asyncio.create_task(_watchdog(notifier, intake, stopping)),
            asyncio.create_task(_report(app, notifier, service, tried, stopping)),
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


STATUS_SECONDS = 10.0  # how often the Status: line is brought up to date at most


async def _watchdog(notifier: SystemdNotifier, intake: asyncio.Task[None], stopping: asyncio.Event) -> None:
    """WATCHDOG=1 at half the interval systemd asked for, from the event loop, while the intake
    thread lives: a stuck loop or a dead intake thread goes unpinged and systemd restarts us."""
    if notifier.watchdog_seconds is None:
        return
    while not intake.done():
        notifier.notify("WATCHDOG=1")
        await asyncio.sleep(notifier.watchdog_seconds / 2)
    if not stopping.is_set():
        log.error("the intake thread ended; watchdog pings stop so that systemd restarts the service")


async def _report(
    app: App,
    notifier: SystemdNotifier,
    service: ServiceStatus,
    tried: asyncio.Event,
    stopping: asyncio.Event,
) -> None:
    """READY=1 with the first STATUS= once the mailbox has been tried; then the STATUS= line
    whenever it changes (the outbox's counts are read from the database: the child sends)."""
    sent_before: int | None = None
    try:
        sent_before = (await asyncio.to_thread(outbox_counts, app)).get(OutboundStatus.SENT, 0)
    except (DBAPIError, OSError) as exc:  # the database away: intake and sending say so
        log.debug("status: outbox not counted: %s", exc)
    await tried.wait()
    every = min(STATUS_SECONDS, (notifier.watchdog_seconds or STATUS_SECONDS) / 2)
    ready = stopping.is_set()  # stopped before it was ready: say nothing more
    last = ""
    while not stopping.is_set():
        try:
            counts = await asyncio.to_thread(outbox_counts, app)
            if sent_before is None:
                sent_before = counts.get(OutboundStatus.SENT, 0)
            service.count_outbox(counts, sent_before)
        except (DBAPIError, OSError) as exc:
            log.debug("status: outbox not counted: %s", exc)
        line = service.line()
        if not ready:
            notifier.notify("READY=1", f"STATUS={line}")
            ready = True
        elif line != last:
            notifier.notify(f"STATUS={line}")
        last = line
        await asyncio.sleep(every)


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
