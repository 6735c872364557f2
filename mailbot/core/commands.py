"""Staff reply commands: text → command objects, with errors a person can read.

Commands stand one per line at the top of a reply (`ASSIGN Budi`, `TUGASKAN Budi`,
`NOTE …`). Parsing stops at the first line that is not a command; what follows
is the body (the answer text for `ANSWER`). The caller passes text whose quoted
history and signature are already cut, so a command inside a quote never counts.
"""

from __future__ import annotations

import enum
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar


class Verb(enum.StrEnum):
    ASSIGN = "ASSIGN"
    ANSWER = "ANSWER"
    FORWARD = "FORWARD"
    NORMATIVE = "NORMATIVE"
    REPORT = "REPORT"
    MEDIUM = "MEDIUM"
    ARCHIVE = "ARCHIVE"
    REQUEST_INFO = "REQUEST-INFO"
    NOTE = "NOTE"
    URGENT = "URGENT"
    EXTEND = "EXTEND"
    CLOSE = "CLOSE"
    REJECT = "REJECT"
    REOPEN = "REOPEN"
    STATUS = "STATUS"
    LIST = "LIST"
    HELP = "HELP"


# English and Indonesian forms; '-' and '_' and spaces inside a verb are interchangeable.
ALIASES: dict[str, Verb] = {
    "ASSIGN": Verb.ASSIGN,
    "TUGASKAN": Verb.ASSIGN,
    "DISPOSISI": Verb.ASSIGN,
    "ANSWER": Verb.ANSWER,
    "JAWAB": Verb.ANSWER,
    "JAWABAN": Verb.ANSWER,
    "FORWARD": Verb.FORWARD,
    "TERUSKAN": Verb.FORWARD,
    # SOP 000 step 5: the secretariat identifies a question as normative and answers it itself.
    "NORMATIVE": Verb.NORMATIVE,
    "NORMATIF": Verb.NORMATIVE,
    # Steps after the answer (SOP 001 steps 4-5, SOP 004 steps 7-8): the report, the archiving.
    "REPORT": Verb.REPORT,
    "LAPORAN": Verb.REPORT,
    "LAPOR": Verb.REPORT,
    # How the consultation was held, for the Berita Acara (SOP 004): MEDIA tatap muka / video / email.
    "MEDIUM": Verb.MEDIUM,
    "MEDIA": Verb.MEDIUM,
    "MEDIA-KONSULTASI": Verb.MEDIUM,
    "ARCHIVE": Verb.ARCHIVE,
    "ARSIP": Verb.ARCHIVE,
    "ARSIPKAN": Verb.ARCHIVE,
    "DIARSIPKAN": Verb.ARCHIVE,
    "REQUEST-INFO": Verb.REQUEST_INFO,
    "REQUESTINFO": Verb.REQUEST_INFO,
    "MINTA-INFO": Verb.REQUEST_INFO,
    "MINTA-DATA": Verb.REQUEST_INFO,
    "MINTA-KETERANGAN": Verb.REQUEST_INFO,
    "NOTE": Verb.NOTE,
    "CATATAN": Verb.NOTE,
    "URGENT": Verb.URGENT,
    "SEGERA": Verb.URGENT,
    "PENTING": Verb.URGENT,
    "EXTEND": Verb.EXTEND,
    "PERPANJANG": Verb.EXTEND,
    "CLOSE": Verb.CLOSE,
    "TUTUP": Verb.CLOSE,
    "SELESAI": Verb.CLOSE,
    "REJECT": Verb.REJECT,
    "TOLAK": Verb.REJECT,
    "REOPEN": Verb.REOPEN,
    "BUKA": Verb.REOPEN,
    "BUKA-KEMBALI": Verb.REOPEN,
    "STATUS": Verb.STATUS,
    "LIST": Verb.LIST,
    "DAFTAR": Verb.LIST,
    "HELP": Verb.HELP,
    "BANTUAN": Verb.HELP,
}

# What each verb needs after it.
NEEDS_ARGUMENT = {
    Verb.ASSIGN,
    Verb.MEDIUM,
    Verb.FORWARD,
    Verb.REQUEST_INFO,
    Verb.NOTE,
    Verb.EXTEND,
    Verb.CLOSE,
    Verb.REJECT,
}
TAKES_NO_ARGUMENT_VERBS = (
    Verb.URGENT,
    Verb.REOPEN,
    Verb.NORMATIVE,
    Verb.ARCHIVE,
    Verb.STATUS,
    Verb.LIST,
    Verb.HELP,
)
# Verbs whose text is the rest of the mail (the answer, the report), from their own line on.
TAKES_THE_REST = (Verb.ANSWER, Verb.REPORT)
TAKES_NO_ARGUMENT = set(TAKES_NO_ARGUMENT_VERBS)
MAX_EXTEND_DAYS = 30
# Verbs whose text may go on over the next lines, up to a blank line or the next command.
CONTINUED = {Verb.NOTE, Verb.REQUEST_INFO, Verb.CLOSE, Verb.REJECT}
MAX_CONTINUED_LINES = 30

# A verb in capitals is a command, as the help text shows. People also write "Tugaskan Budi",
# "assign budi" or "Jawab": a verb in any other case is a command when the line has the verb's
# own shape (nothing after a verb that takes nothing, a name after ASSIGN, days after EXTEND).
# Free-text verbs (NOTE, CLOSE, REJECT, REQUEST-INFO, REPORT) count only in capitals: an answer
# that starts "Catatan: …", "Selesai saya telaah, …" or "Laporan: …" is prose, not a command.
# Linear: possessive quantifiers, and lines are cut to MAX_LINE before matching.
MAX_LINE = 1000
_VERB = re.compile(r"[ \t]*+[*_]*+([A-Za-z]++)(?:[-_ ]([A-Za-z]++))?+")
_ARG = re.compile(r"[*_]*+[ \t]*+:?+[ \t]*+")
_NAME = re.compile(r"[^\W\d_][\w.'\- ]{0,60}", re.UNICODE)
_DAYS = re.compile(r"(\d{1,3})(?:\s*(?:hari kerja|hari|days?|working days?))?", re.IGNORECASE)
_ANY_CASE = {Verb.ASSIGN, Verb.FORWARD, Verb.EXTEND, Verb.MEDIUM, Verb.ANSWER, *TAKES_NO_ARGUMENT_VERBS}
# How heads name the assignee around the name itself: "ke Budi", "kepada Pak Budi", "Sdr. Budi",
# "Budi Santoso, mohon segera", "Budi Santoso (Analis SDM)".
_TO_PERSON = re.compile(
    r"(?:(?:ke|kepada|untuk|to)\s++)?+(?:(?:bapak|ibu|pak|bu|bp|sdr|sdri|saudara|saudari)\.?\s++)?+",
    re.IGNORECASE,
)

# The Berita Acara's medium (DOMAIN.md s. 6: "melalui surat elektronik", a video conference, or a
# day, date and place face to face): the words people write for each.
MEDIA: dict[str, str] = {
    **dict.fromkeys(
        ("email", "e-mail", "surel", "surat elektronik", "surat-el", "mail", "tertulis"), "email"
    ),
    **dict.fromkeys(
        (
            "video", "video conference", "videoconference", "video call", "konferensi video",
            "vicon", "zoom", "zoom meeting", "google meet", "meet", "teams", "microsoft teams",
            "ms teams", "daring", "online",
        ),
        "video",
    ),
    **dict.fromkeys(
        (
            "tatap muka", "tatap-muka", "face to face", "face-to-face", "in person", "langsung",
            "luring", "offline", "kunjungan", "pertemuan langsung",
        ),
        "face_to_face",
    ),
}  # fmt: skip


def medium_of(text: str) -> str | None:
    """`email`, `video` or `face_to_face` for what a staff member wrote after MEDIA, or None."""
    words = " ".join(re.sub(r"[^\w\s-]", " ", text[:80].casefold()).split())
    return MEDIA.get(words) or MEDIA.get(words.replace("-", " "))


@dataclass(frozen=True)
class Command:
    verb: Verb
    arg: str
    line: str
    days: int = 0  # EXTEND


@dataclass(frozen=True)
class CommandError:
    line: str
    code: str  # missing_argument | unexpected_argument | bad_days | …


@dataclass(frozen=True)
class ParsedCommands:
    commands: tuple[Command, ...]
    errors: tuple[CommandError, ...]
    body: str  # what follows the commands

    @property
    def empty(self) -> bool:
        return not self.commands and not self.errors


def _verb(word: str) -> Verb | None:
    return ALIASES.get(re.sub(r"[\s_]+", "-", word.strip().upper()))


@dataclass(frozen=True)
class _Hit:
    verb: Verb
    arg: str
    capitals: bool  # the verb was written in capitals


def _command_line(line: str) -> _Hit | None:
    """The verb a line starts with (any case), and what follows it."""
    line = line[:MAX_LINE]
    m = _VERB.match(line)
    if not m:
        return None
    first, second = m.group(1), m.group(2)
    if second:
        verb = _verb(f"{first}-{second}")
        if verb is not None:
            written, rest = f"{first}{second}", line[m.end() :]
            return _Hit(verb, _clean_arg(rest), written.isupper())
    verb = _verb(first)
    if verb is None:
        return None
    rest = line[m.start(1) + len(first) :]
    if rest[:1].isalnum():
        return None
    return _Hit(verb, _clean_arg(rest), first.isupper())


def _clean_arg(rest: str) -> str:
    rest = rest[_ARG.match(rest).end() :]  # type: ignore[union-attr]  # matches the empty string too
    return rest.strip().strip("*_").strip()


def _shaped(hit: _Hit) -> bool:
    """Does a verb written in lower or mixed case stand as a command (see above)?"""
    if hit.verb not in _ANY_CASE:
        return False
    arg = hit.arg.rstrip(".!").strip()
    if hit.verb in TAKES_NO_ARGUMENT or hit.verb is Verb.ANSWER:
        return not arg
    if hit.verb is Verb.EXTEND:
        return _DAYS.fullmatch(arg) is not None
    if hit.verb is Verb.MEDIUM:
        return medium_of(arg) is not None  # "Media sosial kami …" is prose
    if hit.verb in (Verb.ASSIGN, Verb.FORWARD):
        arg = arg[_TO_PERSON.match(arg).end() :]  # type: ignore[union-attr]  # "kepada Sdr. Budi"
    return bool(arg) and len(arg.split()) <= 6 and _NAME.fullmatch(arg) is not None


def _near_verb(line: str) -> bool:
    """A first word in capitals one letter away from a verb ("ASIGN", "JAWABB"): a command
    mistyped, which deserves a transcript rather than silence."""
    m = _VERB.match(line[:MAX_LINE])
    if not m or not m.group(1).isupper() or len(m.group(1)) < 4:
        return False
    word = m.group(1)
    return any(_one_edit(word, alias) for alias in ALIASES if "-" not in alias)


def _one_edit(a: str, b: str) -> bool:
    if abs(len(a) - len(b)) > 1 or a == b:
        return False
    if len(a) == len(b):
        return sum(x != y for x, y in zip(a, b, strict=True)) == 1
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    return any(long_[:i] + long_[i + 1 :] == short for i in range(len(long_)))


# A greeting people write above their commands ("Baik,", "Yth. Tim,", "Selamat pagi Bu,",
# "Ralat,"): up to MAX_GREETING_LINES such short lines are passed over when a command follows them.
_GREETING = re.compile(
    r"(?:yth|kepada yth|dear|hi|halo|hallo|selamat (?:pagi|siang|sore|malam)|assalamu\w*|baik|siap|"
    r"ok|oke|ralat|mohon maaf|maaf|terima kasih|terimakasih|noted|pak|bu|bapak|ibu)\b"
)
MAX_GREETING_LINES = 2
MAX_GREETING_WORDS = 6


def _greeting(line: str) -> bool:
    """A short line that greets: it starts like a greeting and ends with a comma or an
    exclamation mark, or is three words at most ("Baik", "Selamat pagi Bu") and no sentence."""
    text = line[:MAX_LINE].strip()
    folded = fold(text)
    words = len(folded.split())
    if words > MAX_GREETING_WORDS or _GREETING.match(folded) is None:
        return False
    return text.endswith((",", "!")) or (words <= 3 and not text.endswith((".", "?")))


def _after_greeting(lines: list[str]) -> int:
    """Where the commands start: after a greeting of at most two short lines (blank lines between)
    when the next line is a command; else at the first line."""
    index, greetings = 0, 0
    while index < len(lines) and greetings < MAX_GREETING_LINES:
        line = lines[index]
        if not line.strip():
            index += 1
            continue
        if _command_line(line) is not None or not _greeting(line):
            break
        greetings, index = greetings + 1, index + 1
    while index < len(lines) and not lines[index].strip():
        index += 1
    if greetings and index < len(lines):
        hit = _command_line(lines[index])
        if hit is not None and (hit.capitals or _shaped(hit)):
            return index
    return 0


def parse_commands(text: str) -> ParsedCommands:
    commands: list[Command] = []
    errors: list[CommandError] = []
    lines = text.replace("\r\n", "\n").split("\n")
    index = _after_greeting(lines)
    first = True
    while index < len(lines):
        line = lines[index]
        if not line.strip():
            index += 1
            continue
        hit = _command_line(line)
        clean = line.strip()[:200]
        alone = first and not any(x.strip() for x in lines[index + 1 :])
        if hit is not None and not hit.capitals and not hit.arg and clean.endswith(":"):
            break  # "Penting:" or "Catatan:" over a paragraph: a heading of prose, no command
        if hit is not None and not hit.capitals and not _shaped(hit):
            if alone and hit.verb in NEEDS_ARGUMENT and not hit.arg:
                # "assign" or "Tugaskan" and nothing else: meant as a command, but incomplete.
                errors.append(CommandError(clean, "missing_argument"))
                index += 1
            break
        if hit is None:
            if first and _near_verb(line):
                errors.append(CommandError(clean, "unknown_command"))
                index += 1
            break
        first = False
        verb, arg = hit.verb, hit.arg
        index += 1
        if verb in NEEDS_ARGUMENT and not arg:
            errors.append(CommandError(clean, "missing_argument"))
        elif verb in TAKES_NO_ARGUMENT and arg.rstrip(".!"):
            errors.append(CommandError(clean, "unexpected_argument"))
        elif verb is Verb.EXTEND:
            m = _DAYS.fullmatch(arg)
            if not m or not 1 <= int(m.group(1)) <= MAX_EXTEND_DAYS:
                errors.append(CommandError(clean, "bad_days"))
            else:
                commands.append(Command(verb, arg, clean, days=int(m.group(1))))
        elif verb is Verb.MEDIUM:
            medium = medium_of(arg)
            if medium is None:
                errors.append(CommandError(clean, "bad_medium"))
            else:
                commands.append(Command(verb, medium, clean))
        elif verb in TAKES_THE_REST:
            # The rest of the mail is the answer (the report); text on the verb's line starts it.
            body = "\n".join([arg, *lines[index:]]).strip()
            commands.append(Command(verb, body, clean))
            return ParsedCommands(tuple(commands), tuple(errors), body)
        elif verb in CONTINUED and arg:
            # A reason or question over several lines ("TOLAK bukan kewenangan kami.\nSilakan
            # menghubungi BKN …"): the lines below it, up to a blank line or the next command.
            more: list[str] = []
            while index < len(lines) and lines[index].strip() and len(more) < MAX_CONTINUED_LINES:
                below = _command_line(lines[index])
                if below is not None and (below.capitals or _shaped(below)):
                    break
                more.append(lines[index].strip())
                index += 1
            commands.append(Command(verb, "\n".join([arg.rstrip(), *more]), clean))
        else:
            commands.append(Command(verb, arg.rstrip() if verb in NEEDS_ARGUMENT else "", clean))
    body = "\n".join(lines[index:]).strip()
    return ParsedCommands(tuple(commands), tuple(errors), body)


# --- people ----------------------------------------------------------------------------


class Person(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def aliases(self) -> list[str]: ...
    @property
    def emails(self) -> list[str]: ...


def fold(text: str) -> str:
    """Case- and accent-insensitive form: 'Dédé  Suryadi' → 'dede suryadi'."""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return re.sub(r"[^a-z0-9@.]+", " ", stripped.casefold()).strip()


P = TypeVar("P", bound=Person)


def person_query(text: str) -> str:
    """The name in what follows ASSIGN or FORWARD, without the words around it."""
    text = text.strip()
    if "@" not in text:
        text = re.split(r"[,;(]", text, maxsplit=1)[0]
        text = text[_TO_PERSON.match(text).end() :]  # type: ignore[union-attr]  # matches ""
    return text.strip().strip("<>\"'").strip()


def match_person(query: str, people: Sequence[P]) -> list[P]:
    """People matching a name, alias, address or mailbox name; exact matches win over prefixes.
    The text as written is tried first (an alias may be "Pak Budi"), then without the words
    around the name ("kepada Pak Budi Santoso, mohon segera")."""
    written = fold(query.strip().strip("<>\"'"))
    q = fold(person_query(query))
    if not q:
        return []

    def keys(p: P) -> Iterable[str]:
        yield fold(p.name)
        for alias in p.aliases:
            yield fold(alias)
        for address in p.emails:
            yield fold(address)
            yield fold(address.split("@", 1)[0].replace(".", " "))
            yield fold(address.split("@", 1)[0])

    for wanted in (written, q):
        exact = [p for p in people if wanted in set(keys(p))]
        if exact:
            return exact
    # A first name or the start of a name: "Budi" for "Budi Santoso".
    return [
        p
        for p in people
        if any(k.startswith(q + " ") or k == q for k in keys(p)) or any(q in k.split(" ") for k in keys(p))
    ]
