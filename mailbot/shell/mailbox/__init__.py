"""Mailbox sources behind one interface: IMAP (imapclient, IDLE or polling) and a local Maildir."""

from __future__ import annotations

from mailbot.config import Config
from mailbot.shell.mailbox.base import (
    HEADER_READ_LIMIT,
    MailboxError,
    MailboxSource,
    Oversized,
    StoredCopy,
)

__all__ = ["HEADER_READ_LIMIT", "MailboxError", "MailboxSource", "Oversized", "StoredCopy", "open_source"]


def open_source(config: Config) -> MailboxSource:
    url = config.mailbox
    if url.scheme == "maildir":
        from mailbot.shell.mailbox.maildir import MaildirSource

        source: MailboxSource = MaildirSource(url.path, config.settings.mailbox)
    else:
        from mailbot.shell.mailbox.imap import ImapSource

        source = ImapSource(url, config.settings.mailbox)
    source.max_bytes = config.settings.limits.max_message_bytes
    return source
