"""Who may do what to a ticket, and whether the organisation's mail server vouches for the sender.

Pure: the caller passes the staff member, the ticket's facts and the profile.
A refusal is a code the transcript template explains.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from mailbot.core.commands import Verb
from mailbot.core.workflow import OPEN_STATES, State
from mailbot.settings import Profile, StaffMember

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
#   "normative"  the secretariat of a profile where it answers normative questions itself (SOP 000).
#   "step"       a step after the answer is running and the sender has its actor's role (SOP 001:
#                the customer service REPORTs, the TU ARCHIVEs); the verb must be the step's own.
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
    Verb.NORMATIVE: {_LEAD: "normative", _STAFF: "normative"},
    Verb.MEDIUM: {_LEAD: "yes", _ASSIGNEE: "yes"},
    Verb.REPORT: {_LEAD: "step", _ASSIGNEE: "step", _STAFF: "step"},
    Verb.ARCHIVE: {_LEAD: "step", _ASSIGNEE: "step", _STAFF: "step"},
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
    Verb.MEDIUM: "not_your_ticket",
    Verb.ANSWER: "answer_not_allowed",
    Verb.NORMATIVE: "normative_not_allowed",
}


@dataclass(frozen=True)
class TicketFacts:
    state: State
    assignee_email: str | None
    # The step after the answer that is running now (Profile.after_answer), if any.
    after_step: str | None = None


def level(profile: Profile, role: str) -> int | None:
    """A role's place in the delegation chain (0 leads), or None when it is not in it."""
    try:
        return profile.delegation.index(role)  # type: ignore[arg-type]
    except ValueError:
        return None


def is_lead(profile: Profile, member: StaffMember) -> bool:
    # The chief (SOP 004's Inspektur) receives escalations: what the lead may do (EXTEND, CLOSE,
    # URGENT) they may do; ASSIGN only where the chain has them.
    return member.role != "vendor" and (
        level(profile, member.role) == 0 or member.role in ("secretariat", "head", "chief")
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
    return _condition(cell, member, ticket, profile, verb)


def _condition(
    cell: str, member: StaffMember, ticket: TicketFacts | None, profile: Profile, verb: Verb
) -> str | None:
    """The refusal code of a table cell's condition, or None when it holds."""
    if cell == "step":
        return _step_condition(member, ticket, profile, verb)
    if cell == "delegates":
        mine = level(profile, member.role)
        return "role_cannot_assign" if mine is None or mine >= len(profile.delegation) - 1 else None
    if cell == "vendors":
        return None if profile.vendors else "no_vendors_in_profile"
    if cell == "open":
        return "bad_state" if ticket is not None and ticket.state not in OPEN_STATES else None
    if cell == "sec_answer":
        return None if member.role == "secretariat" and profile.secretariat_answers else "answer_not_allowed"
    if cell == "normative":
        return None if member.role == "secretariat" and profile.normative_answers else "normative_not_allowed"
    return None


def _step_condition(
    member: StaffMember, ticket: TicketFacts | None, profile: Profile, verb: Verb
) -> str | None:
    step = profile.step(ticket.after_step) if ticket is not None else None
    if step is None:
        return "no_step_running"
    if member.role != step.actor:
        return "not_step_actor"
    if (verb is Verb.REPORT) != bool(step.report_to):
        return "step_needs_report" if step.report_to else "step_needs_archive"
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
# Trust boundary: anyone can write an Authentication-Results header into a mail. Only the one
# our own server prepended counts: RFC 8601 s. 5, headers are added on top, so the topmost
# header carrying our authserv-id is ours and anything below it came with the mail.

MAX_RESULTS_HEADER = 8192  # longer headers are not ours: read no further (linear work only)


@dataclass(frozen=True)
class AuthResult:
    """One `method=result` of an Authentication-Results header, with its properties."""

    method: str
    result: str
    props: dict[str, str]


def _strip_comments(text: str) -> str:
    """The header without its (nested) comments and quoted-string quotes: a plain scan."""
    out: list[str] = []
    depth = 0
    quoted = False
    escaped = False
    for ch in text[:MAX_RESULTS_HEADER]:
        if escaped:
            escaped = False
            if depth == 0:
                out.append(ch)
            continue
        if ch == "\\" and (quoted or depth):
            escaped = True
            continue
        if quoted:
            if ch == '"':
                quoted = False
            else:
                out.append(ch)
        elif ch == "(":
            depth += 1
        elif ch == ")" and depth:
            depth -= 1
        elif depth == 0:
            if ch == '"':
                quoted = True
            else:
                out.append(ch)
    return "".join(out)


def parse_results(header: str) -> tuple[str, list[AuthResult]]:
    """(authserv-id, results) of one header. The authserv-id is "" for the form Microsoft 365
    writes, which starts straight with `spf=...` (no id)."""
    parts = [p.strip() for p in _strip_comments(header).split(";")]
    first = parts[0].split() if parts else []
    if first and "=" not in first[0]:
        server, segments = first[0].lower(), parts[1:]
    else:
        server, segments = "", parts
    results: list[AuthResult] = []
    for segment in segments:
        words = segment.split()
        if not words or "=" not in words[0]:
            continue  # "none", or a version number
        method, _, result = words[0].partition("=")
        props: dict[str, str] = {}
        for word in words[1:]:
            key, eq, value = word.partition("=")
            if eq and "." in key:
                props.setdefault(key.lower(), value.lower().lstrip("@"))
        results.append(AuthResult(method.lower(), result.lower(), props))
    return server, results


def aligned(domain: str, signer: str) -> bool:
    """DMARC relaxed alignment without a public-suffix list: the same domain, or one a parent
    of the other (From x.go.id with d=mail.x.go.id or the reverse). A one-label `d=` never."""
    domain, signer = domain.lower().rstrip("."), signer.lower().rstrip(".")
    if not domain or "." not in signer:
        return False
    return domain == signer or domain.endswith("." + signer) or signer.endswith("." + domain)


def passes(results: list[AuthResult], sender: str) -> str | None:
    """How the results prove the sender's domain (`dmarc` or `dkim d=...`), or None."""
    domain = sender.rsplit("@", 1)[-1].lower()
    if any(
        r.method == "dmarc" and r.result == "pass" and r.props.get("header.from") == domain for r in results
    ):
        return "dmarc"
    for r in results:
        if r.method == "dkim" and r.result == "pass":
            signer = r.props.get("header.d") or r.props.get("header.i", "").rpartition("@")[2]
            if signer and aligned(domain, signer):
                return f"dkim d={signer}"
    return None


def topmost_results(headers: tuple[str, ...], authserv_id: str) -> list[AuthResult] | None:
    """The results of the topmost header from `authserv_id` ("" for Microsoft 365's form), or None.
    `headers` in the mail's order, top first (as mailbot.core.message gives them)."""
    for header in headers:
        server, results = parse_results(header)
        if server == authserv_id.lower():
            return results
    return None


def authenticated(headers: tuple[str, ...], authserv_id: str, sender: str) -> bool:
    """True when the topmost header from our own server (its authserv-id) shows DMARC pass for
    the sender's domain, or DKIM pass aligned with it. Lower headers claiming the same id and
    headers from other servers are ignored: anyone can write one."""
    if not authserv_id:
        return False
    results = topmost_results(headers, authserv_id)
    return results is not None and passes(results, sender) is not None
