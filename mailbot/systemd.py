"""What the service tells systemd (sd_notify(3), `Type=notify`, dist/mailbot.service): READY=1
once the mailbox has been tried, STOPPING=1, a STATUS= line of what it has done, and WATCHDOG=1
from the event loop while the intake thread lives."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError

from mailbot.app import App
from mailbot.core.workflow import OutboundStatus
from mailbot.pipeline.fetch import IntakeStats
from mailbot.shell import models

log = logging.getLogger(__name__)

SYSTEMD_VARIABLES = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


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


STATUS_SECONDS = 10.0  # how often the Status: line is brought up to date at most


async def ping_watchdog(
    notifier: SystemdNotifier, intake: asyncio.Task[None], stopping: asyncio.Event
) -> None:
    """WATCHDOG=1 at half the interval systemd asked for, from the event loop, while the intake
    thread lives: a stuck loop or a dead intake thread goes unpinged and systemd restarts us."""
    if notifier.watchdog_seconds is None:
        return
    while not intake.done():
        notifier.notify("WATCHDOG=1")
        await asyncio.sleep(notifier.watchdog_seconds / 2)
    if not stopping.is_set():
        log.error("the intake thread ended; watchdog pings stop so that systemd restarts the service")


async def report_status(
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
