"""A server without MOVE or UIDPLUS (older Zimbra, as many Indonesian offices run): a real Dovecot
that advertises neither. Processed mail is copied and removed, and only ours is expunged."""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import request_mail, send_all
from tests.servers import Dovecot, ImapAccount

# Dovecot 2.3's capabilities after login, less MOVE and UIDPLUS.
OLD_CAPABILITIES = (
    "\nimap_capability = IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT THREAD=REFERENCES "
    "LITERAL+ NAMESPACE CHILDREN UNSELECT CONDSTORE QRESYNC ESEARCH SEARCHRES WITHIN CONTEXT=SEARCH "
    "LIST-STATUS BINARY\n"
)


@pytest.fixture(scope="module")
def old_dovecot() -> Iterator[Dovecot]:
    if not (shutil.which("dovecot") or Path("/usr/sbin/dovecot").exists()):
        pytest.skip("dovecot is not installed (./test.sh installs it)")
    root = Path(f"/tmp/mailbot-olddovecot-{secrets.token_hex(4)}")
    root.mkdir()
    server = Dovecot(root, extra_conf=OLD_CAPABILITIES)
    server.start()
    yield server
    server.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def old_imap(old_dovecot: Dovecot) -> ImapAccount:
    return old_dovecot.new_account()


def test_the_server_really_lacks_move_and_uidplus(old_imap: ImapAccount) -> None:
    c = old_imap.client()
    try:
        caps = c.capabilities()
        assert b"MOVE" not in caps and b"UIDPLUS" not in caps and b"IMAP4REV1" in caps
    finally:
        c.logout()


def test_without_move_mail_is_copied_and_removed(old_imap, smtp, sqlite_url, make_app) -> None:
    app = make_app(database_url=sqlite_url, mailbox_url=old_imap.url(), smtp_url=smtp.url)
    old_imap.deliver(*(request_mail(sender=f"p{i}@example.go.id", subject=f"Soal {i}") for i in range(3)))
    stats = app.run_intake_once()
    send_all(app)
    assert stats.processed == 3
    assert old_imap.count("INBOX") == 0 and old_imap.count("Processed") == 3
    c = old_imap.client()
    try:
        c.select_folder("INBOX", readonly=True)
        assert c.search(["ALL"]) == []  # expunged, not only marked
    finally:
        c.logout()


def test_without_uidplus_another_clients_deleted_mail_stays(old_imap, smtp, sqlite_url, make_app) -> None:
    # Another client (a secretary's Thunderbird) marked one mail \Deleted and has not expunged yet.
    old_imap.deliver(request_mail(sender="lama@example.go.id", subject="Mail lama"))
    c = old_imap.client()
    try:
        c.select_folder("INBOX")
        [theirs] = c.search(["ALL"])
        c.add_flags([theirs], [b"\\Deleted"])
    finally:
        c.logout()
    app = make_app(database_url=sqlite_url, mailbox_url=old_imap.url(), smtp_url=smtp.url)
    old_imap.deliver(request_mail(sender="baru@example.go.id", subject="Mail baru"))
    stats = app.run_intake_once()
    assert stats.processed == 1 and old_imap.count("Processed") == 1
    c = old_imap.client()
    try:
        c.select_folder("INBOX", readonly=True)
        left = c.search(["ALL"])
        assert left == [theirs]  # still there, still marked: that client's expunge decides
        assert b"\\Deleted" in c.get_flags(left)[theirs]
    finally:
        c.logout()
