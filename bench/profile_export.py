"""Where `mailbot export mbox` spends its time: N realistic requests are stored (on SQLite, as the
daemon stores them: the request, its acknowledgment and the head's notification), then the export
runs as the command does, in this process, timed apart from the start-up a CLI run also pays.

Usage: .venv/bin/python bench/profile_export.py [--n 5000] [--profile] [--top 30]
Prints messages per second of the export itself (mbox and its index); with --profile, the
cProfile of the export.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.profile_intake import fresh_app, measure, print_profile, store_requests  # noqa: E402
from mailbot.records.archive import Selection, export_mbox  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mailbot-profile-") as tmp:
        app = fresh_app(Path(tmp))
        store_requests(app, args.n)
        out = Path(tmp) / "arsip.mbox"
        tz = ZoneInfo(app.config.service.timezone)

        def export() -> int:
            with app.sessions() as session:
                return export_mbox(session, out, Selection(), tz).messages

        messages, cpu, wall, profiler = measure(export, args.profile)
        print(
            f"{messages} messages of {args.n} tickets: {messages / wall:.0f} messages/s, "
            f"{cpu / messages * 1000:.3f} ms CPU per message, {out.stat().st_size / wall / 2**20:.0f} MiB/s"
        )
        if profiler:
            print_profile(profiler, messages, "message", args.top)
        app.close()


if __name__ == "__main__":
    main()
