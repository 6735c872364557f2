"""Charts of the reports as inline SVG, drawn here (no plotting library): plain bars, labelled with
figures written as the document's language writes them."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from markupsafe import Markup, escape

from mailbot.records.wording import figure

BLUE = "#2b6cb0"
RED = "#c53030"
GREY = "#718096"
GRADE_COLOURS = {"A": "#276749", "B": "#2b6cb0", "C": "#b7791f", "D": "#c53030"}
# The grade bands on the IKM scale (Permenpan RB 14/2017), drawn as lines behind the bars.
GRADE_LINES = ((Decimal("65.00"), "C"), (Decimal("76.61"), "B"), (Decimal("88.31"), "A"))
FONT = "font-family=\"Arial, 'Liberation Sans', 'DejaVu Sans', sans-serif\""
WIDTH = 640  # user units; the SVG is drawn 16 cm wide, the text column of an A4 page


def _svg(height: int, body: list[str], label: str) -> Markup:
    # Every text in `body` went through escape() (_text); the rest are numbers and constants.
    return Markup(  # noqa: S704
        f'<svg xmlns="http://www.w3.org/2000/svg" width="16cm" height="{height * 16 / WIDTH:.2f}cm" '
        f'viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{escape(label)}" {FONT} font-size="12">'
        + "".join(body)
        + "</svg>"
    )


def _text(x: float, y: float, text: str, *, anchor: str = "start", extra: str = "") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" {extra}>{escape(text)}</text>'


def _label(x: float, y: float, text: str, width: int = 34) -> str:
    """A row's label, right-aligned at x, on one or two lines of at most `width` characters (at
    11 user units a character is about 6 wide: 34 characters stay within the 250 units left of
    the bars)."""
    lines = textwrap.wrap(text, width) or [""]
    if len(lines) > 2:
        lines = [lines[0], textwrap.shorten(" ".join(lines[1:]), width, placeholder="…")]
    if len(lines) == 1:
        return _text(x, y, lines[0], anchor="end", extra='font-size="11"')
    return _text(x, y - 6, lines[0], anchor="end", extra='font-size="11"') + _text(
        x, y + 6, lines[1], anchor="end", extra='font-size="11"'
    )


def column_chart(labels: Sequence[str], values: Sequence[int], *, language: str, label: str) -> Markup:
    """Vertical bars, one per label (requests per week), the figure above each bar."""
    height, top, bottom, left = 200, 18, 36, 10
    n = max(len(values), 1)
    peak = max(values, default=0) or 1
    slot = (WIDTH - 2 * left) / n
    bar = min(slot * 0.6, 60)
    body = [
        f'<line x1="{left}" y1="{height - bottom}" x2="{WIDTH - left}" y2="{height - bottom}" stroke="#000"/>'
    ]
    for i, (name, value) in enumerate(zip(labels, values, strict=True)):
        h = (height - top - bottom) * value / peak
        x = left + slot * i + (slot - bar) / 2
        y = height - bottom - h
        body.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" fill="{BLUE}"/>')
        body.append(_text(x + bar / 2, y - 4, figure(value, 0, language), anchor="middle"))
        body.append(_text(x + bar / 2, height - bottom + 16, name, anchor="middle", extra='font-size="11"'))
    return _svg(height, body, label)


def stacked_bars(
    rows: Sequence[tuple[str, int, int]],
    names: Mapping[str, str],
    legend: tuple[str, str],
    *,
    language: str,
    label: str,
) -> Markup:
    """Horizontal bars in two parts (in time, late) per row (key, first, second), each row named by
    `names` (its key where missing), the figures written after the bar."""
    row_h, label_w, top = 30, 250, 26
    height = top + row_h * max(len(rows), 1) + 6
    peak = max((a + b for _, a, b in rows), default=0) or 1
    scale = (WIDTH - label_w - 40) / peak
    body = [
        f'<rect x="{label_w}" y="4" width="12" height="12" fill="{BLUE}"/>',
        _text(label_w + 16, 14, legend[0]),
        f'<rect x="{label_w + 150}" y="4" width="12" height="12" fill="{RED}"/>',
        _text(label_w + 166, 14, legend[1]),
    ]
    for i, (key, first, second) in enumerate(rows):
        y = top + row_h * i
        body.append(_label(label_w - 8, y + 15, names.get(key, key)))
        x = float(label_w)
        for value, colour in ((first, BLUE), (second, RED)):
            w = value * scale
            if value:
                body.append(
                    f'<rect x="{x:.1f}" y="{y + 2}" width="{w:.1f}" height="{row_h - 8}" fill="{colour}"/>'
                )
            x += w
        body.append(_text(x + 6, y + 15, f"{figure(first, 0, language)} / {figure(second, 0, language)}"))
    return _svg(height, body, label)


@dataclass(frozen=True)
class ElementBar:
    label: str
    value: Decimal | None  # the element's NRR x 25 (its IKM), None when nobody rated it
    grade: str


def grade_bars(rows: Sequence[ElementBar], *, language: str, label: str, none_text: str = "-") -> Markup:
    """The IKM per element (NRR x 25) as horizontal bars on the 25-100 scale, coloured by grade, with
    the grade bands' lines and each bar's figure and grade."""
    row_h, label_w, top, right = 30, 250, 20, 70
    height = top + row_h * len(rows) + 18
    low, high = Decimal(25), Decimal(100)
    span = WIDTH - label_w - right

    def x_of(v: Decimal) -> float:
        return label_w + float((v - low) / (high - low)) * span

    body = []
    for bound, grade in GRADE_LINES:
        x = x_of(bound)
        body.append(
            f'<line x1="{x:.1f}" y1="{top - 4}" x2="{x:.1f}" y2="{height - 18}" stroke="{GREY}" '
            'stroke-dasharray="3,3"/>'
        )
        body.append(_text(x, top - 8, f"{grade} ≥ {figure(bound, 2, language)}", anchor="middle",
                          extra='font-size="10"'))  # fmt: skip
    for value in (25, 50, 75, 100):
        body.append(
            _text(x_of(Decimal(value)), height - 4, str(value), anchor="middle", extra='font-size="10"')
        )
    for i, row in enumerate(rows):
        y = top + row_h * i
        body.append(_label(label_w - 8, y + 15, row.label))
        if row.value is None:
            body.append(_text(label_w + 4, y + 15, none_text))
            continue
        w = x_of(row.value) - label_w
        colour = GRADE_COLOURS.get(row.grade, BLUE)
        body.append(f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row_h - 8}" fill="{colour}"/>')
        body.append(_text(label_w + w + 6, y + 15, f"{figure(row.value, 2, language)} ({row.grade})"))
    return _svg(height, body, label)
