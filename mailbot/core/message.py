"""Raw message bytes → `InboundMessage`: addresses, threading ids, decoded text, quote-stripped text.

Parsing is done by mail-parser (over the standard library's email package);
here it is wrapped so that any failure becomes one `UnreadableMessage` with a
reason a person can act on, never an unhandled exception.
"""

from __future__ import annotations

import email.header
import email.message
import email.utils
import hashlib
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

from mailbot.core import feedparser_backport
from mailbot.core.attachments import files_of
from mailbot.core.fields import FIELDS, extract_fields, merge_fields
from mailbot.core.html_text import html_to_text
from mailbot.core.quotes import strip_quotes

log = logging.getLogger(__name__)
feedparser_backport.install()  # the feedparser without a regex compiled per MIME boundary

_HEADER_LINE = re.compile(rb"^[!-9;-~]+[ \t]*:")
_MSGID_RE = re.compile(r"<[^<>\s]+>")
_REPLY_PREFIX = re.compile(r"^\s*((re|fw|fwd|aw|bls|balas|tr)\s*:\s*)+", re.I)


class UnreadableMessage(Exception):
    """The bytes are not a mail we can process; `reason` says why (it is stored with the quarantine)."""

    def __init__(self, reason: str, *, limit: str = "", size: int = 0, allowed: int = 0) -> None:
        self.reason = reason
        # Set when a configured limit refused the mail (too_large, too_deep, too_many_attachments):
        # the sender is told, where the sender is a person.
        self.limit = limit
        self.size = size
        self.allowed = allowed
        super().__init__(reason)

    def __reduce__(self) -> tuple[Any, ...]:
        # Crosses a process boundary (the parse worker) with its keyword attributes.
        return (_unreadable, (self.reason, self.limit, self.size, self.allowed))


def _unreadable(reason: str, limit: str, size: int, allowed: int) -> UnreadableMessage:
    return UnreadableMessage(reason, limit=limit, size=size, allowed=allowed)


@dataclass(frozen=True)
class Attachment:
    """A file of the mail (core/attachments.py says which parts are files), by name and size."""

    filename: str
    content_type: str
    size: int


@dataclass(frozen=True)
class InboundMessage:
    """What the core needs to know about one received mail."""

    message_id: str
    from_name: str
    from_addr: str
    reply_to: str
    to: tuple[str, ...]
    cc: tuple[str, ...]
    subject: str
    date: datetime | None
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    headers: dict[str, tuple[str, ...]]
    content_types: tuple[str, ...]
    text: str
    html: str  # the HTML part's source ("" without one); `html_text` is its text
    attachments: tuple[Attachment, ...] = ()
    defects: tuple[str, ...] = field(default=())

    @cached_property
    def new_text(self) -> str:
        """The new part of a reply, without quoted history and signature. Worked out when first
        asked for: a new request (most mail) never needs it."""
        try:
            return strip_quotes(self.text)
        except Exception as exc:  # a third-party parser on odd input: the whole text is safer
            log.warning("quote stripping failed (%s: %s); using the whole text", type(exc).__name__, exc)
            return self.text

    @cached_property
    def html_text(self) -> str:
        """The HTML part as text. Worked out when first asked for: a request whose text/plain part
        carries every field never needs it."""
        return html_to_text(self.html) if self.html else ""

    def fields_of(self, text: str, *, prose_question: bool = True) -> dict[str, str]:
        """The labelled fields of `text` (the mail's or its new part's), the HTML part filling in
        what it lacks; unlabelled prose is the question unless `prose_question` is False."""
        found = extract_fields(text, prose_question=prose_question)
        if not self.html or all(name in found for name in FIELDS):
            return found
        return merge_fields(found, extract_fields(self.html_text, prose_question=prose_question))

    @cached_property
    def request_fields(self) -> dict[str, str]:
        """The request's labelled fields, from the text and the HTML part (a new request)."""
        return self.fields_of(self.text)

    @cached_property
    def content_hash(self) -> str:
        """Same sender, subject, threading and words: the same request sent twice."""
        subject = _REPLY_PREFIX.sub("", self.subject)
        body = re.sub(r"\s+", " ", self.text).strip().lower()
        key = "\x00".join([self.from_addr, subject.strip().lower(), " ".join(self.in_reply_to), body])
        return hashlib.sha256(key.encode("utf-8", "replace")).hexdigest()

    def header(self, name: str) -> str:
        values = self.headers.get(name.lower())
        return values[0] if values else ""

    def has_header(self, name: str) -> bool:
        return name.lower() in self.headers

    @property
    def referenced_ids(self) -> list[str]:
        """In-Reply-To first, then References newest first (RFC 5322 s. 3.6.4)."""
        # A dict keeps the order and finds a repeat in constant time (40,000 ids: 13 s with a list).
        return list(dict.fromkeys([*self.in_reply_to, *reversed(self.references)]))

    @property
    def reply_address(self) -> str:
        return self.reply_to or self.from_addr


def clean_header_text(value: str) -> str:
    """A header value safe to echo: CR, LF and other controls removed, whitespace collapsed."""
    value = re.sub(r"[\x00-\x1f\x7f]+", " ", value)
    return re.sub(r"\s{2,}", " ", value).strip()


# One RFC 2047 encoded word, strictly (s. 2: no white space inside; s. 5: no "?" in the text):
# every try stops at the next "?", so finding them all is linear.
_ENCODED_WORD = re.compile(r"=\?[^?\s]++\?[qQbB]\?[^?\s]*+\?=")
# The standard library's decoder (email.header.decode_header) tries, at every "=?" of a line, a
# lazy match to the line's end: quadratic in a line's length (100 KB of "=?utf-8?q?a": 15 s).
_STDLIB_DECODE_LINE = 1000


def _decode_long(text: str) -> list[tuple[bytes | str, str | None]]:
    """decode_header's chunks for a header with a line too long for it: the encoded words
    found one by one, the white space between two of them dropped (RFC 2047 s. 6.2)."""
    chunks: list[tuple[bytes | str, str | None]] = []
    pos = 0
    after_word = False
    for m in _ENCODED_WORD.finditer(text):
        between = text[pos : m.start()]
        if between and not (after_word and between.isspace()):
            chunks.append((between, None))
        try:
            chunks.extend((c, cs) for c, cs in email.header.decode_header(m.group(0)))
        except (ValueError, LookupError, UnicodeError):
            chunks.append((m.group(0), None))
        pos, after_word = m.end(), True
    chunks.append((text[pos:], None))
    return chunks


def decode_header(value: object) -> str:
    """Decode RFC 2047 encoded words; bad charsets degrade to replacement characters."""
    if value is None:
        return ""
    if isinstance(value, email.header.Header):
        chunks = email.header.decode_header(value)
    else:
        text = str(value)
        if "=?" not in text:
            chunks = [(text, None)]  # what the decoder returns for a header without encoded words
        elif any(len(line) > _STDLIB_DECODE_LINE for line in text.splitlines()):
            chunks = _decode_long(text)
        else:
            try:
                chunks = email.header.decode_header(text)
            except (ValueError, LookupError, UnicodeError):
                return clean_header_text(text)
    parts = []
    for chunk, charset in chunks:
        if isinstance(chunk, bytes):
            try:
                parts.append(chunk.decode(charset or "utf-8", "replace"))
            except LookupError:
                parts.append(chunk.decode("utf-8", "replace"))
        else:
            parts.append(chunk)
    # decode_header drops the whitespace between an encoded and a plain chunk.
    joined = "".join(parts) if len(parts) > 1 else (parts[0] if parts else "")
    return clean_header_text(joined.replace("\udcff", "\ufffd"))


def _raw_text(value: object) -> str:
    """A header as sent, encoded words left encoded. A header with 8-bit bytes (RFC 6532 UTF-8,
    `From: rína@example.go.id`) comes from the email package as a Header of unknown-8bit
    chunks, whose str() is replacement characters: its bytes are read as UTF-8 instead."""
    if not isinstance(value, email.header.Header):
        return str(value)
    parts = []
    for chunk, _charset in email.header.decode_header(value):
        if isinstance(chunk, bytes):
            try:
                parts.append(chunk.decode("utf-8"))
            except UnicodeDecodeError:
                parts.append(chunk.decode("latin-1"))  # any byte, as the sender's bytes
        else:
            parts.append(chunk)
    return "".join(parts)


def _looks_like_mail(raw: bytes) -> str | None:
    """None when the bytes start like an RFC 5322 message, else the reason they do not."""
    if not raw.strip():
        return "empty message"
    if raw.startswith(b"\xd0\xcf\x11\xe0"):
        return "not an RFC 5322 message: an Outlook .msg / OLE2 compound file"
    head = raw.lstrip(b" \t\r\n")[:4096]
    first = head.split(b"\n", 1)[0].rstrip(b"\r")
    if first.startswith(b"From "):  # mbox separator line
        head = head.split(b"\n", 1)[1] if b"\n" in head else b""
        first = head.split(b"\n", 1)[0].rstrip(b"\r")
    if not _HEADER_LINE.match(first):
        return "not an RFC 5322 message: no header at the start"
    header_block = re.split(rb"\r?\n\r?\n|\r\r", head, maxsplit=1)[0]
    if b"\x00" in header_block:
        return "not an RFC 5322 message: NUL bytes in the header"
    return None


def parse_headers(raw: bytes) -> InboundMessage:
    """Only the header block (for a mail refused for its size): enough to classify and answer it."""
    head = re.split(rb"\r?\n\r?\n", raw.lstrip(b" \t\r\n")[:262144], maxsplit=1)[0]
    return _parse(head + b"\r\n\r\n", 1000)


def _mime_depth(msg: email.message.Message, depth: int = 1) -> int:
    if not msg.is_multipart():
        return depth
    payload = msg.get_payload()
    if not isinstance(payload, list) or not payload:
        return depth
    return max(_mime_depth(p, depth + 1) for p in payload if isinstance(p, email.message.Message))


def _message_ids(value: str) -> tuple[str, ...]:
    return tuple(_MSGID_RE.findall(value))


def parse_message(
    raw: bytes, *, max_bytes: int = 25 * 1024 * 1024, max_depth: int = 10, max_attachments: int = 1000
) -> InboundMessage:
    """Parse raw bytes; raises UnreadableMessage (never anything else) when it cannot."""
    if len(raw) > max_bytes:
        raise UnreadableMessage(
            f"message too large: {len(raw)} bytes, limit {max_bytes}",
            limit="too_large",
            size=len(raw),
            allowed=max_bytes,
        )
    reason = _looks_like_mail(raw)
    if reason:
        raise UnreadableMessage(reason)
    # Imported here: composing and sweeping deadlines use this module's header helpers only.
    from mailparser.exceptions import MailParserRecursionError

    try:
        msg = _parse(raw, max_depth)
        if len(msg.attachments) > max_attachments:
            raise UnreadableMessage(
                f"{len(msg.attachments)} attachments, limit {max_attachments}",
                limit="too_many_attachments",
                size=len(msg.attachments),
                allowed=max_attachments,
            )
        return msg
    except UnreadableMessage:
        raise
    except (RecursionError, MailParserRecursionError) as exc:
        # Python's own recursion limit, or mail-parser's name for it (5,000 levels): the same
        # refusal as a structure over `max_depth`, so the person is told.
        raise UnreadableMessage(
            "MIME structure nested too deeply", limit="too_deep", allowed=max_depth
        ) from exc
    except Exception as exc:  # the parser's failure modes are open-ended; we quarantine all of them
        log.warning("parser failed: %s: %s", type(exc).__name__, exc)
        raise UnreadableMessage(f"parser failed: {type(exc).__name__}: {exc}") from exc


def parse_many(
    raws: list[bytes], max_bytes: int, max_depth: int, max_attachments: int
) -> list[InboundMessage | UnreadableMessage]:
    """Parse a group of messages (in the parse worker process): each result or its failure.

    What the intake will ask of every message (its content hash) and of a new request (its
    fields) is worked out here too, off the intake thread; it travels with the message."""
    out: list[InboundMessage | UnreadableMessage] = []
    for raw in raws:
        try:
            msg = parse_message(
                raw, max_bytes=max_bytes, max_depth=max_depth, max_attachments=max_attachments
            )
        except UnreadableMessage as exc:
            out.append(exc)
            continue
        _ = msg.content_hash
        if not msg.referenced_ids:
            _ = msg.request_fields
        out.append(msg)
    return out


# RFC 5322 s. 2.1.1: a line is at most 998 characters. The header decoder under mail-parser
# (email.header.decode_header) is quadratic in a line's length, so a longer header line is folded
# before parsing: at a space or tab where there is one (folding white space, s. 3.2.2, the value
# unchanged), else by a space put in (the line broke the rule already).
_HEADER_LINE_MAX = 998
_HEADER_END = re.compile(rb"\r?\n\r?\n")


def _fold_long_header_lines(raw: bytes) -> bytes:
    end = _HEADER_END.search(raw)
    head_end = end.start() if end else len(raw)
    lines = raw[:head_end].split(b"\n")
    if all(len(line) <= _HEADER_LINE_MAX + 1 for line in lines):
        return raw
    out: list[bytes] = []
    for line in lines:
        rest = line
        while len(rest) > _HEADER_LINE_MAX + 1:
            cut = max(rest.rfind(b" ", 1, _HEADER_LINE_MAX), rest.rfind(b"\t", 1, _HEADER_LINE_MAX))
            if cut > 0:
                out.append(rest[:cut] + b"\r")
                rest = rest[cut:]
            else:
                out.append(rest[:_HEADER_LINE_MAX] + b"\r")
                rest = b" " + rest[_HEADER_LINE_MAX:]
        out.append(rest)
    return b"\n".join(out) + raw[head_end:]


def _parse(raw: bytes, max_depth: int) -> InboundMessage:
    # Leading blank lines or spaces before the first header occur in the wild; the stored
    # bytes stay as received, the parser gets them trimmed (and long header lines folded).
    import mailparser

    mail = mailparser.parse_from_bytes(_fold_long_header_lines(raw.lstrip(b" \t\r\n")))
    msg: email.message.Message = mail.message
    depth = _mime_depth(msg)
    if depth > max_depth:
        raise UnreadableMessage(
            f"MIME structure nested {depth} levels deep, limit {max_depth}",
            limit="too_deep",
            size=depth,
            allowed=max_depth,
        )

    headers: dict[str, list[str]] = {}
    raw_headers: dict[str, list[str]] = {}
    for name, value in msg.items():
        key = name.lower().strip()
        headers.setdefault(key, []).append(decode_header(value))
        raw_headers.setdefault(key, []).append(clean_header_text(_raw_text(value)))

    def first(name: str) -> str:
        values = headers.get(name)
        return values[0] if values else ""

    def pairs(name: str) -> list[tuple[str, str]]:
        # Addresses are parsed from the header as sent and only then are display names decoded:
        # decoding first would let an encoded "Bcc: x@y" inside a name become an address.
        return [
            (decode_header(n), a) for n, a in email.utils.getaddresses(raw_headers.get(name, [])) if "@" in a
        ]

    from_name, from_addr = next(iter(pairs("from")), ("", ""))
    if not from_addr:
        from_name, from_addr = next(iter(pairs("sender")), ("", ""))
    reply_to = next((a for _, a in pairs("reply-to")), "")

    def addresses(name: str) -> tuple[str, ...]:
        return tuple(a.lower() for _, a in pairs(name))

    date = None
    if first("date"):
        try:
            date = email.utils.parsedate_to_datetime(first("date"))
        except (TypeError, ValueError, IndexError):
            date = None

    plain = "\n".join(mail.text_plain or [])
    html = "\n".join(mail.text_html or [])
    html_text = html_to_text(html) if html and not plain.strip() else None
    text = plain if html_text is None else html_text
    text = text.replace("\r\n", "\n").replace("\r", "\n")

    # The files as mailbot passes them on (core/attachments.py): pasted screenshots and inline
    # files too, under the names the staff will see.
    attachments = [Attachment(f.filename, f.content_type, len(f.data)) for f in files_of(msg)]

    message_ids = _message_ids(first("message-id"))
    parsed = InboundMessage(
        message_id=message_ids[0] if message_ids else "",
        from_name=clean_header_text(from_name),
        from_addr=from_addr.strip().lower(),
        reply_to=reply_to.strip().lower(),
        to=addresses("to"),
        cc=addresses("cc"),
        subject=first("subject"),
        date=date,
        in_reply_to=_message_ids(first("in-reply-to")),
        references=_message_ids(" ".join(headers.get("references", []))),
        headers={k: tuple(v) for k, v in headers.items()},
        content_types=tuple(p.get_content_type() for p in msg.walk()),
        text=text,
        html=html,
        attachments=tuple(attachments),
        defects=tuple(str(d) for d in (mail.defects_categories or ())),
    )
    if html_text is not None:
        parsed.__dict__["html_text"] = html_text  # already worked out: the cached property's value
    return parsed
