"""The steps after the answer (SOP 001 steps 4-5, SOP 004 steps 7-8): REPORT / ARCHIVE marks the
running one done, its report goes to the step's `report_to`, and the next step's people are told."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from mailbot.config import Config
from mailbot.core.commands import Command, Verb
from mailbot.core.routing import of_region, route_keys
from mailbot.core.workflow import Event
from mailbot.core.working_time import STEP_DONE
from mailbot.pipeline.clocks import Clocks
from mailbot.pipeline.replies import Replies
from mailbot.pipeline.staff_checks import Line
from mailbot.settings import Profile, StaffMember, Step
from mailbot.shell import models
from mailbot.shell.persist import Effects


class AfterAnswerSteps:
    """The mails of the steps after the answer, and a step marked done."""

    def __init__(self, config: Config, replies: Replies, clocks: Clocks) -> None:
        self.config = config
        self.replies = replies
        self.clocks = clocks

    def step_done(
        self,
        session: Session,
        effects: Effects,
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
        step = step_of(profile, clock.step) if clock else None
        assert step is not None  # authz.may checked that a step of the sender's runs
        report = command.arg if command.verb is Verb.REPORT else ""
        effects.record(
            ticket,
            STEP_DONE,
            actor=member.emails[0],
            now=now,
            inbound=row,
            detail=f"{step.title}" + (f": {report[:4000]}" if report else ""),
            data={"step": step.id, "report": report} if report else {"step": step.id},
        )
        sent = self.mails(session, effects, ticket, profile, now, done=step, by=member, report=report)
        if report:
            return Line(command.line, True, "reported", {"step": step.title, "names": sent})
        return Line(command.line, True, "step_done", {"step": step.title})

    def mails(
        self,
        session: Session,
        effects: Effects,
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
        task = step_of(profile, clock.step) if clock else None
        doers = step_people(self.config, ticket, profile, task.id) if task else []
        readers: list[StaffMember] = []
        if done is not None and report:
            for role in done.report_to:
                readers += role_people(self.config, ticket, profile, role)
        recipients: dict[str, StaffMember] = {}
        for person in [*readers, *doers]:
            recipients.setdefault(person.emails[0], person)
        if task is not None and not doers:
            effects.record(
                ticket,
                "no_recipient",
                actor="system",
                now=now,
                detail=f"no active staff with role {task.actor} for the step {task.id}",
                data={"roles": [task.actor], "step": task.title},
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
                session, effects, ticket, profile, person, "record_step", "record_step", ctx, now
            )
        return [p.name for p in readers]


def step_of(profile: Profile, step_id: str) -> Step | None:
    return next((s for s in profile.steps if s.id == step_id), None)


def step_people(config: Config, ticket: models.Ticket, profile: Profile, step_id: str) -> list[StaffMember]:
    """Who does a step after the answer: of the step's actor role, the one who handled this ticket
    (SOP 004: the Inspektur Pembantu who named the auditor), else those of the applicant's region
    (SOP 001: the TU of that region), else everyone with the role."""
    step = step_of(profile, step_id)
    if step is None:
        return []
    return role_people(config, ticket, profile, step.actor)


def role_people(config: Config, ticket: models.Ticket, profile: Profile, role: str) -> list[StaffMember]:
    people = config.staff_with_roles([role], profile.id)
    handled = [
        str((e.data or {}).get("assignee") or "")
        for e in ticket.events
        if e.kind in (Event.ASSIGN.value, Event.NORMATIVE.value)
    ]
    for address in reversed(handled):
        mine = [p for p in people if address in p.emails]
        if mine:
            return mine
    routed = route_keys(
        profile,
        ticket.subject,
        str(ticket.fields.get("question", "")),
        str(ticket.fields.get("unit", "")),
    )
    return of_region(routed.get("region") or routed.get("unit") or "", people)
