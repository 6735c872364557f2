"""systemd: the shipped unit verifies, and `mailbot run` speaks sd_notify to a real socket."""

from __future__ import annotations

import mailbox
import os
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import ROOT, request_mail, write_config
from tests.servers import children

UNIT = ROOT / "dist" / "mailbot.service"


@dataclass
class NotifySocket:
    """The receiving end systemd holds: a datagram socket that learns each sender's pid."""

    sock: socket.socket
    address: str  # as NOTIFY_SOCKET names it
    received: list[tuple[int, list[str]]] = field(default_factory=list)  # (sender pid, lines)

    def read_until(self, wanted: str, timeout: float = 60.0) -> list[str]:
        """Every line received until one equals or starts with `wanted`; that line last."""
        lines: list[str] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data, ancillary, _flags, _addr = self.sock.recvmsg(4096, socket.CMSG_SPACE(12))
            except TimeoutError:
                break
            pid = next(
                struct.unpack("3i", cdata)[0]
                for level, kind, cdata in ancillary
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS
            )
            datagram = data.decode().split("\n")
            self.received.append((pid, datagram))
            for line in datagram:
                lines.append(line)
                if line.startswith(wanted):
                    return lines
        raise AssertionError(f"no {wanted!r} within {timeout}s; received {self.received}")


@pytest.fixture(params=["abstract", "path"])
def notify_socket(request: pytest.FixtureRequest, tmp_path: Path) -> NotifySocket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    if request.param == "abstract":  # what systemd hands out: "@/org/freedesktop/systemd1/notify/…"
        name = f"mailbot-test-{secrets.token_hex(6)}"
        sock.bind("\0" + name)
        address = "@" + name
    else:
        address = str(tmp_path / "notify.sock")
        sock.bind(address)
    request.addfinalizer(sock.close)
    return NotifySocket(sock, address)


def test_run_tells_systemd_ready_watchdog_status_and_stopping(notify_socket: NotifySocket, tmp_path):
    config = write_config(
        tmp_path,
        database_url=f"sqlite:///{tmp_path / 'm.db'}",
        mailbox_url=f"maildir://{tmp_path / 'md'}",
        smtp_url=f"file://{tmp_path / 'out'}",
        daily_digest=False,
    )
    mailbox.Maildir(tmp_path / "md", create=True).add(request_mail())
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MAILBOT_")},
        "NOTIFY_SOCKET": notify_socket.address,
        "WATCHDOG_USEC": "400000",  # pings every 0.2 s
    }
    log = (tmp_path / "daemon.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mailbot", "--config", str(config), "run"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        before = notify_socket.read_until("READY=1")
        assert "STOPPING=1" not in before
        status = [
            line for _pid, lines in notify_socket.received for line in lines if line.startswith("STATUS=")
        ]
        # READY comes with the first Status: line, once the mailbox has been read.
        assert any("intake: 1 processed, 0 quarantined" in line for line in status), status
        # The sending child's work reaches the Status: line (the acknowledgment and the head's mail).
        notify_socket.read_until("STATUS=intake: 1 processed, 0 quarantined; outbox: 2 sent, 0 waiting")
        pings = 0
        while pings < 3:
            pings += notify_socket.read_until("WATCHDOG=1").count("WATCHDOG=1")
        # Only the main process speaks (the unit's NotifyAccess=main): the child is not told how.
        kids = children(proc.pid)
        assert kids
        for kid in kids:
            assert b"NOTIFY_SOCKET=" not in Path(f"/proc/{kid}/environ").read_bytes()
        proc.send_signal(signal.SIGTERM)
        notify_socket.read_until("STOPPING=1", timeout=30)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    assert {pid for pid, _lines in notify_socket.received} == {proc.pid}
    text = (tmp_path / "daemon.log").read_text()
    assert "Traceback" not in text and "watchdog pings stop" not in text


def test_run_says_nothing_without_notify_socket(tmp_path):
    """Outside systemd (or Type=simple) no socket is needed and nothing is attempted."""
    from mailbot.systemd import SystemdNotifier

    environ = {"WATCHDOG_USEC": "1000000"}
    notifier = SystemdNotifier(environ)
    assert not notifier.enabled and environ == {}
    notifier.notify("READY=1")  # does nothing, raises nothing
    other = SystemdNotifier({"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"})
    assert other.enabled and other.watchdog_seconds is None  # the watchdog is another process's


def _verify(unit: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["systemd-analyze", "verify", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "SYSTEMD_LOG_COLOR": "0"},
    )


def test_the_shipped_unit_verifies(tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed (Debian's systemd package has it)")
    text = UNIT.read_text()
    assert "\nExecStart=/opt/mailbot/bin/mailbot --config /etc/mailbot/mailbot.toml run\n" in text
    # The installed program is not on this machine: verify a copy whose ExecStart names one
    # that exists, everything else as shipped.
    unit = tmp_path / "mailbot.service"
    unit.write_text(
        text.replace(
            "ExecStart=/opt/mailbot/bin/mailbot", f"ExecStart={Path(sys.executable).resolve()} -m mailbot"
        )
    )
    out = _verify(unit)
    assert out.returncode == 0, out.stderr
    assert out.stderr.strip() == "", out.stderr
    for setting in (
        "Type=notify",
        "NotifyAccess=main",
        "WatchdogSec=",
        "Restart=on-failure",
        "User=mailbot",
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/mailbot",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "ProtectHome=yes",
    ):
        assert f"\n{setting}" in text, setting
    # The check catches a broken unit: it is not a check that passes anything.
    broken = tmp_path / "broken.service"
    broken.write_text(unit.read_text().replace("Type=notify", "Type=notifyy"))
    assert "Failed to parse service type" in _verify(broken).stderr
