"""mailbot's footprint: the idle daemon's memory and the start-up time of the commands people and
monitors call often, on the embedded default (SQLite, a Maildir, a file outbox).

  - idle memory: `mailbot run` started under a notify socket (as systemd starts it), read once
    it said READY=1 and has been quiet for `--settle` seconds: PSS and RSS of the daemon and its
    sending child, added up (PSS counts shared pages once between them);
  - wall and CPU time of `tickets list`, `tickets show NUMBER` and `status` (read-only) on the three
    tickets of the sample requests, and of `run --once` on an empty mailbox (the sweep still
    reads the index of those open tickets); beside them the floor of the commands that load the
    validated configuration and SQLAlchemy, `python -c "import sqlalchemy.orm, pydantic"` (the
    read-only commands load neither: mailbot/locate.py, mailbot/shell/readonly.py);
  - the same memory figures once a request has come in and its mails have gone out.

Each command runs as `python -m mailbot` in a fresh process, with bytecode cached as an installed
package has it (PYTHONDONTWRITEBYTECODE is dropped), after one warm-up run. Medians, min and max
over `--runs`. `--vs PATH` measures a second checkout (e.g. a `git worktree` of the commit
before) the same way, A and B alternating run by run, each on a data folder of its own.

`--instructions` also counts the instructions each command executes under valgrind's callgrind
(once each, some 30 s a command): a figure a busy machine does not move.

Usage: .venv/bin/python bench/footprint.py [--runs 9] [--settle 3] [--vs /tmp/mailbot-before]
                                           [--instructions] [--json FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import mailbox
import os
import re
import resource
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import request_mail  # noqa: E402

TARGETS = {"idle daemon PSS MiB": 100.0, "read-only s": 0.3, "run --once (empty) s": 0.6}


class Checkout:
    """One source tree to measure, with a data folder of its own (the embedded default)."""

    def __init__(self, label: str, root: Path, work: Path) -> None:
        self.label = label
        self.root = root.resolve()
        self.home = work / label
        self.config = self.home / "config" / "mailbot.toml"
        self.config.parent.mkdir(parents=True)
        # The checkout's shipped embedded default, with its data here; no digest on the wall clock.
        text = (self.root / "config" / "mailbot.toml").read_text()
        self.config.write_text(text + "\n[calendar]\ndaily_digest = false\n")
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("MAILBOT_")},
            "PYTHONPATH": str(self.root),
        }
        self.env.pop("PYTHONDONTWRITEBYTECODE", None)

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "mailbot", "--config", str(self.config), *args]

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        out = subprocess.run(
            self.command(*args),
            check=False,
            cwd=self.home,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if check and out.returncode != 0:
            raise RuntimeError(f"{self.label}: {' '.join(args)} exited {out.returncode}: {out.stderr}")
        return out

    def prepare(self) -> str:
        """First run: the samples become three tickets; compile the bytecode. The first number."""
        out = self.run("run", "--once")
        numbers = re.findall(r"KONS-\d{4}-\d{6}", out.stdout)
        if not numbers:
            raise RuntimeError(f"{self.label}: no ticket from the samples: {out.stdout}")
        self.run("tickets", "list")  # the bytecode of the read-only path written too
        return numbers[0]


def timed(name: str, run: Callable[[], object]) -> dict[str, float]:
    """Wall time and CPU time (user + system of the child process) of one command."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    run()
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {f"{name} s": wall, f"{name} CPU s": cpu}


def floor(checkout: Checkout) -> None:
    """The libraries every command loads before mailbot's own code does anything."""
    subprocess.run(
        [sys.executable, "-c", "import sqlalchemy.orm, pydantic"], env=checkout.env, check=True, timeout=60
    )


def _smaps(pid: int) -> tuple[int, int]:
    """(PSS, RSS) of a process in KiB."""
    values = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        parts = line.split()
        if parts and parts[0] in ("Pss:", "Rss:"):
            values[parts[0]] = int(parts[1])
    return values["Pss:"], values["Rss:"]


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):  # the thread ended meanwhile
            found += [int(c) for c in (task / "children").read_text().split()]
    return found


def idle_memory(checkout: Checkout, settle: float) -> dict[str, float]:
    """Start the daemon, wait for READY=1 and `settle` seconds, read its and its children's memory."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    name = f"mailbot-footprint-{secrets.token_hex(6)}"
    sock.bind("\0" + name)
    sock.settimeout(60)
    env = {**checkout.env, "NOTIFY_SOCKET": "@" + name}
    log = (checkout.home / "daemon.log").open("w")
    proc = subprocess.Popen(checkout.command("run"), cwd=checkout.home, env=env, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 60
        ready = False
        while not ready and time.monotonic() < deadline:
            try:
                ready = b"READY=1" in sock.recv(4096)
            except TimeoutError:
                break
        if not ready:  # a checkout without sd_notify: wait for its sending child instead
            while time.monotonic() < deadline and not _children(proc.pid):
                time.sleep(0.1)
        time.sleep(settle)
        figures = _memory(proc.pid, "idle daemon")
        # One request: the acknowledgment and the head's mail go out (through the sending child
        # where the daemon has one), then the daemon is quiet again with its children as they are.
        outbox = checkout.home / "var" / "outbox"
        before = len(list(outbox.glob("*.eml")))
        maildir = mailbox.Maildir(checkout.home / "var" / "mailbox", create=False)
        who = secrets.token_hex(4)
        maildir.add(request_mail(sender=f"pemohon.{who}@example.go.id", subject=f"Konsultasi ABK {who}"))
        while time.monotonic() < deadline + 60 and len(list(outbox.glob("*.eml"))) < before + 2:
            time.sleep(0.05)
        time.sleep(settle)
        figures.update(_memory(proc.pid, "after a mail"))
        return figures
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        sock.close()


def _memory(pid: int, label: str) -> dict[str, float]:
    pids = [pid, *_children(pid)]
    pss = rss = 0
    for each in pids:
        p, r = _smaps(each)
        pss += p
        rss += r
    return {
        f"{label} PSS MiB": pss / 1024,
        f"{label} RSS MiB": rss / 1024,
        f"{label} processes": float(len(pids)),
    }


def measure(checkout: Checkout, number: str, settle: float) -> dict[str, float]:
    figures = {
        **timed("tickets list", lambda: checkout.run("tickets", "list")),
        **timed("tickets show", lambda: checkout.run("tickets", "show", number)),
        **timed("status", lambda: checkout.run("status")),
        **timed("run --once (empty)", lambda: checkout.run("run", "--once")),
        **timed("floor: import sqlalchemy.orm, pydantic", lambda: floor(checkout)),
    }
    figures.update(idle_memory(checkout, settle))
    return figures


def instructions(checkout: Checkout, number: str) -> dict[str, float]:
    """Instructions each command executes, counted by valgrind's callgrind: the same on a busy
    machine as on a quiet one (wall and CPU time on a shared machine move by half)."""
    counts = {}
    commands = {
        "tickets list": checkout.command("tickets", "list"),
        "tickets show": checkout.command("tickets", "show", number),
        "status": checkout.command("status"),
        "run --once (empty)": checkout.command("run", "--once"),
        "floor: import sqlalchemy.orm, pydantic": [sys.executable, "-c", "import sqlalchemy.orm, pydantic"],
    }
    for name, command in commands.items():
        out = subprocess.run(
            ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *command],
            cwd=checkout.home,
            env={**checkout.env, "PYTHONHASHSEED": "0"},
            capture_output=True,
            text=True,
            check=True,
            timeout=600,
        )
        found = re.search(r"Collected : (\d+)", out.stderr)
        if found is None:
            raise RuntimeError(f"{checkout.label}: callgrind counted nothing for {name}: {out.stderr[-500:]}")
        counts[f"{name} G instructions"] = int(found.group(1)) / 1e9
    return counts


def summary(runs: list[dict[str, float]]) -> dict[str, tuple[float, float, float]]:
    return {key: (min(v), statistics.median(v), max(v)) for key in runs[0] for v in [[r[key] for r in runs]]}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument(
        "--settle", type=float, default=3.0, help="seconds after READY=1 before reading memory"
    )
    parser.add_argument("--vs", type=Path, help="a second checkout, measured alternately (B)")
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument(
        "--instructions", action="store_true", help="also count each command's instructions (valgrind)"
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mailbot-footprint-"))
    try:
        checkouts = [Checkout("A", ROOT, work)]
        if args.vs:
            checkouts.append(Checkout("B", args.vs, work))
        numbers = {c.label: c.prepare() for c in checkouts}
        for c in checkouts:  # one warm-up of each figure
            measure(c, numbers[c.label], 0.0)
        runs: dict[str, list[dict[str, float]]] = {c.label: [] for c in checkouts}
        for i in range(args.runs):
            order = checkouts if i % 2 == 0 else checkouts[::-1]
            for c in order:
                runs[c.label].append(measure(c, numbers[c.label], args.settle))
            print(f"run {i + 1}/{args.runs} done", file=sys.stderr)
        _print(checkouts, runs, args.runs)
        if args.instructions:
            counted = {c.label: instructions(c, numbers[c.label]) for c in checkouts}
            print("| instructions | " + " | ".join(c.label for c in checkouts) + " |")
            print("|---" * (len(checkouts) + 1) + "|")
            for key in counted[checkouts[0].label]:
                print(f"| {key} | " + " | ".join(f"{counted[c.label][key]:.3f}" for c in checkouts) + " |")
        if args.json:
            args.json.write_text(
                json.dumps(
                    {c.label: {"root": str(c.root), "runs": runs[c.label]} for c in checkouts}, indent=2
                )
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _print(checkouts: list[Checkout], runs: dict[str, list[dict[str, float]]], n: int) -> None:
    stats = {c.label: summary(runs[c.label]) for c in checkouts}

    def fmt(t: tuple[float, float, float]) -> str:
        return f"{t[1]:.3f} ({t[0]:.3f}–{t[2]:.3f})"

    print(f"median (min–max) of {n} runs; " + "; ".join(f"{c.label} = {c.root}" for c in checkouts))
    header = "| figure | " + " | ".join(c.label for c in checkouts) + " | target |"
    print(header)
    print("|---" * (len(checkouts) + 2) + "|")
    for key in stats[checkouts[0].label]:
        target: Any = TARGETS.get(key, "")
        if key.endswith(" s") and not key.startswith(("run --once", "floor")) and "CPU" not in key:
            target = TARGETS["read-only s"]
        cells = " | ".join(fmt(stats[c.label][key]) for c in checkouts)
        print(f"| {key} | {cells} | {target} |")


if __name__ == "__main__":
    main()
