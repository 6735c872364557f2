"""Who may do what to a ticket, and whether the organisation's mail server vouches for the sender.

Pure: the caller passes the staff member, the ticket's facts and the profile.
A refusal is a code the transcript template explains.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from mailbot.commands import Verb
from mailbot.config import Profile, StaffMember
from mailbot.workflow import OPEN_STATES, State

# Commands that need no ticket.
GLOBAL_VERBS = frozenset({Verb.HELP, Verb.LIST})
# Commands that change nothing (they may be given in any state).
READ_ONLY = frozenset({Verb.STATUS, Verb.HELP, Verb.LIST})


class Standing(enum.StrEnum):
    """Where a staff member stands towards one ticket: the rows of the table below."""

    LEAD = "lead"  # the first level of the delegation chain, the head, the secretariat
    ASSIGNEE = "assignee"  # the person the ticket is assigned to now (not a vendor)
    STAFF = "staff"  # any other staff member of the profile
    VENDOR = "vendor"  # a service provider (SOP 003): reports by plain reply, never commands


# The one authorization table: verb -> standing -> who may give it, as a condition on the
# delegation level and the ticket's state (None: refused with that code). Conditions:
#   "yes"        allowed;
#   "delegates"  only from a level that can delegate further (not the last of the chain);
#   "open"       only while the ticket is open (a done ticket is not extended or flagged);
#   "sec_answer" the secretariat of a profile whose secretariat answers (SOP 000).
# State changes are checked once more against the workflow's transition table.
_LEAD, _ASSIGNEE, _STAFF = Standing.LEAD, Standing.ASSIGNEE, Standing.STAFF
AUTHZ: dict[Verb, dict[Standing, str]] = {
    Verb.HELP: {_LEAD: "yes", _ASSIGNEE: "yes", _STAFF: "yes"},
    Verb.LIST: {_LEAD: "yes", _ASSIGNEE: "yes", _STAFF: "yes"},
    Verb.STATUS: {_LEAD: "yes", _ASSIGNEE: "yes", _STAFF: "yes"},
    Verb.NOTE: {_LEAD: "yes", _ASSIGNEE: "yes", _STAFF: "yes"},
    Verb.URGENT: {_LEAD: "open"},
    Verb.EXTEND: {_LEAD: "open"},
    Verb.CLOSE: {_LEAD: "yes"},
    Verb.REJECT: {_LEAD: "yes"},
    Verb.REOPEN: {_LEAD: "yes"},
    Verb.ASSIGN: {_LEAD: "delegates", _ASSIGNEE: "delegates"},
    Verb.FORWARD: {_LEAD: "vendors", _ASSIGNEE: "vendors"},
    Verb.REQUEST_INFO: {_LEAD: "yes", _ASSIGNEE: "yes"},
    Verb.ANSWER: {_ASSIGNEE: "yes", _LEAD: "sec_answer", _STAFF: "sec_answer"},
}
# Why a standing without a cell is refused, per verb (the transcript explains each code).
_NO_CELL = {
    Verb.URGENT: "role_lead_only",
    Verb.EXTEND: "role_lead_only",
    Verb.CLOSE: "role_lead_only",
    Verb.REJECT: "role_lead_only",
    Verb.REOPEN: "role_lead_only",
    Verb.ASSIGN: "not_your_ticket",
    Verb.FORWARD: "not_your_ticket",
    Verb.REQUEST_INFO: "not_your_ticket",
    Verb.ANSWER: "answer_not_allowed",
}


@dataclass(frozen=True)
class TicketFacts:
    state: State
    assignee_email: str | None


def level(profile: Profile, role: str) -> int | None:
    """A role's place in the delegation chain (0 leads), or None when it is not in it."""
    try:
        return profile.delegation.index(role)  # type: ignore[arg-type]
    except ValueError:
        return None


def is_lead(profile: Profile, member: StaffMember) -> bool:
    return member.role != "vendor" and (
        level(profile, member.role) == 0 or member.role in ("secretariat", "head")
    )


def standing(member: StaffMember, ticket: TicketFacts | None, profile: Profile) -> Standing:
    if member.role == "vendor":
        return Standing.VENDOR
    if is_lead(profile, member):
        return Standing.LEAD
    if ticket is not None and ticket.assignee_email is not None and ticket.assignee_email in member.emails:
        return Standing.ASSIGNEE
    return Standing.STAFF


def may(verb: Verb, member: StaffMember, ticket: TicketFacts | None, profile: Profile) -> str | None:
    """None when `member` may give `verb` (on this ticket, if any), else the refusal code."""
    where = standing(member, ticket, profile)
    if where is Standing.VENDOR:
        # SOP 003: the vendor reports to the team, who answer the applicant. A vendor's
        # command would act on the applicant from the office's address.
        return "vendor_reports_only"
    if verb not in READ_ONLY and member.profiles and profile.id not in member.profiles:
        return "not_in_profile"
    cell = AUTHZ[verb].get(where)
    if cell is None:
        return _NO_CELL.get(verb, "role_lead_only")
    return _condition(cell, member, ticket, profile)


def _condition(cell: str, member: StaffMember, ticket: TicketFacts | None, profile: Profile) -> str | None:
    """The refusal code of a table cell's condition, or None when it holds."""
    if cell == "delegates":
        mine = level(profile, member.role)
        return "role_cannot_assign" if mine is None or mine >= len(profile.delegation) - 1 else None
    if cell == "vendors":
        return None if profile.vendors else "no_vendors_in_profile"
    if cell == "open":
        return "bad_state" if ticket is not None and ticket.state not in OPEN_STATES else None
    if cell == "sec_answer":
        return None if member.role == "secretariat" and profile.secretariat_answers else "answer_not_allowed"
    return None


def can_receive(profile: Profile, assigner: StaffMember, target: StaffMember) -> str | None:
    """None when `target` may be assigned by `assigner` under the profile's delegation chain."""
    if not target.active:
        return "inactive"
    if target.profiles and profile.id not in target.profiles:
        return "not_in_profile"
    theirs = level(profile, target.role)
    mine = level(profile, assigner.role)
    if theirs is None or target.role == "vendor":
        return "not_assignable"
    if mine is not None and theirs <= mine:
        return "not_below"
    return None


# --- Authentication-Results (RFC 8601) ------------------------------------------------------

_RESULT = re.compile(r"\b(dmarc|dkim)\s*=\s*(\w+)([^;]*)", re.IGNORECASE)


def authenticated(headers: tuple[str, ...], authserv_id: str, sender: str) -> bool:
    """True when a header from our own server (its authserv-id) shows DMARC pass, or DKIM pass
    for the sender's domain. Headers from other servers are ignored: anyone can write one."""
    domain = sender.rsplit("@", 1)[-1].lower()
    for header in headers:
        server, _, rest = header.partition(";")
        parts = server.split()
        if not parts or parts[0].lower() != authserv_id.lower():
            continue
        for method, result, props in _RESULT.findall(rest):
            if result.lower() != "pass":
                continue
            if method.lower() == "dmarc":
                m = re.search(r"header\.from\s*=\s*([^\s;]+)", props, re.IGNORECASE)
                if m is None or m.group(1).lower() == domain:
                    return True
            else:
                m = re.search(r"header\.[di]\s*=\s*@?([^\s;]+)", props, re.IGNORECASE)
                if m and (m.group(1).lower() == domain or m.group(1).lower().endswith("." + domain)):
                    return True
    return False
