"""Warnings that `check-config` and `status` print: a calendar without the year's cuti bersama,
and profiles whose staff commands count on the From address alone. Both commands use them;
`status` starts without loading the validated configuration, so these take plain values."""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo


def calendar_warnings(zone: ZoneInfo, now: datetime, known: Callable[[int], bool] | None = None) -> list[str]:
    """The holiday data has no cuti bersama for this year or the next (the SKB is not issued yet,
    or the installed `holidays` predates it): deadlines would run through those days. `known`
    answers whether a year has them (default: the library itself; `status` asks the data
    folder's holiday cache)."""
    from mailbot.core.working_time import has_cuti_bersama

    knows = known or has_cuti_bersama
    year = now.astimezone(zone).year
    return [
        f"no cuti bersama known for {y}: deadlines count those days as working days until the SKB's "
        f"dates are added as [calendar] closed_days = [...] or a newer `holidays` is installed"
        for y in (year, year + 1)
        if not knows(y)
    ]


def security_warnings(
    service_profile: str, require_authentication: Mapping[str, bool], in_use: Iterable[str] = ()
) -> list[str]:
    """Profiles in use (the service's, and those of open tickets) whose staff commands count on
    the From address alone: anyone who has seen a notification's Message-ID can forge them.
    `require_authentication`: each known profile's setting."""
    ids = sorted({service_profile, *(p for p in in_use if p in require_authentication)})
    return [
        f"profile {pid}: its file could not be read; `mailbot check-config` says why"
        if pid not in require_authentication
        else f"profile {pid}: staff commands are accepted on the From address alone "
        "(set require_authentication and authserv in the profile: for a shipped profile, copy "
        "mailbot's profiles into a folder of your own, name it profiles_dir in the configuration "
        "and edit the copy; README: Security)"
        for pid in ids
        if not require_authentication.get(pid, False)
    ]


def authentication_of_profiles(folder: Path) -> dict[str, bool]:
    """Each profile file's `require_authentication` (false when unset, as the loader's default),
    read without validating the profiles: a file that does not read is left to check-config."""
    found: dict[str, bool] = {}
    for path in sorted(folder.glob("*.toml")):
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            continue
        pid, required = data.get("id"), data.get("require_authentication", False)
        if isinstance(pid, str) and isinstance(required, bool):
            found[pid] = required
    return found
