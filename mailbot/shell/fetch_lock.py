"""One fetcher at a time: with several `mailbot run` processes on one database, only the holder of
this lock reads the mailbox; the others send from the shared outbox and run the sweeps, and take
over when the holder dies (its lock goes with its database session, or its process)."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import zlib
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

log = logging.getLogger(__name__)


class FetchLock:
    def __init__(self, engine: Engine, data_dir: Path, name: str) -> None:
        self.engine = engine
        self.data_dir = data_dir
        # A stable 31-bit key per mailbox: two services on one database do not block each other.
        self.key = zlib.crc32(name.encode()) & 0x7FFFFFFF
        self._conn: Any = None
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._conn is not None or self._fd is not None

    def acquire(self) -> bool:
        """Take the lock if it is free (never waits)."""
        if self.held:
            return True
        if self.engine.dialect.name == "postgresql":
            try:
                conn = self.engine.connect()
                got = bool(conn.exec_driver_sql(f"SELECT pg_try_advisory_lock({self.key})").scalar())
                conn.commit()
            except DBAPIError as exc:
                log.warning("fetch lock: database unavailable: %s", exc.orig)
                return False
            if got:
                self._conn = conn
            else:
                conn.close()
            return got
        self.data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.data_dir / f"fetch-{self.key}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def still_held(self) -> bool:
        """False when the database session that held the lock is gone (the lock went with it)."""
        if self._conn is None:
            return self._fd is not None
        try:
            self._conn.exec_driver_sql("SELECT 1").scalar()
            self._conn.commit()
            return True
        except DBAPIError:
            self.release()
            return False

    def release(self) -> None:
        if self._conn is not None:
            # close() only hands the connection back to the pool, where the database session, and
            # with it the lock, would live on: unlock explicitly, then drop the connection.
            with contextlib.suppress(DBAPIError):
                self._conn.exec_driver_sql(f"SELECT pg_advisory_unlock({self.key})")
                self._conn.commit()
            with contextlib.suppress(DBAPIError):
                self._conn.invalidate()
                self._conn.close()
            self._conn = None
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
