"""The applicant's copy of the consultation: a deliberate public view of a ticket's history.

Trust boundary: everything returned here is mailed to the applicant, from the office's
official address. It is built from an allow-list of history kinds, never from the internal
log as a whole: internal notes, staff commands and their transcripts, refusals, mail of third
parties, escalations, vendor reports and every mail address of the staff stay internal.
Staff appear by name and position only. Texts are the applicant's own words, or words that
staff wrote *for* the applicant (the answer, a request for information).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo

# Indonesia's three time zones by their official names (Keppres 41/1987).
ZONE_NAMES = {"Asia/Jakarta": "WIB", "Asia/Pontianak": "WIB", "Asia/Makassar": "WITA", "Asia/Jayapura": "WIT"}


class HistoryLine(Protocol):
    """What the view reads of one history line (models.TicketEvent)."""

    at: datetime
    actor: str
    kind: str
    detail: str
    data: dict[str, Any]


@dataclass(frozen=True)
class Person:
    """How a staff member is named to an applicant: never by address."""

    name: str
    position: str = ""


@dataclass(frozen=True)
class PublicEntry:
    """One line of the applicant's copy. `kind` is one of PUBLIC_KINDS; templates label it."""

    at: datetime
    kind: str
    by: str  # "applicant", "office", or a staff member's name
    position: str
    text: str


# The public kinds, in the words the templates give them (templates/*/_macros.j2 public_label).
PUBLIC_KINDS = frozenset(
    {
        "request",  # the request as received
        "completed",  # the applicant completed missing data; the request is registered
        "partly_completed",  # the applicant sent some of the missing data
        "acknowledged",  # the receipt sent to the applicant
        "handled_by",  # who handles the ticket (disposition / assignment)
        "forwarded",  # passed to the service provider (SOP 003)
        "info_requested",  # staff asked the applicant for information
        "info_given",  # the applicant's answer to that
        "follow_up",  # the applicant wrote again
        "reopened",  # the ticket was opened again
        "answer",  # the answer
        "survey",  # the satisfaction form came back
        "closed",
        "rejected",
    }
)

# Internal kind -> public kind, for lines that say the same to everyone. Anything absent is internal.
_SAME_FOR_ALL = {
    "survey_received": "survey",
    "close": "closed",
    "reject": "rejected",
}
# Lines whose text is the applicant's own words: public only when the applicant wrote them.
_APPLICANT_WORDS = {
    "info_received": "info_given",
    "applicant_follow_up": "follow_up",
    "applicant_thanks": "follow_up",
}


def public_history(
    events: Iterable[HistoryLine],
    *,
    applicant: str,
    question: str,
    person: Callable[[str], Person | None],
    tz: ZoneInfo,
) -> list[PublicEntry]:
    """The history an applicant may read. `applicant`: the ticket's applicant address;
    `person(address)`: a staff member's public name, or None for an address that is no one's."""
    applicant = applicant.lower()
    out: list[PublicEntry] = []
    opened = False

    def add(e: HistoryLine, kind: str, by: str = "office", position: str = "", text: str = "") -> None:
        out.append(PublicEntry(e.at.astimezone(tz), kind, by, position, text))

    for e in events:
        from_applicant = e.actor.lower() == applicant
        if e.kind in ("request_complete", "request_incomplete") and not opened:
            opened = True
            add(e, "request", "applicant", text=question)
        elif e.kind == "request_complete":
            add(e, "completed", "applicant" if from_applicant else "office")
        elif e.kind == "info_still_missing":
            add(e, "partly_completed", "applicant" if from_applicant else "office")
        elif e.kind == "mail_queued" and _mail_kind(e) == "ack":
            add(e, "acknowledged")
        elif e.kind in ("assign", "forward"):
            staff = person(str(e.data.get("assignee", "")))
            kind = "handled_by" if e.kind == "assign" else "forwarded"
            if staff is not None:
                add(e, kind, staff.name, staff.position)
            else:
                add(e, kind)
        elif e.kind == "request_info":
            add(e, "info_requested", text=e.detail)
        elif e.kind in _APPLICANT_WORDS and from_applicant:
            add(e, _APPLICANT_WORDS[e.kind], "applicant", text=e.detail if e.detail != "(empty)" else "")
        elif e.kind == "reopen":
            add(e, "reopened", *(("applicant", "", e.detail) if from_applicant else ("office",)))
        elif e.kind == "answer":
            staff = person(e.actor)
            text = str(e.data.get("answer", e.detail))
            if staff is not None:
                add(e, "answer", staff.name, staff.position, text)
            else:
                add(e, "answer", text=text)
        elif e.kind in _SAME_FOR_ALL:
            add(e, _SAME_FOR_ALL[e.kind], "applicant" if from_applicant else "office")
    return out


def _mail_kind(e: HistoryLine) -> str:
    """The kind of mail a `mail_queued` line is about (data since 2026-12; the detail before)."""
    kind = e.data.get("mail") if isinstance(e.data, dict) else None
    return str(kind) if kind else e.detail.split(" ", 1)[0]


def zone_name(tz: ZoneInfo) -> str:
    """WIB, WITA or WIT; the zone's key for an office outside Indonesia."""
    return ZONE_NAMES.get(tz.key, tz.key)
