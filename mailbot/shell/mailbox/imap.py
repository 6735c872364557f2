"""The consultation mailbox over IMAP with imapclient: TLS, STARTTLS or plain; IDLE or polling.

RFC 3501/9051: messages are keyed by (folder, UIDVALIDITY, UID) and fetched with
BODY.PEEK[] so that \\Seen stays as it was; UID MOVE (RFC 6851) where offered,
COPY + \\Deleted + UID EXPUNGE otherwise. Errors of imaplib/ssl/socket are
mapped to MailboxError here, at the boundary.
"""

from __future__ import annotations

import functools
import hashlib
import imaplib
import logging
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from imapclient import DELETED, IMAPClient
from imapclient.exceptions import IMAPClientError, LoginError

from mailbot.config import ConnectionUrl, tls_context
from mailbot.settings import MailboxSettings
from mailbot.shell.mailbox.base import HEADER_READ_LIMIT, MailboxError, Oversized, StoredCopy
from mailbot.shell.oauth2 import TokenError, token_source

log = logging.getLogger(__name__)

DONE_KEYWORD = "$MailbotDone"
QUARANTINE_KEYWORD = "$MailbotQuarantine"
T = TypeVar("T")


def _mapped(action: str, fn: Callable[[], T]) -> T:
    """Run an IMAP call; every failure of the layers below becomes a MailboxError."""
    try:
        return fn()
    except MailboxError:
        raise
    except IMAPClientError as exc:  # includes LoginError, CapabilityError, IMAP4.error
        text = str(exc)
        transient = "authenticationfailed" not in text.lower() and "login" not in action
        raise MailboxError(f"IMAP {action} failed: {text}", transient=transient) from exc
    except (TimeoutError, imaplib.IMAP4.abort, OSError, ssl.SSLError, EOFError) as exc:
        raise MailboxError(f"IMAP {action} failed: {type(exc).__name__}: {exc}") from exc


class ImapSource:
    def __init__(self, url: ConnectionUrl, settings: MailboxSettings) -> None:
        self.url = url
        self.settings = settings
        self.folder = url.path or "INBOX"
        self.name = f"imap:{url.user}@{url.host}/{self.folder}"
        self.client: IMAPClient | None = None
        self._uidvalidity = 0
        self._can_move = False
        self.max_bytes = 0  # set by open_source: limits.max_message_bytes
        self._can_idle = False

    # --- connection ------------------------------------------------------------------

    def connect(self) -> None:
        self.close()

        def _connect() -> IMAPClient:
            context = tls_context(self.settings.ca_file)
            client = IMAPClient(
                self.url.host,
                port=self.url.port,
                ssl=self.url.scheme == "imaps",
                ssl_context=context if self.url.scheme == "imaps" else None,
                timeout=self.settings.timeout,
            )
            try:
                if self.url.scheme == "imap+starttls":
                    client.starttls(context)
                self._login(client)
            except BaseException:
                _quietly(client.logout)
                raise
            return client

        client = _mapped("login", _connect)
        self.client = client
        caps = _mapped("capability", client.capabilities)
        self._can_move = b"MOVE" in caps
        self._can_idle = b"IDLE" in caps and self.settings.idle
        info = _mapped("select", lambda: client.select_folder(self.folder))
        self._uidvalidity = int(info[b"UIDVALIDITY"])
        if self.settings.after == "move":
            for folder in (self.settings.processed_folder, self.settings.quarantine_folder):
                if not _mapped("list", lambda f=folder: client.folder_exists(f)):  # type: ignore[misc]
                    _mapped("create", lambda f=folder: client.create_folder(f))  # type: ignore[misc]
        log.info(
            "IMAP connected to %s (UIDVALIDITY %s, MOVE %s, IDLE %s)",
            self.name,
            self._uidvalidity,
            self._can_move,
            self._can_idle,
        )

    def _login(self, client: IMAPClient) -> None:
        """LOGIN with the password, or AUTHENTICATE XOAUTH2 with a token of the configured source
        (Microsoft 365 and Google). A refused token is forgotten: the next connect fetches anew."""
        login = self.url.oauth2
        if login is None:
            client.login(self.url.user, self.url.password)
            return
        source = token_source(login)
        where = f"IMAP {self.url.host}:{self.url.port}"
        if not client.has_capability("AUTH=XOAUTH2"):
            offered = b" ".join(c for c in client.capabilities() if c.startswith(b"AUTH=")).decode()
            raise MailboxError(
                f"{where} does not offer XOAUTH2 (it offers {offered or 'no AUTH= mechanism'})",
                transient=False,
            )
        try:
            token = source.token()
        except TokenError as exc:
            raise MailboxError(f"{where}: no OAuth2 token from {exc}") from exc
        try:
            client.oauth2_login(self.url.user, token)
        except LoginError as exc:
            source.forget(token)
            raise MailboxError(
                f"{where} refused the OAuth2 token from {source.description} for {self.url.user}: {exc}",
                transient=False,
            ) from exc

    def close(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            _quietly(client.logout)

    def _client(self) -> IMAPClient:
        if self.client is None:
            raise MailboxError("IMAP not connected")
        return self.client

    # --- reading ---------------------------------------------------------------------

    def uidvalidity(self) -> int:
        return self._uidvalidity

    def pending(self, limit: int, after: str | None = None) -> list[str]:
        client = self._client()
        criteria: list[Any] = ["NOT", "DELETED"]
        if self.settings.after == "flag":
            criteria = ["NOT", "DELETED", "UNKEYWORD", DONE_KEYWORD]
        floor = int(after) if after is not None else 0
        if floor:
            # Only above what this pass has read: a search of the whole folder for every batch
            # grows with the backlog (quadratic over a pass). "n:*" also matches the highest UID
            # when that is below n (RFC 3501 s. 6.4.8), hence the filter.
            criteria += ["UID", f"{floor + 1}:*"]
        uids = sorted(u for u in _mapped("search", lambda: client.search(criteria)) if u > floor)
        return [str(u) for u in uids[:limit]]

    def fetch(self, uids: Sequence[str]) -> Iterator[tuple[str, bytes]]:
        client = self._client()
        if not uids:
            return
        ids = [int(u) for u in uids]
        # Size first (RFC822.SIZE): a message over the limit is never fetched whole, only its
        # header block, for the quarantine and the polite refusal.
        sizes = _mapped("fetch", lambda: client.fetch(ids, ["RFC822.SIZE"])) if self.max_bytes else {}
        big = {i for i in ids if int(sizes.get(i, {}).get(b"RFC822.SIZE", 0)) > self.max_bytes > 0}
        # Of those, at most HEADER_READ_LIMIT bytes of the header (a partial FETCH, RFC 3501 s. 6.4.5):
        # a header block of megabytes (it is mail from anyone) is not held, once per such message.
        partial = f"BODY.PEEK[HEADER]<0.{HEADER_READ_LIMIT}>"
        heads = _mapped("fetch", lambda: client.fetch(sorted(big), [partial])) if big else {}
        # The bodies in FETCHes of at most `max_bytes` together (one message at least), yielded
        # as they come: a batch of large mail is never held whole.
        chunk: list[int] = []
        held = 0
        data: dict[int, Any] = {}
        for n, uid in enumerate(uids):
            i = int(uid)
            if i in big:
                head = heads.get(i, {}).get(b"BODY[HEADER]<0>")
                if head is not None:
                    size = int(sizes[i][b"RFC822.SIZE"])
                    yield uid, Oversized(bytes(head)[:HEADER_READ_LIMIT], size)
                continue
            if i not in data:
                chunk, held = [], 0
                for later in ids[n:]:
                    if later in big:
                        continue
                    size = int(sizes.get(later, {}).get(b"RFC822.SIZE", 0))
                    if chunk and self.max_bytes and held + size > self.max_bytes:
                        break
                    chunk.append(later)
                    held += size
                data = _mapped("fetch", functools.partial(client.fetch, chunk, ["BODY.PEEK[]"]))
                data.update({c: {} for c in chunk if c not in data})  # expunged meanwhile
            item = data.pop(i, None)
            raw = item.get(b"BODY[]") if item else None
            if raw is None:
                continue  # expunged meanwhile
            yield uid, bytes(raw)

    # --- marking -------------------------------------------------------------------

    def _move(self, uids: Sequence[str], folder: str, keyword: str) -> None:
        client = self._client()
        if not uids:
            return
        ids = [int(u) for u in uids]
        if self.settings.after == "flag":
            _mapped("store", lambda: client.add_flags(ids, [keyword.encode()]))
            return
        if self._can_move:
            _mapped("move", lambda: client.move(ids, folder))
            return
        # No MOVE (older Zimbra): COPY, then remove our messages (and only ours) from the folder.
        _mapped("copy", lambda: client.copy(ids, folder))
        _expunge(client, ids)

    def mark_done(self, uids: Sequence[str]) -> None:
        self._move(uids, self.settings.processed_folder, DONE_KEYWORD)

    def quarantine(self, uids: Sequence[str]) -> None:
        if self.settings.after == "flag":
            client = self._client()
            ids = [int(u) for u in uids]
            if ids:
                _mapped(
                    "store",
                    lambda: client.add_flags(ids, [QUARANTINE_KEYWORD.encode(), DONE_KEYWORD.encode()]),
                )
            return
        self._move(uids, self.settings.quarantine_folder, QUARANTINE_KEYWORD)

    # --- purging (UU 27/2022) ----------------------------------------------------------

    def delete_copies(self, copies: Sequence[StoredCopy]) -> int:
        """Each copy is looked for in this folder (by its UID while UIDVALIDITY is the same: the
        flag mode leaves mail there), then by Message-ID (or, without one in ASCII, by size) in the
        folder and the processed and quarantine folders: a moved message has a new UID there.
        Only a message whose bytes hash to the stored SHA-256 is removed."""
        client = self._client()
        mine = [c for c in copies if c.mailbox == self.name]
        if not mine:
            return 0
        wanted = {c.sha256 for c in mine}
        folders = dict.fromkeys(
            (self.folder, self.settings.processed_folder, self.settings.quarantine_folder)
        )
        removed = 0
        try:
            for folder in folders:
                if not _mapped("list", lambda f=folder: client.folder_exists(f)):  # type: ignore[misc]
                    continue
                info = _mapped("select", lambda f=folder: client.select_folder(f))  # type: ignore[misc]
                uidvalidity = int(info[b"UIDVALIDITY"])
                candidates: set[int] = set()
                for c in mine:
                    if folder == self.folder and c.uidvalidity == uidvalidity and c.uid.isdigit():
                        candidates.add(int(c.uid))
                    # By size where the id cannot be searched for: a SEARCH string is US-ASCII
                    # unless a CHARSET is named (RFC 3501 s. 6.4.4), and a UTF-8 id (or one decoded
                    # from encoded words) made this raise, the whole purge's copies kept.
                    criteria: list[Any] = (
                        ["HEADER", "Message-ID", c.message_id]
                        if c.message_id and c.message_id.isascii() and c.message_id.isprintable()
                        else ["LARGER", c.size - 1, "SMALLER", c.size + 1]
                    )
                    candidates.update(_mapped("search", lambda cr=criteria: client.search(cr)))  # type: ignore[misc]
                doomed: list[int] = []
                ordered = sorted(candidates)
                for start in range(0, len(ordered), 100):
                    chunk = ordered[start : start + 100]
                    data = _mapped("fetch", lambda ids=chunk: client.fetch(ids, ["BODY.PEEK[]"]))  # type: ignore[misc]
                    for uid, item in data.items():
                        raw = item.get(b"BODY[]")
                        if raw is not None and hashlib.sha256(bytes(raw)).hexdigest() in wanted:
                            doomed.append(uid)
                if doomed:
                    _expunge(client, doomed)
                    removed += len(doomed)
        finally:
            _mapped("select", lambda: client.select_folder(self.folder))
        return removed

    # --- waiting ---------------------------------------------------------------------

    def wait(self, timeout: float, stop: threading.Event) -> None:
        """IDLE (RFC 2177) when offered, checking `stop` every second; else a plain poll interval."""
        client = self._client()
        if not self._can_idle:
            stop.wait(min(timeout, self.settings.poll_interval))
            _mapped("noop", client.noop)
            return
        deadline = time.monotonic() + min(timeout, self.settings.idle_timeout)
        _mapped("idle", client.idle)
        try:
            while not stop.is_set() and time.monotonic() < deadline:
                responses = _mapped("idle", lambda: client.idle_check(timeout=1))
                if any(r[1] in (b"EXISTS", b"RECENT") for r in responses if len(r) > 1):
                    return
        finally:
            _mapped("idle", client.idle_done)


def _expunge(client: IMAPClient, uids: list[int]) -> None:
    """Remove these messages for good: \\Deleted, then UID EXPUNGE (RFC 4315) where offered.
    Without UIDPLUS a plain EXPUNGE would also remove what another client marked \\Deleted and
    meant to keep until its own expunge: those marks are taken off for the EXPUNGE and put back."""
    _mapped("store", lambda: client.delete_messages(uids))
    if client.has_capability("UIDPLUS"):
        _mapped("expunge", lambda: client.uid_expunge(uids))
        return
    ours = set(uids)
    others = [u for u in _mapped("search", lambda: client.search(["DELETED"])) if u not in ours]
    if others:
        _mapped("store", lambda: client.remove_flags(others, [DELETED]))
    try:
        _mapped("expunge", client.expunge)
    finally:
        if others:
            _mapped("store", lambda: client.add_flags(others, [DELETED]))


def _quietly(fn: Callable[[], Any]) -> None:
    try:
        fn()
    except Exception:  # closing a broken connection: nothing left to save
        log.debug("ignored error while closing IMAP connection", exc_info=True)
