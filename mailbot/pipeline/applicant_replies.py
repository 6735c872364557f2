"""The applicant's mail in a ticket's thread: follow-ups relayed to the handler, reopening or a
linked new ticket after the answer, and the survey (SOP 002 steps 7-8)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailbot.config import Config
from mailbot.core.classify import courtesy_only, out_of_office_reply
from mailbot.core.message import InboundMessage
from mailbot.core.survey import ELEMENTS, SurveyReply, parse_survey
from mailbot.core.workflow import OPEN_STATES, Event, State
from mailbot.pipeline.replies import Replies
from mailbot.pipeline.requests import Requests
from mailbot.settings import Profile
from mailbot.shell import models
from mailbot.shell.persist import Effects


class ApplicantReplies:
    """What an applicant writes in the thread of an existing ticket (not awaiting data)."""

    def __init__(self, config: Config, replies: Replies, requests: Requests) -> None:
        self.config = config
        self.replies = replies
        self.requests = requests

    def applicant_follow_up(
        self,
        session: Session,
        effects: Effects,
        row: models.InboundMessage,
        msg: InboundMessage,
        ticket: models.Ticket,
        now: datetime,
    ) -> None:
        """Recorded, and forwarded to whoever handles the ticket now.

        After the answer, a reply is the survey when it carries survey answers; otherwise a
        further question reopens the ticket within the profile's window, or (later) opens
        a new ticket linked to this one.
        """
        profile = self.config.profiles.get(ticket.profile, self.config.profile)
        text = msg.new_text.strip()
        if out_of_office_reply(msg):
            # The applicant's own vacation reply to our mail: recorded, reopens and relays nothing.
            effects.record(ticket, "applicant_auto_reply", actor=msg.from_addr, now=now, detail=text[:2000])
            return
        if ticket.state in (State.ANSWERED, State.CLOSED, State.REJECTED):
            if ticket.state is State.ANSWERED and profile.survey:
                reply = parse_survey(msg.text, msg.html_text)
                if reply.found:
                    self.survey_reply(session, effects, row, ticket, profile, reply, now)
                    return
            if courtesy_only(text):
                # "Terima kasih, sudah jelas": recorded; only a reply that asks something reopens.
                effects.record(
                    ticket,
                    "applicant_thanks",
                    actor=msg.from_addr,
                    now=now,
                    inbound=row,
                    detail=text[:2000],
                )
                if ticket.state is State.ANSWERED and profile.survey:
                    ctx = {**self.replies.context(ticket, profile), "survey_elements": ELEMENTS}
                    self.replies.send_to_applicant(
                        session, effects, ticket, profile, "survey_again", "survey_again", ctx, now
                    )
                return
            if not text:
                effects.record(
                    ticket,
                    "applicant_follow_up",
                    actor=msg.from_addr,
                    now=now,
                    inbound=row,
                    detail="(empty)",
                )
                return
            answered_at = next((e.at for e in reversed(ticket.events) if e.kind == Event.ANSWER.value), None)
            window = timedelta(days=profile.reopen_window_days)
            if ticket.state is State.REJECTED or answered_at is None or now - answered_at > window:
                self.requests.open_linked(session, effects, row, msg, ticket, now)
                return
            effects.transition(
                ticket,
                Event.REOPEN,
                actor=msg.from_addr,
                now=now,
                inbound=row,
                detail=text[:4000],
            )
        elif ticket.state is State.WAITING_APPLICANT:
            effects.transition(
                ticket,
                Event.INFO_RECEIVED,
                actor=msg.from_addr,
                now=now,
                inbound=row,
                detail=text[:4000],
            )
        else:
            effects.record(
                ticket,
                "applicant_follow_up",
                actor=msg.from_addr,
                now=now,
                detail=text[:4000],
                inbound=row,
            )
        if ticket.state not in OPEN_STATES:
            return
        handler = self.config.staff_by_email(ticket.assignee_email) if ticket.assignee_email else None
        recipients = [handler] if handler else self.replies.leads(profile)
        for person in recipients:
            self.replies.relay(
                session, effects, ticket, profile, person, text, "follow_up", ticket.applicant_name, row, now
            )

    def survey_reply(
        self,
        session: Session,
        effects: Effects,
        row: models.InboundMessage,
        ticket: models.Ticket,
        profile: Profile,
        reply: SurveyReply,
        now: datetime,
    ) -> None:
        """Record survey answers; a complete survey closes the ticket (SOP 002 steps 7-8)."""
        survey = session.execute(
            select(models.Survey).where(models.Survey.ticket_id == ticket.id)
        ).scalar_one_or_none()
        if survey is None:
            survey = models.Survey(
                ticket_id=ticket.id, scores={}, comment="", complete=False, received_at=now
            )
            session.add(survey)
        scores = {**survey.scores, **{str(k): v for k, v in reply.scores.items()}}
        survey.scores = scores
        survey.comment = reply.comment or survey.comment
        survey.received_at = now
        have = {int(k): int(v) for k, v in scores.items()}
        missing = reply.missing(have)
        effects.record(
            ticket,
            "survey_answer",
            actor=ticket.applicant_email,
            now=now,
            inbound=row,
            detail=" ".join(f"U{k}={v}" for k, v in sorted(have.items()))
            + (
                f"; salah: {', '.join(f'U{e.element}={e.value}' for e in reply.errors)}"
                if reply.errors
                else ""
            ),
        )
        ctx = {**self.replies.context(ticket, profile), "elements": ELEMENTS, "have": have}
        if reply.errors or missing:
            ctx |= {"errors": reply.errors, "missing": missing}
            self.replies.send_to_applicant(
                session,
                effects,
                ticket,
                profile,
                "survey_incomplete",
                "survey_incomplete",
                ctx,
                now,
            )
            return
        survey.complete = True
        survey.profile = ticket.profile
        survey.unit = str(ticket.fields.get("unit", ""))[:200]
        survey.consultant = ticket.assignee_email or ""
        effects.transition(
            ticket,
            Event.SURVEY_RECEIVED,
            actor=ticket.applicant_email,
            now=now,
            inbound=row,
            detail=survey.comment[:2000],
        )
        self.replies.send_to_applicant(
            session,
            effects,
            ticket,
            profile,
            "survey_thanks",
            "survey_thanks",
            ctx,
            now,
        )
