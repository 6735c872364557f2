"""The satisfaction survey (SKM) and the IKM of Permenpan RB 14/2017 (DOMAIN.md s. 3).

Pure: the form's elements and labels, parsing what people actually reply, and the
arithmetic (NRR per element, IKM with the exact 1/9 weight, the grade).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

from mailbot.fields import html_to_text


@dataclass(frozen=True)
class Element:
    number: int
    name_id: str
    name_en: str
    labels_id: tuple[str, str, str, str]  # score 1..4
    labels_en: tuple[str, str, str, str]


ELEMENTS: tuple[Element, ...] = (
    Element(1, "Persyaratan", "Requirements",
            ("Tidak sesuai", "Kurang sesuai", "Sesuai", "Sangat sesuai"),
            ("Not appropriate", "Less appropriate", "Appropriate", "Very appropriate")),
    Element(2, "Sistem, mekanisme, dan prosedur", "System, mechanism and procedure",
            ("Tidak mudah", "Kurang mudah", "Mudah", "Sangat mudah"),
            ("Not easy", "Less easy", "Easy", "Very easy")),
    Element(3, "Waktu penyelesaian", "Completion time",
            ("Tidak cepat", "Kurang cepat", "Cepat", "Sangat cepat"),
            ("Not fast", "Less fast", "Fast", "Very fast")),
    Element(4, "Biaya/tarif", "Cost/tariff",
            ("Sangat mahal", "Cukup mahal", "Murah", "Gratis"),
            ("Very expensive", "Rather expensive", "Cheap", "Free")),
    Element(5, "Produk spesifikasi jenis pelayanan", "Service product specification",
            ("Tidak sesuai", "Kurang sesuai", "Sesuai", "Sangat sesuai"),
            ("Not appropriate", "Less appropriate", "Appropriate", "Very appropriate")),
    Element(6, "Kompetensi pelaksana", "Competence of the staff",
            ("Tidak kompeten", "Kurang kompeten", "Kompeten", "Sangat kompeten"),
            ("Not competent", "Less competent", "Competent", "Very competent")),
    Element(7, "Perilaku pelaksana", "Conduct of the staff",
            ("Tidak sopan dan ramah", "Kurang sopan dan ramah", "Sopan dan ramah", "Sangat sopan dan ramah"),
            ("Not polite and friendly", "Less polite and friendly", "Polite and friendly",
             "Very polite and friendly")),
    Element(8, "Penanganan pengaduan, saran dan masukan", "Handling of complaints, suggestions and input",
            ("Tidak ada", "Ada tetapi tidak berfungsi", "Berfungsi kurang maksimal", "Dikelola dengan baik"),
            ("None", "Exists but does not work", "Works, not at its best", "Well managed")),
    Element(9, "Sarana dan prasarana", "Facilities and infrastructure",
            ("Buruk", "Cukup", "Baik", "Sangat baik"),
            ("Poor", "Fair", "Good", "Very good")),
)  # fmt: skip
N_ELEMENTS = len(ELEMENTS)


@dataclass(frozen=True)
class SurveyError:
    element: int
    value: str  # what was written


@dataclass(frozen=True)
class SurveyReply:
    """What a reply says: scores found, values that are not scores, the free comment."""

    scores: dict[int, int]
    errors: tuple[SurveyError, ...] = ()
    comment: str = ""

    @property
    def found(self) -> bool:
        return bool(self.scores or self.errors)

    def missing(self, already: Mapping[int, int] | None = None) -> list[int]:
        have = {**(already or {}), **self.scores}
        return [e.number for e in ELEMENTS if e.number not in have]


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[^\w\s]", " ", text.casefold())).strip()


def _label_score(element: Element, text: str) -> int | None:
    """The score a label names for this element ("sangat sesuai" → 4), longest label first."""
    value = _norm(text)
    if not value:
        return None
    candidates: list[tuple[int, str]] = []
    for labels in (element.labels_id, element.labels_en):
        for score, label in enumerate(labels, start=1):
            candidates.append((score, _norm(label)))
    candidates.sort(key=lambda c: -len(c[1]))
    for score, label in candidates:
        if (
            value == label
            or value.startswith(label + " ")
            or re.fullmatch(rf"(?:\[?x\]?\s*)?{re.escape(label)}", value)
        ):
            return score
    return None


# "U1: 4", "U1 = Sangat sesuai", "1. 4", "1) Sesuai", "Unsur 1 - 3", "U1. Persyaratan: 4", table cells.
_ELEMENT_LINE = re.compile(
    r"^(?P<prefix>U|unsur|element)?\s*(?P<n>[1-9])(?![0-9])\s*[.):=\-\t|]?\s*(?P<rest>.*)$", re.IGNORECASE
)
_ROW = re.compile(r"^(?P<digits>(?:[0-9]\s*[,;/\-]?\s*){9})$")
_COMMENT = re.compile(
    r"^(?:komentar|saran|masukan|comments?|suggestions?)"
    r"(?:\s*(?:/|dan|and)\s*(?:saran|masukan|suggestions?))?\s*[:=\-]\s*(?P<c>.*)$",
    re.IGNORECASE,
)


def _value_part(element: Element, rest: str) -> tuple[str, bool]:
    """(the answer on an element's line, whether the line names the element).

    `Persyaratan (1-4): 4` → ("4", True); `Sangat sesuai` → ("Sangat sesuai", False).
    """
    rest = rest.strip().strip("|").strip()
    named = any(_norm(rest).startswith(_norm(n)) for n in (element.name_id, element.name_en))
    if "\t" in rest:
        cells = [c.strip() for c in rest.split("\t") if c.strip()]
        return (cells[-1] if cells else ""), named or len(cells) > 1
    if named:
        for separator in (":", "=", " - ", "–"):
            if separator in rest:
                return rest.rsplit(separator, 1)[1].strip(), True
        return "", True
    if ":" in rest or "=" in rest:
        return re.split(r"[:=]", rest)[-1].strip(), False
    return rest, False


def parse_survey(text: str, html: str = "") -> SurveyReply:
    """Read survey answers from a reply: numbered lines, `U1:` lines, a row of nine digits,
    label texts, answers typed inside the quoted form, HTML tables.

    Quoted lines count only where they name a survey element (answers typed into our
    quoted form); other quoted text, such as a numbered list in the answer, never does.
    """
    scores: dict[int, int] = {}
    errors: list[SurveyError] = []
    comment = ""
    sources = [text]
    if html:
        sources.append(html_to_text(html))
    for source in sources:
        for raw in source.replace("\r\n", "\n").split("\n"):
            quoted = raw.lstrip().startswith(">")
            line = re.sub(r"^\s*(?:>\s*)+", "", raw).strip().strip("*").strip()
            if not line or "___" in line:
                continue  # an unanswered line of our own form
            m = _COMMENT.match(line)
            if m:
                comment = comment or m.group("c").strip()
                continue
            row = _ROW.match(line)
            if row and not quoted and not scores:
                digits = [int(d) for d in re.findall(r"[0-9]", row.group("digits"))]
                scores = {i: d for i, d in enumerate(digits, start=1) if 1 <= d <= 4}
                errors += [SurveyError(i, str(d)) for i, d in enumerate(digits, start=1) if not 1 <= d <= 4]
                continue
            m = _ELEMENT_LINE.match(line)
            if not m:
                continue
            number = int(m.group("n"))
            element = ELEMENTS[number - 1]
            value, named = _value_part(element, m.group("rest"))
            targeted = named or bool(m.group("prefix"))
            if quoted and not targeted:
                continue
            if not value:
                continue
            score = _score(element, value)
            if score is not None:
                scores.setdefault(number, score)
            elif targeted or re.fullmatch(r"-?\d+", value.strip(" .")):
                errors.append(SurveyError(number, value[:40]))
    errors = [e for e in errors if e.element not in scores]
    return SurveyReply(scores, tuple(_dedupe(errors)), comment[:2000])


def _score(element: Element, value: str) -> int | None:
    value = value.strip().strip(".").strip()
    m = re.fullmatch(r"\[?\s*([0-9]+)\s*\]?(?:\s*[-–:]\s*.*)?", value)
    if m:
        n = int(m.group(1))
        return n if 1 <= n <= 4 else None
    return _label_score(element, value)


def _dedupe(errors: Iterable[SurveyError]) -> list[SurveyError]:
    seen: set[int] = set()
    out = []
    for e in errors:
        if e.element not in seen:
            seen.add(e.element)
            out.append(e)
    return out


# --- IKM ---------------------------------------------------------------------------------

GRADES = (
    (Decimal("88.31"), "A", "Sangat Baik", "Very good"),
    (Decimal("76.61"), "B", "Baik", "Good"),
    (Decimal("65.00"), "C", "Kurang Baik", "Less good"),
    (Decimal("25.00"), "D", "Tidak Baik", "Not good"),
)


@dataclass(frozen=True)
class Ikm:
    respondents: int
    nrr: dict[int, Fraction]  # per element: sum of scores / respondents who answered it
    value: Fraction  # (sum of NRR x 1/9) x 25
    answered: dict[int, int] = field(default_factory=dict)

    @property
    def rounded(self) -> Decimal:
        """The IKM as reported, two decimals, half up."""
        return (Decimal(self.value.numerator) / Decimal(self.value.denominator)).quantize(
            Decimal("0.01"), rounding=ROUND_HALF_UP
        )

    @property
    def grade(self) -> str:
        return grade(self.rounded)[0]

    def grade_label(self, language: str = "id") -> str:
        g = grade(self.rounded)
        return g[1] if language == "id" else g[2]


def grade(value: Decimal) -> tuple[str, str, str]:
    """(letter, Indonesian label, English label) for an IKM on the 25–100 scale."""
    for bound, letter, label_id, label_en in GRADES:
        if value >= bound:
            return letter, label_id, label_en
    return "D", "Tidak Baik", "Not good"


def compute_ikm(responses: Iterable[Mapping[int, int]]) -> Ikm | None:
    """IKM over survey responses; None without any. An element nobody answered counts as absent
    from the sum only if no respondent answered it at all (its NRR is then undefined)."""
    totals = dict.fromkeys(range(1, N_ELEMENTS + 1), 0)
    counts = dict.fromkeys(range(1, N_ELEMENTS + 1), 0)
    respondents = 0
    for response in responses:
        respondents += 1
        for number, score in response.items():
            if not 1 <= score <= 4:
                raise ValueError(f"score {score} for element {number} is outside 1–4")
            totals[number] += score
            counts[number] += 1
    if respondents == 0:
        return None
    nrr = {n: Fraction(totals[n], counts[n]) for n in totals if counts[n]}
    value = sum((v * Fraction(1, N_ELEMENTS) for v in nrr.values()), Fraction(0)) * 25
    return Ikm(respondents, nrr, value, counts)


def ikm_from_value(value: Fraction) -> Ikm:
    """An Ikm holding just a value (for grading hand-computed cases)."""
    return Ikm(0, {}, value)
