"""What a staff member's reply says besides its commands: the text below them (a disposition's
note, or text that went nowhere), and whether a plain reply is no answer for the applicant.
Pure; every line is cut to MAX_LINE before matching."""

from __future__ import annotations

import re
from collections.abc import Sequence

from mailbot.core.commands import MAX_LINE, Verb, _command_line, fold

# A last line that only signs or thanks: "Siti", "Terima kasih", "Tks, Budi". Bounded before
# matching (MAX_LINE) and linear (no nested quantifiers).
_SIGN_OFF = re.compile(
    r"(?:terima kasih|terimakasih|makasih|trims|tks|thanks|thank you|salam|wassalam|hormat saya|"
    r"best|regards|ttd)\b[\w .,!-]{0,40}+",
)
MAX_SIGN_OFF_WORDS = 4


def text_after_commands(body: str, signer_names: Sequence[str]) -> str:
    """What a staff member wrote below their commands, without a closing line that only signs or
    thanks (their name, "Terima kasih", "Tks, Budi"): text a command mail would otherwise drop
    unsaid. Empty when nothing else is there."""
    names = {word for name in signer_names for word in fold(name).replace(".", " ").split()}
    lines = body.replace("\r\n", "\n").split("\n")
    while lines:
        last = lines[-1][:MAX_LINE]
        words = fold(last).replace(".", " ").split()
        if not words or (
            len(words) <= MAX_SIGN_OFF_WORDS
            and (
                all(w in names or len(w) == 1 for w in words)  # a name, with initials
                or _SIGN_OFF.fullmatch(fold(last)) is not None
            )
        ):
            lines.pop()
        else:
            break
    return "\n".join(lines).strip()


# An assignee's short reply to the office that is no answer for the applicant: "Siap Bu, segera
# saya tindaklanjuti", "Mohon izin, ini bukan bidang saya, mohon dialihkan".
MAX_ACKNOWLEDGMENT_WORDS = 30
_INTERNAL_VERBS = {
    Verb.NOTE,
    Verb.REQUEST_INFO,
    Verb.ASSIGN,
    Verb.FORWARD,
    Verb.CLOSE,
    Verb.REJECT,
    Verb.EXTEND,
    Verb.URGENT,
}
_ACK_START = re.compile(r"(?:siap|noted|sip|laksanakan)\b")
_ACK_PHRASE = re.compile(
    r"\b(?:segera saya (?:tindak|pelajari|cek|jawab|kerjakan)\w*|"
    r"akan (?:segera )?saya (?:tindak ?lanjut|pelajari|cek|jawab|kerjakan)\w*|"
    r"saya tindak ?lanjut\w*|mohon (?:izin|ijin)|bukan (?:bidang|kewenangan|tugas) saya|"
    r"(?:mohon|agar|untuk) dialihkan)"
)


def not_an_answer(text: str) -> str | None:
    """Why an assignee's plain reply, which would go to the applicant as the office's answer,
    must not (the assignee is asked to send it with ANSWER if it is one): "commands_below", a
    command in capitals on a later line (internal text meant as commands, under a first line
    that is not one); "acknowledgment", a short reply to the office ("Siap, segera saya
    tindaklanjuti"). None for an answer."""
    lines = [line[:MAX_LINE] for line in text.split("\n") if line.strip()]
    for line in lines[1:]:
        hit = _command_line(line)
        # Only the verbs whose text or effect is internal: a heading in capitals that happens to
        # be a verb ("DAFTAR PUSTAKA", "STATUS PPPK", "PENTING:") is part of an answer.
        if (
            hit is not None
            and hit.capitals
            and hit.verb in _INTERNAL_VERBS
            and not line.rstrip().endswith(":")
        ) and (hit.verb is not Verb.URGENT or not hit.arg):
            return "commands_below"
    folded = fold(" ".join(lines)[: MAX_LINE * 2])
    if len(folded.split()) <= MAX_ACKNOWLEDGMENT_WORDS and (
        _ACK_START.match(folded) is not None or _ACK_PHRASE.search(folded) is not None
    ):
        return "acknowledgment"
    return None
