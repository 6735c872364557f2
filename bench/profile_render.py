"""Where the templates' time goes: the mails N realistic requests queue (each an acknowledgment and
a disposition request) are rendered again, subject, text and HTML, from the contexts the intake
gave them, with no database, composing or sending around them.

Usage: .venv/bin/python bench/profile_render.py [--n 500] [--passes 5] [--tree DIR] [--profile]
Prints the CPU time of the rendering per request (the median of the passes over all the mails).
`--tree`: render with the code and templates of another checkout (a git worktree), as
`bench/ab.py --what render` does; checkouts from before the package split (commit f0ce248) too.
"""

from __future__ import annotations

import argparse
import cProfile
import statistics
import sys
import tempfile
import time
from importlib import import_module
from pathlib import Path
from typing import Any


def capture(tree: Path, n: int) -> tuple[Any, list[tuple[Any, ...]]]:
    """The render function of `tree` and the arguments of every call it got while the intake of
    `n` requests ran in that tree."""
    sys.path.insert(0, str(tree))
    from bench.bench import realistic_request
    from bench.profile_intake import fresh_app

    if (tree / "mailbot" / "pipeline").is_dir():
        compose, caller = import_module("mailbot.core.compose"), import_module("mailbot.pipeline.replies")
        source = import_module("mailbot.pipeline.intake").Source
    else:  # before the package split: mailbot/compose.py, called from mailbot/intake.py
        compose, caller = import_module("mailbot.compose"), import_module("mailbot.intake")
        source = caller.Source

    render = compose.render
    calls: list[tuple[Any, ...]] = []

    def recording(*args: Any) -> Any:
        calls.append(args)
        return render(*args)

    caller.render = recording
    with tempfile.TemporaryDirectory(prefix="mailbot-profile-") as tmp:
        app = fresh_app(Path(tmp))
        size = app.config.settings.mailbox.transaction_size
        items = [(source("INBOX", 1, str(i)), realistic_request(i)) for i in range(n)]
        for i in range(0, n, size):
            app.process_batch(items[i : i + size])
        app.close()
    caller.render = render
    return render, calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--passes", type=int, default=5)
    parser.add_argument("--tree", type=Path, default=Path(__file__).resolve().parent.parent)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    render, calls = capture(args.tree.resolve(), args.n)

    def render_all() -> None:
        for call in calls:
            render(*call)

    render_all()  # warm: templates compiled, caches filled
    per_pass = []
    for _ in range(args.passes):
        start = time.process_time()
        render_all()
        per_pass.append(time.process_time() - start)
    ms = statistics.median(per_pass) / args.n * 1000
    print(
        f"{args.n} requests, {len(calls)} mails: {ms:.3f} ms CPU per request rendering "
        f"(median of {args.passes} passes)"
    )
    if args.profile:
        from bench.profile_intake import print_profile

        profiler = cProfile.Profile()
        profiler.enable()
        render_all()
        profiler.disable()
        print_profile(profiler, args.n, "request", 40)


if __name__ == "__main__":
    main()
