"""Mailbox sources behind one interface: IMAP (imapclient, IDLE or polling) and a local Maildir."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from typing import Protocol

from mailbot.config import Config


class MailboxError(Exception):
    """A mailbox operation failed; the caller reconnects with backoff. `transient` is False for
    failures a retry cannot fix (a refused login is retried too, but logged as such)."""

    def __init__(self, message: str, *, transient: bool = True) -> None:
        self.transient = transient
        super().__init__(message)


class MailboxSource(Protocol):
    """A folder of incoming mail. Keys are (name, UIDVALIDITY, UID) as in DOMAIN.md s. 5."""

    name: str

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
    def wait(self, timeout: float, stop: threading.Event) -> None:
        """Block until new mail may be there, `timeout` passes or `stop` is set."""
        ...


def open_source(config: Config) -> MailboxSource:
    url = config.mailbox
    if url.scheme == "maildir":
        from mailbot.mailbox.maildir import MaildirSource

        return MaildirSource(url.path, config.settings.mailbox)
    from mailbot.mailbox.imap import ImapSource

    return ImapSource(url, config.settings.mailbox)
