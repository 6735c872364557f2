"""Working time (DOMAIN.md s. 4): [calendar] and [office_hours], with dated periods of other hours."""

from __future__ import annotations

import itertools
from datetime import date, time
from typing import Any, Literal

from pydantic import Field, model_validator

from mailbot.settings.base import StrictModel


class CalendarSettings(StrictModel):
    """Working time (DOMAIN.md s. 4): national holidays and cuti bersama come from `holidays`."""

    closed_days: list[date] = []  # extra days the office is closed
    open_days: list[date] = []  # holidays on which the office is open nonetheless
    # The daily digest to each head, office time; `daily_digest = false` turns it off.
    daily_digest: bool = True
    digest_time: time = time(7, 30)
    # How often deadlines are checked.
    sweep_seconds: float = Field(default=60.0, gt=0)


DayName = Literal[
    "senin", "selasa", "rabu", "kamis", "jumat", "sabtu", "minggu",
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday",
]  # fmt: skip
_WEEKDAY = {
    **{d: n for n, d in enumerate(("senin", "selasa", "rabu", "kamis", "jumat", "sabtu", "minggu"))},
    **{
        d: n
        for n, d in enumerate(("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"))
    },
}
FRIDAY = 4
Span = tuple[time, time]


def _cut(hours: Span, breaks: list[Span]) -> tuple[Span, ...]:
    """The open spans of a day: its hours less its breaks (checked: in order, inside the hours)."""
    start, end = hours
    if not start < end:
        raise ValueError(f"hours {start:%H:%M}-{end:%H:%M}: the end must come after the start")
    spans: list[Span] = []
    at = start
    for b_start, b_end in sorted(breaks):
        if not (start < b_start < b_end < end) or b_start < at:
            raise ValueError(
                f"break {b_start:%H:%M}-{b_end:%H:%M} must lie inside the hours "
                f"{start:%H:%M}-{end:%H:%M} and not overlap another break"
            )
        spans.append((at, b_start))
        at = b_end
    spans.append((at, end))
    return tuple(spans)


class _Hours(StrictModel):
    """Days, hours, breaks and Friday's own hours and breaks (when they differ)."""

    days: list[DayName] = Field(default=["senin", "selasa", "rabu", "kamis", "jumat"], min_length=1)
    hours: Span
    breaks: list[Span] = []
    # None: Friday is like the other days.
    friday_hours: Span | None = None
    friday_breaks: list[Span] | None = None

    @model_validator(mode="after")
    def _spans_ok(self) -> _Hours:
        self.week()
        return self

    def week(self) -> dict[int, tuple[Span, ...]]:
        """Weekday (0 = Monday) -> the open spans, as `sla.WorkCalendar` takes them."""
        out: dict[int, tuple[Span, ...]] = {}
        for name in self.days:
            day = _WEEKDAY[name]
            if day == FRIDAY and (self.friday_hours is not None or self.friday_breaks is not None):
                breaks = self.friday_breaks if self.friday_breaks is not None else self.breaks
                out[day] = _cut(self.friday_hours or self.hours, breaks)
            else:
                out[day] = _cut(self.hours, self.breaks)
        return out


class HoursPeriodSettings(_Hours):
    """Other hours on dated days, e.g. Ramadan's: the hours of the KemenPAN-RB circular of that
    year, written by the office (`source` names the circular)."""

    name: str
    first_day: date
    last_day: date
    source: str = ""

    @model_validator(mode="after")
    def _dates_ok(self) -> HoursPeriodSettings:
        if self.last_day < self.first_day:
            raise ValueError(f"period {self.name!r}: last_day is before first_day")
        return self


class OfficeHoursSettings(_Hours):
    """The office's hours (DOMAIN.md s. 4); the default is Perpres 21/2023: Monday to Friday
    07:30-16:00 with a break 12:00-13:00, Friday 07:30-16:30 with a break 11:30-13:00."""

    hours: Span = (time(7, 30), time(16, 0))
    breaks: list[Span] = [(time(12, 0), time(13, 0))]
    friday_hours: Span | None = (time(7, 30), time(16, 30))
    friday_breaks: list[Span] | None = [(time(11, 30), time(13, 0))]
    source: str = "Perpres 21/2023"
    periods: list[HoursPeriodSettings] = []

    @model_validator(mode="before")
    @classmethod
    def _own_hours_own_friday(cls, data: Any) -> Any:
        # An office that writes its own hours but no Friday hours keeps Friday like its other
        # days, not Perpres 21/2023's Friday.
        if isinstance(data, dict) and ("hours" in data or "breaks" in data):
            data = {"friday_hours": None, "friday_breaks": None, **data}
        return data

    @model_validator(mode="after")
    def _periods_apart(self) -> OfficeHoursSettings:
        ordered = sorted(self.periods, key=lambda p: p.first_day)
        for a, b in itertools.pairwise(ordered):
            if b.first_day <= a.last_day:
                raise ValueError(f"periods {a.name!r} and {b.name!r} overlap")
        return self
