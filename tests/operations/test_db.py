"""SQLite writers take turns: one that commits and begins again at once does not starve another."""

from __future__ import annotations

import threading
from pathlib import Path

from sqlalchemy import event, text

from mailbot.shell.db import WriterTurn, make_engine


def test_a_writer_waiting_gets_the_next_turn_from_one_that_writes_back_to_back(tmp_path: Path) -> None:
    """The intake through a backlog commits a group and begins the next at once; the sending
    process wants one short transaction in between. It must get the very next turn. Without the
    turn SQLite's busy handler polls (sleeping up to 100 ms) and the waiter starves, because the
    busy writer is back in before it looks."""
    url = f"sqlite:///{tmp_path / 'm.db'}"
    busy_engine, waiting_engine = make_engine(url), make_engine(url)  # two pools, as two processes
    with busy_engine.begin() as conn:
        conn.execute(text("CREATE TABLE log (n INTEGER)"))
    started = threading.Event()
    stop = threading.Event()
    busy_count: list[int] = []

    def busy_writer() -> None:
        n = 0
        while not stop.is_set() and n < 200:
            with busy_engine.begin() as conn:
                conn.execute(text("INSERT INTO log VALUES (:n)"), {"n": n})
                if n == 0:
                    started.set()
                threading.Event().wait(0.02)  # the work of one group, lock held
            n += 1
        busy_count.append(n)

    thread = threading.Thread(target=busy_writer)
    thread.start()
    try:
        assert started.wait(10)
        with waiting_engine.begin() as conn:
            conn.execute(text("INSERT INTO log VALUES (-1)"))
    finally:
        stop.set()
        thread.join(30)
    with busy_engine.connect() as conn:
        order = [n for (n,) in conn.execute(text("SELECT n FROM log ORDER BY rowid"))]
    # The waiter arrived while transaction 0 was open: it goes right after it (or the next one,
    # if it arrived as 0 was committing), not after the busy writer has run out of work.
    assert order.index(-1) <= 2, order[:20]
    busy_engine.dispose()
    waiting_engine.dispose()


def test_a_thread_holding_the_turn_does_not_wait_for_it_again(tmp_path: Path) -> None:
    """A second transaction opened by the thread that holds the turn (on another connection) does
    not wait for its own turn: it goes straight to SQLite's lock, as before the turn existed.
    Another thread waits, and gets the turn once it is released."""
    turn = WriterTurn(tmp_path / "m.db", timeout=0.2)
    first = turn.acquire()
    assert first is not None
    assert turn.acquire() is None  # nested in this thread: no turn, no wait
    other: list[int | None] = []
    thread = threading.Thread(target=lambda: other.append(turn.acquire()))
    thread.start()
    thread.join(10)
    assert other == [None]  # held by this thread until the timeout: no turn for the other
    turn.release(first)
    thread = threading.Thread(target=lambda: other.append(turn.acquire()))
    thread.start()
    thread.join(10)
    assert other[1] is not None
    turn.release(other[1])


def test_a_sqlite_commit_is_on_disk_when_it_returns(tmp_path: Path) -> None:
    """WAL with synchronous=FULL: the intake moves a mail out of the inbox right after its commit,
    so the commit must survive a power cut (NORMAL would leave it in the OS cache)."""
    engine = make_engine(f"sqlite:///{tmp_path / 'm.db'}")
    try:
        with engine.connect() as conn:
            settings = [
                conn.exec_driver_sql(f"PRAGMA {name}").scalar() for name in ("journal_mode", "synchronous")
            ]
    finally:
        engine.dispose()
    assert settings == ["wal", 2]  # 2 = FULL


def test_the_head_revision_read_from_the_file_names_is_alembics() -> None:
    from alembic.script import ScriptDirectory

    from mailbot.migrations import head_revision
    from mailbot.shell.db import alembic_config

    assert head_revision() == ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def test_a_current_schema_costs_one_statement_and_an_old_one_is_upgraded(database_url: str) -> None:
    from alembic import command

    from mailbot.migrations import head_revision
    from mailbot.shell.db import alembic_config, migrate

    engine = make_engine(database_url)
    try:
        migrate(engine)
        statements: list[str] = []
        event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
        migrate(engine)
        # (SQLite's engine begins every transaction with BEGIN IMMEDIATE)
        assert [s for s in statements if not s.startswith("BEGIN")] == [
            "SELECT version_num FROM alembic_version"
        ]
        with engine.begin() as conn:  # an older database: the fast path must not take it as current
            cfg = alembic_config(engine.url.render_as_string(hide_password=False))
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "-1")
        migrate(engine)
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == head_revision()
    finally:
        engine.dispose()
