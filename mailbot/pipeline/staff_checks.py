"""The checks before a staff command acts: who may, on which ticket, through which signed mail,
still in time, not already overtaken by someone else, naming a person who can receive it.

Every command of a mail is checked before any is executed (nothing changes here), so a mail never
acts halfway. Trust boundary: the token proves the sender saw our mail; `require_authentication`
has the sender's domain proven too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailbot.config import Config
from mailbot.core.authz import GLOBAL_VERBS, TicketFacts, can_receive, level, may
from mailbot.core.classify import ThreadMatch
from mailbot.core.commands import Command, ParsedCommands, Verb, match_person
from mailbot.core.message import InboundMessage
from mailbot.core.sender_auth import sender_verified
from mailbot.core.workflow import Event, InvalidTransition, next_state
from mailbot.pipeline.clocks import Clocks
from mailbot.pipeline.replies import Replies
from mailbot.settings import Profile, StaffMember
from mailbot.shell import models, store

# Commands that change the ticket's state: the first of two concurrent ones wins.
STATE_CHANGING = frozenset(
    {
        Verb.ASSIGN,
        Verb.NORMATIVE,
        Verb.ANSWER,
        Verb.FORWARD,
        Verb.REQUEST_INFO,
        Verb.CLOSE,
        Verb.REJECT,
        Verb.REOPEN,
    }
)
EVENT_FOR = {
    Verb.ASSIGN: Event.ASSIGN,
    Verb.NORMATIVE: Event.NORMATIVE,
    Verb.ANSWER: Event.ANSWER,
    Verb.FORWARD: Event.FORWARD,
    Verb.REQUEST_INFO: Event.REQUEST_INFO,
    Verb.CLOSE: Event.CLOSE,
    Verb.REJECT: Event.REJECT,
    Verb.REOPEN: Event.REOPEN,
}
_STATE_EVENTS = {e.value for e in Event}


@dataclass
class Line:
    """One line of the transcript: the command as written, what happened, details for the template."""

    line: str
    ok: bool
    code: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class Plan:
    command: Command
    target: StaffMember | None = None
    # ANSWER only: the mail's files go to the applicant. Not when the same mail carries an
    # internal NOTE: which file belongs to the note and which to the answer cannot be told.
    files_to_applicant: bool = True


class CommandChecks:
    """Validate a mail's commands against the sender, the ticket and its history; change nothing."""

    def __init__(self, config: Config, replies: Replies, clocks: Clocks) -> None:
        self.config = config
        self.replies = replies
        self.clocks = clocks

    def check(
        self,
        session: Session,
        row: models.InboundMessage,
        msg: InboundMessage,
        member: StaffMember,
        ticket: models.Ticket | None,
        thread: ThreadMatch | None,
        parsed: ParsedCommands,
        profile: Profile,
        now: datetime,
    ) -> tuple[list[Line], list[Plan]]:
        """Validate every command without changing anything."""
        lines: list[Line] = [Line(e.line, False, e.code) for e in parsed.errors]
        plans: list[Plan] = []
        signed = thread is not None and thread.via == "token"
        # Trust boundary: the token proves the sender saw our mail; `require_authentication`
        # has the sender's domain proven too (our server's header, Microsoft 365's, or DKIM).
        vouched, _how = sender_verified(row.raw, msg.headers, msg.from_addr, profile)
        state = ticket.state if ticket else None
        assignee = ticket.assignee_email if ticket else None
        expired = signed and self._token_expired(session, thread, now)
        after = self.clocks.after_answer(ticket) if ticket is not None else None
        for command in parsed.commands:
            verb = command.verb
            if verb in GLOBAL_VERBS:
                refusal = may(verb, member, None, profile)
                lines.append(Line(command.line, refusal is None, refusal or "ok"))
                if refusal is None:
                    plans.append(Plan(command))
                continue
            if ticket is None:
                lines.append(Line(command.line, False, "no_ticket"))
                continue
            if not signed:
                lines.append(Line(command.line, False, "not_signed"))
                continue
            if not vouched:
                lines.append(Line(command.line, False, "not_authenticated"))
                continue
            if expired:
                lines.append(Line(command.line, False, "token_expired", {"days": self._token_days}))
                continue
            facts = TicketFacts(state or ticket.state, assignee, after.step if after else None)
            refusal = may(verb, member, facts, profile)
            if refusal:
                lines.append(Line(command.line, False, refusal))
                continue
            if verb in STATE_CHANGING:
                assert thread is not None
                overtaken = self.overtaken(session, ticket, thread, member)
                if overtaken is not None:
                    lines.append(Line(command.line, False, "already_handled", overtaken))
                    continue
                try:
                    new_state = next_state(state, EVENT_FOR[verb])
                except InvalidTransition:
                    lines.append(
                        Line(command.line, False, "bad_state", {"state": (state or ticket.state).value})
                    )
                    continue
            plan = Plan(command)
            if verb in (Verb.ASSIGN, Verb.FORWARD):
                line = self._resolve_person(command, member, profile, plan)
                if not line.ok:
                    lines.append(line)
                    continue
                if plan.target is not None and verb is Verb.ASSIGN:
                    assignee = plan.target.emails[0]
            if verb is Verb.NORMATIVE:
                assignee = member.emails[0]  # an ANSWER in the same mail is the assignee's
            if verb is Verb.ANSWER and not command.arg.strip():
                lines.append(Line(command.line, False, "empty_answer"))
                continue
            if verb is Verb.REPORT and not command.arg.strip():
                lines.append(Line(command.line, False, "empty_report"))
                continue
            if verb in STATE_CHANGING:
                state = new_state
            lines.append(Line(command.line, True, "ok"))
            plans.append(plan)
        return lines, plans

    @property
    def _token_days(self) -> int:
        return self.config.settings.security.command_token_days

    def _token_expired(self, session: Session, thread: ThreadMatch | None, now: datetime) -> bool:
        """A command token older than `security.command_token_days`: a late reply acts on nothing
        (the transcript it gets is a fresh mail to act on)."""
        if thread is None or not thread.answered or self._token_days <= 0:
            return False
        sent = store.outbound_created_at(session, thread.answered)
        return sent is not None and now - sent > timedelta(days=self._token_days)

    @staticmethod
    def repeated(ticket: models.Ticket, answered: str, signature: list[str]) -> bool:
        return bool(signature) and any(
            e.kind == "commands"
            and e.data.get("answered") == answered
            and e.data.get("commands") == signature
            for e in ticket.events
        )

    def overtaken(
        self, session: Session, ticket: models.Ticket, thread: ThreadMatch, member: StaffMember
    ) -> dict[str, Any] | None:
        """The state change someone else made after the mail this command answers, if any."""
        outbound_id = session.execute(
            select(models.OutboundMessage.id).where(models.OutboundMessage.message_id == thread.answered)
        ).scalar_one_or_none()
        events = list(ticket.events)  # in the order they happened
        queued = next(
            (i for i, e in enumerate(events) if e.outbound_id == outbound_id and e.kind == "mail_queued"),
            None,
        )
        if outbound_id is None or queued is None:
            return None
        # What came after our mail was queued, the sender has not seen.
        for event in events[queued + 1 :]:
            if event.kind in _STATE_EVENTS and event.actor not in member.emails:
                who = self.replies.public_person(event.actor)
                return {
                    "kind": event.kind,
                    "actor": who.name if who else event.actor,
                    "at": event.at.astimezone(self.replies.tz),
                    "state": event.state,
                }
        return None

    def _resolve_person(self, command: Command, member: StaffMember, profile: Profile, plan: Plan) -> Line:
        if command.verb is Verb.FORWARD:
            pool = list(self.config.staff_with_roles(["vendor"], profile.id))
        else:
            mine = level(profile, member.role)
            pool = [
                m
                for m in self.config.staff
                if m.active
                and (not m.profiles or profile.id in m.profiles)
                and (lvl := level(profile, m.role)) is not None
                and lvl > (mine if mine is not None else 0)
                and m.role != "vendor"
            ]
        found = match_person(command.arg, pool)
        if not found and command.verb is Verb.ASSIGN:
            # Someone who exists but is not below the sender: say so, not "no such person".
            others = [m for m in self.config.staff if m.active and m.role != "vendor"]
            sideways = match_person(command.arg, others)
            if len(sideways) == 1:
                return Line(command.line, False, "not_below", {"name": sideways[0].name})
        if not found:
            return Line(command.line, False, "unknown_person", {"name": command.arg, "candidates": pool})
        if len(found) > 1:
            return Line(command.line, False, "ambiguous_person", {"name": command.arg, "candidates": found})
        target = found[0]
        if command.verb is Verb.ASSIGN:
            refusal = can_receive(profile, member, target)
            if refusal:
                return Line(command.line, False, refusal, {"name": target.name})
        plan.target = target
        return Line(command.line, True, "ok")
