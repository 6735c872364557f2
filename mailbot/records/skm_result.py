"""The published SKM result (Permenpan RB 14/2017: units publish their survey results): IKM, grade and
service quality, respondents, NRR per element, the respondents' profile where known and the follow-up
plan, as a one-page poster (PDF, PNG) and an HTML page. Aggregates only: no personal data.

The surveys of a period are those of `report ikm` and the Laporan (reports.period_surveys: returned
in the period, partial ones in the elements they answer).
"""

from __future__ import annotations

import calendar
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailbot.config import Config
from mailbot.core.ikm import Ikm, SurveyTally, tally_surveys
from mailbot.records.documents import element_bars
from mailbot.records.rendering import document_environment, html_to_pdf, letterhead, pdf_to_png
from mailbot.records.reports import ALL_GROUP, group_surveys, period_bounds, period_surveys
from mailbot.records.wording import date_range
from mailbot.shell import models

ROMAN = ("I", "II", "III", "IV")
GENDERS = ("male", "female")


@dataclass(frozen=True)
class RespondentProfile:
    """How many respondents per gender, education and occupation, where the ticket tells it."""

    gender: dict[str, int] = field(default_factory=dict)  # "male" / "female"
    education: dict[str, int] = field(default_factory=dict)
    occupation: dict[str, int] = field(default_factory=dict)

    @property
    def present(self) -> bool:
        return bool(self.gender or self.education or self.occupation)


@dataclass(frozen=True)
class SkmResult:
    start: date
    end: date
    tally: SurveyTally
    respondents: RespondentProfile
    follow_up: tuple[str, ...]

    @property
    def ikm(self) -> Ikm | None:
        return self.tally.ikm

    def as_json(self) -> dict[str, Any]:
        ikm = self.ikm
        return {
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            "respondents": self.tally.respondents,
            "ikm": float(ikm.rounded) if ikm else None,
            "grade": ikm.grade if ikm else None,
            "grade_label": ikm.grade_label("id") if ikm else None,
            "nrr": {f"U{e.number}": round(float(e.nrr), 4) if e.nrr is not None else None
                    for e in self.tally.elements},
            "respondent_profile": {"gender": self.respondents.gender, "education": self.respondents.education,
                                   "occupation": self.respondents.occupation},
            "follow_up": list(self.follow_up),
        }  # fmt: skip


def gender_of(id_number: str) -> str | None:
    """The gender an 18-digit NIP / NI PPPK (digit 15: 1 man, 2 woman) or a 16-digit NIK (day of
    birth plus 40 for a woman) encodes; None for anything else (an old 9-digit NIP)."""
    digits = "".join(c for c in id_number if c.isdigit())
    if len(digits) == 18 and digits[14] in "12":
        return GENDERS[int(digits[14]) - 1]
    if len(digits) == 16 and digits[6:8].isdigit():
        day = int(digits[6:8])
        if 1 <= day <= 31:
            return "male"
        if 41 <= day <= 71:
            return "female"
    return None


def _profile(fields: list[dict[str, Any]]) -> RespondentProfile:
    gender: Counter[str] = Counter()
    education: Counter[str] = Counter()
    occupation: Counter[str] = Counter()
    for f in fields:
        said = str(f.get("gender") or "").strip().casefold()
        g = (
            "male" if said in ("l", "laki-laki", "pria", "male") else
            "female" if said in ("p", "perempuan", "wanita", "female") else
            gender_of(str(f.get("id_number") or ""))
        )  # fmt: skip
        if g:
            gender[g] += 1
        # Education and occupation come only from a ticket that carries them (a form that asks):
        # published as categories, cut to 60 characters so that no free text travels.
        if f.get("education"):
            education[str(f["education"]).strip()[:60]] += 1
        if f.get("occupation"):
            occupation[str(f["occupation"]).strip()[:60]] += 1
    return RespondentProfile(dict(gender), dict(education), dict(occupation))


def skm_result(session: Session, config: Config, start: date, end: date) -> SkmResult:
    """The SKM result of the surveys returned from `start` to `end` (inclusive, office time zone)."""
    tz = ZoneInfo(config.service.timezone)
    low, high = period_bounds(start, end, tz)
    scores = group_surveys(period_surveys(session, low, high), low, high, "all").get(ALL_GROUP, [])
    fields = [
        dict(f or {})
        for f, s in session.execute(
            select(models.Ticket.fields, models.Survey.scores)
            .join(models.Survey, models.Survey.ticket_id == models.Ticket.id)
            .where(models.Survey.received_at >= low, models.Survey.received_at < high)
        )
        if s
    ]
    return SkmResult(
        start, end, tally_surveys(scores), _profile(fields), tuple(config.settings.documents.skm_follow_up)
    )


def period_name(start: date, end: date, language: str = "id") -> str:
    """'Triwulan IV 2026', 'Semester I 2027', 'Tahun 2026', else the dates ('1 s.d. 30 November 2026')."""
    en = language == "en"
    whole_months = (
        start.day == 1 and start.year == end.year and end.day == calendar.monthrange(end.year, end.month)[1]
    )
    months = end.month - start.month + 1
    if whole_months:
        if months == 12:
            return f"{'Year' if en else 'Tahun'} {start.year}"
        if months == 6 and start.month in (1, 7):
            return f"Semester {ROMAN[start.month // 6]} {start.year}"
        if months == 3 and start.month in (1, 4, 7, 10):
            return f"{'Quarter' if en else 'Triwulan'} {ROMAN[start.month // 3]} {start.year}"
    return date_range(start, end, language)


def render_skm_html(config: Config, result: SkmResult, now: datetime, language: str | None = None) -> str:
    """The public page (and the poster's source): aggregates of the period only."""
    lang = language or config.profile.language
    tz = ZoneInfo(config.service.timezone)
    return (
        document_environment(config.templates_dir)
        .get_template(f"documents/{lang}/hasil_skm.html.j2")
        .render(
            **letterhead(config, lang),
            lang=lang,
            service=config.service,
            result=result,
            ikm=result.ikm,
            tally=result.tally,
            element_bars=element_bars(result.tally, lang) if result.tally.respondents else [],
            period=period_name(result.start, result.end, lang),
            today=now.astimezone(tz),
        )
    )


@dataclass(frozen=True)
class SkmFiles:
    html: str
    pdf: bytes
    png: bytes | None  # None where pdftoppm (poppler-utils) is missing


def skm_files(config: Config, result: SkmResult, now: datetime, language: str | None = None) -> SkmFiles:
    """The page, the one-page poster as PDF, and its PNG (150 dpi) for a website or a notice board."""
    html = render_skm_html(config, result, now, language)
    pdf = html_to_pdf(html)
    return SkmFiles(html, pdf, pdf_to_png(pdf, dpi=150))
