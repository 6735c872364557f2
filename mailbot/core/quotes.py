"""Keep only what the sender wrote in a reply: quoted history and signatures are cut.

mail-parser-reply does the work for the languages it knows (English, German and
more); it is extended here with Indonesian ("Pada … menulis:", "Dari: … Dikirim:",
"-----Pesan Asli-----", "Dikirim dari …"). A second pass with our own rules
catches what a client writes that neither knows, and `>`-quoted blocks.
"""

from __future__ import annotations

import re

from mailparser_reply import constants as reply_constants
from mailparser_reply.parser import EmailMessage

_Q = reply_constants.QUOTED_MATCH_INCLUDE
reply_constants.MAIL_LANGUAGES.setdefault(
    "id",
    {
        "wrote_header": r"^("
        + _Q
        + r"(?:Pada\s(?:.+?\s?.+?)\s?menulis\s?:|-{3,} ?(?:Pesan Asli|Pesan yang diteruskan) ?-{3,}))$",
        "from_header": r"((?:(?:^|\n|\n"
        + _Q
        + r")[* ]*(?:Dari|Dikirim|Terkirim|Kepada|Subjek|Perihal|Tanggal|Cc|Waktu):[ *]*(?:\s{,2}).*){2,}"
        r"(?:\n.*){,1})",
        "disclaimers": [r"(?:Pemberitahuan|Peringatan) (?:kerahasiaan|penting):", "DISCLAIMER:"],
        "signatures": ["Hormat saya", "Hormat kami", "Salam hormat", "Wassalam"],
        "sent_from": "Dikirim dari|Dapatkan Outlook untuk",
    },
)
LANGUAGES = ["id", "en", "de", "fr", "es", "nl"]

# Our own second pass: where quoted history begins, in clients the library does not cover.
_QUOTE_HEADERS = [
    re.compile(p, re.IGNORECASE)
    for p in (
        r"^\s*-{2,}\s*(?:original message|pesan asli|pesan yang diteruskan|forwarded message|"
        r"ursprüngliche nachricht|message d.origine|mensaje original)\s*-{2,}\s*$",
        r"^\s*_{10,}\s*$",  # Outlook's rule above the quoted header block
        r"^\s*+-*+\s*+(?:on|pada|am|le|el)\b.{0,200}\b(?:wrote|menulis|schrieb|a écrit|escribió)\s*+:?\s*+$",
        r"^\s*\*?(?:from|dari|von|de)\s*:.*$",  # followed by Sent/Dikirim within a few lines (checked below)
        r"^\s*+begin forwarded message\s*+:?\s*+$",
    )
]
_OUTLOOK_SENT = re.compile(
    r"^\s*\*?(?:sent|dikirim|date|tanggal|terkirim|waktu|to|kepada|gesendet|datum|an|envoy[ée]|enviado)\*?\s*:",
    re.IGNORECASE,
)
_SIGNATURE = re.compile(r"^(?:--|-- |__)\s*$")
_MOBILE_SIG = re.compile(
    r"^\s*(?:sent from my|dikirim dari|get outlook for|dapatkan outlook untuk)\b.*$", re.IGNORECASE
)


_WROTE_END = re.compile(
    r"(?:wrote|menulis|schrieb|a écrit|escribió|написал|napisał|schreef)\s*+:?\s*+$", re.IGNORECASE
)
_WROTE_HINT = re.compile(r"@|\d{1,4}[./-]\d{1,2}[./-]\d{1,4}|\d{1,2}[.:]\d{2}")
_VALEDICTION = re.compile(
    r"^\s*(?:hormat (?:saya|kami)|salam(?: hormat)?|wassalam\w*|regards|best regards|kind regards|"
    r"best wishes|sincerely|cheers|mit freundlichen grüßen)\s*+,?\s*+$",
    re.IGNORECASE,
)


def _joined_wrote_line(lines: list[str], i: int) -> bool:
    """A "<date>, <name> wrote:" header on one line or wrapped over two (Gmail, Android)."""
    for joined in (lines[i].strip(), " ".join(x.strip() for x in lines[i : i + 2])):
        if len(joined) < 300 and _WROTE_END.search(joined) and _WROTE_HINT.search(joined):
            return True
    return False


def _suffix_counts(lines: list[str]) -> tuple[list[int], list[int]]:
    """For each line index i: how many lines from i on are not blank, and how many are `>`-quoted.
    Counted once, from the end, so that no rule rescans the rest of the mail at every line."""
    filled = [0] * (len(lines) + 1)
    quoted = [0] * (len(lines) + 1)
    for i in range(len(lines) - 1, -1, -1):
        stripped = lines[i].strip()
        filled[i] = filled[i + 1] + (1 if stripped else 0)
        quoted[i] = quoted[i + 1] + (1 if stripped.startswith(">") else 0)
    return filled, quoted


def _own_rules(text: str) -> str:
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    filled, quoted = _suffix_counts(lines)
    cut = len(lines)
    for i, line in enumerate(lines):
        if not line or line.isspace():
            continue  # no rule starts at a blank line (a padded mail has a million of them)
        # "Hormat saya," near the end of the new text: the signature starts here.
        valediction = i > 0 and filled[i + 1] <= 6 and _VALEDICTION.match(line) is not None
        if _SIGNATURE.match(line) or _MOBILE_SIG.match(line) or valediction:
            cut = i
            break
        if line.lstrip().startswith(">"):
            if filled[i] and quoted[i] >= filled[i] * 0.6:
                cut = i
                break
            continue
        if _joined_wrote_line(lines, i):
            cut = i
            break
        for n, pattern in enumerate(_QUOTE_HEADERS):
            if not pattern.match(line):
                continue
            if n == 3 and not any(_OUTLOOK_SENT.match(x) for x in lines[i + 1 : i + 6]):
                continue
            cut = i
            break
        if cut != len(lines):
            break
    return "\n".join(lines[:cut]).strip()


# What mail-parser-reply is given. Its regexes are quadratic in the length of a line, of a run of
# spaces and of a run of blank lines (a 20,000-space line: seconds; 20,000 blank lines: 48 s), so
# it reads a bounded copy: each line stripped (as it does itself), inner whitespace runs made one
# space, at most _LIB_LINE chars a line, at most one blank line in a row, at most _LIB_TEXT chars
# in all. Where it finds the reply's end in that copy is mapped back to a line of the real text.
_LIB_LINE = 500
_LIB_TEXT = 32_000


def _library_cut(lines: list[str]) -> int | None:
    """The index of the line where mail-parser-reply sees quoted history begin, or None."""
    copy: list[str] = []
    origin: list[int] = []  # index in `lines` of each line of the copy
    size = 0
    for i, line in enumerate(lines):
        short = " ".join(line.split())[:_LIB_LINE]
        if not short and copy and not copy[-1]:
            continue
        if short[:32].strip("_-") == "" and len(short) >= 32:
            # The library deletes a blank line + 32 underscores or dashes (its _normalize_text),
            # which would shift its lines against ours; 31 of them are the same rule to it.
            short = short[:31] + short[32:]
        size += len(short) + 1
        if size > _LIB_TEXT:
            break
        copy.append(short)
        origin.append(i)
    if not copy:
        return None
    message = EmailMessage(text="\n".join(copy), languages=list(LANGUAGES), keep_hyphen_lists=True).read()
    latest: str | None = message.latest_reply
    if not latest or not latest.strip():
        return None
    seen: str = message.text
    if seen.count("\n") != len(copy) - 1:
        return None  # the library changed the line structure: its answer cannot be mapped back
    end = seen.find(latest) + len(latest)
    covered = seen.count("\n", 0, end) + 1
    if covered >= len(copy):
        return None  # no history found in what it read
    return origin[covered - 1] + 1


def strip_quotes(text: str) -> str:
    """The new part of a reply, without quoted history and signature."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    try:
        cut = _library_cut(lines)
    except (re.error, IndexError, AttributeError):  # the library's regexes on odd input
        cut = None
    first = "\n".join(line.strip() for line in (lines if cut is None else lines[:cut])).strip()
    return _own_rules(first)
