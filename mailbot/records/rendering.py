"""Printed output: the documents' Jinja2 environment, Indonesian dates and figures, HTML to PDF (WeasyPrint)
and PDF to PNG (pdftoppm)."""

from __future__ import annotations

import base64
import logging
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment

from mailbot.config import Config
from mailbot.core.compose import environment

MONTHS = {
    "id": ("Januari", "Februari", "Maret", "April", "Mei", "Juni", "Juli", "Agustus", "September",
           "Oktober", "November", "Desember"),
    "en": ("January", "February", "March", "April", "May", "June", "July", "August", "September",
           "October", "November", "December"),
}  # fmt: skip
DAYS = {
    "id": ("Senin", "Selasa", "Rabu", "Kamis", "Jumat", "Sabtu", "Minggu"),
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
}


class RenderError(Exception):
    """A document could not be turned into PDF or PNG."""


def long_date(value: date | datetime, language: str = "id") -> str:
    """'4 Desember 2026' (tata naskah dinas writes the month's name, never the number)."""
    return f"{value.day} {MONTHS[_lang(language)][value.month - 1]} {value.year}"


def month_name(value: date | datetime, language: str = "id") -> str:
    return MONTHS[_lang(language)][value.month - 1]


def day_name(value: date | datetime, language: str = "id") -> str:
    return DAYS[_lang(language)][value.weekday()]


def clock_time(value: datetime, language: str = "id") -> str:
    """'09.12 WIB' (Indonesian writes a dot between hour and minute) or '09:12 WIB'."""
    sep = "." if _lang(language) == "id" else ":"
    return f"{value:%H}{sep}{value:%M} {value.tzname() or ''}".strip()


def date_range(start: date, end: date, language: str = "id") -> str:
    """'1 s.d. 30 November 2026', '28 Oktober s.d. 3 November 2026'."""
    lang = _lang(language)
    until = "s.d." if lang == "id" else "to"
    if start == end:
        return long_date(start, lang)
    if (start.year, start.month) == (end.year, end.month):
        return f"{start.day} {until} {long_date(end, lang)}"
    if start.year == end.year:
        return f"{start.day} {MONTHS[lang][start.month - 1]} {until} {long_date(end, lang)}"
    return f"{long_date(start, lang)} {until} {long_date(end, lang)}"


def figure(value: Decimal | Fraction | float | int, places: int = 0, language: str = "id") -> str:
    """A figure as the language writes it: '88,31' and '1.250' in Indonesian, '88.31' and '1,250' in
    English. Rounded half up, as the IKM is reported."""
    if isinstance(value, Fraction):
        number = Decimal(value.numerator) / Decimal(value.denominator)
    else:
        number = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    number = number.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    text = f"{number:,.{places}f}"
    if _lang(language) == "id":
        text = text.replace(",", "\0").replace(".", ",").replace("\0", ".")
    return text


_ONES = ("nol", "satu", "dua", "tiga", "empat", "lima", "enam", "tujuh", "delapan", "sembilan",
         "sepuluh", "sebelas")  # fmt: skip


def terbilang(n: int) -> str:
    """A number in Indonesian words, as a Berita Acara writes its date ('dua ribu dua puluh enam')."""
    if n < 0:
        return "minus " + terbilang(-n)
    if n < 12:
        return _ONES[n]
    if n < 20:
        return f"{_ONES[n - 10]} belas"
    if n < 100:
        return (f"{_ONES[n // 10]} puluh " + (terbilang(n % 10) if n % 10 else "")).strip()
    if n < 200:
        return ("seratus " + (terbilang(n - 100) if n > 100 else "")).strip()
    if n < 1000:
        return (f"{_ONES[n // 100]} ratus " + (terbilang(n % 100) if n % 100 else "")).strip()
    if n < 2000:
        return ("seribu " + (terbilang(n - 1000) if n > 1000 else "")).strip()
    if n < 1_000_000:
        return (f"{terbilang(n // 1000)} ribu " + (terbilang(n % 1000) if n % 1000 else "")).strip()
    raise ValueError(f"{n} is beyond what a document's date needs")


def _lang(language: str) -> str:
    return "en" if language == "en" else "id"


@cache
def document_environment(office: Path | None = None) -> Environment:
    """The mail templates' environment with the documents' filters and charts added, in an overlay of
    its own (the mails' environment stays as it is). The templates name the charts' texts."""
    env = environment(office).overlay()
    env.filters = {
        **env.filters,
        "long_date": long_date,
        "day_name": day_name,
        "month_name": month_name,
        "clock_time": clock_time,
        "figure": figure,
        "terbilang": terbilang,
    }
    # Imported here: the charts use this module's figures.
    from mailbot.records.charts import column_chart, grade_bars, stacked_bars

    env.globals = {
        **env.globals,
        "date_range": date_range,
        "column_chart": column_chart,
        "stacked_bars": stacked_bars,
        "grade_bars": grade_bars,
    }
    return env


CONTACT_LABELS = {"id": ("Telepon", "Laman", "Pos-el"), "en": ("Telephone", "Website", "Email")}


def letterhead(config: Config, language: str = "id") -> dict[str, Any]:
    """What the letterhead (kop surat) shows: its lines, the contact line (address; telephone;
    website; email) and the logo as a data URI."""
    doc = config.settings.documents
    phone, website, mail = CONTACT_LABELS[_lang(language)]
    contact = [doc.address] if doc.address else []
    contact += [f"{label} {value}" for label, value in ((phone, doc.phone), (website, doc.website),
                                                        (mail, doc.email)) if value]  # fmt: skip
    return {"doc": doc, "logo": logo_data_uri(config), "contact": contact}


def logo_data_uri(config: Config) -> str:
    logo = config.settings.documents.logo
    if not logo:
        return ""
    path = Path(logo) if Path(logo).is_absolute() else config.base_dir / logo
    return _data_uri(str(path))


@cache
def _data_uri(path: str) -> str:
    try:
        data = Path(path).read_bytes()
    except OSError:
        return ""
    if data.startswith(b"\x89PNG"):
        kind = "image/png"
    elif data.startswith(b"\xff\xd8"):
        kind = "image/jpeg"
    elif b"<svg" in data[:2048]:
        kind = "image/svg+xml"
    else:
        return ""
    return f"data:{kind};base64,{base64.b64encode(data).decode()}"


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextmanager
def renderer_warnings() -> Iterator[list[str]]:
    """The warnings WeasyPrint logs while rendering (an ignored CSS property, a missing image):
    collected for the caller, which turns them into an error in tests."""
    handler = _Collect()
    logger = logging.getLogger("weasyprint")
    logger.addHandler(handler)
    try:
        yield handler.messages
    finally:
        logger.removeHandler(handler)


def html_to_pdf(html: str) -> bytes:
    """PDF from a document's HTML (self-contained: images are data URIs, no fetch from the network)."""
    # Imported here: WeasyPrint takes most of a second to import, and only the few processes that
    # print a document need it.
    import weasyprint

    # Documents carry their images inline (data URIs); nothing else is fetched, whatever a
    # template might name (mail text reaches the HTML escaped, never as markup).
    fetcher = weasyprint.URLFetcher(allowed_protocols=["data"])
    try:
        pdf = weasyprint.HTML(string=html, url_fetcher=fetcher).write_pdf()
    except (OSError, ValueError) as exc:
        raise RenderError(f"PDF conversion failed: {exc}") from exc
    if pdf is None:
        raise RenderError("PDF conversion produced nothing")
    return bytes(pdf)


def pdf_to_png(pdf: bytes, *, dpi: int = 100) -> bytes | None:
    """A PNG of the PDF's first page by pdftoppm (poppler-utils), or None where it is missing
    (WeasyPrint no longer writes PNG itself)."""
    tool = shutil.which("pdftoppm")
    if tool is None:
        return None
    with tempfile.TemporaryDirectory(prefix="mailbot-png-") as folder:
        source, root = Path(folder) / "page.pdf", Path(folder) / "page"
        source.write_bytes(pdf)
        args = [tool, "-png", "-r", str(dpi), "-f", "1", "-l", "1", "-singlefile", str(source), str(root)]
        done = subprocess.run(args, capture_output=True, timeout=60, check=False)  # noqa: S603
        png = root.with_suffix(".png")
        if done.returncode != 0 or not png.exists():
            raise RenderError(f"pdftoppm failed: {done.stderr.decode(errors='replace')[:200]}")
        return png.read_bytes()
