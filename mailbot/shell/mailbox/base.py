"""What every mailbox source shares: the interface, its error, and how a stored copy is named."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol


class MailboxError(Exception):
    """A mailbox operation failed; the caller reconnects with backoff. `transient` is False for
    failures a retry cannot fix (a refused login is retried too, but logged as such)."""

    def __init__(self, message: str, *, transient: bool = True) -> None:
        self.transient = transient
        super().__init__(message)


class Oversized(bytes):
    """The header block of a message larger than `limits.max_message_bytes`, read instead of the
    message (RFC822.SIZE over IMAP, the file's size in a Maildir): the intake quarantines it and
    sends the polite refusal without ever holding the body. `size` is the whole message's."""

    size: int

    def __new__(cls, head: bytes, size: int) -> Oversized:
        obj = super().__new__(cls, head)
        obj.size = size
        return obj

    def __reduce__(self) -> tuple[type[Oversized], tuple[bytes, int]]:  # crosses to the parse worker
        return (Oversized, (bytes(self), self.size))


HEADER_READ_LIMIT = 256 * 1024  # of an oversized message, at most this much of its header block


@dataclass(frozen=True)
class StoredCopy:
    """Where a received mail lay in the mailbox, and how to know it again: what a purge (UU
    27/2022) needs to remove the mailbox's own copies (processed, quarantined or flagged)."""

    mailbox: str  # the source's name, as stored with the message
    uidvalidity: int
    uid: str
    sha256: str  # of the raw bytes as fetched
    size: int
    message_id: str = ""


class MailboxSource(Protocol):
    """A folder of incoming mail. Keys are (name, UIDVALIDITY, UID) as in DOMAIN.md s. 5."""

    name: str
    max_bytes: int  # a larger message is read as its header block only (Oversized)

    def connect(self) -> None: ...
    def close(self) -> None: ...
    def uidvalidity(self) -> int: ...
    def pending(self, limit: int, after: str | None = None) -> list[str]:
        """UIDs of messages not yet marked done, oldest first, at most `limit`. `after` is the
        last UID read so far in this pass over the folder: a source may leave out the UIDs up to
        it (IMAP searches only above it; a Maildir lists everything)."""
        ...

    def fetch(self, uids: Sequence[str]) -> Iterator[tuple[str, bytes]]:
        """Raw bytes of each message, without setting \\Seen (BODY.PEEK[])."""
        ...

    def mark_done(self, uids: Sequence[str]) -> None:
        """Stored and committed: move to the processed folder, or flag."""
        ...

    def quarantine(self, uids: Sequence[str]) -> None: ...
    def delete_copies(self, copies: Sequence[StoredCopy]) -> int:
        """Remove these messages wherever this source keeps them (the folder itself, the
        processed and quarantine folders); returns how many were removed. A copy not found is
        already gone. Raises MailboxError when the mailbox cannot be searched or changed."""
        ...

    def wait(self, timeout: float, stop: threading.Event) -> None:
        """Block until new mail may be there, `timeout` passes or `stop` is set."""
        ...
