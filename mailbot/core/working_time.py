"""Deadlines in working time (DOMAIN.md s. 4): office hours, Indonesian holidays and cuti bersama.

Pure: a `WorkCalendar` and a start time in, a deadline out. "1 x 24 jam" is
wall-clock; "10 menit" and "2 jam" are office minutes and hours; "1 hari kerja" is
one working day, i.e. the office's daily hours of working time (so a request
received Monday 10:00 is due Tuesday 10:00). The office hours are configuration
(`[office_hours]`), with dated periods of other hours (Ramadan).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from mailbot.core.durations import Duration

WeekHours = Mapping[int, tuple[tuple[time, time], ...]]  # weekday (0 = Monday) -> open spans

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
    import holidays as holidays_lib  # loads every country it knows: only when a year is asked

    return frozenset(holidays_lib.country_holidays("ID", categories=("public", "government"), years=year))


def has_cuti_bersama(year: int) -> bool:
    """Whether the installed `holidays` knows the cuti bersama of `year` (its `government`
    category). Releases before the SKB of that year have none, and every deadline across such
    a day would then count it as a working day: `check-config` and `status` warn."""
    import holidays as holidays_lib

    return bool(holidays_lib.country_holidays("ID", categories=("government",), years=year))


# A year's national holidays: `indonesian_holidays`, or the same kept by the shell
# (shell/holiday_cache.py) so that a process need not load the library to know them.
NationalHolidays = Callable[[int], frozenset[date]]


def _day_length(hours: WeekHours) -> timedelta:
    """Working time of one working day: the weekly hours over the open weekdays."""
    spans = [
        (datetime.combine(date.min, b) - datetime.combine(date.min, a)) for d in hours.values() for a, b in d
    ]
    return sum(spans, timedelta()) / max(1, len(hours))


@dataclass(frozen=True)
class HoursPeriod:
    """Other office hours from `first` to `last` (both included), e.g. Ramadan's, which a
    KemenPAN-RB circular sets each year."""

    first: date
    last: date
    hours: WeekHours
    name: str = ""


@dataclass(frozen=True)
class WorkCalendar:
    tz: ZoneInfo
    hours: WeekHours = field(default_factory=lambda: DEFAULT_HOURS)
    closed: frozenset[date] = frozenset()  # extra closed days of the office
    open_days: frozenset[date] = frozenset()  # overrides: open although a holiday
    use_national_holidays: bool = True
    periods: tuple[HoursPeriod, ...] = ()
    national: NationalHolidays = field(default=indonesian_holidays, compare=False, repr=False)

    @property
    def day_length(self) -> timedelta:
        """Working time of one working day under the usual hours."""
        return _day_length(self.hours)

    def hours_on(self, day: date) -> WeekHours:
        """The office hours in force on `day`: a dated period's, else the usual ones."""
        for period in self.periods:
            if period.first <= day <= period.last:
                return period.hours
        return self.hours

    def is_working_day(self, day: date) -> bool:
        hours = self.hours_on(day)
        if day in self.open_days:
            return day.weekday() in hours
        if day in self.closed or day.weekday() not in hours:
            return False
        return not (self.use_national_holidays and day in self.national(day.year))

    def intervals(self, day: date) -> list[tuple[datetime, datetime]]:
        if not self.is_working_day(day):
            return []
        return [
            (datetime.combine(day, a, self.tz), datetime.combine(day, b, self.tz))
            for a, b in self.hours_on(day)[day.weekday()]
        ]

    def is_open(self, moment: datetime) -> bool:
        """Whether `moment` is in office hours (opening included, closing not): the only time
        reminders and escalations are mailed."""
        local = moment.astimezone(self.tz)
        return any(a <= local < b for a, b in self.intervals(local.date()))

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
        if not fraction:
            return begin
        return self.add_working(begin, _day_length(self.hours_on(begin.date())) * fraction)

    def remaining(self, now: datetime, due: datetime, duration: Duration) -> timedelta:
        """What is left of a step at `now`, in the step's own kind of time (to pause and resume it)."""
        if not duration.working:
            return max(due - now, timedelta())
        return self.working_between(now, due)

    def resume(self, now: datetime, remaining: timedelta, duration: Duration) -> datetime:
        return now + remaining if not duration.working else self.add_working(now, remaining)


def make_calendar(
    tz: str,
    closed: Iterable[date] = (),
    open_days: Iterable[date] = (),
    hours: WeekHours | None = None,
    periods: Iterable[HoursPeriod] = (),
    national: NationalHolidays = indonesian_holidays,
) -> WorkCalendar:
    """A calendar in time zone `tz`; `hours` default to Perpres 21/2023's."""
    return WorkCalendar(
        ZoneInfo(tz),
        DEFAULT_HOURS if hours is None else hours,
        frozenset(closed),
        frozenset(open_days),
        periods=tuple(periods),
        national=national,
    )


# --- the clock of a ticket's current step --------------------------------------------------

WAITING_STATES = frozenset({"awaiting_info", "waiting_applicant"})
DEFAULT_STATE_STEPS = {"new": "assign", "assigned": "review", "forwarded": "review", "answered": "survey"}


@dataclass(frozen=True)
class Happening:
    """What the clock needs of one history entry. `id`: its database id (None before the
    session's flush); `seq`: its place in the ticket's history, which orders the entries."""

    id: int | None
    at: datetime
    kind: str
    state: str  # the ticket's state after it
    data: Mapping[str, object] = field(default_factory=dict)
    seq: int = 0


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
    *,
    assignee_role: str | None = None,
    role_steps: Mapping[str, str] | None = None,
) -> StepClock | None:
    """The running step of a ticket in `state`, or None when no clock runs (waiting, done).

    In state `assigned` the step may depend on the role of the person the ticket is assigned
    to (`role_steps`; SOP 004: the Inspektur Pembantu names an auditor in one hour, the
    auditor then has 1-2 hours of their own).
    The step starts with the last transition into `state` other than a return from
    waiting for the applicant; time spent waiting for the applicant after that is added
    back, and every EXTEND adds its working days.
    """
    step = state_steps.get(state)
    if state == "assigned" and role_steps and assignee_role is not None and assignee_role in role_steps:
        step = role_steps[assignee_role]
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
        if h.seq <= start.seq:
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


STEP_DONE = "step_done"  # the history line of a step after the answer, done (REPORT / ARCHIVE)


def after_answer_clock(
    history: list[Happening],
    after_answer: Sequence[str],
    steps: Mapping[str, Duration],
    cal: WorkCalendar,
) -> StepClock | None:
    """The running step after the answer (SOP 001 steps 4-5: the customer service's report, then
    the TU's archiving), or None when there is none or all are done.

    The first starts with the last answer, each next one when the one before is done; they run
    whatever the ticket's state (the survey may close the ticket meanwhile) and do not pause.
    """
    answer = next((h for h in reversed(history) if h.kind == "answer"), None)
    if answer is None:
        return None
    start = answer
    for step in after_answer:
        done = next(
            (h for h in history if h.seq > start.seq and h.kind == STEP_DONE and h.data.get("step") == step),
            None,
        )
        if done is not None:
            start = done
            continue
        if step not in steps:
            return None
        duration = steps[step]
        return StepClock(step, f"{step}:{start.id}", start.at, cal.deadline(start.at, duration), duration)
    return None
