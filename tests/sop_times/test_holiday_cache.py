"""The national holidays kept in the data folder: the library's answer, asked once per release."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from importlib import metadata
from pathlib import Path

from mailbot.core.working_time import has_cuti_bersama, indonesian_holidays, make_calendar
from mailbot.shell.holiday_cache import CACHE_NAME, HolidayCache
from tests.conftest import ROOT


def test_the_cache_answers_as_the_library_and_keeps_the_years_it_was_asked(tmp_path: Path) -> None:
    cache = HolidayCache(tmp_path)
    assert cache.holidays(2026) == indonesian_holidays(2026)
    assert cache.has_cuti_bersama(2027) == has_cuti_bersama(2027) is True
    kept = json.loads((tmp_path / CACHE_NAME).read_text())
    assert kept["holidays"] == metadata.version("holidays")
    assert set(kept["years"]) == {"2026", "2027"}
    assert date(2026, 8, 17).isoformat() in kept["years"]["2026"]["days"]  # Hari Kemerdekaan
    # A deadline across Idul Fitri 2026 (20-21 March, cuti bersama around it) is the same either way.
    start = datetime(2026, 3, 17, 2, 0, tzinfo=UTC)
    library = make_calendar("Asia/Jakarta")
    cached = make_calendar("Asia/Jakarta", national=HolidayCache(tmp_path).holidays)
    assert cached.add_working(start, timedelta(hours=30)) == library.add_working(start, timedelta(hours=30))


def test_another_process_knows_the_holidays_without_loading_the_library(tmp_path: Path) -> None:
    """What the cache is for: each `run --once` and daemon start computes deadlines, and asking
    `holidays` imports every country it knows."""
    HolidayCache(tmp_path).holidays(2026)
    probe = (
        "import sys\n"
        "from datetime import UTC, datetime, timedelta\n"
        "from pathlib import Path\n"
        "from mailbot.core.working_time import make_calendar\n"
        "from mailbot.shell.holiday_cache import HolidayCache\n"
        f"cal = make_calendar('Asia/Jakarta', national=HolidayCache(Path({str(tmp_path)!r})).holidays)\n"
        "print(cal.add_working(datetime(2026, 3, 17, 2, tzinfo=UTC), timedelta(hours=30)).isoformat())\n"
        "print('holidays.countries' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True, timeout=60
    )
    due, loaded = out.stdout.split()
    start = datetime(2026, 3, 17, 2, tzinfo=UTC)
    assert due == make_calendar("Asia/Jakarta").add_working(start, timedelta(hours=30)).isoformat()
    assert loaded == "False"


def test_another_release_of_the_library_is_asked_again(tmp_path: Path) -> None:
    (tmp_path / CACHE_NAME).write_text(
        json.dumps({"holidays": "0.0", "years": {"2026": {"days": ["2026-03-17"], "cuti_bersama": False}}})
    )
    cache = HolidayCache(tmp_path)
    assert cache.holidays(2026) == indonesian_holidays(2026)
    assert date(2026, 3, 17) not in cache.holidays(2026)
    assert json.loads((tmp_path / CACHE_NAME).read_text())["holidays"] == metadata.version("holidays")


def test_a_folder_it_cannot_write_to_only_means_asking_the_library(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "folder"
    assert HolidayCache(missing).holidays(2026) == indonesian_holidays(2026)
    (tmp_path / CACHE_NAME).write_text("not json")
    assert HolidayCache(tmp_path).has_cuti_bersama(2026) is True
