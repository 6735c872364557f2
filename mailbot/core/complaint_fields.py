"""A complaint's own fields (SOP 003 step 1): the date and time of the incident, and its evidence.

A profile requires them in `required_fields`; `fields.validate_fields` validates them only then.
"""

from __future__ import annotations

import re

from mailbot.core.identity import NO_NUMBER

_WHEN_MAX = 4000  # a bound before matching: the first part of a description holds the incident
_MONTHS = (
    r"jan(?:uari|uary)?|feb(?:ruari|ruary)?|mar(?:et|ch)?|apr(?:il)?|mei|may|jun[ie]?|jul[iy]?|"
    r"agu(?:stus)?|agt|aug(?:ust)?|sep(?:t(?:ember)?)?|okt(?:ober)?|oct(?:ober)?|nov(?:ember)?|"
    r"des(?:ember)?|dec(?:ember)?"
)
_DATE = re.compile(
    rf"\b(?:\d{{4}}-\d{{1,2}}-\d{{1,2}}|\d{{1,2}}[/.-]\d{{1,2}}[/.-](?:\d{{4}}|\d{{2}})"
    rf"|\d{{1,2}} ?(?:{_MONTHS})\b\.?(?: ?\d{{4}})?)",
    re.IGNORECASE,
)
_TIME = re.compile(
    r"\b(?:(?:pukul|pkl\.?|jam|at|around|sekitar) ?\d{1,2}(?:[.:]\d{2})?|\d{1,2}[.:]\d{2})"
    r"(?: ?(?:WIB|WITA|WIT|am|pm))?\b",
    re.IGNORECASE,
)
_DAY_WORDS = (
    r"senin|selasa|rabu|kamis|jum'?at|sabtu|minggu|kemarin|hari ini|tadi pagi|tadi siang|tadi sore|"
    r"tadi malam|pagi ini|siang ini|monday|tuesday|wednesday|thursday|friday|saturday|sunday|today|"
    r"yesterday|this morning"
)
# What a date or time of an incident has: a number, or a day ("Senin", "kemarin", "tadi pagi").
_WHEN = re.compile(rf"\d|\b(?:{_DAY_WORDS})\b", re.IGNORECASE)
# "Terlampir", "lihat lampiran", "screenshot terlampir", "(see attachment)", "menyusul": evidence
# said to be attached (or to come), not evidence itself. Read on a value of at most 120 characters.
_POINTER = re.compile(
    r"^[\W_]*+(?:(?:bukti|foto|gambar|screenshot|screen shot|tangkapan layar|video|rekaman|file|"
    r"berkas|dokumen|evidence|photos?|images?|the)\W*+)*+"
    r"(?:(?:ter|di)?lampir(?:an|kan)?|(?:lihat|cek|periksa|ada (?:di|pada)|sesuai|dalam|pada) lampiran|"
    r"(?:see |in )?(?:the )?attach(?:ed|ments?)|enclosed|akan (?:di)?kirim(?:kan)?|menyusul|"
    r"(?:dikirim )?(?:kemudian|nanti)|to follow)?+[\W_]*+"
    r"(?:(?:di|pada|dalam|ke|in|this|email|e-mail|surel|ini|berikut|mail|kemudian|nanti|menyusul)\b[\W_]*+)*+$",
    re.IGNORECASE,
)
_POINTER_MAX = 120


def incident_time_in(text: str) -> str:
    """The date and time of an incident told in a description ("Sejak Senin 16-11-2026 pukul
    08.00 …"): the first date and the first time, or "" when there is neither."""
    text = text[:_WHEN_MAX]
    date_match = _DATE.search(text)
    time_match = _TIME.search(text)
    parts = [m.group(0).strip() for m in (date_match, time_match) if m is not None]
    if date_match is not None and time_match is not None and time_match.start() < date_match.end():
        parts.reverse()  # "08.00, 16-11-2026": told the other way round
    return " ".join(dict.fromkeys(parts))


def is_pointer(value: str) -> bool:
    """Does the evidence field only say that the evidence is attached (or will be sent)?"""
    value = value.strip()
    return len(value) <= _POINTER_MAX and _POINTER.match(value) is not None


def validate_evidence(text: str, files: str) -> tuple[str, str | None]:
    """(value, error code) of a complaint's evidence: files attached count; so does a description
    ("Bukti: pesan galat 502 muncul setelah login"); "terlampir" with nothing attached does not."""
    text = re.sub(r"\s+", " ", text).strip()
    if NO_NUMBER.match(text[:_POINTER_MAX]) and len(text) <= _POINTER_MAX:
        text = ""  # "-", "tidak ada", "belum ada", "nihil": nothing given
    described = bool(text) and not is_pointer(text) and re.search(r"[^\W\d_]", text) is not None
    if files:
        return (f"lampiran: {files}" + (f"; {text}" if described else ""))[:400], None
    if described:
        return text[:400], None
    return "", "evidence_not_attached" if text else "missing"


def tells_when(value: str) -> bool:
    """Does an incident time say when: a number, or a day ("Senin", "kemarin", "tadi pagi")?"""
    return _WHEN.search(value[:_WHEN_MAX]) is not None
