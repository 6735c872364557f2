"""Reading an oversized message's header stays bounded (Maildir and IMAP, shell/mailbox), and a purge
finds copies whose Message-ID is outside ASCII."""

from __future__ import annotations

import threading
import tracemalloc
from pathlib import Path

from mailbot.settings import MailboxSettings
from mailbot.shell.mailbox import HEADER_READ_LIMIT, Oversized
from mailbot.shell.mailbox.maildir import MaildirSource


def test_the_header_of_an_oversized_file_without_line_breaks_is_read_within_the_bound(tmp_path: Path) -> None:
    source = MaildirSource(str(tmp_path / "md"), MailboxSettings())
    source.max_bytes = 1024 * 1024
    source.connect()
    (tmp_path / "md" / "new" / "1.host").write_bytes(b"Subject: " + b"x" * (40 * 1024 * 1024))
    [uid] = source.pending(10)
    tracemalloc.start()
    try:
        [(got, raw)] = list(source.fetch([uid]))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert got == uid and isinstance(raw, Oversized) and raw.size == 40 * 1024 * 1024 + 9
    assert len(raw) == HEADER_READ_LIMIT
    assert peak < 4 * HEADER_READ_LIMIT  # the whole 40 MB "line" was read to find its end
    source.wait(0.01, threading.Event())


def test_imap_reads_at_most_the_bound_of_an_oversized_header(imap, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from mailbot.config import parse_connection_url
    from mailbot.shell.mailbox.imap import ImapSource

    huge_header = b"Subject: s\r\nX-Filler: " + b"y" * 990 + b"\r\n"
    raw = b"From: a@b.example\r\n" + huge_header * 3000 + b"\r\nbody\r\n"  # a 3 MB header block
    imap.deliver(raw)
    source = ImapSource(
        parse_connection_url(imap.url(), {"imap": 143}, tmp_path), MailboxSettings(idle=False)
    )
    source.max_bytes = 1024 * 1024
    source.connect()
    try:
        uids = source.pending(10)
        tracemalloc.start()
        try:
            [(_, head)] = list(source.fetch(uids))
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    finally:
        source.close()
    assert isinstance(head, Oversized) and head.size == len(raw) and len(head) == HEADER_READ_LIMIT
    assert peak < 4 * HEADER_READ_LIMIT  # the whole 3 MB header block came over the wire


def test_a_purge_removes_copies_whose_message_id_is_outside_ascii(imap, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import hashlib

    from mailbot.config import parse_connection_url
    from mailbot.shell.mailbox import StoredCopy
    from mailbot.shell.mailbox.imap import ImapSource

    good = b"From: a@b.example\r\nMessage-ID: <ok@x.example>\r\nSubject: s\r\n\r\nbody\r\n"
    bad = "From: a@b.example\r\nMessage-ID: <pesan\u00e9@x.example>\r\nSubject: s\r\n\r\nisi\r\n".encode()
    imap.deliver(good, bad)
    source = ImapSource(
        parse_connection_url(imap.url(), {"imap": 143}, tmp_path), MailboxSettings(idle=False)
    )
    copies = [
        StoredCopy(source.name, 1, "999", hashlib.sha256(raw).hexdigest(), len(raw), message_id)
        for raw, message_id in ((good, "<ok@x.example>"), (bad, "<pesan\u00e9@x.example>"))
    ]
    source.connect()
    try:
        # It raised UnicodeEncodeError (no MailboxError): the purge stopped after its commit and
        # kept no note of the copies left, so no later purge looked for them.
        assert source.delete_copies(copies) == 2
    finally:
        source.close()
    assert imap.count("INBOX") == 0
