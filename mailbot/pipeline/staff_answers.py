"""A staff member's reply without commands: the assignee's answer to the applicant (with the
consultation history and the survey), a vendor's report, or a reply kept in the history; and the
replies that read as an answer but are held (out-of-office, commands below the first line, a
short reply to the office), with a word to the assignee."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from mailbot.config import Config
from mailbot.core.authz import is_lead
from mailbot.core.classify import ThreadMatch, out_of_office_reply
from mailbot.core.message import InboundMessage
from mailbot.core.staff_signature import strip_staff_signature
from mailbot.core.staff_text import not_an_answer
from mailbot.core.survey import ELEMENTS
from mailbot.core.workflow import Event, InboundStatus, State, next_inbound
from mailbot.pipeline.after_answer import AfterAnswerSteps
from mailbot.pipeline.replies import Replies, attachments_of
from mailbot.pipeline.staff_checks import CommandChecks
from mailbot.settings import Profile, StaffMember
from mailbot.shell import models
from mailbot.shell.persist import Effects

log = logging.getLogger(__name__)
# Notices that a staff member's reply was only recorded, per person, ticket and day: a person
# replying again and again to them is told a few times, not each time.
MAX_REPLY_NOTICES_PER_DAY = 3


class StaffAnswers:
    """The answer to the applicant, and a staff reply that carries no command."""

    def __init__(
        self, config: Config, replies: Replies, checks: CommandChecks, after_answer: AfterAnswerSteps
    ) -> None:
        self.config = config
        self.replies = replies
        self.checks = checks
        self.after_answer = after_answer

    def answer(
        self,
        session: Session,
        effects: Effects,
        ticket: models.Ticket,
        profile: Profile,
        member: StaffMember,
        text: str,
        row: models.InboundMessage,
        msg: InboundMessage,
        now: datetime,
        *,
        files: bool = True,
    ) -> list[str]:
        """The answer reaches the applicant with a copy of the consultation history, and the
        mail's files unless `files` is False (the mail also carries an internal note): then the
        names of the files kept back are returned, for the transcript, and recorded. The signer's
        own signature block (name, NIP, phone) is not part of the office's answer."""
        text = strip_staff_signature(
            text, names=[member.name, *member.aliases], nip=member.nip, position=member.position
        )
        effects.transition(
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
        kept: list[str] = []
        if attachments and not files:
            kept = [a.filename for a in attachments]
            attachments = ()
            effects.record(
                ticket,
                "answer_files_kept",
                actor=member.emails[0],
                now=now,
                inbound=row,
                detail="kept from the applicant (the mail also carries an internal note): " + ", ".join(kept),
                data={"files": kept},
            )
        self.replies.send_to_applicant(
            session,
            effects,
            ticket,
            profile,
            "answer",
            "answer",
            ctx,
            now,
            attachments=attachments,
            by_staff=True,
        )
        if profile.after_answer:
            # SOP 001 step 4: the customer service writes the report on the answer given.
            self.after_answer.mails(session, effects, ticket, profile, now)
        return kept

    def plain_reply(
        self,
        session: Session,
        effects: Effects,
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
        if out_of_office_reply(msg):
            # An out-of-office reply (no header said so) is never an answer nor a report: the
            # applicant would get "Saya sedang cuti …" as the office's answer. Held, and the
            # assignee (and the leads) told how to send it as the answer if it is one — once per
            # ticket and person: their responder answering our notice is not told again (a loop).
            told = any(e.kind == "staff_auto_reply" and e.actor == msg.from_addr for e in ticket.events)
            effects.record(ticket, "staff_auto_reply", actor=msg.from_addr, now=now, detail=text[:2000])
            if signed and mine and not told and member.role != "vendor" and ticket.state is State.ASSIGNED:
                self._answer_held(session, effects, ticket, profile, member, row, now, "out_of_office")
            return
        if signed and mine and text and member.role != "vendor" and ticket.state is State.ASSIGNED:
            overtaken = self.checks.overtaken(session, ticket, thread, member) if thread else None
            # Not the office's answer, though it would be sent as one: commands under a first line
            # that is none (internal text), or a short reply to the office ("Siap, segera saya
            # tindaklanjuti"). Held; the assignee is told how to send it if it is the answer.
            why = not_an_answer(text) if overtaken is None else None
            if overtaken is None and why is None:
                self.answer(session, effects, ticket, profile, member, text, row, msg, now)
                return
            if why is not None:
                effects.record(
                    ticket,
                    "staff_reply",
                    actor=msg.from_addr,
                    now=now,
                    detail=text[:4000],
                    inbound=row,
                    data={"held": why},
                )
                self._answer_held(session, effects, ticket, profile, member, row, now, why)
                return
        since = now - timedelta(days=1)
        told_today = sum(
            1 for e in ticket.events if e.kind == "staff_reply" and e.actor == msg.from_addr and e.at >= since
        )
        effects.record(
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
                    session, effects, ticket, profile, lead, text, "vendor_report", member.name, row, now
                )
        elif signed and text and told_today < MAX_REPLY_NOTICES_PER_DAY:
            # Kept in the history, and nothing else happens: the sender is told so, never left
            # to believe that an answer went out or that a command ran.
            if mine and ticket.state is State.ASSIGNED:
                why = "overtaken"
            elif is_lead(profile, member):
                why = "no_command"
            else:
                why = "not_assignee"
            self._answer_held(session, effects, ticket, profile, member, row, now, why)

    def _answer_held(
        self,
        session: Session,
        effects: Effects,
        ticket: models.Ticket,
        profile: Profile,
        member: StaffMember,
        row: models.InboundMessage,
        now: datetime,
        why: str,
    ) -> None:
        """Tell the assignee that their reply was not sent as the answer, and why (`not_an_answer`,
        or "out_of_office"); an out-of-office reply is told to the leads too (the assignee may be
        away)."""
        leads = self.replies.leads(profile) if why == "out_of_office" else []
        people = [member, *(p for p in leads if p.emails[0] != member.emails[0])]
        for person in people:
            ctx = {
                **self.replies.context(ticket, profile),
                "recipient": person,
                "assignee": member,
                "why": why,
            }
            self.replies.send_to_staff(
                session,
                effects,
                ticket,
                profile,
                person,
                "answer_held",
                "answer_held",
                ctx,
                now,
            )
