"""Official documents of a ticket (Lembar Disposisi, Surat Tugas, Berita Acara Konsultasi) and the
Laporan Hasil Layanan Konsultasi, as print-ready HTML from Jinja2 templates, and as PDF.

PDF is made from the same HTML with xhtml2pdf (pure Python: no browser, no system fonts needed).
"""

from __future__ import annotations

import base64
import io
from collections import Counter as Tally
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailbot import models
from mailbot.compose import environment
from mailbot.config import Config
from mailbot.reports import period_bounds
from mailbot.survey import Ikm, compute_ikm

DocumentKind = Literal["disposisi", "surat-tugas", "berita-acara"]
DOCUMENT_TEMPLATES: dict[str, str] = {
    "disposisi": "lembar_disposisi",
    "surat-tugas": "surat_tugas",
    "berita-acara": "berita_acara",
}


class DocumentError(Exception):
    """A document cannot be made for this ticket yet (e.g. a Surat Tugas before any assignment)."""


def html_to_pdf(html: str) -> bytes:
    # Imported here: xhtml2pdf and what it brings (reportlab, pypdf) took a third of a second of
    # every process's start, and only the few mails that carry a document need it.
    from xhtml2pdf import pisa

    out = io.BytesIO()
    status = pisa.CreatePDF(html, dest=out, encoding="utf-8")
    if status.err:
        raise DocumentError(f"PDF conversion failed ({status.err} errors)")
    return out.getvalue()


def _logo_data_uri(config: Config) -> str:
    logo = config.settings.documents.logo
    if not logo:
        return ""
    path = Path(logo) if Path(logo).is_absolute() else config.base_dir / logo
    try:
        data = path.read_bytes()
    except OSError:
        return ""
    kind = "png" if data.startswith(b"\x89PNG") else "jpeg"
    return f"data:image/{kind};base64,{base64.b64encode(data).decode()}"


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


def render_document(
    session: Session, config: Config, ticket: models.Ticket, kind: DocumentKind, now: datetime
) -> str:
    """The document as HTML (escaped: mail text never reaches it as markup)."""
    tz = ZoneInfo(config.service.timezone)
    profile = config.profiles.get(ticket.profile, config.profile)
    assign = next((e for e in reversed(ticket.events) if e.kind == "assign"), None)
    answer = next((e for e in reversed(ticket.events) if e.kind == "answer"), None)
    if kind == "surat-tugas" and assign is None:
        raise DocumentError(f"ticket {ticket.number} has not been assigned: no Surat Tugas yet")
    if kind == "berita-acara" and answer is None:
        raise DocumentError(f"ticket {ticket.number} has no answer yet: no Berita Acara yet")
    assignee = config.staff_by_email(ticket.assignee_email) if ticket.assignee_email else None
    assigner = config.staff_by_email(assign.actor) if assign is not None else None
    answerer = config.staff_by_email(answer.actor) if answer is not None else None
    number = _number(session, config, ticket, kind, now)
    notes = [e for e in ticket.events if e.kind == "note"]
    ctx: dict[str, Any] = {
        "doc": config.settings.documents,
        "service": config.service,
        "profile": profile,
        "ticket": ticket,
        "fields": ticket.fields,
        "number": number,
        "logo": _logo_data_uri(config),
        "received": ticket.created_at.astimezone(tz),
        "today": now.astimezone(tz),
        "assign": assign,
        "assign_at": assign.at.astimezone(tz) if assign else None,
        "assignee": assignee,
        "assigner": assigner,
        "answer_text": str((answer.data or {}).get("answer", answer.detail)) if answer else "",
        "answer_at": answer.at.astimezone(tz) if answer else None,
        "answerer": answerer,
        "notes": notes,
        "urgency": "Segera" if ticket.urgent else "Biasa",
        "review_step": next((s for s in profile.steps if s.id == "review"), None),
    }
    return environment().get_template(f"documents/{DOCUMENT_TEMPLATES[kind]}.html.j2").render(ctx)


# --- the period report --------------------------------------------------------------------------


@dataclass
class Group:
    name: str
    received: int = 0
    completed: int = 0
    in_time: int = 0
    late: int = 0
    surveys: list[dict[int, int]] = field(default_factory=list)

    @property
    def ikm(self) -> Ikm | None:
        return compute_ikm(self.surveys)


@dataclass
class PeriodReport:
    start: date
    end: date
    total: Group
    by_unit: list[Group]
    by_consultant: list[Group]
    by_profile: list[Group]
    steps: list[tuple[str, int, int]]  # step, in time, late

    def as_json(self) -> dict[str, Any]:
        def g(x: Group) -> dict[str, Any]:
            ikm = x.ikm
            return {
                "name": x.name,
                "received": x.received,
                "completed": x.completed,
                "in_time": x.in_time,
                "late": x.late,
                "respondents": ikm.respondents if ikm else 0,
                "ikm": float(ikm.rounded) if ikm else None,
                "grade": ikm.grade if ikm else None,
            }

        return {
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            "total": g(self.total),
            "by_unit": [g(x) for x in self.by_unit],
            "by_consultant": [g(x) for x in self.by_consultant],
            "by_profile": [g(x) for x in self.by_profile],
            "steps": [{"step": s, "in_time": a, "late": b} for s, a, b in self.steps],
        }


COMPLETED = ("answer",)


def period_report(session: Session, config: Config, start: date, end: date) -> PeriodReport:
    """Requests received and completed in the period, within each step's time, with the IKM."""
    tz = ZoneInfo(config.service.timezone)
    low, high = period_bounds(start, end, tz)
    tickets = list(
        session.execute(
            select(models.Ticket).where(models.Ticket.created_at >= low, models.Ticket.created_at < high)
        ).scalars()
    )
    late_steps: Tally[tuple[int, str]] = Tally()
    for notice in session.execute(select(models.Notice).where(models.Notice.kind == "escalation")).scalars():
        if notice.ticket_id is not None:
            late_steps[(notice.ticket_id, notice.key.split(":")[1])] += 1
    surveys = {
        s.ticket_id: {int(k): int(v) for k, v in s.scores.items()}
        for s in session.execute(select(models.Survey).where(models.Survey.complete.is_(True))).scalars()
    }
    total = Group("Jumlah")
    groups: dict[str, dict[str, Group]] = {"unit": {}, "consultant": {}, "profile": {}}
    step_tally: dict[str, list[int]] = {}
    for t in tickets:
        completed = any(e.kind in COMPLETED for e in t.events)
        late = any(tid == t.id for tid, _ in late_steps)
        keys = {
            "unit": str(t.fields.get("unit") or "(tidak diketahui)"),
            "consultant": t.assignee_email or "(belum ditugaskan)",
            "profile": t.profile,
        }
        for bucket in [total, *(groups[k].setdefault(v, Group(v)) for k, v in keys.items())]:
            bucket.received += 1
            bucket.completed += completed
            if completed:
                bucket.late += late
                bucket.in_time += not late
            if t.id in surveys:
                bucket.surveys.append(surveys[t.id])
        for event in t.events:
            if event.kind in ("assign", "answer"):
                step = "assign" if event.kind == "assign" else "review"
                tally = step_tally.setdefault(step, [0, 0])
                tally[1 if (t.id, step) in late_steps else 0] += 1

    def ordered(d: dict[str, Group]) -> list[Group]:
        return sorted(d.values(), key=lambda x: (-x.received, x.name))

    return PeriodReport(
        start,
        end,
        total,
        ordered(groups["unit"]),
        ordered(groups["consultant"]),
        ordered(groups["profile"]),
        [(s, v[0], v[1]) for s, v in sorted(step_tally.items())],
    )


def render_period_html(config: Config, report: PeriodReport, now: datetime) -> str:
    tz = ZoneInfo(config.service.timezone)
    return (
        environment()
        .get_template("documents/laporan_periode.html.j2")
        .render(
            doc=config.settings.documents,
            service=config.service,
            report=report,
            today=now.astimezone(tz),
            logo=_logo_data_uri(config),
        )
    )


def period_csv(report: PeriodReport) -> str:
    out = io.StringIO()
    out.write("group_by,name,received,completed,in_time,late,respondents,ikm,grade\n")
    for by, rows in (
        ("total", [report.total]),
        ("unit", report.by_unit),
        ("consultant", report.by_consultant),
        ("profile", report.by_profile),
    ):
        for g in rows:
            ikm = g.ikm
            name = g.name.replace('"', '""')
            out.write(
                f'{by},"{name}",{g.received},{g.completed},{g.in_time},{g.late},'
                f"{ikm.respondents if ikm else 0},{ikm.rounded if ikm else ''},{ikm.grade if ikm else ''}\n"
            )
    return out.getvalue()
