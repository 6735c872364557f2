"""The fetch lock: one holder at a time, and truly free after release (a pooled PostgreSQL session
must not keep it)."""

from __future__ import annotations

from pathlib import Path

from mailbot.shell.db import make_engine
from mailbot.shell.fetch_lock import FetchLock


def test_one_holder_and_free_after_release(database_url: str, tmp_path: Path) -> None:
    engine = make_engine(database_url)
    elsewhere = make_engine(database_url)  # another process's connection pool
    try:
        first = FetchLock(engine, tmp_path, "imap:konsultasi@host/INBOX")
        second = FetchLock(elsewhere, tmp_path, "imap:konsultasi@host/INBOX")
        other_mailbox = FetchLock(engine, tmp_path, "imap:lain@host/INBOX")
        assert first.acquire() and first.still_held()
        assert not second.acquire()  # held elsewhere (another connection or process)
        assert other_mailbox.acquire()  # another mailbox is another lock
        for _ in range(5):  # released for real: not kept alive by a connection back in the pool
            first.release()
            assert second.acquire()
            second.release()
            assert first.acquire()
        first.release()
        other_mailbox.release()
    finally:
        engine.dispose()
        elsewhere.dispose()
