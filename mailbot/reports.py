"""Reports over the archive: the IKM per period and group (Permenpan RB 14/2017)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailbot import models
from mailbot.survey import ELEMENTS, Ikm, compute_ikm

GroupBy = Literal["all", "unit", "consultant", "profile"]


@dataclass(frozen=True)
class IkmRow:
    group: str
    ikm: Ikm

    def as_json(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "respondents": self.ikm.respondents,
            "nrr": {f"U{n}": round(float(v), 4) for n, v in sorted(self.ikm.nrr.items())},
            "ikm": float(self.ikm.rounded),
            "grade": self.ikm.grade,
            "grade_label": self.ikm.grade_label("id"),
        }


def period_bounds(start: date, end: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """[start 00:00, end+1 00:00) in the office's time zone."""
    return (datetime.combine(start, time.min, tz), datetime.combine(end + timedelta(days=1), time.min, tz))


def ikm_report(session: Session, start: date, end: date, tz: ZoneInfo, by: GroupBy = "all") -> list[IkmRow]:
    low, high = period_bounds(start, end, tz)
    surveys = session.execute(
        select(models.Survey).where(
            models.Survey.complete.is_(True),
            models.Survey.received_at >= low,
            models.Survey.received_at < high,
        )
    ).scalars()
    groups: dict[str, list[dict[int, int]]] = defaultdict(list)
    for survey in surveys:
        key = "semua" if by == "all" else (getattr(survey, by) or "(tidak diketahui)")
        groups[key].append({int(k): int(v) for k, v in survey.scores.items()})
    rows = []
    for key in sorted(groups):
        ikm = compute_ikm(groups[key])
        if ikm is not None:
            rows.append(IkmRow(key, ikm))
    return rows


def format_ikm_table(rows: list[IkmRow], start: date, end: date, by: GroupBy) -> str:
    header = f"IKM {start.isoformat()} s.d. {end.isoformat()}" + ("" if by == "all" else f", per {by}")
    lines = [header]
    if not rows:
        lines.append("  belum ada survei yang lengkap pada periode ini")
        return "\n".join(lines)
    names = " ".join(f"{'U' + str(e.number):>5}" for e in ELEMENTS)
    lines.append(f"  {'kelompok':<32} {'n':>4} {names} {'IKM':>7}  mutu")
    for row in rows:
        nrr = " ".join(
            f"{float(row.ikm.nrr[e.number]):5.2f}" if e.number in row.ikm.nrr else "    -" for e in ELEMENTS
        )
        lines.append(
            f"  {row.group[:32]:<32} {row.ikm.respondents:>4} {nrr} {row.ikm.rounded:>7}  "
            f"{row.ikm.grade} ({row.ikm.grade_label('id')})"
        )
    return "\n".join(lines)
