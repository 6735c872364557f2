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
    Verb.FORWARD,
    Verb.REQUEST_INFO,
    Verb.NOTE,
    Verb.EXTEND,
    Verb.CLOSE,
    Verb.REJECT,
}
TAKES_NO_ARGUMENT = {Verb.URGENT, Verb.REOPEN, Verb.STATUS, Verb.LIST, Verb.HELP}
MAX_EXTEND_DAYS = 30

# Verbs are written in capitals, as the help text shows: an answer that happens to start
# with "Status kepegawaian …" or "Catatan: …" is prose, not a command.
_TWO_WORDS = re.compile(r"^\s*[*_]*([A-Z]+)[-_ ]([A-Z]+)\b[*_]*[ \t]*:?[ \t]*(.*?)\s*$")
_ONE_WORD = re.compile(r"^\s*[*_]*([A-Z]+)\b[*_]*[ \t]*:?[ \t]*(.*?)\s*$")


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


def _command_line(line: str) -> tuple[Verb, str] | None:
    m = _TWO_WORDS.match(line)
    if m:
        verb = _verb(f"{m.group(1)}-{m.group(2)}")
        if verb is not None:
            return verb, m.group(3)
    m = _ONE_WORD.match(line)
    if m:
        verb = _verb(m.group(1))
        if verb is not None:
            return verb, m.group(2)
    return None


def parse_commands(text: str) -> ParsedCommands:
    commands: list[Command] = []
    errors: list[CommandError] = []
    lines = text.replace("\r\n", "\n").split("\n")
    index = 0
    while index < len(lines):
        line = lines[index]
        if not line.strip():
            index += 1
            continue
        hit = _command_line(line)
        if hit is None:
            break
        verb, arg = hit
        clean = line.strip()[:200]
        index += 1
        if verb in NEEDS_ARGUMENT and not arg:
            errors.append(CommandError(clean, "missing_argument"))
        elif verb in TAKES_NO_ARGUMENT and arg:
            errors.append(CommandError(clean, "unexpected_argument"))
        elif verb is Verb.EXTEND:
            m = re.fullmatch(r"(\d{1,3})(?:\s*(?:hari|days?|hari kerja|working days?))?", arg, re.IGNORECASE)
            if not m or not 1 <= int(m.group(1)) <= MAX_EXTEND_DAYS:
                errors.append(CommandError(clean, "bad_days"))
            else:
                commands.append(Command(verb, arg, clean, days=int(m.group(1))))
        elif verb is Verb.ANSWER:
            # The rest of the mail is the answer; text on the ANSWER line itself starts it.
            body = "\n".join([arg, *lines[index:]]).strip()
            commands.append(Command(verb, body, clean))
            return ParsedCommands(tuple(commands), tuple(errors), body)
        else:
            commands.append(Command(verb, arg, clean))
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


def match_person(query: str, people: Sequence[P]) -> list[P]:
    """People matching a name, alias, address or mailbox name; exact matches win over prefixes."""
    q = fold(query.strip().strip("<>\"'"))
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

    exact = [p for p in people if q in set(keys(p))]
    if exact:
        return exact
    # A first name or the start of a name: "Budi" for "Budi Santoso".
    return [
        p
        for p in people
        if any(k.startswith(q + " ") or k == q for k in keys(p)) or any(q in k.split(" ") for k in keys(p))
    ]
