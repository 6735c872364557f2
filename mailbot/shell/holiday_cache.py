"""Indonesia's public holidays and cuti bersama per year, kept in the data folder, and the
office's calendar built on them (`work_calendar`).

Asking the `holidays` library for one country imports every country it knows (about 300
modules: 0.1 to 0.2 s and 15 MiB in each process that computes a deadline, at each start of
`run --once` and of the daemon). The answer for a year changes only with a new release of the
library, so each year's dates are kept in DATA_DIR/holidays-ID.json under the installed release's
version, and asked of the library again when another release is installed. A folder that
cannot be written to only means asking the library each time.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from datetime import date
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mailbot.core import working_time
from mailbot.core.working_time import HoursPeriod, WorkCalendar, make_calendar

if TYPE_CHECKING:  # `status` reads the cache without loading the validated configuration
    from mailbot.config import Config

CACHE_NAME = "holidays-ID.json"


class HolidayCache:
    """`holidays(year)` and `has_cuti_bersama(year)` as `core.working_time` answers them."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / CACHE_NAME
        self._lock = threading.Lock()  # the intake thread and the sweep ask at once
        self._years: dict[int, tuple[frozenset[date], bool]] | None = None
        self._release = ""

    def holidays(self, year: int) -> frozenset[date]:
        return self._year(year)[0]

    def has_cuti_bersama(self, year: int) -> bool:
        return self._year(year)[1]

    def _year(self, year: int) -> tuple[frozenset[date], bool]:
        with self._lock:
            if self._years is None:
                self._release = metadata.version("holidays")
                self._years = self._read()
            known = self._years.get(year)
            if known is None:
                known = (working_time.indonesian_holidays(year), working_time.has_cuti_bersama(year))
                self._years[year] = known
                self._write()
            return known

    def _read(self) -> dict[int, tuple[frozenset[date], bool]]:
        try:
            data: Any = json.loads(self.path.read_text(encoding="utf-8"))
            if data["holidays"] != self._release:
                return {}
            return {
                int(year): (
                    frozenset(date.fromisoformat(d) for d in entry["days"]),
                    bool(entry["cuti_bersama"]),
                )
                for year, entry in data["years"].items()
            }
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return {}  # absent, or not ours to read: asked of the library

    def _write(self) -> None:
        assert self._years is not None
        data = {
            "holidays": self._release,
            "years": {
                str(year): {"days": sorted(d.isoformat() for d in days), "cuti_bersama": cuti}
                for year, (days, cuti) in sorted(self._years.items())
            },
        }
        tmp = self.path.with_name(f".{CACHE_NAME}.{os.getpid()}.{threading.get_ident()}")
        with contextlib.suppress(OSError):
            tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
            os.replace(tmp, self.path)  # whole or not at all, whichever process writes last


@lru_cache(maxsize=8)
def holiday_cache(data_dir: Path) -> HolidayCache:
    """One cache per data folder in a process (every calendar of the process shares it)."""
    return HolidayCache(data_dir)


def work_calendar(config: Config) -> WorkCalendar:
    """The office's calendar: its time zone, [office_hours] with their dated periods, and
    [calendar]'s closed and open days."""
    cal = config.settings.calendar
    hours = config.settings.office_hours
    periods = [HoursPeriod(p.first_day, p.last_day, p.week(), p.name) for p in hours.periods]
    # The national holidays as kept in the data folder: no process loads the library to know them.
    national = holiday_cache(config.data_dir).holidays
    return make_calendar(
        config.service.timezone, cal.closed_days, cal.open_days, hours.week(), periods, national
    )
