"""Step times as the SOPs write them ("10 menit", "1 x 24 jam", "3 hari kerja") parsed into values."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from typing import Literal

_UNITS: dict[str, Literal["minutes", "hours", "days"]] = {
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

_RE = re.compile(
    r"^\s*(?:(?P<times>\d+)\s*[xX×]\s*)?(?P<n>\d+(?:[.,]\d+)?|setengah|half)\s*"
    r"(?P<unit>[a-zA-Z]+)\s*(?P<working>kerja|working|work)?\s*$"
)
_RE_WORKING_FIRST = re.compile(r"^\s*(?P<n>\d+(?:[.,]\d+)?)\s*(?:working|work)\s+(?P<unit>[a-zA-Z]+)\s*$")


@dataclass(frozen=True)
class Duration:
    """An amount of wall-clock time, or of working time (office hours on working days)."""

    amount: float
    unit: Literal["minutes", "hours", "days"]
    working: bool
    text: str

    def wall_clock(self) -> timedelta:
        """The plain length, for wall-clock steps ("1 x 24 jam")."""
        return timedelta(**{self.unit: self.amount})

    def describe(self, language: str = "id") -> str:
        amount = f"{self.amount:g}"
        if language == "en":
            unit = {"minutes": "minute", "hours": "hour", "days": "day"}[self.unit]
            plural = "" if self.amount == 1 else "s"
            return f"{amount} {'working ' if self.working else ''}{unit}{plural}"
        unit = {"minutes": "menit", "hours": "jam", "days": "hari"}[self.unit]
        return f"{amount} {unit}{' kerja' if self.working else ''}"


@lru_cache(maxsize=256)  # pure, and asked for every step of every ticket the clock looks at
def parse_duration(text: str) -> Duration:
    """Parse a step time. "N x 24 jam" is wall-clock; "hari kerja" / "working days" are working time.

    A bare "3 hari" is read as 3 working days: offices count days of service in
    working days (Perpres 21/2023), and a profile can say "3 x 24 jam" for wall-clock.
    """
    m = _RE.match(text)
    if m:
        unit = _UNITS.get(m.group("unit").lower())
        if unit is None:
            raise ValueError(f"unknown time unit in {text!r}")
        n_text = m.group("n").lower()
        n = 0.5 if n_text in ("setengah", "half") else float(n_text.replace(",", "."))
        if m.group("times"):
            n *= int(m.group("times"))
        working = bool(m.group("working")) or (unit == "days" and not m.group("times"))
        if n <= 0:
            raise ValueError(f"time must be positive: {text!r}")
        return Duration(n, unit, working, text)
    m = _RE_WORKING_FIRST.match(text)
    if m and m.group("unit").lower() in _UNITS:
        return Duration(float(m.group("n").replace(",", ".")), _UNITS[m.group("unit").lower()], True, text)
    raise ValueError(
        f"cannot read time {text!r}; write e.g. '10 menit', '2 jam', '1 x 24 jam', '3 hari kerja'"
    )
