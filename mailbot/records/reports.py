"""Reports over the archive: the IKM per period and group (Permenpan RB 14/2017), and each SOP
step's time as the Laporan counts it.

One rule for which surveys a period holds, shared by `report ikm` and the monthly Laporan: a
survey counts in the period in which it was returned (`received_at`), complete or not, in the
elements it answers.

One rule for a step's time, shared with the sweep: each run of a step is measured against the due
time that the sweep's own clocks (core.working_time.step_clock and after_answer_clock, as
pipeline.clocks.Clocks calls them) give it, replayed over the ticket's history: the step's own
clock (office time, or the wall clock for "1 x 24 jam" and clock = "wall"), paused while the
ticket waits for the applicant, EXTEND days added. Escalation notices are not read: a step done
late between two sweeps, or while the daemon was down, is late all the same.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any, Literal, Protocol, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailbot.core.ikm import Ikm, SurveyTally, tally_surveys
from mailbot.core.survey import ELEMENTS
from mailbot.core.workflow import AFTER_ANSWER_STATES, OPEN_STATES, TRANSITION_KINDS
from mailbot.core.working_time import (
    STEP_DONE,
    WAITING_STATES,
    Happening,
    WorkCalendar,
    after_answer_clock,
    step_clock,
)
from mailbot.settings import Profile
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


# --- each step's time (the Laporan's rows per step) ----------------------------------------------

# The history lines a step's clock reads: the transitions (states, assignees, pauses), EXTEND, and
# the steps after the answer marked done. No other line moves a clock.
CLOCK_KINDS = TRANSITION_KINDS | {"extended", STEP_DONE}
_OPEN = frozenset(s.value for s in OPEN_STATES)
_AFTER_ANSWER = frozenset(s.value for s in AFTER_ANSWER_STATES)

Outcome = Literal["in_time", "late", "open", "open_overdue", "stopped"]


@dataclass
class StepRun:
    """One run of a step on a ticket: the sweep's clock with one key (the step and the history
    line that started it), from its start to the line that ended it."""

    key: str
    step: str
    after_answer: bool  # a step after the answer (REPORT / ARCHIVE ends it), else the ticket's state's
    started_at: datetime
    due_at: datetime  # the last due time its clock had: pauses and EXTEND days included
    ended_at: datetime | None = None
    done: bool = False  # ended by the step's own work, not by the ticket leaving it unfinished
    paused_at: datetime | None = None  # open, its clock stopped: the ticket waits for the applicant

    def outcome(self, as_of: datetime) -> Outcome:
        """Done in time or late against its due time; else, at `as_of`, open or open and overdue
        (a paused run is overdue when its time had run out before the pause); or stopped: the
        ticket left the step unfinished (closed while waiting for the applicant, reopened)."""
        if self.ended_at is not None:
            if not self.done:
                return "stopped"
            return "in_time" if self.ended_at <= self.due_at else "late"
        until = self.paused_at or as_of
        return "open_overdue" if self.due_at < until else "open"


def step_runs(
    history: Sequence[Happening],
    profile: Profile,
    cal: WorkCalendar,
    role_of: Callable[[str], str | None],
) -> list[StepRun]:
    """Every run of a step in a ticket's history (in order, ids and `seq` as the ticket's events),
    by the sweep's clocks replayed after each line that moves one (CLOCK_KINDS): the running step
    of the ticket's state while it is open (step_clock, with `role_steps` by the role of the
    assignee of that moment, `role_of`), and the step after the answer while it is answered or
    closed (after_answer_clock). A run ends when its clock gives way to another or to none; while
    the ticket waits for the applicant it is paused, and it goes on if the same clock comes back."""
    steps = {s.id: s.deadline for s in profile.steps}
    state_steps = {str(k): v for k, v in profile.state_steps.items()}
    role_steps = {str(k): v for k, v in profile.role_steps.items()}
    runs: dict[str, StepRun] = {}
    running: dict[str, StepRun] = {}
    paused: dict[str, StepRun] = {}
    assignee = ""
    for i, h in enumerate(history):
        if h.kind not in CLOCK_KINDS:
            continue
        if h.kind in TRANSITION_KINDS and h.data.get("assignee"):
            assignee = str(h.data["assignee"])  # ASSIGN, FORWARD, NORMATIVE: as ticket.assignee_email
        seen = list(history[: i + 1])
        # The two kinds of clock run in states apart (open; answered or closed): one at a time.
        after = h.state in _AFTER_ANSWER
        clock = None
        if h.state in _OPEN:
            clock = step_clock(
                h.state,
                seen,
                steps,
                state_steps,
                cal,
                TRANSITION_KINDS,
                assignee_role=role_of(assignee) if assignee else None,
                role_steps=role_steps,
            )
        elif after and profile.after_answer:
            clock = after_answer_clock(seen, profile.after_answer, steps, cal)
        now = {clock.key: clock} if clock is not None else {}
        for key, run in list(running.items()):
            if key in now:
                continue
            del running[key]
            if not run.after_answer and h.state in WAITING_STATES:
                run.paused_at = h.at  # REQUEST-INFO: the clock stops, the step is not over
                paused[key] = run
            else:
                run.ended_at = h.at
                run.done = h.kind == STEP_DONE if run.after_answer else True
        for key, run in list(paused.items()):
            if key not in now and h.state not in WAITING_STATES:
                del paused[key]
                run.ended_at = h.at  # left unfinished: closed or rejected while waiting
        if clock is not None:
            key = clock.key
            found = paused.pop(key, None) or running.get(key) or runs.get(key)
            if found is None:
                found = runs[key] = StepRun(key, clock.step, after, clock.started_at, clock.due_at)
            run = found
            # Its due time as the sweep has it now; a run ended before and back (a reopened ticket
            # closed again, its step after the answer not done) is open again.
            run.due_at, run.paused_at, run.ended_at, run.done = clock.due_at, None, None, False
            running[key] = run
    return list(runs.values())


@dataclass
class StepRow:
    """The Laporan's row of one step of a profile: its runs on the period's tickets."""

    profile: str
    profile_title: str
    step: str
    title: str
    actor: str  # the step's role (settings.Step.actor)
    time: str  # as the profile writes it
    clock: Literal["working", "wall"]
    started: int = 0
    in_time: int = 0
    late: int = 0
    open_overdue: int = 0  # still open at the period's end, past its due time

    @property
    def key(self) -> str:
        return f"{self.profile}:{self.step}"

    def as_json(self) -> dict[str, Any]:
        return {
            "profile": self.profile,
            "step": self.step,
            "title": self.title,
            "actor": self.actor,
            "time": self.time,
            "clock": self.clock,
            "started": self.started,
            "in_time": self.in_time,
            "late": self.late,
            "open_overdue": self.open_overdue,
        }


@dataclass
class StepTally:
    """The runs of steps of the period's tickets, per profile and step, as at the period's end."""

    as_of: datetime
    rows: dict[tuple[str, str], StepRow] = field(default_factory=dict)

    def add(self, profile: Profile, runs: Iterable[StepRun]) -> bool:
        """Count a ticket's runs; whether any was late (done late, or open and overdue)."""
        late = False
        for run in runs:
            row = self.rows.get((profile.id, run.step))
            if row is None:
                step = profile.step(run.step)
                if step is None:
                    continue  # a step the profile no longer has: not a row of this table
                clock: Literal["working", "wall"] = "working" if step.deadline.working else "wall"
                row = StepRow(
                    profile.id, profile.title, step.id, step.title, step.actor, step.duration, clock
                )
                self.rows[(profile.id, run.step)] = row
            outcome = run.outcome(self.as_of)
            row.started += 1
            row.in_time += outcome == "in_time"
            row.late += outcome == "late"
            row.open_overdue += outcome == "open_overdue"
            late = late or outcome in ("late", "open_overdue")
        return late

    def ordered(self, profiles: Mapping[str, Profile]) -> list[StepRow]:
        """By profile, then in the profile's order of steps."""

        def place(row: StepRow) -> tuple[str, int]:
            profile = profiles.get(row.profile)
            ids = [s.id for s in profile.steps] if profile else []
            return (row.profile, ids.index(row.step) if row.step in ids else len(ids))

        return sorted(self.rows.values(), key=place)


def clock_histories(session: Session, ticket_ids: Any, high: datetime) -> dict[int, list[Happening]]:
    """The lines of the tickets' histories that move a clock (CLOCK_KINDS), before `high`, in each
    ticket's order; columns, not ORM objects (bench/documents.py)."""
    histories: dict[int, list[Happening]] = {}
    for ticket_id, event_id, at, kind, state, data in session.execute(
        select(
            models.TicketEvent.ticket_id,
            models.TicketEvent.id,
            models.TicketEvent.at,
            models.TicketEvent.kind,
            models.TicketEvent.state,
            models.TicketEvent.data,
        )
        .where(
            models.TicketEvent.ticket_id.in_(ticket_ids),
            models.TicketEvent.kind.in_(sorted(CLOCK_KINDS)),
            models.TicketEvent.at < high,
        )
        .order_by(models.TicketEvent.ticket_id, models.TicketEvent.id)
    ):
        lines = histories.setdefault(ticket_id, [])
        lines.append(Happening(event_id, at, kind, state, data or {}, seq=len(lines)))
    return histories
