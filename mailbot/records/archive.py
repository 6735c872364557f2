"""The archive: every message in and out, exported as an mboxrd file that mail clients read as one
thread per ticket, with an index (CSV and static HTML) of the exported tickets.

Streaming: rows come from the database in batches and are written one at a time,
so memory does not grow with the archive.
"""

from __future__ import annotations

import csv
import html
import os
import re
import sys
import tempfile
import time as _time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, literal, select, union_all
from sqlalchemy.orm import Session

from mailbot.core.ikm import compute_ikm
from mailbot.core.safe_output import csv_row
from mailbot.core.workflow import State
from mailbot.shell import models

_FROM_LINE = re.compile(rb"^(>*From )", re.MULTILINE)


def mboxrd_quote(raw: bytes) -> bytes:
    """mboxrd: every line starting with zero or more '>' and 'From ' gets one more '>'."""
    return _FROM_LINE.sub(rb">\1", raw)


def mboxrd_unquote(body: bytes) -> bytes:
    """The reverse, for readers (and tests) that undo the quoting."""
    return re.sub(rb"^>(>*From )", rb"\1", body, flags=re.MULTILINE)


def _envelope_sender(address: str) -> str:
    address = re.sub(r"[\s<>]", "", address)
    return address or "MAILER-DAEMON"


def mbox_entry(sender: str, at: datetime, raw: bytes) -> bytes:
    """One mbox entry: the From_ separator, the message with LF line ends and quoted From lines.
    The message as intake read it: without blank lines before its header, or the From_ line of
    another mbox on top (some deliveries leave one in a Maildir file); quoted, either made a
    header block that readers take for none, and the mail one without a header."""
    body = raw.lstrip(b" \t\r\n")
    if body.startswith(b"From "):
        body = body.partition(b"\n")[2]
    body = body.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    if not body.endswith(b"\n"):
        body += b"\n"
    stamp = at.astimezone(UTC).strftime("%a %b %d %H:%M:%S %Y")
    return f"From {_envelope_sender(sender)} {stamp}\n".encode() + mboxrd_quote(body) + b"\n"


@dataclass(frozen=True)
class Selection:
    tickets: tuple[str, ...] = ()
    start: date | None = None
    end: date | None = None
    states: tuple[State, ...] = ()


def _ticket_filter(selection: Selection, tz: ZoneInfo) -> Any:
    stmt = select(models.Ticket.id)
    if selection.tickets:
        stmt = stmt.where(func.upper(models.Ticket.number).in_([t.upper() for t in selection.tickets]))
    if selection.start is not None:
        stmt = stmt.where(
            models.Ticket.created_at >= datetime.combine(selection.start, datetime.min.time(), tz)
        )
    if selection.end is not None:
        end = datetime.combine(selection.end, datetime.max.time(), tz)
        stmt = stmt.where(models.Ticket.created_at <= end)
    if selection.states:
        stmt = stmt.where(models.Ticket.state.in_(list(selection.states)))
    return stmt


def _messages(session: Session, ticket_ids: Any, batch: int) -> Iterator[Any]:
    """Every message of the selected tickets, per ticket in time order, streamed: where it is and
    how large, without its bytes (`_with_raw` reads those in chunks bounded by size)."""
    inbound = select(
        models.InboundMessage.ticket_id.label("ticket_id"),
        models.InboundMessage.received_at.label("at"),
        literal(0).label("direction"),
        models.InboundMessage.id.label("id"),
        models.InboundMessage.from_addr.label("sender"),
        func.length(models.InboundMessage.raw).label("size"),
    ).where(models.InboundMessage.ticket_id.in_(ticket_ids))
    outbound = select(
        models.OutboundMessage.ticket_id.label("ticket_id"),
        models.OutboundMessage.created_at.label("at"),
        literal(1).label("direction"),
        models.OutboundMessage.id.label("id"),
        models.OutboundMessage.mail_from.label("sender"),
        func.length(models.OutboundMessage.raw).label("size"),
    ).where(models.OutboundMessage.ticket_id.in_(ticket_ids))
    both = union_all(inbound, outbound).subquery()
    stmt = select(both).order_by(both.c.ticket_id, both.c.at, both.c.direction, both.c.id)
    yield from session.execute(stmt.execution_options(yield_per=batch, stream_results=True))


# Raw mail read per query: memory stays near this whatever the messages' sizes (one message larger
# than it is read alone; its size is bounded by limits.max_message_bytes).
RAW_CHUNK_BYTES = 8 * 1024 * 1024
_RAW = {
    0: (models.InboundMessage.id, models.InboundMessage.raw),
    1: (models.OutboundMessage.id, models.OutboundMessage.raw),
}


def _with_raw(session: Session, rows: Iterator[Any], chunk_bytes: int = RAW_CHUNK_BYTES) -> Iterator[Any]:
    """The rows in their order, each with its raw bytes, read a chunk of messages at a time."""

    def flush(pending: list[Any]) -> Iterator[tuple[Any, bytes]]:
        raws: dict[tuple[int, int], bytes] = {}
        for direction, (id_col, raw_col) in _RAW.items():
            ids = [r.id for r in pending if r.direction == direction]
            if ids:
                for mid, raw in session.execute(select(id_col, raw_col).where(id_col.in_(ids))):
                    raws[(direction, mid)] = raw
        for r in pending:
            yield r, raws[(r.direction, r.id)]

    pending: list[Any] = []
    size = 0
    for row in rows:
        pending.append(row)
        size += row.size or 0
        if size >= chunk_bytes or len(pending) >= 500:
            yield from flush(pending)
            pending, size = [], 0
    if pending:
        yield from flush(pending)


class Progress:
    """A one-line progress bar on a terminal; silent otherwise."""

    def __init__(self, total: int, stream: IO[str] | None = None) -> None:
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = self.stream.isatty()
        self.done = 0
        self._last = 0.0

    def step(self, n: int = 1) -> None:
        self.done += n
        now = _time.monotonic()
        if self.enabled and (now - self._last > 0.1 or self.done == self.total):
            self._last = now
            share = self.done / self.total if self.total else 1.0
            bar = "#" * int(share * 30)
            self.stream.write(f"\r  export [{bar:<30}] {self.done}/{self.total} messages")
            self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")


@dataclass(frozen=True)
class ExportResult:
    tickets: int
    messages: int
    path: Path
    index_csv: Path
    index_html: Path


def export_mbox(
    session: Session,
    out: Path,
    selection: Selection,
    tz: ZoneInfo,
    *,
    batch: int = 500,
    progress: Callable[[int], Progress] | None = None,
) -> ExportResult:
    ticket_ids = _ticket_filter(selection, tz).scalar_subquery()
    total = (
        session.execute(
            select(func.count())
            .select_from(models.InboundMessage)
            .where(models.InboundMessage.ticket_id.in_(ticket_ids))
        ).scalar_one()
        + session.execute(
            select(func.count())
            .select_from(models.OutboundMessage)
            .where(models.OutboundMessage.ticket_id.in_(ticket_ids))
        ).scalar_one()
    )
    bar = (progress or Progress)(total)
    written = 0
    # Written beside the archive under a name of its own, renamed over it only when complete: an
    # export that fails (disk full, Ctrl-C) leaves the archive as it was and no part file behind;
    # two exports to one name at once each write their own.
    fd, name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent)
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as fh:
            for row, raw in _with_raw(session, _messages(session, ticket_ids, batch)):
                fh.write(mbox_entry(row.sender, row.at, raw))
                written += 1
                bar.step()
        os.chmod(tmp, 0o666 & ~_umask())
        tmp.replace(out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    bar.close()
    index_csv, index_html, count = write_index(session, out, selection, tz)
    return ExportResult(count, written, out, index_csv, index_html)


def _umask() -> int:
    """The process's umask (read by setting it back): the mode an archive would have had if
    written directly, which mkstemp's 0600 would otherwise narrow."""
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


# --- the index ---------------------------------------------------------------------------------

INDEX_COLUMNS = (
    "number",
    "created",
    "closed",
    "state",
    "applicant_unit",
    "assignee",
    "deadlines",
    "survey_ikm",
)


def index_rows(session: Session, selection: Selection, tz: ZoneInfo) -> Iterator[dict[str, str]]:
    ids = _ticket_filter(selection, tz).scalar_subquery()
    escalated = {
        t
        for (t,) in session.execute(
            select(models.Notice.ticket_id).where(
                models.Notice.kind == "escalation", models.Notice.ticket_id.in_(ids)
            )
        )
    }
    surveys = {
        s.ticket_id: s
        for s in session.execute(select(models.Survey).where(models.Survey.ticket_id.in_(ids))).scalars()
    }
    # One query for every ticket's closing time, not one per ticket.
    closing = (
        select(models.TicketEvent.ticket_id, func.max(models.TicketEvent.at))
        .where(
            models.TicketEvent.ticket_id.in_(ids),
            models.TicketEvent.kind.in_(("close", "survey_received", "reject")),
        )
        .group_by(models.TicketEvent.ticket_id)
    )
    closed_at: dict[int, Any] = {row[0]: row[1] for row in session.execute(closing)}
    stmt = select(models.Ticket).where(models.Ticket.id.in_(ids)).order_by(models.Ticket.id)
    for ticket in session.execute(stmt.execution_options(yield_per=500)).scalars():
        closed = closed_at.get(ticket.id)
        if isinstance(closed, str):  # SQLite may hand an aggregate back as text
            closed = datetime.fromisoformat(closed)
        if closed is not None and closed.tzinfo is None:
            closed = closed.replace(tzinfo=UTC)
        survey = surveys.get(ticket.id)
        score = ""
        if survey is not None and survey.complete:
            ikm = compute_ikm([{int(k): int(v) for k, v in survey.scores.items()}])
            score = str(ikm.rounded) if ikm else ""
        yield {
            "number": ticket.number,
            "created": ticket.created_at.astimezone(tz).strftime("%Y-%m-%d %H:%M"),
            "closed": closed.astimezone(tz).strftime("%Y-%m-%d %H:%M") if closed else "",
            "state": ticket.state.value,
            "applicant_unit": str(ticket.fields.get("unit", "")),
            "assignee": ticket.assignee_email or "",
            "deadlines": "missed" if ticket.id in escalated else "met",
            "survey_ikm": score,
        }


def write_index(session: Session, out: Path, selection: Selection, tz: ZoneInfo) -> tuple[Path, Path, int]:
    csv_path = out.with_suffix(".index.csv")
    html_path = out.with_suffix(".index.html")
    count = 0
    with csv_path.open("w", newline="", encoding="utf-8") as fc, html_path.open("w", encoding="utf-8") as fh:
        writer = csv.DictWriter(fc, fieldnames=INDEX_COLUMNS)
        writer.writeheader()
        fh.write(_HTML_HEAD.format(title=html.escape(f"Indeks arsip {out.name}")))
        for row in index_rows(session, selection, tz):
            writer.writerow(csv_row(row))  # a unit named "=HYPERLINK(...)" stays text
            cells = "".join(f"<td>{html.escape(row[c])}</td>" for c in INDEX_COLUMNS)
            fh.write(f'<tr class="{html.escape(row["deadlines"])}">{cells}</tr>\n')
            count += 1
        fh.write(_HTML_FOOT.format(count=count, mbox=html.escape(out.name)))
    return csv_path, html_path, count


_HTML_HEAD = """<!DOCTYPE html>
<html lang="id"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:Arial,sans-serif;font-size:13px}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 6px}}tr.missed td{{background:#fdecea}}</style></head>
<body><h1>{title}</h1><table><thead><tr><th>Nomor</th><th>Diterima</th><th>Selesai</th><th>Status</th>
<th>Unit kerja pemohon</th><th>Petugas</th><th>Batas waktu</th><th>IKM survei</th></tr></thead><tbody>
"""
_HTML_FOOT = """</tbody></table><p>{count} tiket; pesan lengkap dalam {mbox}.</p></body></html>
"""


def export_selection(states: Sequence[str]) -> tuple[State, ...]:
    return tuple(State(s) for s in states)
