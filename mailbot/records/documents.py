"""Official documents of a ticket (Lembar Disposisi, Surat Tugas, Berita Acara Konsultasi) and the
Laporan Hasil Layanan Konsultasi, laid out as tata naskah dinas has them, as HTML and PDF.

The HTML comes from Jinja2 templates (documents/id/, documents/en/: the profile's language); the PDF
from the same HTML by WeasyPrint (rendering.html_to_pdf). Mail text reaches the HTML escaped.
"""

from __future__ import annotations

import csv
import io
from collections import Counter as Tally
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailbot.config import Config
from mailbot.core.ikm import Ikm, SurveyTally, grade, tally_surveys
from mailbot.core.safe_output import csv_cell
from mailbot.records.charts import ElementBar
from mailbot.records.rendering import RenderError, document_environment, html_to_pdf, letterhead
from mailbot.records.reports import (
    StepRow,
    StepTally,
    add_period_surveys,
    clock_histories,
    period_bounds,
    step_runs,
)
from mailbot.records.wording import date_range, month_name
from mailbot.settings import Profile, StaffMember
from mailbot.shell import models
from mailbot.shell.holiday_cache import work_calendar

__all__ = [
    "DOCUMENT_TEMPLATES",
    "DocumentError",
    "DocumentKind",
    "Group",
    "PeriodReport",
    "RenderError",
    "StepRow",
    "html_to_pdf",
    "period_csv",
    "period_report",
    "render_document",
    "render_period_html",
]

DocumentKind = Literal["disposisi", "surat-tugas", "berita-acara"]
DOCUMENT_TEMPLATES: dict[str, str] = {
    "disposisi": "lembar_disposisi",
    "surat-tugas": "surat_tugas",
    "berita-acara": "berita_acara",
}
MEDIA = ("email", "video", "face_to_face")


class DocumentError(Exception):
    """A document cannot be made for this ticket yet (e.g. a Surat Tugas before any assignment)."""


def _number(session: Session, config: Config, ticket: models.Ticket, kind: str, now: datetime) -> str:
    """A document's number, allocated once per ticket and kind."""
    existing = session.execute(
        select(models.Document).where(models.Document.ticket_id == ticket.id, models.Document.kind == kind)
    ).scalar_one_or_none()
    if existing is not None:
        return existing.number
    settings = config.settings.documents
    fmt = {
        "disposisi": settings.disposition_number,
        "surat-tugas": settings.task_number,
        "berita-acara": settings.minutes_number,
    }[kind]
    year = now.astimezone(ZoneInfo(config.service.timezone)).year
    counter = session.execute(
        select(models.Counter).where(models.Counter.name == f"doc:{kind}:{year}").with_for_update()
    ).scalar_one_or_none()
    if counter is None:
        counter = models.Counter(name=f"doc:{kind}:{year}", value=0)
        session.add(counter)
        session.flush()
    counter.value += 1
    number = fmt.format(seq=counter.value, year=year)
    session.add(models.Document(ticket_id=ticket.id, kind=kind, number=number, created_at=now))
    session.flush()
    return number


def staff_member(config: Config, address: str | None) -> StaffMember | None:
    """The staff member of an address, former (inactive) members included: a document or report
    about the past names who acted then."""
    if not address:
        return None
    address = address.lower()
    return next((m for m in config.staff if address in m.emails), None)


@dataclass(frozen=True)
class Signatory:
    """Who signs: position, name and NIP, as the signature block prints them."""

    position: str
    name: str
    nip: str


def _signatory(config: Config, member: StaffMember | None) -> Signatory:
    doc = config.settings.documents
    if member is None:
        return Signatory(doc.head_position, doc.head_name, doc.head_nip)
    return Signatory(member.position or doc.head_position, member.name, member.nip)


def _name(config: Config, address: str) -> str:
    member = staff_member(config, address)
    return member.name if member is not None else address


def _medium(ticket: models.Ticket, profile: Profile) -> str:
    """How the consultation was held: the ticket's own field, else the profile's (DOMAIN s. 6)."""
    value = str(ticket.fields.get("consultation_medium") or "")
    return value if value in MEDIA else profile.consultation_medium


def render_document(
    session: Session, config: Config, ticket: models.Ticket, kind: DocumentKind, now: datetime
) -> str:
    """The document as HTML (escaped: mail text never reaches it as markup)."""
    tz = ZoneInfo(config.service.timezone)
    profile = config.profiles.get(ticket.profile, config.profile)
    assignments = [e for e in ticket.events if e.kind == "assign"]
    assign = assignments[-1] if assignments else None
    answer = next((e for e in reversed(ticket.events) if e.kind == "answer"), None)
    if kind == "surat-tugas" and assign is None:
        raise DocumentError(f"ticket {ticket.number} has not been assigned: no Surat Tugas yet")
    if kind == "berita-acara" and answer is None:
        raise DocumentError(f"ticket {ticket.number} has no answer yet: no Berita Acara yet")
    assignee = staff_member(config, ticket.assignee_email)
    assigner = staff_member(config, assign.actor) if assign is not None else None
    answerer = staff_member(config, answer.actor) if answer is not None else None
    number = _number(session, config, ticket, kind, now)
    ctx: dict[str, Any] = {
        **letterhead(config, profile.language),
        "lang": profile.language,
        "service": config.service,
        "profile": profile,
        "ticket": ticket,
        "fields": ticket.fields,
        "applicant": str(ticket.fields.get("name") or ticket.applicant_name or ticket.applicant_email),
        "number": number,
        "received": ticket.created_at.astimezone(tz),
        "today": now.astimezone(tz),
        "assign_at": assign.at.astimezone(tz) if assign else None,
        "assignee": assignee,
        "assignee_address": ticket.assignee_email or "",
        "signer": _signatory(config, assigner),
        "answer_text": str((answer.data or {}).get("answer", answer.detail)) if answer else "",
        "answer_at": answer.at.astimezone(tz) if answer else None,
        "answerer": answerer,
        "notes": [e for e in ticket.events if e.kind == "note"],
        # Every level of disposition (SOP 004: the Inspektur to the Irban, the Irban to the auditor).
        "dispositions": [
            (
                e.at.astimezone(tz),
                _name(config, e.actor),
                _name(config, str((e.data or {}).get("assignee") or "")),
            )
            for e in ticket.events
            if e.kind == "assign"
        ],
        "urgent": ticket.urgent,
        "medium": _medium(ticket, profile),
        "review_step": profile.step("review"),
    }
    return _render(config, f"documents/{profile.language}/{DOCUMENT_TEMPLATES[kind]}.html.j2", ctx)


def _render(config: Config, template: str, ctx: dict[str, Any]) -> str:
    return document_environment(config.templates_dir).get_template(template).render(ctx)


# --- the period report --------------------------------------------------------------------------


@dataclass
class Group:
    name: str  # the grouping key: unit, consultant's address, profile id
    title: str = ""  # what a reader sees: the consultant's name, the profile's title
    detail: str = ""  # the consultant's position
    received: int = 0
    completed: int = 0
    in_time: int = 0
    late: int = 0
    surveys: list[dict[int, int]] = field(default_factory=list)

    @property
    def tally(self) -> SurveyTally:
        return tally_surveys(self.surveys)

    @property
    def ikm(self) -> Ikm | None:
        return self.tally.ikm

    @property
    def label(self) -> str:
        return self.title or self.name


@dataclass(frozen=True)
class Week:
    start: date  # Monday, or the period's first day
    end: date
    received: int


@dataclass
class PeriodReport:
    start: date
    end: date
    total: Group
    by_unit: list[Group]
    by_consultant: list[Group]
    by_profile: list[Group]
    # Each step of a profile that ran on the period's tickets: started, done in time, done late,
    # open and overdue at the period's end (reports.StepTally).
    steps: list[StepRow]
    weeks: list[Week]
    as_of: datetime  # the moment the open steps are seen at: the period's end, or now if sooner

    def as_json(self) -> dict[str, Any]:
        def g(x: Group) -> dict[str, Any]:
            ikm = x.ikm
            row = {
                "name": x.name,
                "received": x.received,
                "completed": x.completed,
                "in_time": x.in_time,
                "late": x.late,
                "respondents": x.tally.respondents,
                "ikm": float(ikm.rounded) if ikm else None,
                "grade": ikm.grade if ikm else None,
            }
            if x.title and x.title != x.name:
                row["title"] = x.title
            if x.detail:
                row["position"] = x.detail
            return row

        return {
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            "total": g(self.total),
            "by_unit": [g(x) for x in self.by_unit],
            "by_consultant": [g(x) for x in self.by_consultant],
            "by_profile": [g(x) for x in self.by_profile],
            "steps": [s.as_json() for s in self.steps],
            "weeks": [{"from": w.start.isoformat(), "to": w.end.isoformat(), "received": w.received}
                      for w in self.weeks],
        }  # fmt: skip


COMPLETED = ("answer",)
UNASSIGNED = "(belum ditugaskan)"
UNKNOWN_UNIT = "(tidak diketahui)"


def _weeks(start: date, end: date, days: Tally[date]) -> list[Week]:
    weeks = []
    first = start
    while first <= end:
        last = min(first + timedelta(days=6 - first.weekday()), end)
        weeks.append(
            Week(first, last, sum(days[first + timedelta(days=d)] for d in range((last - first).days + 1)))
        )
        first = last + timedelta(days=1)
    return weeks


def period_report(
    session: Session, config: Config, start: date, end: date, now: datetime | None = None
) -> PeriodReport:
    """Requests received in the period, answered, within each step's time, with the IKM of the
    surveys returned in the period (reports.add_period_surveys: the rule of `report ikm`).

    The report is the period as it stood at its end (or at `now`, while the period runs): the
    history after it is not read, so a report made again later gives the same figures. Every step
    of a ticket is measured against its own due time on its own clock, as the sweep computes it
    (reports.step_runs); an answered ticket is late when one of its steps was done late or is
    open and overdue."""
    tz = ZoneInfo(config.service.timezone)
    low, high = period_bounds(start, end, tz)
    as_of = high if now is None else min(high, now)
    # Columns, not ORM objects: a month of 1,000 tickets has some 10,000 events, and building
    # objects of them (with their JSON data) took half a second (bench/documents.py, A/B).
    in_period = (models.Ticket.created_at >= low, models.Ticket.created_at < high)
    ids = select(models.Ticket.id).where(*in_period)
    tickets = session.execute(
        select(
            models.Ticket.id,
            models.Ticket.created_at,
            models.Ticket.fields,
            models.Ticket.assignee_email,
            models.Ticket.profile,
        )
        .where(*in_period)
        .order_by(models.Ticket.id)
    ).all()
    histories = clock_histories(session, ids, high)
    calendar = work_calendar(config)
    step_tally = StepTally(as_of)

    def role_of(address: str) -> str | None:
        # The role of whoever held the ticket then, former staff included (the sweep saw them active).
        member = staff_member(config, address)
        return member.role if member is not None else None

    def make_group(by: str) -> Any:
        def make(name: str) -> Group:
            if by == "consultant":
                member = staff_member(config, name)
                if member is not None:
                    return Group(name, member.name, member.position)
            if by == "profile" and name in config.profiles:
                return Group(name, config.profiles[name].title)
            return Group(name)

        return make

    makers = {by: make_group(by) for by in ("unit", "consultant", "profile")}
    total = Group("Jumlah")
    groups: dict[str, dict[str, Group]] = {"unit": {}, "consultant": {}, "profile": {}}
    days: Tally[date] = Tally()
    for t in tickets:
        days[t.created_at.astimezone(tz).date()] += 1
        history = histories.get(t.id, [])
        completed = any(h.kind in COMPLETED for h in history)
        profile = config.profiles.get(t.profile, config.profile)
        late = step_tally.add(profile, step_runs(history, profile, calendar, role_of))
        keys = {
            "unit": str((t.fields or {}).get("unit") or UNKNOWN_UNIT)[:200],
            "consultant": t.assignee_email or UNASSIGNED,
            "profile": t.profile,
        }
        for bucket in [
            total,
            *(groups[k].get(v) or groups[k].setdefault(v, makers[k](v)) for k, v in keys.items()),
        ]:
            bucket.received += 1
            bucket.completed += completed
            if completed:
                bucket.late += late
                bucket.in_time += not late
    add_period_surveys(session, low, high, total, groups, Group)
    # A row made for surveys alone (no request in the period) gets its reader's name too.
    for by, named in groups.items():
        for key, group in list(named.items()):
            if not group.title and not group.received:
                made = makers[by](key)
                made.surveys = group.surveys
                named[key] = made

    def ordered(d: dict[str, Group]) -> list[Group]:
        return sorted(d.values(), key=lambda x: (-x.received, x.label))

    return PeriodReport(
        start,
        end,
        total,
        ordered(groups["unit"]),
        ordered(groups["consultant"]),
        ordered(groups["profile"]),
        step_tally.ordered(config.profiles),
        _weeks(start, end, days),
        as_of,
    )


def element_bars(tally: SurveyTally, language: str) -> list[ElementBar]:
    """Each element's NRR x 25 and its grade, for the bar chart."""
    bars = []
    for e in tally.elements:
        name = e.element.name_id if language != "en" else e.element.name_en
        label = f"U{e.number} {name}"
        if e.nrr is None:
            bars.append(ElementBar(label, None, ""))
            continue
        value = (Decimal(e.nrr.numerator) * 25 / Decimal(e.nrr.denominator)).quantize(
            Decimal("0.01"), rounding=ROUND_HALF_UP
        )
        bars.append(ElementBar(label, value, grade(value)[0]))
    return bars


def render_period_html(config: Config, report: PeriodReport, now: datetime) -> str:
    tz = ZoneInfo(config.service.timezone)
    lang = config.profile.language
    tally = report.total.tally
    return _render(
        config,
        f"documents/{lang}/laporan_periode.html.j2",
        {
            **letterhead(config, lang),
            "lang": lang,
            "service": config.service,
            "report": report,
            "tally": tally,
            "week_labels": [
                (f"{w.start.day}–" if w.start != w.end else "") + f"{w.end.day} {month_name(w.end, lang)[:3]}"
                for w in report.weeks
            ],
            "week_values": [w.received for w in report.weeks],
            "element_bars": element_bars(tally, lang) if tally.respondents else [],
            # Done in time and late per step, for the chart; a profile's title heads its steps
            # when the period holds more than one profile.
            "step_bars": [(r.key, r.in_time, r.late) for r in report.steps],
            "step_names": {r.key: r.title for r in report.steps},
            "step_profiles": len({r.profile for r in report.steps}),
            "as_of": report.as_of.astimezone(tz),
            "as_of_is_end": report.as_of >= period_bounds(report.start, report.end, tz)[1],
            "period": date_range(report.start, report.end, lang),
            "signer": _signatory(config, None),
            "today": now.astimezone(tz),
        },
    )


def period_csv(report: PeriodReport) -> str:
    """The Laporan's rows for a spreadsheet: the groups (group_by total, unit, consultant,
    profile), then one row per step (group_by "step": its profile, id, actor, time and clock, how
    many runs started, were done in time or late, and are open and overdue at the period's end),
    as the JSON has them. Every cell that came from mail made safe (a unit written
    '=HYPERLINK(...)' stays text)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    header = ["group_by", "name", "received", "completed", "in_time", "late", "respondents", "ikm",
              "grade", "title", "position", "profile", "actor", "time", "clock", "started",
              "open_overdue"]  # fmt: skip
    writer.writerow(header)
    # A group's row leaves the step columns empty: every row as long as the header, or a
    # spreadsheet reads the short ones as shifted.
    no_step = [""] * (len(header) - 11)
    for by, rows in (
        ("total", [report.total]),
        ("unit", report.by_unit),
        ("consultant", report.by_consultant),
        ("profile", report.by_profile),
    ):
        for g in rows:
            ikm = g.ikm
            writer.writerow(
                [
                    by,
                    csv_cell(g.name),
                    g.received,
                    g.completed,
                    g.in_time,
                    g.late,
                    g.tally.respondents,
                    ikm.rounded if ikm else "",
                    ikm.grade if ikm else "",
                    csv_cell(g.title),
                    csv_cell(g.detail),
                    *no_step,
                ]
            )
    for step in report.steps:
        writer.writerow(
            ["step", csv_cell(step.step), "", "", step.in_time, step.late, "", "", "",
             csv_cell(step.title), "", csv_cell(step.profile), step.actor, csv_cell(step.time), step.clock,
             step.started, step.open_overdue]
        )  # fmt: skip
    return out.getvalue()
