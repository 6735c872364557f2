"""How a document writes dates, times and figures: pure functions of a value and a language.

'4 Desember 2026', '09.12 WIB', '88,31', 'dua ribu dua puluh enam' (tata naskah dinas).
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

MONTHS = {
    "id": ("Januari", "Februari", "Maret", "April", "Mei", "Juni", "Juli", "Agustus", "September",
           "Oktober", "November", "Desember"),
    "en": ("January", "February", "March", "April", "May", "June", "July", "August", "September",
           "October", "November", "December"),
}  # fmt: skip
DAYS = {
    "id": ("Senin", "Selasa", "Rabu", "Kamis", "Jumat", "Sabtu", "Minggu"),
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
}


def long_date(value: date | datetime, language: str = "id") -> str:
    """'4 Desember 2026' (tata naskah dinas writes the month's name, never the number)."""
    return f"{value.day} {MONTHS[_lang(language)][value.month - 1]} {value.year}"


def month_name(value: date | datetime, language: str = "id") -> str:
    return MONTHS[_lang(language)][value.month - 1]


def day_name(value: date | datetime, language: str = "id") -> str:
    return DAYS[_lang(language)][value.weekday()]


def clock_time(value: datetime, language: str = "id") -> str:
    """'09.12 WIB' (Indonesian writes a dot between hour and minute) or '09:12 WIB'."""
    sep = "." if _lang(language) == "id" else ":"
    return f"{value:%H}{sep}{value:%M} {value.tzname() or ''}".strip()


def date_range(start: date, end: date, language: str = "id") -> str:
    """'1 s.d. 30 November 2026', '28 Oktober s.d. 3 November 2026'."""
    lang = _lang(language)
    until = "s.d." if lang == "id" else "to"
    if start == end:
        return long_date(start, lang)
    if (start.year, start.month) == (end.year, end.month):
        return f"{start.day} {until} {long_date(end, lang)}"
    if start.year == end.year:
        return f"{start.day} {MONTHS[lang][start.month - 1]} {until} {long_date(end, lang)}"
    return f"{long_date(start, lang)} {until} {long_date(end, lang)}"


def figure(value: Decimal | Fraction | float | int, places: int = 0, language: str = "id") -> str:
    """A figure as the language writes it: '88,31' and '1.250' in Indonesian, '88.31' and '1,250' in
    English. Rounded half up, as the IKM is reported."""
    if isinstance(value, Fraction):
        number = Decimal(value.numerator) / Decimal(value.denominator)
    else:
        number = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    number = number.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    text = f"{number:,.{places}f}"
    if _lang(language) == "id":
        text = text.replace(",", "\0").replace(".", ",").replace("\0", ".")
    return text


_ONES = ("nol", "satu", "dua", "tiga", "empat", "lima", "enam", "tujuh", "delapan", "sembilan",
         "sepuluh", "sebelas")  # fmt: skip


def terbilang(n: int) -> str:
    """A number in Indonesian words, as a Berita Acara writes its date ('dua ribu dua puluh enam')."""
    if n < 0:
        return "minus " + terbilang(-n)
    if n < 12:
        return _ONES[n]
    if n < 20:
        return f"{_ONES[n - 10]} belas"
    if n < 100:
        return (f"{_ONES[n // 10]} puluh " + (terbilang(n % 10) if n % 10 else "")).strip()
    if n < 200:
        return ("seratus " + (terbilang(n - 100) if n > 100 else "")).strip()
    if n < 1000:
        return (f"{_ONES[n // 100]} ratus " + (terbilang(n % 100) if n % 100 else "")).strip()
    if n < 2000:
        return ("seribu " + (terbilang(n - 1000) if n > 1000 else "")).strip()
    if n < 1_000_000:
        return (f"{terbilang(n // 1000)} ribu " + (terbilang(n % 1000) if n % 1000 else "")).strip()
    raise ValueError(f"{n} is beyond what a document's date needs")


def _lang(language: str) -> str:
    return "en" if language == "en" else "id"
