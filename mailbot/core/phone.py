"""A phone field: its first number as E.164 (Indonesia by default) and the note written beside it."""

from __future__ import annotations

import re

import phonenumbers

_PHONE_VALUE_MAX = 200  # a bound before reading: a phone field is one line
_PHONE_CHARS = frozenset("0123456789 ().-+\t")
_NOTE_EDGES = " \t,;:/-–—|"


def _phone_run(value: str) -> tuple[int, int] | None:
    """Where the first number is: from a digit, '+' or '(' before a digit, over digits, spaces,
    dots, dashes and parentheses, ending at its last digit."""
    m = re.search(r"\+?\(?\d", value)
    if m is None:
        return None
    end = m.start()
    last_digit = end
    while end < len(value) and value[end] in _PHONE_CHARS and (value[end] != "+" or end == m.start()):
        if value[end].isdigit():
            last_digit = end + 1
        end += 1
    stop = last_digit
    if value.count("(", m.start(), stop) > value.count(")", m.start(), stop):
        close = value.find(")", stop, stop + 2)  # "(021) 555": the run may end right before ")"
        stop = close + 1 if close != -1 else stop
    return m.start(), stop


def split_phone(value: str) -> tuple[str, str | None, str]:
    """(E.164, error code, note): the first number of the field and what else was written
    ("psw. 123", "a.n. Budi", "WhatsApp only", "Kantor: 021-1234567"), for the staff to read.
    A bare leading 62 is the country code (DOMAIN.md s. 2)."""
    value = value[:_PHONE_VALUE_MAX].strip()
    run = _phone_run(value)
    if run is None:
        return "", "phone_invalid", ""
    candidate = value[run[0] : run[1]].strip()
    note = (value[: run[0]].strip(_NOTE_EDGES) + " " + value[run[1] :].strip(_NOTE_EDGES)).strip()
    while note.startswith("(") and note.endswith(")") and note.count("(") == 1:
        note = note[1:-1].strip(_NOTE_EDGES)
    compact = re.sub(r"[\s.\-()]", "", candidate)
    if compact.startswith("62"):
        candidate = "+" + compact
    try:
        number = phonenumbers.parse(candidate, "ID")
    except phonenumbers.NumberParseException:
        return "", "phone_invalid", ""
    if not phonenumbers.is_valid_number(number):
        return "", "phone_invalid", ""
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164), None, note


def validate_phone(value: str) -> tuple[str, str | None]:
    """(E.164, error code) of the first number in a phone field."""
    e164, error, _ = split_phone(value)
    return e164, error
