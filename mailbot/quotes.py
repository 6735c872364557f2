"""Keep only what the sender wrote in a reply: quoted history and signatures are cut."""

from __future__ import annotations

import re

# Where quoted history begins, in the mail clients people here use (Indonesian and English).
_QUOTE_HEADERS = [
    re.compile(p, re.IGNORECASE)
    for p in (
        r"^\s*-{2,}\s*(?:original message|pesan asli|pesan yang diteruskan|forwarded message|"
        r"ursprüngliche nachricht|message d.origine|mensaje original)\s*-{2,}\s*$",
        r"^\s*_{10,}\s*$",  # Outlook's rule above the quoted header block
        r"^\s*(?:on|pada|am|le|el)\b.{0,200}\b(?:wrote|menulis|schrieb|a écrit|escribió)\s*:?\s*$",
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


def _joined_wrote_line(lines: list[str], i: int) -> bool:
    """Gmail wraps "On <date>, <name> wrote:" over two lines."""
    if i + 1 >= len(lines):
        return False
    joined = lines[i].strip() + " " + lines[i + 1].strip()
    return bool(_QUOTE_HEADERS[2].match(joined)) and bool(
        re.match(r"^\s*(?:on|pada)\b", lines[i], re.IGNORECASE)
    )


def strip_quotes(text: str) -> str:
    """The new part of a reply: stops at the first quote header, `>` block or signature marker."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    cut = len(lines)
    for i, line in enumerate(lines):
        if _SIGNATURE.match(line) or _MOBILE_SIG.match(line):
            cut = i
            break
        if line.lstrip().startswith(">"):
            # A quoted block (possibly after a "wrote:" line we did not recognise).
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
            if n == 3:
                window = lines[i + 1 : i + 6]
                if not any(_OUTLOOK_SENT.match(x) for x in window):
                    continue
            cut = i
            break
        if cut != len(lines):
            break
    return "\n".join(lines[:cut]).strip()
