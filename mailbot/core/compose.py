"""Outgoing mail: Jinja2 templates (Indonesian first, English available) and the headers every
automatic mail carries (threading, RFC 3834 Auto-Submitted, our loop header; DOMAIN.md s. 5)."""

from __future__ import annotations

import base64
import os
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from email import encoders
from email.header import Header
from email.message import Message
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.policy import Compat32
from email.utils import format_datetime, formataddr
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from jinja2 import (
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    StrictUndefined,
    TemplateNotFound,
    select_autoescape,
)

from mailbot.core.masking import mask_text
from mailbot.core.public_record import ZONE_NAMES
from mailbot.core.wording import Wording, wording_of


class _WirePolicy(Compat32):
    """compat32 with a short cut: a header that is printable ASCII and fits on one line is
    written as it is, and one word too long for a line goes on a continuation line of its own.
    That is what the Header class makes of them too (tests/outbound/test_compose.py checks it), at a
    tenth of the cost; everything else goes through the Header class."""

    def _one_line(self, name: str, value: Any) -> str | None:
        if not (isinstance(value, str) and value.isascii() and value.isprintable()):
            return None
        if len(name) + len(value) + 2 <= (self.max_line_length or 78):
            if value == value.strip() and "  " not in value:
                return f"{name}: {value}{self.linesep}"
        elif value and " " not in value:
            # One word too long for the line (a long Message-ID): on a line of its own.
            return f"{name}: {self.linesep} {value}{self.linesep}"
        return None

    def fold(self, name: str, value: Any) -> str:
        line = self._one_line(name, value)
        return line if line is not None else super().fold(name, value)

    def fold_binary(self, name: str, value: Any) -> bytes:
        line = self._one_line(name, value)
        return line.encode("ascii") if line is not None else super().fold_binary(name, value)


# Mail goes out with CRLF line ends (RFC 5322 s. 2.1) and long header lines folded at 78.
_WIRE = _WirePolicy(linesep="\r\n", max_line_length=78)
# The shipped templates are package data (mailbot/templates), found through importlib.resources.
TEMPLATES_DIR = Path(os.environ.get("MAILBOT_TEMPLATES", str(resources.files("mailbot") / "templates")))
LANGUAGES = ("id", "en")


@lru_cache(maxsize=4)
def environment(office: Path | None = None) -> Environment:
    """The templates' environment; with `office` (the configuration's templates_dir), a template of
    that folder is used instead of the shipped one of the same name, the others come from mailbot."""
    shipped = FileSystemLoader(str(TEMPLATES_DIR))
    env = Environment(
        loader=ChoiceLoader([FileSystemLoader(str(office)), shipped]) if office else shipped,
        autoescape=select_autoescape(enabled_extensions=("html", "html.j2"), default_for_string=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        # Templates are read once per process: no stat of every template file for every mail.
        auto_reload=False,
    )
    env.filters["datetime"] = _format_datetime
    env.filters["date"] = _format_date
    env.filters["zone"] = _zone_of
    # Identity and phone numbers typed in free text (the question, a follow-up) reach staff masked,
    # as the field values do (UU 27/2022): mask_text masks every number of 9 or more digits.
    env.filters["masked"] = mask_text
    env.filters["rows"] = _rows
    env.globals["wording"] = wording_of
    return env


def _rows(pairs: Iterable[tuple[str, Any]], width: int = 15) -> str:
    """`  Label          : value` lines, the labels padded to `width`; a pair whose value is empty
    makes no line. The layout of the plain-text mails' tables (the templates name the labels)."""
    return "\n".join(f"  {label:<{width}}: {value}" for label, value in pairs if value)


_MONTHS = {
    "id": ("Januari", "Februari", "Maret", "April", "Mei", "Juni", "Juli", "Agustus", "September",
           "Oktober", "November", "Desember"),
    "en": ("January", "February", "March", "April", "May", "June", "July", "August", "September",
           "October", "November", "December"),
}  # fmt: skip


def _zone_of(value: datetime) -> str:
    """The zone a time is shown in, by the name Indonesians use for it (WIB, WITA, WIT): every
    time a mail shows carries it, as offices sit in three zones."""
    key = getattr(value.tzinfo, "key", None)
    if key in ZONE_NAMES:
        return ZONE_NAMES[key]
    return value.tzname() or key or ""


def _format_date(value: date, language: str = "id") -> str:
    """'23 November 2026': the month by its name, as an official letter writes a date."""
    months = _MONTHS["en" if language == "en" else "id"]
    return f"{value.day} {months[value.month - 1]} {value.year}"


def _format_datetime(value: datetime, language: str = "id", tz: Any = None) -> str:
    """'16 November 2026 pukul 09.05 WIB' or '16 November 2026, 09:05 WIB'."""
    if tz is not None:
        value = value.astimezone(tz)
    day = _format_date(value, language)
    if language == "en":
        return f"{day}, {value:%H:%M} {_zone_of(value)}".strip()
    return f"{day} pukul {value:%H.%M} {_zone_of(value)}".strip()


@lru_cache(maxsize=16)
def _has_own_macros(office: Path, language: str) -> bool:
    """Whether the office's template folder has its own `<language>/_macros.j2` (read once)."""
    return (office / language / "_macros.j2").is_file()


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


def render(name: str, language: str, context: dict[str, Any], office: Path | None = None) -> Rendered:
    """Render `templates/<language>/<name>.txt.j2` (blocks `subject` and `body`) and `<name>.html.j2`,
    each from the office's template folder where it has one."""
    if language not in LANGUAGES:
        language = "id"
    env = environment(office)
    # Every template gets its language's macros as `m` (templates/<language>/_macros.j2), a module
    # Jinja makes once per process: an `{% import %}` in each block looked up the template and
    # its module again for every block of every mail, a tenth of the rendering (bench/README.md).
    macros = env.get_template(f"{language}/_macros.j2").module
    ctx = {"language": language, "m": macros, **context}
    if "profile" in context and "words" not in context:
        # How the mail names the service ("pengajuan konsultasi", "keluhan"), worked out once per
        # mail rather than by a macro at each of its mentions (bench/README.md); an office whose
        # own _macros.j2 words it differently is followed.
        profile = context["profile"]
        ctx["words"] = wording_of(profile, language)
        if office is not None and _has_own_macros(office, language):
            said: list[Any] = [getattr(macros, name, None) for name in ("noun", "request", "handling")]
            if all(callable(macro) for macro in said):
                ctx["words"] = Wording(*(str(macro(profile)) for macro in said))
    text_tpl = env.get_template(f"{language}/{name}.txt.j2")
    blocks = text_tpl.new_context(ctx)  # one for both: a block's own assignments stay in the block
    subject = "".join(text_tpl.blocks["subject"](blocks)).strip()
    text = "".join(text_tpl.blocks["body"](blocks)).lstrip("\n")
    try:
        html_tpl = env.get_template(f"{language}/{name}.html.j2")
    except TemplateNotFound:
        # Staff-facing mails have no designed HTML: the text, escaped, in the common layout.
        html = env.get_template(f"{language}/_text.html.j2").render({**ctx, "subject": subject, "text": text})
    else:
        html = html_tpl.render(ctx)
    # The reading side's helpers, imported when a mail is composed: a sweep with nothing due
    # loads no parser.
    from mailbot.core.message import clean_header_text

    return Rendered(clean_header_text(subject), text, html)


@dataclass(frozen=True)
class OutgoingAttachment:
    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class Withheld:
    """A file left out of a mail that would have been too large with it (core/withheld.py)."""

    filename: str
    size: int


@dataclass(frozen=True)
class Envelope:
    """A composed mail ready for the outbox."""

    message_id: str
    mail_from: str
    rcpt_to: tuple[str, ...]
    subject: str
    raw: bytes
    withheld: tuple[Withheld, ...] = ()


@dataclass(frozen=True)
class MailSpec:
    to_addr: str
    to_name: str
    rendered: Rendered
    message_id: str
    in_reply_to: str = ""
    references: tuple[str, ...] = ()
    auto_submitted: str = "auto-replied"  # to a person who wrote to us; "auto-generated" otherwise
    ticket_number: str = ""
    language: str = "id"
    attachments: tuple[OutgoingAttachment, ...] = field(default=())


def ticket_thread(
    root: str, parent: tuple[str, tuple[str, ...]] | None = None
) -> tuple[str, tuple[str, ...]]:
    """In-Reply-To and References of a ticket's mail (RFC 5322 s. 3.6.4), to the applicant or to
    staff alike: the request's Message-ID (`root`) first, then the chain of the mail answered
    (`parent`: its Message-ID and its References), if any. A mail client threading by
    References (JWZ's algorithm, mutt, Thunderbird) then shows one thread per ticket, rooted at
    the request; a mail to staff that names no parent used to start a thread of its own."""
    if parent is None or not parent[0]:
        return root, (root,) if root else ()
    message_id, refs = parent
    chain = dict.fromkeys(r for r in (root, *refs, message_id) if r)
    return message_id, tuple(chain)


def safe_header(value: str) -> str:
    """Header text with encoded words decoded and every control character removed."""
    from mailbot.core.message import decode_header

    decoded = decode_header(value)
    return decoded if "=?" not in decoded else decoded.replace("=?", "= ?")


def _header_text(value: str, name: str) -> str | Header:
    """A header value as sent: ASCII as it is, anything else as RFC 2047 encoded words, folded
    with the header's name counted in (each line within 78 characters)."""
    return value if value.isascii() else Header(value, "utf-8", header_name=name)


def _text_part(text: str, subtype: str) -> MIMEText:
    # base64 (binascii, in C) rather than quoted-printable (pure Python): a fifth of the cost.
    return MIMEText(text, subtype, "utf-8")


def _address_header(name: str, addr: str) -> str:
    """`Name <addr>` for a header. formataddr refuses an address outside ASCII (an applicant's
    `rína@bücher.example`, RFC 6532): a domain alone outside ASCII is written in its IDNA form,
    as the outbox writes it without SMTPUTF8; any other such address in UTF-8 as it is (the
    outbox sends it only with SMTPUTF8), its bytes carried through the generator as surrogates."""
    if addr.isascii():
        return formataddr((name, addr), charset="utf-8")
    local, _, domain = addr.rpartition("@")
    if local.isascii():
        try:
            return formataddr((name, f"{local}@{domain.encode('idna').decode('ascii')}"), charset="utf-8")
        except UnicodeError:
            pass  # not a valid IDNA domain: written in UTF-8 as it came
    shown = f"{formataddr((name, 'a@b'), charset='utf-8')[: -len('<a@b>')]}<{addr}>" if name else addr
    return shown.encode("utf-8").decode("ascii", "surrogateescape")


# A Message-ID as In-Reply-To and References may carry it: printable ASCII in angle brackets,
# short enough for a line of its own (RFC 5322 s. 3.6.4, s. 2.1.1). The ids come from mail
# from outside (the request's is the root of every mail of its ticket): one in UTF-8 made the
# header writer encode the whole References as RFC 2047 words, which no reader threads by.
_MSG_ID = re.compile(r"<[!-;=?-~]{1,900}+>")


def _headers(
    spec: MailSpec, *, from_addr: str, from_name: str, instance_id: str, now: datetime
) -> list[tuple[str, str | Header]]:
    """The mail's own header fields, in order."""
    from mailbot.core.classify import LOOP_HEADER
    from mailbot.core.message import clean_header_text

    # Names and subjects come from mail: decode any encoded word they carry before cleaning, or an
    # encoded CR/LF would come back to life when the header is read (DOMAIN.md s. 5).
    headers: list[tuple[str, str | Header]] = [
        ("From", formataddr((safe_header(from_name), from_addr), charset="utf-8")),
        ("To", _address_header(safe_header(spec.to_name), clean_header_text(spec.to_addr))),
        ("Subject", _header_text(safe_header(spec.rendered.subject), "Subject")),
        ("Date", format_datetime(now)),
        ("Message-ID", spec.message_id),
    ]
    in_reply_to = spec.in_reply_to if _MSG_ID.fullmatch(spec.in_reply_to) else ""
    if in_reply_to:
        headers.append(("In-Reply-To", in_reply_to))
    refs = [r for r in spec.references if _MSG_ID.fullmatch(r)]
    if in_reply_to and in_reply_to not in refs:
        refs.append(in_reply_to)
    if refs:
        # RFC 5322 s. 3.6.4; keep the first and the newest when the chain grows long.
        if len(refs) > 20:
            refs = [refs[0], *refs[-19:]]
        headers.append(("References", " ".join(refs)))
    headers += [
        ("Auto-Submitted", spec.auto_submitted),
        ("X-Auto-Response-Suppress", "All"),
        (LOOP_HEADER, clean_header_text(instance_id)),
    ]
    if spec.ticket_number:
        headers.append(("X-Mailbot-Ticket", spec.ticket_number))
    headers.append(("Content-Language", spec.language))
    return headers


def _with_email_package(spec: MailSpec, headers: list[tuple[str, str | Header]], token: str) -> bytes:
    """The mail built with the classic (compat32) MIME classes: used for mail with attachments,
    and by the tests as the reference the short cut below must match byte for byte."""
    msg = mime_tree(spec.rendered.text, spec.rendered.html, [file_part(a) for a in spec.attachments], token)
    for name, value in headers:
        msg[name] = value  # type: ignore[assignment]
    return msg.as_bytes(policy=_WIRE)


def mime_tree(text: str, html: str, files: list[Message], token: str) -> Message:
    """The body of our mail: text and HTML as alternatives, then the files (if any) in a
    multipart/mixed. Boundaries from `token` (see build_mail)."""
    alternative = MIMEMultipart("alternative", boundary=f"=_mb.{token}.a")
    alternative.attach(_text_part(text, "plain"))
    alternative.attach(_text_part(html, "html"))
    if not files:
        return alternative
    msg = MIMEMultipart("mixed", boundary=f"=_mb.{token}.m")
    msg.attach(alternative)
    for part in files:
        msg.attach(part)
    return msg


def file_part(att: OutgoingAttachment) -> Message:
    """One file of our mail, `attachment` (a pasted screenshot passed on is a file too): base64,
    but a forwarded mail 7bit where it can be."""
    if att.content_type == "message/rfc822" and _seven_bit(att.data):
        # RFC 2046 s. 5.2.1: a forwarded mail takes no transfer encoding but 7bit, 8bit or binary
        # (base64, readers such as Python's email package see a mail without a header).
        part: Message = MIMEBase("message", "rfc822")
        part.set_payload(att.data.decode("ascii"))
        part["Content-Transfer-Encoding"] = "7bit"
    else:
        # Any other file, and a forwarded mail with 8-bit text or long lines: our mail stays 7-bit
        # (the outbox asks for no 8BITMIME), so that one goes as the octet stream of its .eml.
        maintype, _, subtype = att.content_type.partition("/")
        if maintype == "message":
            maintype, subtype = "application", "octet-stream"
        part = MIMEBase(maintype or "application", subtype or "octet-stream")
        part.set_payload(att.data)
        encoders.encode_base64(part)
    from mailbot.core.message import clean_header_text

    name = clean_header_text(att.filename) or "lampiran.bin"
    part.add_header(
        "Content-Disposition", "attachment", filename=name if name.isascii() else ("utf-8", "", name)
    )
    return part


def _seven_bit(data: bytes) -> bool:
    """ASCII without NUL, CRLF line ends only, lines of at most 998 characters (RFC 5322 s. 2.1.1)."""
    if not data.isascii() or b"\0" in data:
        return False
    lines = data.split(b"\r\n")
    return all(len(line) <= 998 and b"\r" not in line and b"\n" not in line for line in lines)


def wire_bytes(msg: Message) -> bytes:
    """A message or part as it goes out (CRLF, headers folded at 78): what its size is measured on."""
    return msg.as_bytes(policy=_WIRE)


_TEXT_PART_HEAD = {
    subtype: (
        f'Content-Type: text/{subtype}; charset="utf-8"\r\n'
        "MIME-Version: 1.0\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    ).encode("ascii")
    for subtype in ("plain", "html")
}


def _alternative_bytes(spec: MailSpec, headers: list[tuple[str, str | Header]], token: str) -> bytes:
    """What `_with_email_package` writes for a mail without attachments (a text and an HTML part,
    both base64), written directly: the MIME classes and their generator were a fifth of the
    intake's work per request. The header fields still go through the same policy's folding."""
    boundary = f"=_mb.{token}.a".encode("ascii")
    out = [
        _WIRE.fold_binary("Content-Type", f'multipart/alternative; boundary="=_mb.{token}.a"'),
        b"MIME-Version: 1.0\r\n",
        *(_WIRE.fold_binary(name, value) for name, value in headers),
        b"\r\n--",
        boundary,
        b"\r\n",
        _TEXT_PART_HEAD["plain"],
        base64.encodebytes(spec.rendered.text.encode("utf-8")).replace(b"\n", b"\r\n"),
        b"\r\n--",
        boundary,
        b"\r\n",
        _TEXT_PART_HEAD["html"],
        base64.encodebytes(spec.rendered.html.encode("utf-8")).replace(b"\n", b"\r\n"),
        b"\r\n--",
        boundary,
        b"--\r\n",
    ]
    return b"".join(out)


def build_mail(
    spec: MailSpec, *, from_addr: str, from_name: str, instance_id: str, now: datetime
) -> Envelope:
    """The raw mail, as the classic (compat32) MIME classes write it: the header registry of the
    modern policy parsed every header again and cost a third of each request's processing."""
    # Boundaries chosen here: the generator's own choice compiles a fresh regex for every mail to
    # check that the parts do not contain it. These cannot occur in them: every part is base64,
    # whose alphabet has no "_" or ".", but a forwarded mail (7bit), whose sender would have to
    # guess the random token.
    token = secrets.token_hex(8)
    headers = _headers(spec, from_addr=from_addr, from_name=from_name, instance_id=instance_id, now=now)
    raw = (
        _with_email_package(spec, headers, token)
        if spec.attachments
        else _alternative_bytes(spec, headers, token)
    )
    return Envelope(
        message_id=spec.message_id,
        mail_from=from_addr,
        rcpt_to=(spec.to_addr,),
        subject=spec.rendered.subject,
        raw=raw,
    )
