"""Who may do what to a ticket, and whether the organisation's mail server vouches for the sender.

Pure: the caller passes the staff member, the ticket's facts and the profile.
A refusal is a code the transcript template explains.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mailbot.commands import Verb
from mailbot.config import Profile, StaffMember
from mailbot.workflow import State

# Commands that need no ticket.
GLOBAL_VERBS = frozenset({Verb.HELP, Verb.LIST})
# Commands any active staff member may give on a ticket whose thread they are in.
ANY_STAFF = frozenset({Verb.STATUS, Verb.NOTE, Verb.HELP, Verb.LIST})
# Commands of whoever leads the service (the first level of the delegation chain) and the secretariat.
LEAD_ONLY = frozenset({Verb.URGENT, Verb.EXTEND, Verb.CLOSE, Verb.REJECT, Verb.REOPEN})


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
    return level(profile, member.role) == 0 or member.role in ("secretariat", "head")


def may(verb: Verb, member: StaffMember, ticket: TicketFacts, profile: Profile) -> str | None:
    """None when `member` may give `verb` on this ticket, else the refusal code."""
    if verb in ANY_STAFF:
        return None
    if member.profiles and profile.id not in member.profiles:
        return "not_in_profile"
    assignee = ticket.assignee_email is not None and ticket.assignee_email in member.emails
    lead = is_lead(profile, member)
    if verb in LEAD_ONLY:
        return None if lead else "role_lead_only"
    if verb is Verb.ASSIGN:
        mine = level(profile, member.role)
        if mine is None or mine >= len(profile.delegation) - 1:
            return "role_cannot_assign"
        return None if lead or assignee else "not_your_ticket"
    if verb is Verb.ANSWER:
        if assignee:
            return None
        if member.role == "secretariat" and profile.secretariat_answers:
            return None
        if member.role == "vendor":
            return "not_your_ticket"
        return "answer_not_allowed"
    if verb is Verb.FORWARD:
        if not profile.vendors:
            return "no_vendors_in_profile"
        return None if lead or assignee else "not_your_ticket"
    if verb is Verb.REQUEST_INFO:
        return None if lead or assignee else "not_your_ticket"
    return "unknown"


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
