"""Reports over the archive: the IKM per period and group (Permenpan RB 14/2017).

One rule for which surveys a period holds, shared by `report ikm` and the monthly Laporan: a
survey counts in the period in which it was returned (`received_at`), complete or not, in the
elements it answers.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, Literal, Protocol, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailbot.core.ikm import Ikm, SurveyTally, tally_surveys
from mailbot.core.survey import ELEMENTS
from mailbot.shell import models

GroupBy = Literal["all", "unit", "consultant", "profile"]

ALL_GROUP = "semua"
# The names the Laporan gives a ticket without the key (documents.period_report): a survey of
# that ticket lands in the same row.
UNKNOWN = {"unit": "(tidak diketahui)", "consultant": "(belum ditugaskan)", "profile": "(tidak diketahui)"}


@dataclass(frozen=True)
class SurveyRecord:
    """One returned survey as the reports see it: its scores, when, and its grouping keys."""

    scores: dict[int, int]
    received_at: datetime
    profile: str = ""
    unit: str = ""
    consultant: str = ""


def period_bounds(start: date, end: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """[start 00:00, end+1 00:00) in the office's time zone."""
    return (datetime.combine(start, time.min, tz), datetime.combine(end + timedelta(days=1), time.min, tz))


def in_period(received_at: datetime, low: datetime, high: datetime) -> bool:
    """Whether a survey returned at `received_at` belongs to [low, high) (period_bounds)."""
    return low <= received_at < high


def group_name(record: SurveyRecord, by: GroupBy) -> str:
    if by == "all":
        return ALL_GROUP
    return getattr(record, by) or UNKNOWN[by]


def group_surveys(
    records: Iterable[SurveyRecord], low: datetime, high: datetime, by: GroupBy
) -> dict[str, list[dict[int, int]]]:
    """The scores of the surveys returned in [low, high), per group; partial surveys included,
    surveys without any score left out. Pure: the one rule both reports apply."""
    groups: dict[str, list[dict[int, int]]] = defaultdict(list)
    for record in records:
        if record.scores and in_period(record.received_at, low, high):
            groups[group_name(record, by)].append(dict(record.scores))
    return dict(groups)


def period_surveys(session: Session, low: datetime, high: datetime) -> list[SurveyRecord]:
    """The surveys returned in [low, high) that carry a score, complete or not.

    A survey's grouping keys are fixed when it is complete; a partial one (the applicant
    stopped after eight elements, the ticket closed without the ninth) takes its ticket's.
    """
    rows = session.execute(
        select(models.Survey, models.Ticket)
        .join(models.Ticket, models.Ticket.id == models.Survey.ticket_id)
        .where(models.Survey.received_at >= low, models.Survey.received_at < high)
        .order_by(models.Survey.id)
    ).all()
    records = []
    for survey, ticket in rows:
        scores = {int(k): int(v) for k, v in (survey.scores or {}).items()}
        if not scores:
            continue
        records.append(
            SurveyRecord(
                scores,
                survey.received_at,
                profile=survey.profile or ticket.profile or "",
                unit=survey.unit or str(ticket.fields.get("unit") or "")[:200],
                consultant=survey.consultant or ticket.assignee_email or "",
            )
        )
    return records


@dataclass(frozen=True)
class IkmRow:
    group: str
    tally: SurveyTally

    @property
    def ikm(self) -> Ikm | None:
        return self.tally.ikm

    def as_json(self) -> dict[str, Any]:
        ikm = self.tally.ikm
        return {
            "group": self.group,
            "respondents": self.tally.respondents,
            "answered": {f"U{e.number}": e.answered for e in self.tally.elements},
            "nrr": {f"U{n}": round(float(v), 4) for n, v in sorted(self.tally.nrr.items())},
            "nrr_weighted": {f"U{n}": round(float(v), 4) for n, v in sorted(self.tally.weighted.items())},
            "unrated": [f"U{n}" for n in self.tally.unrated],
            "ikm": float(ikm.rounded) if ikm else None,
            "grade": ikm.grade if ikm else None,
            "grade_label": ikm.grade_label("id") if ikm else None,
        }


def ikm_rows(groups: Mapping[str, list[dict[int, int]]]) -> list[IkmRow]:
    return [IkmRow(key, tally_surveys(groups[key])) for key in sorted(groups)]


def ikm_report(session: Session, start: date, end: date, tz: ZoneInfo, by: GroupBy = "all") -> list[IkmRow]:
    low, high = period_bounds(start, end, tz)
    return ikm_rows(group_surveys(period_surveys(session, low, high), low, high, by))


_KEYS: tuple[GroupBy, ...] = ("unit", "consultant", "profile")


class _Bucket(Protocol):
    surveys: list[dict[int, int]]


B = TypeVar("B", bound=_Bucket)


def add_period_surveys(
    session: Session,
    low: datetime,
    high: datetime,
    total: B,
    groups: dict[str, dict[str, B]],
    make: Callable[[str], B],
) -> None:
    """Give the Laporan's rows (documents.Group: a total and rows per unit, consultant and
    profile) the surveys of the period, by the same rule as `report ikm`. A group with surveys
    but no request in the period gets a row of its own (`make(name)`)."""
    records = period_surveys(session, low, high)
    total.surveys = group_surveys(records, low, high, "all").get(ALL_GROUP, [])
    for by in _KEYS:
        named = groups.get(by)
        if named is None:
            continue
        for name, scores in group_surveys(records, low, high, by).items():
            named.setdefault(name, make(name)).surveys = scores


def format_ikm_table(rows: list[IkmRow], start: date, end: date, by: GroupBy) -> str:
    """The IKM per group: respondents, NRR per element, then NRR tertimbang (NRR x 1/9) per
    element as the regulation's processing sheet has it, the IKM and its grade."""
    header = f"IKM {start.isoformat()} s.d. {end.isoformat()}" + ("" if by == "all" else f", per {by}")
    lines = [header]
    if not rows:
        lines.append("  belum ada survei pada periode ini")
        return "\n".join(lines)
    names = " ".join(f"{'U' + str(e.number):>6}" for e in ELEMENTS)
    lines.append(f"  {'kelompok':<32} {'n':>4}      {names} {'IKM':>7}  mutu")
    for row in rows:
        ikm = row.tally.ikm
        nrr = " ".join(f"{float(e.nrr):6.2f}" if e.nrr is not None else "     -" for e in row.tally.elements)
        weighted = " ".join(
            f"{float(e.weighted):6.3f}" if e.weighted is not None else "     -" for e in row.tally.elements
        )
        result = (
            f"{ikm.rounded:>7}  {ikm.grade} ({ikm.grade_label('id')})"
            if ikm
            else f"{'-':>7}  belum dapat dihitung: tanpa responden pada "
            + ", ".join(f"U{n}" for n in row.tally.unrated)
        )
        lines.append(f"  {row.group[:32]:<32} {row.tally.respondents:>4} NRR  {nrr} {result}")
        lines.append(f"  {'':<32} {'':>4} x1/9 {weighted}")
        lines.append(f"  {'':<32} {'':>4} resp " + " ".join(f"{e.answered:>6}" for e in row.tally.elements))
    return "\n".join(lines)
