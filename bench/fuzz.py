"""The intake fuzzer's long run (#18 item 6): the harness of tests/design/test_fuzz.py over many more
mutants, on a fresh embedded-default setup (SQLite, Maildir, file outbox) in a temporary folder.

Usage: .venv/bin/python bench/fuzz.py [--count 5000] [--seed N] [--maildir 1000] [--save DIR]

`--count` mutants are fed one by one through `App.process_batch` (each delivered twice more: a
copy under a new UID and the same UID again); `--maildir` more are drained from a Maildir by
`App.run_intake_once`, in the daemon's batches and groups with its parse worker. Prints the
outcomes and every finding with the seed and mutant index; `--save DIR` writes each failing
mutant as an .eml file (the minimal one belongs in tests/data with a regression test). Exit 1
when anything was found. Warnings are errors, as in the test suite.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import random
import secrets
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mailbot.app import create_app  # noqa: E402
from mailbot.config import load_config  # noqa: E402
from tests.conftest import CORPUS, Clock, write_config  # noqa: E402
from tests.design.test_fuzz import Fuzzer, Report  # noqa: E402
from tests.desk import STAFF  # noqa: E402


@contextlib.contextmanager
def _quiet_children(quiet: bool) -> Iterator[None]:
    """The parse worker logs the parser's warnings to its stderr (the one it inherits): silenced
    unless --verbose."""
    if not quiet:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


@contextlib.contextmanager
def _throwaway_database(admin_url: str) -> Iterator[str]:
    """A database of its own on the PostgreSQL server, dropped afterwards (as tests/conftest.py)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    url = make_url(admin_url)
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    name = f"mailbot_fuzz_{secrets.token_hex(6)}"
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=5000, help="mutants fed one by one")
    parser.add_argument("--maildir", type=int, default=1000, help="mutants drained from a Maildir")
    parser.add_argument("--seed", type=int, default=None, help="default: a new one, printed")
    parser.add_argument("--start", type=int, default=0, help="index of the first mutant")
    parser.add_argument("--corpus", type=Path, default=CORPUS, help="the shared corpus (skipped if absent)")
    parser.add_argument("--save", type=Path, default=None, help="write failing mutants here as .eml")
    parser.add_argument("--verbose", action="store_true", help="mailbot's warnings and tracebacks too")
    parser.add_argument(
        "--postgres",
        default=None,
        metavar="URL",
        help="run on a throwaway database of this PostgreSQL server (postgresql+psycopg://postgres@127.0.0.1/test)",
    )
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(10**6)
    # As in the test suite (pyproject's filterwarnings): a warning raised while a mail is handled
    # is a defect the mail ran into.
    warnings.simplefilter("error")
    warnings.filterwarnings("ignore", category=ResourceWarning)
    logging.basicConfig(
        level=logging.INFO,
        handlers=[logging.StreamHandler() if args.verbose else logging.NullHandler()],
        format="%(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger().handlers[0].setLevel(logging.WARNING)
    print(f"seed {seed}, {args.count} mutants alone from {args.start}, {args.maildir} through a Maildir")
    report = Report()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mailbot-fuzz-") as tmp, contextlib.ExitStack() as stack:
        folder = Path(tmp)
        database_url = f"sqlite:///{folder / 'mailbot.db'}"
        if args.postgres:
            database_url = stack.enter_context(_throwaway_database(args.postgres))
        config = write_config(
            folder,
            database_url=database_url,
            mailbox_url=f"maildir://{folder / 'md'}",
            smtp_url=f"file://{folder / 'out'}",
            staff=STAFF,
        )
        clock = Clock(datetime(2026, 11, 16, 2, 0, tzinfo=UTC))
        app = create_app(load_config(config), clock=clock)
        try:
            fuzzer = Fuzzer(
                app, seed, corpus=args.corpus if args.corpus.exists() else None,
                advance=lambda: clock.advance(minutes=7),
            )  # fmt: skip
            print(f"{len(fuzzer.seeds)} seed mails")
            step = 500
            for first in range(args.start, args.start + args.count, step):
                last = min(first + step, args.start + args.count)
                fuzzer.run_alone(range(first, last), report)
                rate = report.mutants / (time.monotonic() - started)
                print(f"  {last - args.start} alone: {report.line()} ({rate:.0f} mutants/s)", flush=True)
            if args.maildir:
                # Other indices than the ones fed alone: new mutants, not copies of those.
                first = args.start + args.count
                with _quiet_children(not args.verbose):
                    fuzzer.run_maildir(folder / "md", list(range(first, first + args.maildir)), report)
                print(f"  + {args.maildir} through the Maildir: {report.line()}")
        finally:
            app.close()
    print(f"{report.line()} in {time.monotonic() - started:.0f} s")
    for finding in report.findings:
        print(f"FINDING seed {seed} {finding}")
    if args.save and report.findings:
        args.save.mkdir(parents=True, exist_ok=True)
        for finding in report.findings:
            if finding.raw:
                (args.save / f"seed{seed}-mutant{finding.index}.eml").write_bytes(finding.raw)
        print(f"failing mutants written to {args.save}")
    if report.findings:
        again = f"--seed {seed} --start {args.start} --count {args.count} --maildir {args.maildir}"
        print(f"reproduce: .venv/bin/python bench/fuzz.py {again}")
    return 1 if report.findings else 0


if __name__ == "__main__":
    sys.exit(main())
