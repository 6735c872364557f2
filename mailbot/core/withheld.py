"""Files left out of a mail too large to send, and the note in their place saying where they are.

A mail over a size limit used to become a dead letter whole: a Zimbra's 10 MB turned a Surat
Tugas with the applicant's screenshots into one (#21 item 3). Now the largest files are left
out, one by one, until the mail fits, and a note at the top of its text and HTML names them and
says where they are (the ticket's archive at the secretariat). Two places check:

- `fit`, when a mail is composed, against `limits.max_outgoing_bytes` (pipeline/replies.py);
- `shrink`, when it is sent, against the SIZE the receiving server states in its EHLO (RFC 1870),
  which may be smaller (shell/outbox.py). The mail keeps its Message-ID and every header.

The note is a template, `templates/<language>/_files_withheld.{txt,html}.j2`. What it needs is
read from the mail itself: the language (Content-Language), the ticket (X-Mailbot-Ticket), the
service (the From name), and whether it goes to staff: `Auto-Submitted: auto-generated` is what
pipeline/replies.py writes on a ticket's mail to staff (`auto-replied` on mail to the person
who wrote to us); staff are also told how the secretariat takes the files from the archive.
"""

from __future__ import annotations

import email
import email.policy
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from email.message import Message
from email.utils import parseaddr
from pathlib import Path

from mailbot.core.attachments import forwarded_bytes
from mailbot.core.compose import (
    LANGUAGES,
    Envelope,
    MailSpec,
    Withheld,
    build_mail,
    environment,
    file_part,
    mime_tree,
    wire_bytes,
)
from mailbot.core.message import decode_header

# Room kept for the note itself when choosing what to leave out (its text and HTML, in base64).
NOTE_ROOM = 8 * 1024
# What a file costs besides its part: the boundary line before it (compose.mime_tree's boundary).
_PART_OVERHEAD = len("\r\n--=_mb.0123456789abcdef.m\r\n")
_BODY_TAG = re.compile(r"<body\b[^>]*+>", re.IGNORECASE)
_FIELD = re.compile(rb"\r\n(?![ \t])")
_OWN_MIME_FIELDS = (b"content-type:", b"mime-version:", b"content-transfer-encoding:")


@dataclass(frozen=True)
class NoteFacts:
    """What the note says besides the files: from the mail's own headers (see the docstring)."""

    language: str
    ticket: str
    service: str
    for_staff: bool
    limit: int | None  # the limit the mail was over; None when the server named none (a 552)


def choose(sizes: Sequence[int], room: int, leave: set[int] | None = None) -> set[int]:
    """Which files to leave out (their indexes) so that the rest fit in `room` bytes: the
    largest first, so that a screenshot still goes along when a video cannot. `leave`: those
    left out already."""
    leave = set(leave or ())
    kept = sum(size for i, size in enumerate(sizes) if i not in leave)
    for i in sorted(range(len(sizes)), key=lambda i: (-sizes[i], i)):
        if kept <= room:
            break
        if i not in leave:
            leave.add(i)
            kept -= sizes[i]
    return leave


def note(facts: NoteFacts, files: Sequence[Withheld], office: Path | None = None) -> tuple[str, str]:
    """The note's text and HTML, from the templates."""
    language = facts.language if facts.language in LANGUAGES else "id"
    env = environment(office)
    context = {
        "files": files,
        "ticket": facts.ticket,
        "service": facts.service,
        "for_staff": facts.for_staff,
        "limit": facts.limit,
        "language": language,
    }
    text = env.get_template(f"{language}/_files_withheld.txt.j2").render(context)
    html = env.get_template(f"{language}/_files_withheld.html.j2").render(context)
    return text.strip("\n") + "\n", html.strip("\n") + "\n"


def with_note(text: str, html: str, note_text: str, note_html: str) -> tuple[str, str]:
    """The body's text and HTML with the note on top (in the HTML: first thing in its body)."""
    text = f"{note_text}\n{text}"
    m = _BODY_TAG.search(html)  # our own HTML (templates/*/_layout.html.j2), not mail from outside
    at = m.end() if m else 0
    return text, f"{html[:at]}\n{note_html}{html[at:]}"


def fit(
    spec: MailSpec,
    *,
    max_bytes: int,
    from_addr: str,
    from_name: str,
    instance_id: str,
    now: datetime,
    office: Path | None = None,
) -> Envelope:
    """The mail as `build_mail` writes it, or, when that is over `max_bytes` and it has files,
    without the largest of them and with the note (`Envelope.withheld` names them). A mail over
    the limit without any file goes as it is: the limit is about files."""

    def build(s: MailSpec) -> Envelope:
        return build_mail(s, from_addr=from_addr, from_name=from_name, instance_id=instance_id, now=now)

    envelope = build(spec)
    if not spec.attachments or len(envelope.raw) <= max_bytes:
        return envelope
    sizes = [len(wire_bytes(file_part(a))) + _PART_OVERHEAD for a in spec.attachments]
    facts = NoteFacts(
        spec.language, spec.ticket_number, from_name, spec.auto_submitted == "auto-generated", max_bytes
    )
    leave = choose(sizes, max_bytes - (len(envelope.raw) - sum(sizes)) - NOTE_ROOM)
    while True:
        withheld = tuple(
            Withheld(a.filename, len(a.data)) for i, a in enumerate(spec.attachments) if i in leave
        )
        text, html = with_note(spec.rendered.text, spec.rendered.html, *note(facts, withheld, office))
        smaller = replace(
            spec,
            rendered=replace(spec.rendered, text=text, html=html),
            attachments=tuple(a for i, a in enumerate(spec.attachments) if i not in leave),
        )
        envelope = build(smaller)
        if len(envelope.raw) <= max_bytes or len(leave) == len(sizes):
            return replace(envelope, withheld=withheld)
        leave = _more(sizes, leave, len(envelope.raw) - max_bytes)


def _more(sizes: Sequence[int], leave: set[int], excess: int) -> set[int]:
    """The estimate fell short by `excess` bytes (the note grows with every file it names): leave
    out, largest first, files enough to make up for it, at least one. One file per rebuild made
    thousands of small files thousands of rebuilds of the whole mail."""
    kept = sum(size for i, size in enumerate(sizes) if i not in leave)
    more = choose(sizes, kept - excess, leave)
    if len(more) > len(leave):
        return more
    largest = max((i for i in range(len(sizes)) if i not in leave), key=lambda i: (sizes[i], -i))
    return {*leave, largest}


@dataclass(frozen=True)
class Shrunk:
    """A queued mail rebuilt without some of its files, and which."""

    raw: bytes
    withheld: tuple[Withheld, ...]


def shrink(raw: bytes, limit: int | None, office: Path | None = None) -> Shrunk | None:
    """A queued mail of ours rebuilt to fit in `limit` bytes (None: with no file at all),
    leaving out the largest files and adding the note; None when it has no file to leave out.
    Its header fields, Message-ID included, stay as they were, byte for byte."""
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    parts = msg.get_payload()
    if msg.get_content_type() != "multipart/mixed" or not isinstance(parts, list) or len(parts) < 2:
        return None
    body, files = parts[0], [p for p in parts[1:] if isinstance(p, Message)]
    alternatives = body.get_payload() if isinstance(body, Message) else None
    if (
        not isinstance(body, Message)
        or body.get_content_type() != "multipart/alternative"
        or not isinstance(alternatives, list)
        or len(alternatives) != 2
    ):
        return None  # not a mail mailbot composed (compose.mime_tree)
    text, html = (_decoded_text(p) for p in alternatives)
    facts = NoteFacts(
        language=str(msg.get("Content-Language", "id")).strip(),
        ticket=str(msg.get("X-Mailbot-Ticket", "")).strip(),
        service=decode_header(parseaddr(str(msg.get("From", "")))[0]),
        for_staff=str(msg.get("Auto-Submitted", "")).strip().lower() == "auto-generated",
        limit=limit,
    )
    head = raw.split(b"\r\n\r\n", 1)[0]
    kept_fields = b"\r\n".join(f for f in _FIELD.split(head) if not f.lower().startswith(_OWN_MIME_FIELDS))
    sizes = [len(wire_bytes(p)) + _PART_OVERHEAD for p in files]
    room = -1 if limit is None else limit - (len(raw) - sum(sizes)) - NOTE_ROOM
    leave = choose(sizes, room)
    while True:
        withheld = tuple(_withheld(p) for i, p in enumerate(files) if i in leave)
        noted_text, noted_html = with_note(text, html, *note(facts, withheld, office))
        tree = mime_tree(noted_text, noted_html, [p for i, p in enumerate(files) if i not in leave], _token())
        tree_head, _, tree_body = wire_bytes(tree).partition(b"\r\n\r\n")
        rebuilt = tree_head + b"\r\n" + kept_fields + b"\r\n\r\n" + tree_body
        if limit is None or len(rebuilt) <= limit or len(leave) == len(files):
            return Shrunk(rebuilt, withheld)
        leave = _more(sizes, leave, len(rebuilt) - limit)


def _decoded_text(part: object) -> str:
    if not isinstance(part, Message):
        return ""
    data = part.get_payload(decode=True)
    return data.decode(part.get_content_charset() or "utf-8", "replace") if isinstance(data, bytes) else ""


def _withheld(part: Message) -> Withheld:
    # A forwarded mail is a container to the parser: its payload does not decode to its bytes.
    data = (
        forwarded_bytes(part)
        if part.get_content_type() == "message/rfc822"
        else part.get_payload(decode=True)
    )
    name = decode_header(part.get_filename() or "") or "lampiran.bin"
    return Withheld(name, len(data) if isinstance(data, bytes) else 0)


def _token() -> str:
    return secrets.token_hex(8)


def withheld_text(files: Sequence[Withheld]) -> str:
    """The files left out, for the history and the log: `a.mp4 (14200000 bytes), b.png (...)`."""
    return ", ".join(f"{w.filename} ({w.size} bytes)" for w in files)
