"""The files of a received mail that mailbot passes on (to the assignee, the vendor, the
applicant): what its sender attached, pasted or placed inline; never the body or its decoration.

Which parts are files (#21 item 3):

- a part marked `Content-Disposition: attachment` (RFC 2183), as before;
- a pasted screenshot: an image in the body of a `multipart/related` (Gmail marks it `inline`
  with a filename such as `image.png`, Outlook names it `image001.png`; some clients give it a
  Content-ID only);
- a file placed inline: Apple Mail marks a PDF `inline` with a filename, between two pieces of
  the body text;
- any other part that is neither text nor a container (a file without a disposition), and a
  forwarded mail (`message/rfc822`), passed on whole as a `.eml` file (decoded where its sender
  base64-encoded it, which RFC 2046 s. 5.2.1 forbids and some clients do).

Not files: the body's text parts (text/* without a filename), the alternatives of a
`multipart/alternative` (one body in other forms), Outlook's rich text body (winmail.dat, with
the mail it answers quoted in it), signature parts (PGP, S/MIME: they sign the original mail,
not ours), a signature's business card (a vCard: the sender's own address and phone numbers;
a consultant's must not reach the applicant), and an inline image of at most 16 x 16 pixels (a
tracking pixel, a spacer, a signature's social-media icon). A signature's logo larger than that
does go along: it cannot be told from a small pasted screenshot, and a file too many is better
than evidence lost.
An image the sender marked `attachment` always goes along, however small; and so does one whose
header claims 16 x 16 or less but that carries more bytes than such an image can.

Never a file: a mail of mailbot's own (it carries X-Mailbot-Loop or X-Mailbot-Ticket) attached
to the mail, as Outlook's "attach original message" and "forward as attachment" do, or saved as
a .eml file and attached. Its text is
what it was written for, the internal history of a mail to staff included: attached to a
consultant's answer it would reach the applicant, who reads only a deliberate public view.

The mail was sent by anyone (trust boundary): its filenames are only ever names of our files,
never paths; they are cleaned of controls, invisible format characters (a right-to-left
override shows `invoice\u202efdp.exe` as `invoiceexe.pdf`) and path parts, bounded in length
with their extension kept, and made unique.
"""

from __future__ import annotations

import binascii
import email
import email.header
import email.policy
import mimetypes
import re
import struct
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message

SIGNATURE_TYPES = frozenset(
    {"application/pgp-signature", "application/pkcs7-signature", "application/x-pkcs7-signature"}
)
# Outlook's rich text (TNEF, winmail.dat): the sender's body once more, the mail it answers quoted
# in it (a consultant's reply to an assignment quotes the internal history), unreadable elsewhere.
RICH_BODY_TYPES = frozenset({"application/ms-tnef", "application/vnd.ms-tnef"})
# A business card a signature attaches (Outlook): the sender's own address and phone numbers.
CARD_TYPES = frozenset({"text/vcard", "text/x-vcard", "text/directory"})
_NOT_FILES = SIGNATURE_TYPES | RICH_BODY_TYPES | CARD_TYPES
TINY_IMAGE_PIXELS = 16  # an inline image no wider and no taller than this is decoration
TINY_IMAGE_BYTES = 128  # ...and one of unknown size smaller than this (a 1 x 1 GIF is 43 bytes)
# A 16 x 16 icon is well under this even with a colour profile and metadata; more is a picture
# whose header lies (or is not read right), and evidence is not dropped on a header's word.
TINY_IMAGE_MAX_BYTES = 64 * 1024
_NAME_MAX = 150
_NAME_READ = 1000  # of a name, at most this much is decoded: its start and its end (the extension)
# Unicode categories taken out of names: controls, format characters (bidirectional overrides,
# zero-width characters), surrogates, private use, and the line and paragraph separators.
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
# A mail of mailbot's own (compose.py writes these fields): at the start of a line of the
# forwarded mail's text, so also inside a forward of a forward.
_OUR_MAIL = re.compile(rb"^X-Mailbot-(?:Loop|Ticket)[ \t]*+:", re.IGNORECASE | re.MULTILINE)


@dataclass(frozen=True)
class ReceivedFile:
    """A file of a received mail, decoded, under the name it is passed on with."""

    filename: str
    content_type: str
    data: bytes
    inline: bool  # shown in the sender's body (pasted or placed inline), not marked `attachment`


def files_of_raw(raw: bytes) -> tuple[ReceivedFile, ...]:
    """The files of stored mail (bytes mailbot read before: a mail it could not parse has none)."""
    try:
        msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    except Exception:  # a mail we stored is readable; if not, there is nothing to pass on
        return ()
    return tuple(files_of(msg))


def files_of(msg: Message) -> list[ReceivedFile]:
    """The files of a parsed mail, in the order of its parts, each under a unique name."""
    files: list[ReceivedFile] = []
    taken = Names()
    generated: dict[str, int] = {}
    for part, container in _leaves(msg):
        inline = _is_file(part, container)
        if inline is None:
            continue
        content_type = part.get_content_type()
        data = _data(part)
        if not data:
            continue
        if inline and content_type.startswith("image/") and _is_tiny(data):
            continue
        name = clean_filename(_decoded(part.get_filename()))
        if (content_type == "message/rfc822" or name.lower().endswith(".eml")) and _OUR_MAIL.search(data):
            continue  # our own mail, quoted back whole (or saved and attached): see the docstring
        if not name:
            prefix = _prefix(content_type)
            generated[prefix] = generated.get(prefix, 0) + 1
            name = f"{prefix}-{generated[prefix]}{_extension(content_type)}"
        files.append(ReceivedFile(unique_name(name, taken), content_type, data, inline))
    return files


def _leaves(msg: Message) -> Iterator[tuple[Message, str]]:
    """Every part that is not a container, with the type of the container it is in. A forwarded
    mail is a leaf: it goes along whole. Depth was bounded when the mail was read."""
    stack: list[tuple[Message, str]] = [(msg, "")]
    while stack:
        part, container = stack.pop()
        content_type = part.get_content_type()
        payload = part.get_payload()
        if part.is_multipart() and content_type != "message/rfc822" and isinstance(payload, list):
            stack.extend((p, content_type) for p in reversed(payload) if isinstance(p, Message))
        else:
            yield part, container


def _is_file(part: Message, container: str) -> bool | None:
    """None: not a file; else whether it is an inline one (not marked `attachment`)."""
    content_type = part.get_content_type()
    if content_type in _NOT_FILES:
        return None
    disposition = part.get_content_disposition()
    if disposition == "attachment":
        return False
    if container == "multipart/alternative":
        return None  # the body in another form (text, HTML, Apple's watch-html)
    if part.get_content_maintype() == "text" and not part.get_filename():
        return None  # the body text (Apple Mail puts a piece of it on each side of an inline file)
    return True


def _data(part: Message) -> bytes:
    if part.get_content_type() == "message/rfc822":
        return forwarded_bytes(part)
    data = part.get_payload(decode=True)
    return data if isinstance(data, bytes) else b""


def forwarded_bytes(part: Message) -> bytes:
    """A forwarded mail (a message/rfc822 part) as its bytes. RFC 2046 s. 5.2.1 allows it no
    transfer encoding but 7bit, 8bit or binary; a client that base64-encodes it anyway (as
    mailbot did before 2026-12) makes the parser read the encoded text as a mail without a
    header field, which is decoded here. A label that lies the other way (a plain mail marked
    base64) is read as the mail it is. b"" for a mail the generator cannot write back."""
    payload = part.get_payload()
    inner = payload[0] if isinstance(payload, list) and payload else None
    if not isinstance(inner, Message):
        return b""
    try:
        written = inner.as_bytes(policy=email.policy.compat32.clone(linesep="\r\n"))
    except (ValueError, LookupError, UnicodeError, TypeError):
        return b""  # a forwarded mail the generator cannot write back: not a file of ours
    encoding = str(part.get("Content-Transfer-Encoding", "")).strip().lower()
    if encoding == "base64" and not inner.keys():
        try:
            return binascii.a2b_base64(re.sub(rb"[^A-Za-z0-9+/=]++", b"", written))
        except binascii.Error:
            return written
    return written


def pixel_size(data: bytes) -> tuple[int, int] | None:
    """Width and height of a PNG or GIF, read from its header; None for other formats."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR" and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return int(width), int(height)
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        width, height = struct.unpack("<HH", data[6:10])
        return int(width), int(height)
    return None


def _is_tiny(data: bytes) -> bool:
    size = pixel_size(data)
    if size is None:
        return len(data) < TINY_IMAGE_BYTES
    small = size[0] <= TINY_IMAGE_PIXELS and size[1] <= TINY_IMAGE_PIXELS
    return small and len(data) <= TINY_IMAGE_MAX_BYTES


def _decoded(name: str | None) -> str:
    """A filename as its sender meant it: RFC 2231 is undone by the email package, RFC 2047
    encoded words (Outlook, Gmail) here. Bounded first, the decoder is slow on long lines: the
    start and the end are kept, so that a long name keeps its extension."""
    if not name:
        return ""
    if len(name) > _NAME_READ:
        name = name[: _NAME_READ // 2] + name[-_NAME_READ // 2 :]
    if "=?" not in name:
        return name
    try:
        return str(email.header.make_header(email.header.decode_header(name)))
    except (ValueError, LookupError, UnicodeError):
        return name


def clean_filename(name: str) -> str:
    """A name for a file of ours: no controls or invisible characters, no folders
    (`..\\..\\x.exe` is `x.exe`), not hidden, no trailing dots or spaces (Windows drops them:
    `x.exe. .` is saved as `x.exe`), at most 150 characters with its extension kept. "" when
    nothing is left (`. .`): the caller names the file."""
    name = "".join(c for c in name if unicodedata.category(c) not in _HIDDEN_CATEGORIES)
    name = name.replace("\\", "/").rsplit("/", 1)[-1].strip(". \t")
    if len(name) > _NAME_MAX:
        stem, dot, ext = name.rpartition(".")
        ext = ext if dot and 0 < len(ext) <= 10 else ""
        name = (stem if ext else name)[: _NAME_MAX - len(ext) - 1].rstrip() + (f".{ext}" if ext else "")
    return name


class Names(set[str]):
    """The names taken in one mail (lower-case), with the next number to try for each: numbering
    the 20,000th `image.png` starts where the last one ended, not at 2 (linear, not quadratic)."""

    def __init__(self) -> None:
        super().__init__()
        self.next: dict[str, int] = {}


def unique_name(name: str, taken: set[str]) -> str:
    """`name`, or `name-2`, `name-3`... (before the extension) when a file already has it: Gmail
    names every pasted screenshot image.png. `taken` (lower-case names) gets the result; a
    `Names` also remembers where numbering stopped."""
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        stem, ext = name, ""
    following = taken.next if isinstance(taken, Names) else {}
    key = name.lower()
    candidate, n = name, following.get(key, 1)
    while candidate.lower() in taken:
        n += 1
        candidate = f"{stem}-{n}.{ext}" if ext else f"{stem}-{n}"
    following[key] = n
    taken.add(candidate.lower())
    return candidate


def _prefix(content_type: str) -> str:
    """The name of a file that came without one: gambar-1.png, pesan-1.eml, lampiran-1.pdf."""
    if content_type.startswith("image/"):
        return "gambar"
    if content_type == "message/rfc822":
        return "pesan"
    return "lampiran"


def _extension(content_type: str) -> str:
    if content_type == "message/rfc822":
        return ".eml"
    return mimetypes.guess_extension(content_type, strict=False) or ".bin"
