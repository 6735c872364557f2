"""A staff member's own signature block, cut from what an applicant reads.

quotes.py cuts what a client marks as a signature ("-- ", "Hormat saya,", "Sent from my
iPhone"). Civil servants often sign without any of these: "Terima kasih,", then their name with
degrees, position, NIP and personal phone or WhatsApp number. That block is the staff member's
personal data (DOMAIN.md, personal data) and not part of the office's answer: the answer mail
already names who answered, by name and position. Pure; bounded (only the last lines are read,
each cut to MAX_LINE before matching).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from mailbot.core.commands import fold

MAX_BLOCK_LINES = 8
MAX_LINE = 200
MAX_NAME_LINE_WORDS = 8

# A closing line that only thanks or signs ("Terima kasih,", "Tks", "Ttd,", "Salam,").
_CLOSING = re.compile(
    r"(?:terima kasih|terimakasih|makasih|trims|tks|thanks|thank you|ttd|salam|hormat saya|wassalam\w*|"
    r"regards|best regards)(?: banyak)?"
)
# A phone or WhatsApp number: nine digits or more, with the usual separators.
_PHONE = re.compile(r"(?:\+?62|0)[\d\s().-]{8,20}+")
# NIP, HP, WA, Telp … as a label with its number, or an e-mail label, at the start of a line.
_LABELED = re.compile(
    r"\s*+(?:nip|nik|nrp|hp|wa|whatsapp|telp|tel|telepon|phone|mobile|ponsel)\b\.?+\s*+[:.]?+\s*+[+\d(]"
    r"|\s*+e-?mail\s*+:\s*+\S+@",
    re.IGNORECASE,
)


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text)


def _identity(line: str, folded: str, names: set[str], nip: str, position: str) -> bool:
    """A line that names, numbers or reaches the signer: name (with degrees), position, NIP,
    phone."""
    if _LABELED.match(line):
        return True
    digits = _digits(line)
    if nip and len(nip) >= 9 and nip in digits:
        return True
    phone = _PHONE.search(line)
    if phone is not None and len(digits) >= 9:
        # A number alone, or with a word or two ("0812 9999 8888 (WA)"); not an office number
        # inside a sentence of the answer ("hubungi BKN di 021-8093008").
        rest = line[: phone.start()] + " " + line[phone.end() :]
        return len(rest.split()) <= 2
    if position and folded == position:
        return True
    words = [w.strip(".") for w in folded.replace(",", " ").split()]
    if not words or len(words) > MAX_NAME_LINE_WORDS:
        return False
    # The name, perhaps with titles and degrees after it ("Budi Santoso, S.E., M.Si.").
    return words[0] in names and sum(w in names for w in words) >= 1


def strip_staff_signature(text: str, *, names: Sequence[str], nip: str = "", position: str = "") -> str:
    """`text` without the trailing block in which its signer signs with their own name, position,
    NIP or phone (and the "Terima kasih," above it); unchanged when the last lines name nobody."""
    name_words = {w.strip(".") for n in names for w in fold(n).split() if len(w.strip(".")) > 1}
    position_folded = fold(position)
    nip_digits = _digits(nip)
    lines = text.rstrip().split("\n")
    # From the end: the block is the lines that name the signer, with short lines among them
    # (a position or unit not configured: "Bagian Umum"); it starts at the topmost line that
    # names them, or at a closing line ("Terima kasih,") just above it.
    top: int | None = None
    looked = 0
    for i in range(len(lines) - 1, -1, -1):
        line = lines[i][:MAX_LINE].strip()
        if not line:
            continue
        looked += 1
        if looked > MAX_BLOCK_LINES:
            break
        folded = fold(line)
        if _identity(line, folded, name_words, nip_digits, position_folded):
            top = i
        elif not _short(line):
            break
    if top is None:
        return text
    while top > 0:
        above = next((j for j in range(top - 1, -1, -1) if lines[j].strip()), None)
        if above is None or _CLOSING.fullmatch(fold(lines[above][:MAX_LINE])) is None:
            break
        top = above
    if top == 0 or not "\n".join(lines[:top]).strip():
        return text  # nothing but the signature: leave it, the caller decides
    return "\n".join(lines[:top]).rstrip()


def _short(line: str) -> bool:
    """A signature's line: a few words, no sentence ("Bagian Umum dan Rumah Tangga")."""
    return len(line.split()) <= 6 and not line.endswith((".", "?", "!", ":"))
