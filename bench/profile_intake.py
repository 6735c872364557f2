"""Where the intake thread's time goes: N realistic requests, parsed beforehand (as the parse
worker does), stored by `App.process_batch` in groups of `transaction_size`, on SQLite.

Usage: .venv/bin/python bench/profile_intake.py [--n 2000] [--profile] [--top 40]
Prints the CPU time per request of the intake thread alone (no IMAP, no SMTP); with
--profile, the cProfile of that run sorted by own time, and the time by package.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench import realistic_request  # noqa: E402
from mailbot.app import App, create_app  # noqa: E402
from mailbot.config import load_config  # noqa: E402
from mailbot.core.message import parse_many  # noqa: E402
from mailbot.pipeline.intake import Source  # noqa: E402
from tests.conftest import write_config  # noqa: E402

T = TypeVar("T")


def by_package(stats: pstats.Stats) -> list[tuple[str, float]]:
    """Own time summed by top-level package (mailbot, sqlalchemy, email, jinja2, …)."""
    totals: dict[str, float] = defaultdict(float)
    for (filename, _line, _name), (_cc, _nc, own, _cum, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        path = filename.replace("\\", "/")
        if "site-packages/" in path:
            package = path.split("site-packages/", 1)[1].split("/", 1)[0]
        elif "/mailbot/" in path:
            package = "mailbot"
        elif path.startswith("~") or path.startswith("<"):
            package = "builtins"
        else:
            package = "stdlib:" + path.rsplit("/", 1)[-1]
        totals[package] += own
    return sorted(totals.items(), key=lambda kv: -kv[1])


def print_profile(profiler: cProfile.Profile, count: int, unit: str, top: int) -> None:
    """The profile's own time by package (share, and ms per `unit`), then its `top` functions."""
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    packages = by_package(stats)
    total = sum(own for _p, own in packages)
    print("\nown time by package:")
    for package, own in packages[:15]:
        print(f"  {package:40} {own / total * 100:5.1f} %  {own / count * 1000:.3f} ms/{unit}")
    stats.sort_stats("tottime").print_stats(top)
    print(out.getvalue())


def fresh_app(work: Path, smtp_url: str = "smtp://127.0.0.1:1") -> App:
    """An app on a new SQLite database in `work`, its schema made."""
    config_path = write_config(
        work,
        database_url=f"sqlite:///{work / 'mailbot.db'}",
        mailbox_url=f"maildir://{work / 'Maildir'}",
        smtp_url=smtp_url,
    )
    app = create_app(load_config(config_path))
    app.migrate()
    return app


def store_requests(app: App, n: int) -> None:
    """`n` realistic requests stored as the daemon stores them (acknowledgments and notifications
    queued), parsed in this process, in groups of the configured transaction size."""
    size = app.config.settings.mailbox.transaction_size
    items = [(Source("INBOX", 1, str(i)), realistic_request(i)) for i in range(n)]
    for i in range(0, n, size):
        app.process_batch(items[i : i + size])


def measure(work: Callable[[], T], profile: bool) -> tuple[T, float, float, cProfile.Profile | None]:
    """`work()`'s result, CPU seconds and wall seconds, and its profile when asked for."""
    profiler = cProfile.Profile() if profile else None
    cpu0, wall0 = time.process_time(), time.perf_counter()
    if profiler:
        profiler.enable()
    result = work()
    if profiler:
        profiler.disable()
    return result, time.process_time() - cpu0, time.perf_counter() - wall0, profiler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mailbot-profile-") as tmp:
        app = fresh_app(Path(tmp))
        size = app.config.settings.mailbox.transaction_size
        limits = app.config.settings.limits
        mails = [realistic_request(i) for i in range(args.n)]
        parsed = parse_many(mails, limits.max_message_bytes, limits.max_mime_depth, limits.max_attachments)
        items = [(Source("INBOX", 1, str(i)), raw) for i, raw in enumerate(mails)]
        # Warm up (imports, statement caches, templates) on a separate folder's messages.
        warm = [(Source("WARM", 1, str(i)), realistic_request(10**6 + i)) for i in range(size)]
        app.process_batch(warm)

        def store_all() -> None:
            for i in range(0, len(items), size):
                app.process_batch(items[i : i + size], parsed[i : i + size])

        _, cpu, wall, profiler = measure(store_all, args.profile)
        print(
            f"{args.n} requests: {cpu / args.n * 1000:.2f} ms CPU per request, "
            f"{args.n / wall:.0f} requests/s (intake thread alone, parsed beforehand)"
        )
        if profiler:
            print_profile(profiler, args.n, "request", args.top)
        app.close()


if __name__ == "__main__":
    main()
