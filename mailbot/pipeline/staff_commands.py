"""Staff commands by email: authorize, execute all-or-nothing, answer with one transcript.

A command counts only when the sender is an active staff member whose role
permits it on that ticket, and the mail answers one of our mails through a
token signed for that sender (tokens.py); optionally the organisation's own
server must vouch for the sender (Authentication-Results). Validation runs
over every command of a mail before any is executed, so a mail never acts halfway.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailbot.config import Config
from mailbot.core.authz import GLOBAL_VERBS, TicketFacts, can_receive, is_lead, level, may
from mailbot.core.classify import Kind, ThreadMatch, out_of_office
from mailbot.core.commands import Command, ParsedCommands, Verb, match_person, parse_commands
from mailbot.core.message import InboundMessage
from mailbot.core.sender_auth import sender_verified
from mailbot.core.survey import ELEMENTS
from mailbot.core.workflow import (
    OPEN_STATES,
    Event,
    InboundStatus,
    InvalidTransition,
    State,
    next_inbound,
    next_state,
)
from mailbot.core.working_time import STEP_DONE
from mailbot.pipeline.replies import Replies, attachments_of
from mailbot.pipeline.sweep import Clocks, role_people, step_people
from mailbot.settings import Profile, StaffMember, Step
from mailbot.shell import models, store

log = logging.getLogger(__name__)

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
_EVENT_FOR = {
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


class StaffCommands:
    """A staff member's mail: commands checked, executed all or nothing, and one transcript."""

    def __init__(self, config: Config, replies: Replies) -> None:
        self.config = config
        self.replies = replies
        self.clocks = Clocks(config)

    # --- staff mail ----------------------------------------------------------------------

    def staff_mail(
        self,
        session: Session,
        row: models.InboundMessage,
        msg: InboundMessage,
        member: StaffMember,
        thread: ThreadMatch | None,
        kind: Kind,
        now: datetime,
    ) -> None:
        ticket = store.get_ticket(session, thread.ticket_id) if thread else None
        if ticket is not None:
            row.ticket = ticket
        parsed = parse_commands(msg.new_text)
        if parsed.empty:
            self._plain_reply(session, row, msg, member, ticket, thread, now)
            return
        profile = (
            self.config.profiles.get(ticket.profile, self.config.profile) if ticket else self.config.profile
        )
        lines, plans = self._check(session, row, msg, member, ticket, thread, parsed, profile, now)
        signature = [f"{p.command.verb.value} {p.command.arg}".strip() for p in plans]
        answered = thread.answered if thread is not None and thread.via == "token" else ""
        if ticket is not None and answered and self._repeated(ticket, answered, signature):
            # The same commands answering the same mail of ours: a copy (a resend, a new
            # Message-ID on the same text), never a second execution.
            lines = [Line(x.line, False, "repeat") for x in lines]
            plans = []
        executed = bool(plans) and all(line.ok for line in lines)
        if executed:
            assert ticket is not None or all(p.command.verb in GLOBAL_VERBS for p in plans)
            # Notes, flags and extensions first, whatever the order written: the mails that a
            # state change sends (the Surat Tugas) then carry them.
            order = sorted(range(len(plans)), key=lambda i: plans[i].command.verb in STATE_CHANGING)
            done: dict[int, Line] = {}
            for i in order:
                done[i] = self._execute(session, row, msg, member, ticket, profile, plans[i], now)
            lines = [done[i] for i in range(len(plans))]
        elif plans:
            for line in lines:
                if line.ok:
                    line.ok, line.code = False, "not_executed"
        if ticket is not None:
            store.record_event(
                session,
                ticket,
                "commands" if executed else "commands_refused",
                actor=member.emails[0],
                now=now,
                inbound=row,
                detail="; ".join(f"{x.line} → {x.code}" for x in lines)[:4000],
                data={"answered": answered, "commands": signature} if executed else None,
            )
        self._transcript(session, msg, member, ticket, profile, lines, executed, now)

    def _check(
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
                overtaken = self._overtaken(session, ticket, thread, member)
                if overtaken is not None:
                    lines.append(Line(command.line, False, "already_handled", overtaken))
                    continue
                try:
                    new_state = next_state(state, _EVENT_FOR[verb])
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
    def _repeated(ticket: models.Ticket, answered: str, signature: list[str]) -> bool:
        return bool(signature) and any(
            e.kind == "commands"
            and e.data.get("answered") == answered
            and e.data.get("commands") == signature
            for e in ticket.events
        )

    def _overtaken(
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

    # --- execution ---------------------------------------------------------------------

    def _execute(
        self,
        session: Session,
        row: models.InboundMessage,
        msg: InboundMessage,
        member: StaffMember,
        ticket: models.Ticket | None,
        profile: Profile,
        plan: Plan,
        now: datetime,
    ) -> Line:
        command = plan.command
        verb = command.verb
        actor = member.emails[0]
        if verb is Verb.HELP:
            return Line(command.line, True, "help")
        if verb is Verb.LIST:
            return Line(command.line, True, "list", {"tickets": self._my_tickets(session, member, profile)})
        assert ticket is not None
        if verb is Verb.STATUS:
            return Line(command.line, True, "status", {"ticket": ticket})
        if verb is Verb.NOTE:
            store.record_event(session, ticket, "note", actor=actor, now=now, detail=command.arg, inbound=row)
            return Line(command.line, True, "noted")
        if verb is Verb.URGENT:
            ticket.urgent = True
            store.record_event(session, ticket, "urgent", actor=actor, now=now, inbound=row)
            return Line(command.line, True, "urgent")
        if verb is Verb.EXTEND:
            ticket.extension_days += command.days
            store.record_event(
                session,
                ticket,
                "extended",
                actor=actor,
                now=now,
                inbound=row,
                detail=f"+{command.days} hari kerja",
                data={"days": command.days},
            )
            return Line(command.line, True, "extended", {"days": command.days})
        if verb is Verb.MEDIUM:
            # The Berita Acara's medium for this ticket (records.documents reads the field).
            ticket.fields = {**ticket.fields, "consultation_medium": command.arg}
            store.record_event(
                session,
                ticket,
                "medium",
                actor=actor,
                now=now,
                inbound=row,
                detail=command.arg,
                data={"medium": command.arg},
            )
            return Line(command.line, True, "medium", {"medium": command.arg})
        if verb in (Verb.REPORT, Verb.ARCHIVE):
            return self._step_done(session, row, member, ticket, profile, command, now)
        event = _EVENT_FOR[verb]
        if verb in (Verb.ASSIGN, Verb.FORWARD):
            assert plan.target is not None
            target = plan.target
            ticket.assignee_email = target.emails[0]
            store.transition(
                session,
                ticket,
                event,
                actor=actor,
                now=now,
                inbound=row,
                detail=f"→ {target.name} <{target.emails[0]}>",
                data={"assignee": target.emails[0], "by": member.name},
            )
            if verb is Verb.ASSIGN:
                self.replies.assigned(session, ticket, profile, member, target, now)
                return Line(command.line, True, "assigned", {"name": target.name})
            self.replies.assignment_mail(session, ticket, profile, member, target, now, kind="forward")
            return Line(command.line, True, "forwarded", {"name": target.name})
        if verb is Verb.NORMATIVE:
            # SOP 000 step 5: a normative question is answered by the secretariat itself. The one
            # who says so takes the ticket: the answer step's clock (step 6) runs for them from now.
            ticket.assignee_email = actor
            store.transition(
                session,
                ticket,
                event,
                actor=actor,
                now=now,
                inbound=row,
                detail=f"normatif: dijawab oleh {member.name}",
                data={"assignee": actor, "by": member.name},
            )
            step = _step(profile, profile.state_steps.get("assigned", ""))
            duration = step.deadline.describe(profile.language) if step else ""
            return Line(command.line, True, "normative", {"duration": duration})
        if verb is Verb.ANSWER:
            self.answer(session, ticket, profile, member, command.arg, row, msg, now)
            return Line(command.line, True, "answered")
        if verb is Verb.REQUEST_INFO:
            store.transition(session, ticket, event, actor=actor, now=now, inbound=row, detail=command.arg)
            ctx = {**self.replies.context(ticket, profile), "question_for_applicant": command.arg}
            self.replies.send_to_applicant(
                session,
                ticket,
                profile,
                "request_info",
                "request_info",
                ctx,
                now,
            )
            return Line(command.line, True, "info_requested")
        if verb in (Verb.CLOSE, Verb.REJECT):
            store.transition(session, ticket, event, actor=actor, now=now, inbound=row, detail=command.arg)
            ctx = {**self.replies.context(ticket, profile), "reason": command.arg}
            template = "closed" if verb is Verb.CLOSE else "rejected"
            self.replies.send(
                session,
                ticket,
                template=template,
                kind=template,
                to_addr=ticket.applicant_email,
                to_name=ticket.applicant_name,
                context=ctx,
                now=now,
                reply_to_applicant=True,
                language=profile.language,
            )
            return Line(command.line, True, template)
        if verb is Verb.REOPEN:
            store.transition(session, ticket, event, actor=actor, now=now, inbound=row)
            return Line(command.line, True, "reopened")
        raise AssertionError(f"unhandled verb {verb}")

    def answer(
        self,
        session: Session,
        ticket: models.Ticket,
        profile: Profile,
        member: StaffMember,
        text: str,
        row: models.InboundMessage,
        msg: InboundMessage,
        now: datetime,
    ) -> None:
        """The answer reaches the applicant with a copy of the consultation history."""
        store.transition(
            session,
            ticket,
            Event.ANSWER,
            actor=member.emails[0],
            now=now,
            inbound=row,
            detail=text[:8000],
            data={"answer": text},
        )
        ctx = {
            **self.replies.context(ticket, profile),
            "survey_elements": ELEMENTS if profile.survey else (),
            "answer": text,
            "answered_by": member,
            "public_history": self.replies.public_history(ticket),
        }
        attachments = attachments_of(row.raw)
        self.replies.send_to_applicant(
            session,
            ticket,
            profile,
            "answer",
            "answer",
            ctx,
            now,
            attachments=attachments,
        )
        if profile.after_answer:
            # SOP 001 step 4: the customer service writes the report on the answer given.
            self._after_answer_mails(session, ticket, profile, now)

    # --- the steps after the answer (SOP 001 steps 4-5, SOP 004 steps 7-8) --------------------

    def _step_done(
        self,
        session: Session,
        row: models.InboundMessage,
        member: StaffMember,
        ticket: models.Ticket,
        profile: Profile,
        command: Command,
        now: datetime,
    ) -> Line:
        """REPORT or ARCHIVE: the running step after the answer is done (checked by `may`); a
        report goes to the step's `report_to`, and the next step's people are told theirs."""
        clock = self.clocks.after_answer(ticket)
        step = _step(profile, clock.step) if clock else None
        assert step is not None  # authz.may checked that a step of the sender's runs
        report = command.arg if command.verb is Verb.REPORT else ""
        store.record_event(
            session,
            ticket,
            STEP_DONE,
            actor=member.emails[0],
            now=now,
            inbound=row,
            detail=f"{step.title}" + (f": {report[:4000]}" if report else ""),
            data={"step": step.id, "report": report} if report else {"step": step.id},
        )
        sent = self._after_answer_mails(session, ticket, profile, now, done=step, by=member, report=report)
        if report:
            return Line(command.line, True, "reported", {"step": step.title, "names": sent})
        return Line(command.line, True, "step_done", {"step": step.title})

    def _after_answer_mails(
        self,
        session: Session,
        ticket: models.Ticket,
        profile: Profile,
        now: datetime,
        *,
        done: Step | None = None,
        by: StaffMember | None = None,
        report: str = "",
    ) -> list[str]:
        """Mail the report of the step just done to its `report_to`, and the next step (if any) to
        its people; returns the names the report went to."""
        clock = self.clocks.after_answer(ticket)
        task = _step(profile, clock.step) if clock else None
        doers = step_people(self.config, ticket, profile, task.id) if task else []
        readers: list[StaffMember] = []
        if done is not None and report:
            for role in done.report_to:
                readers += role_people(self.config, ticket, profile, role)
        recipients: dict[str, StaffMember] = {}
        for person in [*readers, *doers]:
            recipients.setdefault(person.emails[0], person)
        if task is not None and not doers:
            store.record_event(
                session,
                ticket,
                "no_recipient",
                actor="system",
                now=now,
                detail=f"no active staff with role {task.actor} for the step {task.id}",
            )
        answer = next((e for e in reversed(ticket.events) if e.kind == Event.ANSWER.value), None)
        for address, person in recipients.items():
            mine = task is not None and clock is not None and any(address in p.emails for p in doers)
            ctx = {
                **self.replies.context(ticket, profile),
                "recipient": person,
                "task": {
                    "title": task.title,
                    "duration": task.deadline.describe(profile.language),
                    "due_at": clock.due_at.astimezone(self.replies.tz),
                    "report": bool(task.report_to),
                }
                if mine and task is not None and clock is not None
                else None,
                "report": {"text": report, "by": by, "step": done.title} if done and report else None,
                "answer_text": str((answer.data or {}).get("answer", answer.detail)) if answer else "",
                "history": self.replies.history(ticket),
            }
            self.replies.send_to_staff(
                session, ticket, profile, person, "record_step", "record_step", ctx, now
            )
        return [p.name for p in readers]

    def _transcript(
        self,
        session: Session,
        msg: InboundMessage,
        member: StaffMember,
        ticket: models.Ticket | None,
        profile: Profile,
        lines: list[Line],
        executed: bool,
        now: datetime,
    ) -> None:
        if ticket is None:
            # A transcript outside any ticket (HELP, LIST): threaded to the staff member's mail only.
            self.replies.send_plain(
                session,
                template="transcript",
                kind="transcript",
                to_addr=member.emails[0],
                to_name=member.name,
                context={
                    "service": self.config.service,
                    "profile": profile,
                    "ticket": None,
                    "lines": lines,
                    "executed": executed,
                    "member": member,
                    "tz": self.replies.tz,
                },
                now=now,
                in_reply_to=msg.message_id,
                language=profile.language,
            )
            return
        ctx = {
            **self.replies.context(ticket, profile),
            "lines": lines,
            "executed": executed,
            "member": member,
            "history": self.replies.history(ticket),
        }
        refs = (*msg.references, msg.message_id) if msg.message_id else msg.references
        self.replies.send_to_staff(
            session,
            ticket,
            profile,
            member,
            "transcript",
            "transcript",
            ctx,
            now,
            thread=(msg.message_id, tuple(refs)),
        )

    def _plain_reply(
        self,
        session: Session,
        row: models.InboundMessage,
        msg: InboundMessage,
        member: StaffMember,
        ticket: models.Ticket | None,
        thread: ThreadMatch | None,
        now: datetime,
    ) -> None:
        """A staff reply without commands: the assignee's answer, a vendor's report, or a note."""
        if ticket is None:
            row.status = next_inbound(row.status, InboundStatus.IGNORED)
            return
        profile = self.config.profiles.get(ticket.profile, self.config.profile)
        text = msg.new_text.strip()
        signed = thread is not None and thread.via == "token"
        mine = ticket.assignee_email is not None and ticket.assignee_email in member.emails
        if out_of_office(text):
            # An out-of-office reply (no header said so) is never an answer nor a report: the
            # applicant would get "Saya sedang cuti …" as the office's answer. Held, and the
            # assignee (and the leads) told how to send it as the answer if it is one — once per
            # ticket and person: their responder answering our notice is not told again (a loop).
            told = any(e.kind == "staff_auto_reply" and e.actor == msg.from_addr for e in ticket.events)
            store.record_event(
                session, ticket, "staff_auto_reply", actor=msg.from_addr, now=now, detail=text[:2000]
            )
            if signed and mine and not told and member.role != "vendor" and ticket.state is State.ASSIGNED:
                self._answer_held(session, ticket, profile, member, row, now)
            return
        if signed and mine and text and member.role != "vendor" and ticket.state is State.ASSIGNED:
            overtaken = self._overtaken(session, ticket, thread, member) if thread else None
            if overtaken is None:
                self.answer(session, ticket, profile, member, text, row, msg, now)
                return
        store.record_event(
            session,
            ticket,
            "staff_reply",
            actor=msg.from_addr,
            now=now,
            detail=text[:4000],
            inbound=row,
        )
        if signed and member.role == "vendor" and text:
            # SOP 003: the vendor's report goes to the team, who answer the applicant.
            for lead in self.replies.leads(profile):
                self.replies.relay(
                    session, ticket, profile, lead, text, "vendor_report", member.name, row, now
                )

    def _answer_held(
        self,
        session: Session,
        ticket: models.Ticket,
        profile: Profile,
        member: StaffMember,
        row: models.InboundMessage,
        now: datetime,
    ) -> None:
        """Tell the assignee (and the leads) that a reply that reads as out-of-office was not sent."""
        people = [member, *(p for p in self.replies.leads(profile) if p.emails[0] != member.emails[0])]
        for person in people:
            ctx = {**self.replies.context(ticket, profile), "recipient": person, "assignee": member}
            self.replies.send_to_staff(
                session,
                ticket,
                profile,
                person,
                "answer_held",
                "answer_held",
                ctx,
                now,
            )

    def _my_tickets(self, session: Session, member: StaffMember, profile: Profile) -> list[models.Ticket]:
        stmt = (
            select(models.Ticket).where(models.Ticket.state.in_(list(OPEN_STATES))).order_by(models.Ticket.id)
        )
        if not is_lead(profile, member):
            stmt = stmt.where(models.Ticket.assignee_email.in_(member.emails))
        return list(session.execute(stmt.limit(200)).scalars())


def _step(profile: Profile, step_id: str) -> Step | None:
    return next((s for s in profile.steps if s.id == step_id), None)
