"""Step times as the SOPs write them ("10 menit", "1 x 24 jam", "1 Hari Kerja", "1 – 2 jam") as values."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import timedelta
from functools import lru_cache
from typing import Literal

Unit = Literal["minutes", "hours", "days"]
# How a step's time is counted: as its text reads ("sop"), in office hours, or on the wall clock.
Clock = Literal["sop", "working", "wall"]

_UNITS: dict[str, Unit] = {
    "m": "minutes",
    "min": "minutes",
    "mins": "minutes",
    "menit": "minutes",
    "minute": "minutes",
    "minutes": "minutes",
    "h": "hours",
    "jam": "hours",
    "hour": "hours",
    "hours": "hours",
    "d": "days",
    "hari": "days",
    "day": "days",
    "days": "days",
}
_WORDS = {"setengah": 0.5, "half": 0.5, "½": 0.5, "¼": 0.25, "¾": 0.75}
MAX_TEXT = 64  # a step time is a few words; longer text is refused before any regex sees it

# A number: "2", "1,5", "1/2", "½", "setengah". A range "1 – 2", "1-2", "1 s.d. 2", "1 sampai 2"
# counts as its upper bound (SOP 004 step 6: "1 – 2 jam", "tergantung permasalahan").
_NUM = r"(?:\d+(?:[.,]\d+)?(?:\s*/\s*\d+)?|½|¼|¾|setengah|half)"
_RE = re.compile(
    rf"^\s*(?:(?P<times>\d+)\s*[x×]\s*)?"
    rf"(?:(?P<low>{_NUM})\s*(?:-|–|—|s\.?\s*d\.?|sampai|to)\s*)?(?P<n>{_NUM})\s*"
    r"(?P<working_first>working\s+|work\s+)?(?P<unit>[a-z]+)\s*(?P<working>kerja|working|work)?\s*$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Duration:
    """An amount of wall-clock time, or of working time (office hours on working days)."""

    amount: float
    unit: Unit
    working: bool
    text: str

    def wall_clock(self) -> timedelta:
        """The plain length, for wall-clock steps ("1 x 24 jam")."""
        return timedelta(**{self.unit: self.amount})

    def on(self, clock: Clock) -> Duration:
        """The same length on another clock: a profile's per-step `clock = "wall"` or `"working"`."""
        if clock == "sop":
            return self
        return replace(self, working=clock == "working")

    def describe(self, language: str = "id") -> str:
        amount = _amount(self.amount, language)
        if language == "en":
            unit = {"minutes": "minute", "hours": "hour", "days": "day"}[self.unit]
            plural = "" if self.amount <= 1 else "s"
            if self.unit == "days":
                return f"{amount} {'working ' if self.working else ''}{unit}{plural}"
            return f"{amount} {unit}{plural}{' of office hours' if self.working else ''}"
        unit = {"minutes": "menit", "hours": "jam", "days": "hari"}[self.unit]
        if not self.working and self.unit == "hours" and self.amount % 24 == 0:
            return f"{self.amount / 24:g} x 24 jam"
        if self.unit == "days":
            return f"{amount} {unit}{' kerja' if self.working else ''}"
        return f"{amount} {unit}{' pada jam kerja' if self.working else ''}"


def _amount(amount: float, language: str) -> str:
    """2 -> "2", 0.5 -> "1/2", 1.5 -> "1 1/2" (as the SOPs write halves), 0.25 -> "0,25"."""
    whole, rest = divmod(amount, 1)
    if rest == 0.5:
        return f"{int(whole)} 1/2" if whole else "1/2"
    text = f"{amount:g}"
    return text.replace(".", ",") if language == "id" else text


def _number(text: str) -> float:
    text = text.lower().replace(" ", "")
    if text in _WORDS:
        return _WORDS[text]
    if "/" in text:
        num, den = text.split("/")
        if float(den) == 0:
            raise ValueError("division by zero")
        return float(num.replace(",", ".")) / float(den)
    return float(text.replace(",", "."))


@lru_cache(maxsize=256)  # pure, and asked for every step of every ticket the clock looks at
def parse_duration(text: str) -> Duration:
    """Parse a step time. Minutes, hours and days are working time (office hours on working
    days), as the SOPs mean them; "N x 24 jam" is wall-clock time.

    The case does not matter ("1 Hari Kerja"); halves are "1/2 hari", "½ hari", "setengah hari";
    a range ("1 – 2 jam", "1-2 jam") is its upper bound. A profile step can still say
    `clock = "wall"` to count a step on the wall clock.
    """
    m = _RE.match(text) if len(text) <= MAX_TEXT else None
    if m:
        unit = _UNITS.get(m.group("unit").lower())
        if unit is None:
            raise ValueError(f"unknown time unit {m.group('unit')!r} in {text!r}")
        try:
            n = _number(m.group("n"))
            low = _number(m.group("low")) if m.group("low") else None
        except ValueError:
            raise ValueError(f"cannot read the number in {text!r}") from None
        if low is not None and low > n:
            raise ValueError(f"range {text!r} runs backwards")
        if m.group("times"):
            n *= int(m.group("times"))
        if n <= 0:
            raise ValueError(f"time must be positive: {text!r}")
        # "1 x 24 jam" is the wall clock (DOMAIN.md s. 4); everything else is working time.
        working = not m.group("times") or bool(m.group("working") or m.group("working_first"))
        return Duration(n, unit, working, text)
    raise ValueError(
        f"cannot read time {text!r}; write e.g. '10 menit', '2 jam', '1 – 2 jam', '1 x 24 jam', "
        "'1 hari kerja', '1/2 hari'"
    )
