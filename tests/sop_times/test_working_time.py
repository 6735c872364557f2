"""Working-time arithmetic: weekends, Idul Fitri with cuti bersama, office hours, WIB/WITA/WIT."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from mailbot.core.durations import parse_duration
from mailbot.core.working_time import make_calendar

WIB = ZoneInfo("Asia/Jakarta")


def at(tz: ZoneInfo, *args: int) -> datetime:
    return datetime(*args, tzinfo=tz)


def test_one_working_day_is_the_same_time_next_working_day() -> None:
    cal = make_calendar("Asia/Jakarta")
    assert cal.deadline(at(WIB, 2026, 11, 16, 10, 0), parse_duration("1 hari kerja")) == at(
        WIB, 2026, 11, 17, 10, 0
    )


def test_across_the_weekend() -> None:
    cal = make_calendar("Asia/Jakarta")
    # Friday 15:00 + 3 working hours: 1.5 h left on Friday (to 16:30), 1.5 h on Monday from 07:30.
    assert cal.deadline(at(WIB, 2026, 11, 20, 15, 0), parse_duration("3 jam kerja")) == at(
        WIB, 2026, 11, 23, 9, 0
    )
    # Friday 10:00 + 3 working days → Wednesday 10:00.
    assert cal.deadline(at(WIB, 2026, 11, 20, 10, 0), parse_duration("3 hari kerja")) == at(
        WIB, 2026, 11, 25, 10, 0
    )


def test_across_idul_fitri_and_cuti_bersama() -> None:
    cal = make_calendar("Asia/Jakarta")
    # 2026: Nyepi 19 Mar (cuti bersama 18), Idul Fitri 21-22 Mar, cuti bersama 20, 23, 24 Mar.
    # Tuesday 17 March 10:00 + 1 working day: 18-24 are closed → Wednesday 25 March 10:00.
    assert cal.deadline(at(WIB, 2026, 3, 17, 10, 0), parse_duration("1 hari kerja")) == at(
        WIB, 2026, 3, 25, 10, 0
    )
    assert not cal.is_working_day(date(2026, 3, 23))  # cuti bersama, a Monday


def test_across_the_end_of_office_hours_and_the_lunch_break() -> None:
    cal = make_calendar("Asia/Jakarta")
    # Monday 15:30 + 1 working hour: 30 min to 16:00, then 07:30 + 30 min on Tuesday.
    assert cal.deadline(at(WIB, 2026, 11, 16, 15, 30), parse_duration("1 jam kerja")) == at(
        WIB, 2026, 11, 17, 8, 0
    )
    # Monday 11:50 + 20 working minutes: 10 before the break, 10 after it.
    assert cal.deadline(at(WIB, 2026, 11, 16, 11, 50), parse_duration("20 menit kerja")) == at(
        WIB, 2026, 11, 16, 13, 10
    )
    # Received Saturday evening: the clock starts Monday 07:30.
    assert cal.deadline(at(WIB, 2026, 11, 21, 19, 0), parse_duration("10 menit kerja")) == at(
        WIB, 2026, 11, 23, 7, 40
    )


@pytest.mark.parametrize(
    ("zone", "utc_hour"), [("Asia/Jakarta", 1), ("Asia/Makassar", 0), ("Asia/Jayapura", 23)]
)
def test_each_time_zone_uses_its_own_office_hours(zone: str, utc_hour: int) -> None:
    cal = make_calendar(zone)
    tz = ZoneInfo(zone)
    # 08:00 local on Monday 16 Nov, + 1 working hour = 09:00 local.
    start = at(tz, 2026, 11, 16, 8, 0)
    due = cal.deadline(start, parse_duration("1 jam kerja"))
    assert due == at(tz, 2026, 11, 16, 9, 0)
    assert due.astimezone(ZoneInfo("UTC")).hour == (utc_hour + 1) % 24


def test_wall_clock_beside_working_time() -> None:
    cal = make_calendar("Asia/Jakarta")
    friday = at(WIB, 2026, 11, 20, 15, 0)
    assert cal.deadline(friday, parse_duration("1 x 24 jam")) == friday + timedelta(
        hours=24
    )  # Saturday 15:00
    assert cal.deadline(friday, parse_duration("10 menit")) == friday + timedelta(minutes=10)
    assert cal.deadline(friday, parse_duration("1 hari kerja")) == at(WIB, 2026, 11, 23, 15, 0)


def test_extra_closed_days_and_overrides() -> None:
    cal = make_calendar("Asia/Jakarta", closed=[date(2026, 11, 17)], open_days=[date(2026, 12, 24)])
    assert cal.deadline(at(WIB, 2026, 11, 16, 10, 0), parse_duration("1 hari kerja")) == at(
        WIB, 2026, 11, 18, 10, 0
    )
    assert cal.is_working_day(date(2026, 12, 24))  # cuti bersama, but the office is open
    assert not cal.is_working_day(date(2026, 12, 25))


def test_pause_and_resume_keep_the_remaining_time() -> None:
    cal = make_calendar("Asia/Jakarta")
    d = parse_duration("3 hari kerja")
    start = at(WIB, 2026, 11, 16, 10, 0)
    due = cal.deadline(start, d)
    paused_at = at(WIB, 2026, 11, 17, 10, 0)  # one working day used
    left = cal.remaining(paused_at, due, d)
    assert left == cal.day_length * 2
    resumed = cal.resume(at(WIB, 2026, 11, 23, 10, 0), left, d)  # resumed the next Monday
    assert resumed == at(WIB, 2026, 11, 25, 10, 0)


def test_week_has_37_and_a_half_hours() -> None:
    cal = make_calendar("Asia/Jakarta")
    week = cal.working_between(at(WIB, 2026, 11, 16, 0, 0), at(WIB, 2026, 11, 23, 0, 0))
    assert week == timedelta(hours=37, minutes=30)


def test_cuti_bersama_of_2026_and_2027_are_known() -> None:
    from mailbot.core.working_time import has_cuti_bersama

    assert has_cuti_bersama(2026) and has_cuti_bersama(2027)
    cal = make_calendar("Asia/Jakarta")
    assert not cal.is_working_day(date(2026, 12, 24)) and not cal.is_working_day(date(2027, 3, 9))
    # Wednesday 23 December 2026 15:45 + 30 office minutes: 15 that day, 15 on Monday 28th.
    assert cal.deadline(at(WIB, 2026, 12, 23, 15, 45), parse_duration("30 menit")) == at(
        WIB, 2026, 12, 28, 7, 45
    )


def test_minutes_and_hours_are_office_time_unless_24_jam() -> None:
    cal = make_calendar("Asia/Jakarta")
    saturday = at(WIB, 2026, 11, 21, 10, 0)
    assert cal.deadline(saturday, parse_duration("10 menit")) == at(WIB, 2026, 11, 23, 7, 40)
    assert cal.deadline(saturday, parse_duration("1 x 24 jam")) == saturday + timedelta(hours=24)
    assert cal.deadline(at(WIB, 2026, 11, 16, 11, 0), parse_duration("2 jam")) == at(WIB, 2026, 11, 16, 14, 0)


def test_a_dated_period_has_its_own_hours() -> None:
    from datetime import time

    from mailbot.core.working_time import HoursPeriod

    short = {d: ((time(8, 0), time(15, 0)),) for d in range(5)}
    cal = make_calendar("Asia/Jakarta", periods=[HoursPeriod(date(2027, 2, 8), date(2027, 2, 12), short)])
    # Monday 8 Feb 2027 14:30 + 1 office hour: 30 min to 15:00, then 08:00-08:30 on Tuesday.
    assert cal.deadline(at(WIB, 2027, 2, 8, 14, 30), parse_duration("1 jam")) == at(WIB, 2027, 2, 9, 8, 30)
    assert cal.is_open(at(WIB, 2027, 2, 8, 12, 30)) and not cal.is_open(at(WIB, 2027, 2, 15, 12, 30))
