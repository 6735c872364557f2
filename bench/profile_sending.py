"""Where the sending process's time goes: N realistic requests are stored (their acknowledgments
and notifications queued in the outbox, on SQLite), then `Outbox.drain` sends them all to a real
aiosmtpd running in a separate process.

Usage: .venv/bin/python bench/profile_sending.py [--n 2000] [--profile] [--top 40]
Prints the CPU time per mail of the sending side alone and of the SMTP server; with --profile,
the cProfile of the drain sorted by own time, and the time by package.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.profile_intake import fresh_app, measure, print_profile, store_requests  # noqa: E402
from mailbot.shell import aio  # noqa: E402


def smtp_server(channel: Any, stop: Any) -> None:
    """aiosmtpd in its own process: its CPU time is not the sender's."""
    from tests.servers import start_smtp

    smtp = start_smtp()
    channel.put(smtp.port)
    stop.wait()
    used = resource.getrusage(resource.RUSAGE_SELF)
    channel.put((len(smtp.handler.received), used.ru_utime + used.ru_stime))
    smtp.controller.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args()
    context = multiprocessing.get_context("spawn")
    channel, stop = context.Queue(), context.Event()
    server = context.Process(target=smtp_server, args=(channel, stop))
    server.start()
    port = channel.get()
    with tempfile.TemporaryDirectory(prefix="mailbot-profile-") as tmp:
        app = fresh_app(Path(tmp), f"smtp://127.0.0.1:{port}")
        store_requests(app, args.n)
        result, cpu, wall, profiler = measure(lambda: aio.run(app.outbox.drain()), args.profile)
        stop.set()
        received, server_cpu = channel.get()
        server.join()
        print(
            f"{result.sent} mails sent ({received} received): {cpu / result.sent * 1000:.3f} ms CPU per mail "
            f"sending, {server_cpu / received * 1000:.3f} ms in the SMTP server (start-up included), "
            f"{result.sent / wall:.0f} mails/s"
        )
        if profiler:
            print_profile(profiler, result.sent, "mail", args.top)
        app.close()


if __name__ == "__main__":
    main()
