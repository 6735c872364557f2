"""Deadlines in working time (DOMAIN.md s. 4): office hours, Indonesian holidays and cuti bersama.

Pure: a `WorkCalendar` and a start time in, a deadline out. "1 x 24 jam" is
wall-clock; "1 hari kerja" is one working day, i.e. the office's daily hours of
working time (so a request received Monday 10:00 is due Tuesday 10:00).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays as holidays_lib

from mailbot.durations import Duration

# Perpres 21/2023: Monday to Friday from 07:30, 37.5 hours a week.
DEFAULT_HOURS: dict[int, tuple[tuple[time, time], ...]] = {
    0: ((time(7, 30), time(12, 0)), (time(13, 0), time(16, 0))),
    1: ((time(7, 30), time(12, 0)), (time(13, 0), time(16, 0))),
    2: ((time(7, 30), time(12, 0)), (time(13, 0), time(16, 0))),
    3: ((time(7, 30), time(12, 0)), (time(13, 0), time(16, 0))),
    4: ((time(7, 30), time(11, 30)), (time(13, 0), time(16, 30))),
}
MAX_DAYS_SEARCHED = 3660  # ten years of calendar: a calendar with no open day is a configuration error


@lru_cache(maxsize=64)
def indonesian_holidays(year: int) -> frozenset[date]:
    """Public holidays and cuti bersama (the `government` category must be asked for)."""
    return frozenset(holidays_lib.country_holidays("ID", categories=("public", "government"), years=year))


@dataclass(frozen=True)
class WorkCalendar:
    tz: ZoneInfo
    hours: Mapping[int, tuple[tuple[time, time], ...]] = field(default_factory=lambda: DEFAULT_HOURS)
    closed: frozenset[date] = frozenset()  # extra closed days of the office
    open_days: frozenset[date] = frozenset()  # overrides: open although a holiday
    use_national_holidays: bool = True

    @property
    def day_length(self) -> timedelta:
        """Working time of one working day: the weekly hours over the open weekdays."""
        spans = [
            (datetime.combine(date.min, b) - datetime.combine(date.min, a))
            for d in self.hours.values()
            for a, b in d
        ]
        return sum(spans, timedelta()) / max(1, len(self.hours))

    def is_working_day(self, day: date) -> bool:
        if day in self.open_days:
            return day.weekday() in self.hours
        if day in self.closed or day.weekday() not in self.hours:
            return False
        return not (self.use_national_holidays and day in indonesian_holidays(day.year))

    def intervals(self, day: date) -> list[tuple[datetime, datetime]]:
        if not self.is_working_day(day):
            return []
        return [
            (datetime.combine(day, a, self.tz), datetime.combine(day, b, self.tz))
            for a, b in self.hours[day.weekday()]
        ]

    def add_working(self, start: datetime, amount: timedelta) -> datetime:
        """The moment `amount` of working time after `start`."""
        local = start.astimezone(self.tz)
        remaining = amount
        day = local.date()
        for _ in range(MAX_DAYS_SEARCHED):
            for a, b in self.intervals(day):
                if b <= local:
                    continue
                begin = max(a, local)
                span = b - begin
                if remaining <= span:
                    return begin + remaining
                remaining -= span
            day += timedelta(days=1)
        raise ValueError("the work calendar has no open time in ten years")

    def working_between(self, start: datetime, end: datetime) -> timedelta:
        """Working time from `start` to `end` (zero when end is before start)."""
        if end <= start:
            return timedelta()
        a_local, b_local = start.astimezone(self.tz), end.astimezone(self.tz)
        total = timedelta()
        day = a_local.date()
        while day <= b_local.date():
            for a, b in self.intervals(day):
                lo, hi = max(a, a_local), min(b, b_local)
                if hi > lo:
                    total += hi - lo
            day += timedelta(days=1)
        return total

    def deadline(self, start: datetime, duration: Duration) -> datetime:
        """When a step that takes `duration` and starts at `start` is due."""
        if not duration.working:
            return start + duration.wall_clock()
        if duration.unit == "days":
            return self.add_working_days(start, duration.amount)
        return self.add_working(start, duration.wall_clock())

    def next_open(self, moment: datetime) -> datetime:
        """`moment` if the office is open then, else the next opening."""
        return self.add_working(moment, timedelta())

    def add_working_days(self, start: datetime, days: float) -> datetime:
        """The same clock time `days` working days later (clamped to that day's closing time);
        a fraction of a day is that share of a working day's hours."""
        begin = self.next_open(start).astimezone(self.tz)
        whole = int(days)
        day = begin.date()
        for _ in range(whole):
            day += timedelta(days=1)
            for _ in range(MAX_DAYS_SEARCHED):
                if self.is_working_day(day):
                    break
                day += timedelta(days=1)
        if whole:
            intervals = self.intervals(day)
            target = datetime.combine(day, begin.timetz())
            target = min(target, intervals[-1][1])
            target = max(target, intervals[0][0])
            begin = target
        fraction = days - whole
        return self.add_working(begin, self.day_length * fraction) if fraction else begin

    def remaining(self, now: datetime, due: datetime, duration: Duration) -> timedelta:
        """What is left of a step at `now`, in the step's own kind of time (to pause and resume it)."""
        if not duration.working:
            return max(due - now, timedelta())
        return self.working_between(now, due)

    def resume(self, now: datetime, remaining: timedelta, duration: Duration) -> datetime:
        return now + remaining if not duration.working else self.add_working(now, remaining)


def make_calendar(tz: str, closed: Iterable[date] = (), open_days: Iterable[date] = ()) -> WorkCalendar:
    return WorkCalendar(ZoneInfo(tz), DEFAULT_HOURS, frozenset(closed), frozenset(open_days))


# --- the clock of a ticket's current step --------------------------------------------------

WAITING_STATES = frozenset({"awaiting_info", "waiting_applicant"})
DEFAULT_STATE_STEPS = {"new": "assign", "assigned": "review", "forwarded": "review", "answered": "survey"}


@dataclass(frozen=True)
class Happening:
    """What the clock needs of one history entry."""

    id: int
    at: datetime
    kind: str
    state: str  # the ticket's state after it
    data: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class StepClock:
    step: str
    key: str  # the step instance: step id and the history entry that started it
    started_at: datetime
    due_at: datetime
    duration: Duration


def step_clock(
    state: str,
    history: list[Happening],
    steps: Mapping[str, Duration],
    state_steps: Mapping[str, str],
    cal: WorkCalendar,
    transitions: frozenset[str],
) -> StepClock | None:
    """The running step of a ticket in `state`, or None when no clock runs (waiting, done).

    The step starts with the last transition into `state` other than a return from
    waiting for the applicant; time spent waiting for the applicant after that is added
    back, and every EXTEND adds its working days.
    """
    step = state_steps.get(state)
    if step is None or step not in steps or state in WAITING_STATES:
        return None
    duration = steps[step]
    start: Happening | None = None
    for h in reversed(history):
        if h.kind in transitions and h.state == state and h.kind != "info_received":
            start = h
            break
    if start is None:
        return None
    due = cal.deadline(start.at, duration)
    waiting_since: datetime | None = None
    paused = timedelta()
    extend_days = 0.0
    for h in history:
        if h.id <= start.id:
            continue
        if h.kind in transitions and h.state in WAITING_STATES and waiting_since is None:
            waiting_since = h.at
        elif waiting_since is not None and h.state not in WAITING_STATES:
            paused += cal.working_between(waiting_since, h.at) if duration.working else h.at - waiting_since
            waiting_since = None
        if h.kind == "extended":
            extend_days += float(str(h.data.get("days", 0)))
    if paused:
        due = cal.resume(due, paused, duration)
    if extend_days:
        due = cal.add_working_days(due, extend_days)
    return StepClock(step, f"{step}:{start.id}", start.at, due, duration)


def reminder_time(clock: StepClock, fraction: float, cal: WorkCalendar) -> datetime:
    """When `fraction` of the step's time has passed (in the step's own kind of time)."""
    if not clock.duration.working:
        return clock.started_at + (clock.due_at - clock.started_at) * fraction
    total = cal.working_between(clock.started_at, clock.due_at)
    return cal.add_working(clock.started_at, total * fraction)
