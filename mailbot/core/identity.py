"""Identity numbers as a request gives them: NIP (PNS), NI PPPK, the old NIP, NIK (DOMAIN.md s. 2).

Pure: a value and today's date in; normalized digits, the kind and an error code out.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date

from stdnum.exceptions import InvalidComponent, ValidationError
from stdnum.id import nik as stdnum_nik

# "NIP : -", "NIP: tidak ada", "bukan PNS", "belum ada": no number given on this line (and, for
# a complaint's evidence, nothing given).
NO_NUMBER = re.compile(
    r"^[\s\-–—./]*+(?:(?:tidak|belum|bukan)\b[^\d]{0,40}|n\.?/?a\.?|none|nihil|kosong)?[\s\-–—.]*+$",
    re.IGNORECASE | re.DOTALL,
)
_SEPARATED_DIGITS = re.compile(r"(?<=\d)[\s.\-/]+(?=\d)")


def _digits(value: str) -> str:
    """The identity number inside a value: separators (space . - /) removed, first digit run."""
    squeezed = _SEPARATED_DIGITS.sub("", value)
    m = re.search(r"\d+", squeezed)
    return m.group(0) if m else ""


def _valid_date(y: int, m: int, d: int) -> date | None:
    try:
        return date(y, m, d)
    except ValueError:
        return None


def validate_nip(digits: str, today: date) -> tuple[str, str | None]:
    """(kind, error code) for an 18-digit NIP (PNS) or NI PPPK, or a 9-digit old NIP."""
    if len(digits) == 9:
        return "nip_old", None
    birth = _valid_date(int(digits[0:4]), int(digits[4:6]), int(digits[6:8]))
    if birth is None or not (1930 <= birth.year <= today.year - 15):
        return "nip", "nip_bad_birth_date"
    year = int(digits[8:12])
    if digits[12] == "2":
        # NI PPPK: YYYY of appointment, '2', contract count, gender, sequence.
        kind = "pppk"
        gender = digits[14]
    else:
        kind = "nip"
        month = int(digits[12:14])
        if not 1 <= month <= 12:
            return kind, "nip_bad_appointment"
        gender = digits[14]
    # Numbers are issued in December for an appointment (TMT) in January: up to January of next
    # year is accepted (an NI PPPK carries the year only).
    if not birth.year + 15 <= year <= today.year + 1:
        return kind, "nip_bad_appointment"
    if year == today.year + 1 and kind == "nip" and int(digits[12:14]) != 1:
        return kind, "nip_bad_appointment"
    if gender not in "12":
        return kind, "nip_bad_gender"
    return kind, None


def nik_birth_date(digits: str, today: date) -> date | None:
    """Birth date in a NIK, day + 40 for women, century chosen so the date is not in the future."""
    day, month, yy = int(digits[6:8]), int(digits[8:10]), int(digits[10:12])
    if day > 40:
        day -= 40
    year = 2000 + yy if 2000 + yy <= today.year else 1900 + yy
    born = _valid_date(year, month, day)
    if born is not None and born > today:
        born = _valid_date(year - 100, month, day)
    return born


def validate_nik(digits: str, today: date) -> str | None:
    """Error code for a 16-digit NIK, or None.

    python-stdnum checks the form; its region table predates the new provinces
    and its century choice prefers the 1900s, so neither decides here (DOMAIN.md s. 2).
    """
    try:
        stdnum_nik.validate(digits)
    except InvalidComponent:
        pass  # region or date: judged below
    except ValidationError:
        return "nik_bad_format"
    if digits[0:2] == "00" or digits[12:16] == "0000":
        return "nik_bad_format"
    if nik_birth_date(digits, today) is None:
        return "nik_bad_birth_date"
    return None


def _validate_one(digits: str, today: date) -> tuple[str, str | None, str | None]:
    if len(digits) == 18 or len(digits) == 9:
        kind, error = validate_nip(digits, today)
        return digits, kind, error
    if len(digits) == 16:
        return digits, "nik", validate_nik(digits, today)
    return digits, None, "id_bad_length"


_ID_VALUE_MAX = 300  # a bound before matching: two numbers and their separators fit many times


def _split_numbers(value: str) -> list[str] | None:
    """Two numbers written as one run ("198609262015051001 / 3273012609860001",
    "19860926 201505 1 001 - 3273012609860001"): the digit groups cut into an 18- or 16-digit
    number each, or None when they cannot be."""
    groups = re.findall(r"\d+", value[:_ID_VALUE_MAX])
    best: dict[int, list[str] | None] = {len(groups): []}
    for i in range(len(groups) - 1, -1, -1):  # fewest numbers from group i to the end
        best[i] = None
        run = ""
        for j in range(i, len(groups)):
            run += groups[j]
            if len(run) > 18:
                break
            rest = best[j + 1]
            fewer = best[i] is None or (rest is not None and len(rest) + 1 < len(best[i] or []))
            if len(run) in (16, 18) and rest is not None and fewer:
                best[i] = [run, *rest]
    numbers = best[0]
    return numbers if numbers and len(numbers) > 1 else None


def validate_id_numbers(value: str, today: date) -> tuple[str, str | None, str | None, list[str]]:
    """(digits, kind, error, other numbers) for a NIP/NIK value that may hold two numbers.

    With two, the valid NIP or NI PPPK is the id number (the roster knows it), else the valid
    NIK; the other is kept for the staff to see."""
    digits = _digits(value)
    if len(digits) in (9, 16, 18):
        # "NIP: 1986…, NIK 3273…": a further number after words is kept too.
        squeezed = _SEPARATED_DIGITS.sub("", value[:_ID_VALUE_MAX])
        others = [run for run in re.findall(r"\d+", squeezed)[1:] if len(run) in (16, 18)]
        return (*_validate_one(digits, today), others)
    numbers = _split_numbers(value)
    if not numbers:
        return (*_validate_one(digits, today), [])
    checked = [_validate_one(n, today) for n in numbers]
    ranked = sorted(checked, key=lambda c: (c[2] is not None, c[1] == "nik"))
    chosen = ranked[0]
    return chosen[0], chosen[1], chosen[2], [c[0] for c in checked if c is not chosen]


def validate_id_number(value: str, today: date) -> tuple[str, str | None, str | None]:
    """(normalized digits, kind, error code) for a NIP/NIK value."""
    digits, kind, error, _ = validate_id_numbers(value, today)
    return digits, kind, error


def other_number(found: Mapping[str, str], today: date) -> list[str]:
    """A second identity number given on a line of its own ("NIP: …" then "NIK: …")."""
    raw = (found.get("id_number_other") or "").strip()
    if not raw:
        return []
    digits, _, error = _validate_one(_digits(raw), today)
    return [digits] if error is None else [raw[:40]]
