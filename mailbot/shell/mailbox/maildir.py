"""A local Maildir as the consultation mailbox: the embedded default.

Done messages move to the Maildir++ subfolder `.Processed`, unreadable ones to
`.Quarantine`. The folder's identity (its UIDVALIDITY) is a number kept in a
file inside it, so a recreated Maildir counts as a new folder.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from mailbot.settings import MailboxSettings
from mailbot.shell.mailbox.base import HEADER_READ_LIMIT, MailboxError, Oversized, StoredCopy

_UIDVALIDITY_FILE = ".mailbot-uidvalidity"


class MaildirSource:
    def __init__(self, path: str, settings: MailboxSettings) -> None:
        self.max_bytes = 0  # set by open_source: limits.max_message_bytes
        self.path = Path(path)
        self.settings = settings
        self.name = f"maildir:{self.path}"
        self._files: dict[str, Path] = {}
        self._uidvalidity = 0

    def connect(self) -> None:
        try:
            for sub in ("new", "cur", "tmp"):
                (self.path / sub).mkdir(parents=True, exist_ok=True)
            marker = self.path / _UIDVALIDITY_FILE
            if not marker.exists():
                marker.write_text(str(int(time.time())))
            self._uidvalidity = int(marker.read_text().strip() or "0")
            for folder in (self.settings.processed_folder, self.settings.quarantine_folder):
                for sub in ("new", "cur", "tmp"):
                    (self.path / f".{folder}" / sub).mkdir(parents=True, exist_ok=True)
        except (OSError, ValueError) as exc:
            raise MailboxError(f"cannot open Maildir {self.path}: {exc}") from exc

    def close(self) -> None:
        self._files.clear()

    def uidvalidity(self) -> int:
        return self._uidvalidity

    def pending(self, limit: int, after: str | None = None) -> list[str]:
        # Listed whole every time (`after` is a hint this source does not need: keys are not
        # ordered); the caller leaves out what it has read.
        entries: list[tuple[float, str, Path]] = []
        try:
            for sub in ("new", "cur"):
                with os.scandir(self.path / sub) as it:
                    for entry in it:
                        if entry.is_file() and not entry.name.startswith("."):
                            key = entry.name.split(":", 1)[0]
                            entries.append((entry.stat().st_mtime, key, Path(entry.path)))
        except OSError as exc:
            raise MailboxError(f"cannot list Maildir {self.path}: {exc}") from exc
        entries.sort()
        self._files = {key: path for _, key, path in entries}
        return [key for _, key, _ in entries[:limit]]

    def fetch(self, uids: Sequence[str]) -> Iterator[tuple[str, bytes]]:
        for uid in uids:
            path = self._files.get(uid)
            if path is None:
                continue
            try:
                size = path.stat().st_size
                if self.max_bytes and size > self.max_bytes:
                    yield uid, Oversized(_head_of(path), size)
                else:
                    yield uid, path.read_bytes()
            except FileNotFoundError:
                continue  # taken by another reader; it is that reader's now
            except OSError as exc:
                raise MailboxError(f"cannot read {path}: {exc}") from exc

    def _move(self, uids: Sequence[str], folder: str) -> None:
        target = self.path / f".{folder}" / "cur"
        for uid in uids:
            path = self._files.pop(uid, None)
            if path is None:
                continue
            name = path.name if ":" in path.name else f"{path.name}:2,"
            try:
                os.replace(path, target / name)
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise MailboxError(f"cannot move {path} to {target}: {exc}") from exc

    def mark_done(self, uids: Sequence[str]) -> None:
        self._move(uids, self.settings.processed_folder)

    def quarantine(self, uids: Sequence[str]) -> None:
        self._move(uids, self.settings.quarantine_folder)

    def delete_copies(self, copies: Sequence[StoredCopy]) -> int:
        # A message keeps its file name (the key) when it moves to a subfolder; only the flags
        # after ':' change. Keys are unique, so the name is enough.
        keys = {c.uid for c in copies if c.mailbox == self.name}
        if not keys:
            return 0
        folders = [self.path] + [
            self.path / f".{f}" for f in (self.settings.processed_folder, self.settings.quarantine_folder)
        ]
        removed = 0
        for folder in folders:
            for sub in ("new", "cur"):
                try:
                    with os.scandir(folder / sub) as it:
                        found = [Path(e.path) for e in it if e.name.split(":", 1)[0] in keys]
                    for path in found:
                        path.unlink(missing_ok=True)
                        removed += 1
                except FileNotFoundError:
                    continue
                except OSError as exc:
                    raise MailboxError(f"cannot remove mail from {folder / sub}: {exc}") from exc
        return removed

    def wait(self, timeout: float, stop: threading.Event) -> None:
        deadline = time.monotonic() + timeout
        new = self.path / "new"
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                if any(not n.startswith(".") for n in os.listdir(new)):
                    return
            except OSError:
                return
            stop.wait(min(0.5, max(0.0, deadline - time.monotonic())))


def _head_of(path: Path) -> bytes:
    """The header block of a mail file, read line by line up to the blank line (bounded: each
    read is, too, or a file without a line break was read whole to find the end of its line)."""
    head = bytearray()
    with path.open("rb") as fh:
        while len(head) < HEADER_READ_LIMIT:
            line = fh.readline(HEADER_READ_LIMIT - len(head))
            head += line
            if line in (b"\r\n", b"\n", b""):
                break
    return bytes(head)
