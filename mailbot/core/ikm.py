"""The IKM (Indeks Kepuasan Masyarakat) of Permenpan RB 14/2017 (DOMAIN.md s. 3): NRR per element,
the IKM with the exact 1/9 weight, and its grade. Pure arithmetic over survey scores."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

from mailbot.core.survey import ELEMENTS, N_ELEMENTS, Element

GRADES = (
    (Decimal("88.31"), "A", "Sangat Baik", "Very good"),
    (Decimal("76.61"), "B", "Baik", "Good"),
    (Decimal("65.00"), "C", "Kurang Baik", "Less good"),
    (Decimal("25.00"), "D", "Tidak Baik", "Not good"),
)


# The regulation's weight ("nilai penimbang"): 1 / number of elements, exactly; never 0.11.
WEIGHT = Fraction(1, N_ELEMENTS)


@dataclass(frozen=True)
class ElementResult:
    """One element over a group of surveys: who rated it, the sum, NRR and NRR tertimbang."""

    element: Element
    answered: int  # respondents who rated this element (a partial survey counts where it answers)
    total: int  # sum of their scores

    @property
    def number(self) -> int:
        return self.element.number

    @property
    def nrr(self) -> Fraction | None:
        """Nilai rata-rata: sum of scores / respondents who rated it; None when nobody did."""
        return Fraction(self.total, self.answered) if self.answered else None

    @property
    def weighted(self) -> Fraction | None:
        """NRR tertimbang: NRR x 1/9, as the regulation's processing sheet shows per element."""
        nrr = self.nrr
        return None if nrr is None else nrr * WEIGHT


@dataclass(frozen=True)
class Ikm:
    respondents: int
    nrr: dict[int, Fraction]  # per element: sum of scores / respondents who answered it
    value: Fraction  # (sum of NRR x 1/9) x 25
    answered: dict[int, int] = field(default_factory=dict)
    weighted: dict[int, Fraction] = field(default_factory=dict)  # NRR tertimbang: NRR x 1/9
    elements: tuple[ElementResult, ...] = ()

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


@dataclass(frozen=True)
class SurveyTally:
    """A group of surveys, partial ones included: per element results, and the IKM when every
    element has at least one respondent."""

    respondents: int  # surveys with at least one score
    elements: tuple[ElementResult, ...]  # all nine, in order

    @property
    def nrr(self) -> dict[int, Fraction]:
        return {e.number: e.nrr for e in self.elements if e.nrr is not None}

    @property
    def weighted(self) -> dict[int, Fraction]:
        return {e.number: e.weighted for e in self.elements if e.weighted is not None}

    @property
    def answered(self) -> dict[int, int]:
        return {e.number: e.answered for e in self.elements}

    @property
    def unrated(self) -> tuple[int, ...]:
        """Elements nobody in the group rated: their NRR is undefined, and so is the IKM."""
        return tuple(e.number for e in self.elements if not e.answered)

    @property
    def ikm(self) -> Ikm | None:
        """IKM = (sum of NRR x 1/9) x 25 over the nine elements.

        None without respondents, and None while an element has no respondent at all: the
        regulation weighs nine NRRs by 1/9 each, and neither a sum over eight (an understated
        IKM, up to 11 points low) nor re-weighting by 1/8 (a different formula) is its IKM.
        The NRRs that exist are still in `elements` for the report to show.
        """
        if not self.respondents or self.unrated:
            return None
        weighted = self.weighted
        value = sum(weighted.values(), Fraction(0)) * 25
        return Ikm(self.respondents, self.nrr, value, self.answered, weighted, self.elements)


def tally_surveys(responses: Iterable[Mapping[int, int]]) -> SurveyTally:
    """Per element sums and counts over survey responses (element number -> score 1..4); a
    partial survey counts in the elements it answers, an empty one not at all."""
    totals = dict.fromkeys(range(1, N_ELEMENTS + 1), 0)
    counts = dict.fromkeys(range(1, N_ELEMENTS + 1), 0)
    respondents = 0
    for response in responses:
        if not response:
            continue
        respondents += 1
        for number, score in response.items():
            if number not in totals:
                raise ValueError(f"element {number} is not one of 1–{N_ELEMENTS}")
            if not 1 <= score <= 4:
                raise ValueError(f"score {score} for element {number} is outside 1–4")
            totals[number] += score
            counts[number] += 1
    return SurveyTally(
        respondents, tuple(ElementResult(e, counts[e.number], totals[e.number]) for e in ELEMENTS)
    )


def compute_ikm(responses: Iterable[Mapping[int, int]]) -> Ikm | None:
    """IKM over survey responses, partial ones included; None without respondents or while an
    element has none (see SurveyTally.ikm)."""
    return tally_surveys(responses).ikm


def grade(value: Decimal) -> tuple[str, str, str]:
    """(letter, Indonesian label, English label) for an IKM on the 25–100 scale."""
    for bound, letter, label_id, label_en in GRADES:
        if value >= bound:
            return letter, label_id, label_en
    return "D", "Tidak Baik", "Not good"


def ikm_from_value(value: Fraction) -> Ikm:
    """An Ikm holding just a value (for grading hand-computed cases)."""
    return Ikm(0, {}, value)
