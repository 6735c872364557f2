"""Engine, sessions and schema migrations (Alembic, applied on start)."""

from __future__ import annotations

import fcntl
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from sqlalchemy import URL, Engine, create_engine, event
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from mailbot import migrations
from mailbot.locate import ConfigError

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

# Package data, found through importlib.resources (a wheel installed anywhere, or the checkout).
MIGRATION_LOCK = 0x6D61696C  # "mail": the advisory lock key that serializes schema migrations


def make_engine(url: str, *, echo: bool = False) -> Engine:
    """An engine with the settings each backend needs for a daemon's short transactions."""
    kwargs: dict[str, Any] = {"echo": echo, "future": True}
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"timeout": 30}
    else:
        kwargs["pool_pre_ping"] = True
    try:
        engine = create_engine(url, **kwargs)
    except ImportError as exc:  # the URL's driver is not installed: say which and how to get it
        raise ConfigError([("database.url", no_driver(url, exc))]) from exc
    if engine.dialect.name == "sqlite":
        file = sqlite_file(engine.url)
        if file is not None:
            file.parent.mkdir(parents=True, exist_ok=True)
        _tune_sqlite(engine, WriterTurn(file) if file is not None else None)
    return engine


def no_driver(url: str | URL, exc: ImportError) -> str:
    """What to say when the database URL's driver cannot be imported (check-config and every
    command that opens the database say the same)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    extra = " (pip install 'mailbot[postgres]')" if parsed.get_backend_name() == "postgresql" else ""
    missing = f"the module {exc.name} is not installed" if exc.name else str(exc)
    return f"no driver for {parsed.drivername}: {missing}{extra}"


def sqlite_file(url: URL) -> Path | None:
    """The file of an SQLite URL, as SQLite opens it: the path, or the path of a `file:` URI
    (`?uri=true`); None for an in-memory database. The writers' lock files lie beside it."""
    database = url.database or ""
    if url.query.get("uri") in ("true", "1") and database.startswith("file:"):
        if url.query.get("mode") == "memory":
            return None
        database = unquote(urlsplit(database).path)
    if not database or database == ":memory:":
        return None
    return Path(database)


class WriterTurn:
    """Writers of one SQLite database take turns, between processes and threads.

    SQLite lets one transaction write at a time; the others poll (its busy handler sleeps up to
    100 ms between tries). A writer that commits and begins again at once, as the intake does
    through a backlog, then wins nearly every time: the sending process starved (in a 10,000
    run the outbox grew to 11,800 waiting mails while intake went on). So before BEGIN IMMEDIATE
    a transaction takes a turnstile lock, then the writer lock, and lets the turnstile go; one
    that waits for the writer lock holds the turnstile meanwhile, so whoever just committed
    queues behind it. Both are flock()s on files beside the database, released by the kernel if
    a process dies. They only order the writers: SQLite's own locking still decides what is safe,
    and a writer that cannot get its turn within `timeout` goes on to SQLite's lock as before.
    """

    def __init__(self, database: Path, timeout: float = 30.0) -> None:
        self.turnstile = f"{database}.turnstile"
        self.writer = f"{database}.writer"
        self.timeout = timeout
        self._local = threading.local()

    def acquire(self) -> int | None:
        """Wait for this thread's turn; the writer lock's descriptor, or None without a turn
        (nested in a transaction this thread already holds, or timed out)."""
        if getattr(self._local, "held", False):
            return None
        deadline = time.monotonic() + self.timeout
        gate = self._lock(self.turnstile, deadline)
        try:
            writer = self._lock(self.writer, deadline)
        finally:
            if gate is not None:
                os.close(gate)
        if writer is not None:
            self._local.held = True
        return writer

    def release(self, writer: int) -> None:
        self._local.held = False
        os.close(writer)

    @staticmethod
    def _lock(path: str, deadline: float) -> int | None:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        pause = 0.0005
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return fd
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    return None
                time.sleep(pause)
                pause = min(pause * 2, 0.002)


def _tune_sqlite(engine: Engine, turn: WriterTurn | None) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy issue BEGIN itself so that BEGIN IMMEDIATE below takes the write lock
        # at the start of a transaction: no lost update between two processes.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit is on disk when COMMIT returns. The intake marks a mail done in the
        # mailbox right after its commit; with NORMAL a power cut could undo that commit
        # (WAL mode keeps it only in the OS cache until the next checkpoint) and the mail,
        # already moved, would never become a ticket. Costs one fsync per transaction.
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    held: dict[int, int] = {}  # id of a DBAPI connection in a transaction -> its writer lock

    def _end_turn(connection: Any) -> None:
        # Given the driver's connection, or the pool's proxy of it (as the dialect's methods are).
        writer = held.pop(id(getattr(connection, "dbapi_connection", connection)), None)
        if writer is not None and turn is not None:
            turn.release(writer)

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        dbapi_conn = conn.connection.dbapi_connection
        if turn is not None:
            writer = turn.acquire()
            if writer is not None:
                held[id(dbapi_conn)] = writer
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            _end_turn(dbapi_conn)
            raise

    if turn is None:
        return

    # The turn ends when the connection goes back to the pool, which a Session and engine.begin()
    # do as soon as their transaction has ended (committed or rolled back), or when the
    # connection is dropped.
    @event.listens_for(engine, "checkin")
    def _on_checkin(dbapi_conn: Any, _record: Any) -> None:
        _end_turn(dbapi_conn)

    @event.listens_for(engine, "invalidate")
    def _on_invalidate(dbapi_conn: Any, _record: Any, _exc: Any) -> None:
        _end_turn(dbapi_conn)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    from mailbot.shell.persist import Session as WritingSession

    return sessionmaker(engine, class_=WritingSession, expire_on_commit=False)


def alembic_config(url: str) -> AlembicConfig:
    # Imported here: only the process that migrates needs Alembic (a tenth of a second to import).
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(migrations.FOLDER))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def schema_is_current(engine: Engine) -> bool:
    """Whether the database is at the newest revision already: one SELECT, no Alembic."""
    try:
        with engine.connect() as conn:
            versions = list(conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalars())
    except DBAPIError:  # no such table (a new database), or no database: Alembic says which
        return False
    return versions == [migrations.head_revision()]


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision (idempotent). A database already there is left
    at once: every command and process starts with this, and Alembic's import and reading of its
    scripts took half a second of each start."""
    if schema_is_current(engine):
        return
    from alembic import command

    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            # Several processes starting at once on one database: one migrates, the others wait
            # for it (the lock ends with this transaction) and then find the schema current.
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
