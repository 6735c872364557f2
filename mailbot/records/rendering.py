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
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment

from mailbot.config import Config
from mailbot.core.compose import environment
from mailbot.records.charts import column_chart, grade_bars, stacked_bars
from mailbot.records.wording import (
    _lang,
    clock_time,
    date_range,
    day_name,
    figure,
    long_date,
    month_name,
    terbilang,
)


class RenderError(Exception):
    """A document could not be turned into PDF or PNG."""


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
