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
        r"^\s*-*\s*(?:on|pada|am|le|el)\b.{0,200}\b(?:wrote|menulis|schrieb|a écrit|escribió)\s*:?\s*$",
        r"^\s*\*?(?:from|dari|von|de)\s*:.*$",  # followed by Sent/Dikirim within a few lines (checked below)
        r"^\s*begin forwarded message\s*:?\s*$",
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
    r"(?:wrote|menulis|schrieb|a écrit|escribió|написал|napisał|schreef)\s*:?\s*$", re.IGNORECASE
)
_WROTE_HINT = re.compile(r"@|\d{1,4}[./-]\d{1,2}[./-]\d{1,4}|\d{1,2}[.:]\d{2}")
_VALEDICTION = re.compile(
    r"^\s*(?:hormat (?:saya|kami)|salam(?: hormat)?|wassalam\w*|regards|best regards|kind regards|"
    r"best wishes|sincerely|cheers|mit freundlichen grüßen)\s*,?\s*$",
    re.IGNORECASE,
)


def _joined_wrote_line(lines: list[str], i: int) -> bool:
    """A "<date>, <name> wrote:" header on one line or wrapped over two (Gmail, Android)."""
    for joined in (lines[i].strip(), " ".join(x.strip() for x in lines[i : i + 2])):
        if _WROTE_END.search(joined) and _WROTE_HINT.search(joined) and len(joined) < 300:
            return True
    return False


def _valediction(lines: list[str], i: int) -> bool:
    """ "Hormat saya," near the end of the new text: the signature starts here."""
    if i == 0 or not _VALEDICTION.match(lines[i]):
        return False
    return sum(1 for x in lines[i + 1 :] if x.strip()) <= 6


def _own_rules(text: str) -> str:
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    cut = len(lines)
    for i, line in enumerate(lines):
        if _SIGNATURE.match(line) or _MOBILE_SIG.match(line) or _valediction(lines, i):
            cut = i
            break
        if line.lstrip().startswith(">"):
            rest = [x for x in lines[i:] if x.strip()]
            if rest and sum(1 for x in rest if x.lstrip().startswith(">")) >= len(rest) * 0.6:
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


def strip_quotes(text: str) -> str:
    """The new part of a reply, without quoted history and signature."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    try:
        latest = (
            EmailMessage(text=text, languages=list(LANGUAGES), keep_hyphen_lists=True).read().latest_reply
        )
    except (re.error, IndexError, AttributeError):  # the library's regexes on odd input
        latest = None
    first = latest if latest and latest.strip() else text
    return _own_rules(first)
