"""Staff commands by email: authorize, execute all-or-nothing, answer with one transcript.

A command counts only when the sender is an active staff member whose role
permits it on that ticket, and the mail answers one of our mails through a
token signed for that sender (tokens.py); optionally the organisation's own
server must vouch for the sender (Authentication-Results). Validation runs
over every command of a mail before any is executed (staff_checks.py), so a mail never acts
halfway; the steps after the answer are after_answer.py's.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailbot.config import Config
from mailbot.core.authz import GLOBAL_VERBS, is_lead
from mailbot.core.classify import Kind, ThreadMatch, out_of_office_reply
from mailbot.core.commands import TAKES_THE_REST, Verb, parse_commands
from mailbot.core.message import InboundMessage
from mailbot.core.staff_signature import strip_staff_signature
from mailbot.core.staff_text import text_after_commands
from mailbot.core.workflow import (
    OPEN_STATES,
)
from mailbot.pipeline.after_answer import AfterAnswerSteps, step_of
from mailbot.pipeline.clocks import Clocks
from mailbot.pipeline.notices import claim_notice
from mailbot.pipeline.replies import Replies
from mailbot.pipeline.staff_answers import StaffAnswers
from mailbot.pipeline.staff_checks import EVENT_FOR, STATE_CHANGING, CommandChecks, Line, Plan
from mailbot.settings import Profile, StaffMember
from mailbot.shell import models, store
from mailbot.shell.persist import Effects

log = logging.getLogger(__name__)


class StaffCommands:
    """A staff member's mail: commands checked, executed all or nothing, and one transcript."""

    def __init__(self, config: Config, replies: Replies) -> None:
        self.config = config
        self.replies = replies
        self.clocks = Clocks(config)
        self.checks = CommandChecks(config, replies, self.clocks)
        self.after_answer = AfterAnswerSteps(config, replies, self.clocks)
        self.answers = StaffAnswers(config, replies, self.checks, self.after_answer)

    # --- staff mail ----------------------------------------------------------------------

    def staff_mail(
        self,
        session: Session,
        effects: Effects,
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
            self.answers.plain_reply(session, effects, row, msg, member, ticket, thread, now)
            text = msg.new_text.strip()
            if ticket is None and text and not out_of_office_reply(msg):
                # A staff member's own new mail that is no reply and no command: nothing is done
                # with it, and they are told so (once a day: an autoresponder gets no more).
                key = f"unthreaded:{member.emails[0]}:{now.astimezone(self.replies.tz).date()}"
                if claim_notice(session, key, "unthreaded_staff_mail", None, now):
                    quoted = text.split("\n", 1)[0][:200] + (" …" if "\n" in text else "")
                    profile = self.config.profile
                    line = Line(quoted, False, "unthreaded")
                    self._transcript(session, effects, msg, member, None, profile, [line], False, now)
            return
        profile = (
            self.config.profiles.get(ticket.profile, self.config.profile) if ticket else self.config.profile
        )
        lines, plans = self.checks.check(session, row, msg, member, ticket, thread, parsed, profile, now)
        signature = [f"{p.command.verb.value} {p.command.arg}".strip() for p in plans]
        answered = thread.answered if thread is not None and thread.via == "token" else ""
        if ticket is not None and answered and self.checks.repeated(ticket, answered, signature):
            # The same commands answering the same mail of ours: a copy (a resend, a new
            # Message-ID on the same text), never a second execution.
            lines = [Line(x.line, False, "repeat") for x in lines]
            plans = []
        executed = bool(plans) and all(line.ok for line in lines)
        # Text below the commands is never dropped unsaid: under a disposition (ASSIGN) it is the
        # disposition's note, for the assignee, as on a paper lembar disposisi; anywhere else the
        # transcript says it was not processed (a consultant who wrote NOTE and then the answer
        # learns that no answer went out).
        rest = (
            ""
            if any(c.verb in TAKES_THE_REST for c in parsed.commands)
            else strip_staff_signature(
                text_after_commands(parsed.body, [member.name, *member.aliases]),
                names=[member.name, *member.aliases],
                nip=member.nip,
                position=member.position,
            )
        )
        verbs = {p.command.verb for p in plans}
        disposition_note = bool(rest) and executed and Verb.ASSIGN in verbs and Verb.NOTE not in verbs
        if disposition_note:
            assert ticket is not None
            effects.record(
                ticket,
                "note",
                actor=member.emails[0],
                now=now,
                detail=rest[:4000],
                inbound=row,
                data={"disposition": True},
            )
        if executed:
            assert ticket is not None or all(p.command.verb in GLOBAL_VERBS for p in plans)
            # Notes, flags and extensions first, whatever the order written: the mails that a
            # state change sends (the Surat Tugas) then carry them.
            order = sorted(range(len(plans)), key=lambda i: plans[i].command.verb in STATE_CHANGING)
            if any(p.command.verb is Verb.NOTE for p in plans):
                for p in plans:
                    p.files_to_applicant = False
            done: dict[int, Line] = {}
            for i in order:
                done[i] = self._execute(session, effects, row, msg, member, ticket, profile, plans[i], now)
            lines = [done[i] for i in range(len(plans))]
        elif plans:
            for line in lines:
                if line.ok:
                    line.ok, line.code = False, "not_executed"
        if rest:
            quoted = rest.split("\n", 1)[0][:200] + (" …" if "\n" in rest or len(rest) > 200 else "")
            lines.append(
                Line(quoted, disposition_note, "disposition_note" if disposition_note else "text_ignored")
            )
        if ticket is not None:
            effects.record(
                ticket,
                "commands" if executed else "commands_refused",
                actor=member.emails[0],
                now=now,
                inbound=row,
                detail="; ".join(f"{x.line} → {x.code}" for x in lines)[:4000],
                data={
                    **({"answered": answered, "commands": signature} if executed else {}),
                    "lines": [[x.line[:200], x.ok] for x in lines][:20],
                },
            )
        self._transcript(session, effects, msg, member, ticket, profile, lines, executed, now)

    # --- execution ---------------------------------------------------------------------

    def _execute(
        self,
        session: Session,
        effects: Effects,
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
            effects.record(ticket, "note", actor=actor, now=now, detail=command.arg, inbound=row)
            return Line(command.line, True, "noted")
        if verb is Verb.URGENT:
            ticket.urgent = True
            effects.record(ticket, "urgent", actor=actor, now=now, inbound=row)
            return Line(command.line, True, "urgent")
        if verb is Verb.EXTEND:
            ticket.extension_days += command.days
            effects.record(
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
            effects.record(
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
            return self.after_answer.step_done(session, effects, row, member, ticket, profile, command, now)
        event = EVENT_FOR[verb]
        if verb in (Verb.ASSIGN, Verb.FORWARD):
            assert plan.target is not None
            target = plan.target
            previous = ticket.assignee_email
            ticket.assignee_email = target.emails[0]
            effects.transition(
                ticket,
                event,
                actor=actor,
                now=now,
                inbound=row,
                detail=f"→ {target.name} <{target.emails[0]}>",
                data={"assignee": target.emails[0], "by": member.name},
            )
            if previous and previous not in member.emails and previous not in target.emails:
                self._tell_previous_assignee(session, effects, ticket, profile, previous, member, target, now)
            if verb is Verb.ASSIGN:
                self.replies.assigned(session, effects, ticket, profile, member, target, now)
                return Line(command.line, True, "assigned", {"name": target.name})
            self.replies.assignment_mail(
                session, effects, ticket, profile, member, target, now, kind="forward"
            )
            return Line(command.line, True, "forwarded", {"name": target.name})
        if verb is Verb.NORMATIVE:
            # SOP 000 step 5: a normative question is answered by the secretariat itself. The one
            # who says so takes the ticket: the answer step's clock (step 6) runs for them from now.
            ticket.assignee_email = actor
            effects.transition(
                ticket,
                event,
                actor=actor,
                now=now,
                inbound=row,
                detail=f"normatif: dijawab oleh {member.name}",
                data={"assignee": actor, "by": member.name},
            )
            step = step_of(profile, profile.state_steps.get("assigned", ""))
            duration = step.deadline.describe(profile.language) if step else ""
            return Line(command.line, True, "normative", {"duration": duration})
        if verb is Verb.ANSWER:
            kept = self.answers.answer(
                session,
                effects,
                ticket,
                profile,
                member,
                command.arg,
                row,
                msg,
                now,
                files=plan.files_to_applicant,
            )
            if kept:
                return Line(command.line, True, "answered_files_kept", {"files": kept})
            return Line(command.line, True, "answered")
        # What the applicant reads (the question, the reason): without the sender's signature.
        said = strip_staff_signature(
            command.arg, names=[member.name, *member.aliases], nip=member.nip, position=member.position
        )
        if verb is Verb.REQUEST_INFO:
            effects.transition(ticket, event, actor=actor, now=now, inbound=row, detail=said)
            ctx = {**self.replies.context(ticket, profile), "question_for_applicant": said}
            self.replies.send_to_applicant(
                session,
                effects,
                ticket,
                profile,
                "request_info",
                "request_info",
                ctx,
                now,
                by_staff=True,
            )
            return Line(command.line, True, "info_requested")
        if verb in (Verb.CLOSE, Verb.REJECT):
            effects.transition(ticket, event, actor=actor, now=now, inbound=row, detail=said)
            ctx = {**self.replies.context(ticket, profile), "reason": said}
            template = "closed" if verb is Verb.CLOSE else "rejected"
            self.replies.send(
                session,
                effects,
                ticket,
                template=template,
                kind=template,
                to_addr=ticket.applicant_email,
                to_name=ticket.applicant_name,
                context=ctx,
                now=now,
                reply_to_applicant=True,
                language=profile.language,
                by_staff=True,
            )
            return Line(command.line, True, template)
        if verb is Verb.REOPEN:
            effects.transition(ticket, event, actor=actor, now=now, inbound=row)
            return Line(command.line, True, "reopened")
        raise AssertionError(f"unhandled verb {verb}")

    def _tell_previous_assignee(
        self,
        session: Session,
        effects: Effects,
        ticket: models.Ticket,
        profile: Profile,
        previous: str,
        by: StaffMember,
        target: StaffMember,
        now: datetime,
    ) -> None:
        """A ticket taken from its assignee by someone else: they are told, so that they stop
        work on it (and know that a late answer of theirs is not sent)."""
        earlier = self.config.staff_by_email(previous)
        if earlier is None:
            return
        ctx = {**self.replies.context(ticket, profile), "recipient": earlier, "assignee": target, "by": by}
        self.replies.send_to_staff(
            session, effects, ticket, profile, earlier, "reassigned", "reassigned", ctx, now
        )

    def _transcript(
        self,
        session: Session,
        effects: Effects,
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
                effects,
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
            effects,
            ticket,
            profile,
            member,
            "transcript",
            "transcript",
            ctx,
            now,
            thread=(msg.message_id, tuple(refs)),
        )

    def _my_tickets(self, session: Session, member: StaffMember, profile: Profile) -> list[models.Ticket]:
        stmt = (
            select(models.Ticket).where(models.Ticket.state.in_(list(OPEN_STATES))).order_by(models.Ticket.id)
        )
        if not is_lead(profile, member):
            stmt = stmt.where(models.Ticket.assignee_email.in_(member.emails))
        return list(session.execute(stmt.limit(200)).scalars())
