"""New requests and their completion: open the ticket, ask for what is missing, register it
(acknowledge, route, notify the leads or assign)."""

from __future__ import annotations

import logging
import re
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from mailbot.config import Config
from mailbot.core import routing
from mailbot.core.classify import no_autoreply_reason
from mailbot.core.fields import extract_fields, merge_fields, strip_closing, validate_fields
from mailbot.core.message import InboundMessage, UnreadableMessage, parse_message
from mailbot.core.routing import Routing
from mailbot.core.workflow import Event
from mailbot.pipeline.after_answer import step_of
from mailbot.pipeline.replies import Replies
from mailbot.settings import Profile, StaffMember
from mailbot.shell import models, store
from mailbot.shell.persist import Effects

log = logging.getLogger(__name__)


class Requests:
    """A request from an applicant: the ticket it opens and the data it still needs."""

    def __init__(self, config: Config, replies: Replies) -> None:
        self.config = config
        self.replies = replies
        self.tz = replies.tz

    def open_linked(
        self,
        session: Session,
        effects: Effects,
        row: models.InboundMessage,
        msg: InboundMessage,
        parent: models.Ticket,
        now: datetime,
    ) -> None:
        """A follow-up after the reopen window: a new ticket, linked to the old one, with the
        applicant's data carried over and the new text as the question."""
        effects.record(
            parent,
            "follow_up_new_ticket",
            actor=msg.from_addr,
            now=now,
            inbound=row,
            detail=msg.new_text[:2000],
        )
        self.new_request(session, effects, row, msg, now, parent=parent)

    def new_request(
        self,
        session: Session,
        effects: Effects,
        row: models.InboundMessage,
        msg: InboundMessage,
        now: datetime,
        parent: models.Ticket | None = None,
    ) -> None:
        profile = (
            self.config.profiles.get(parent.profile, self.config.profile) if parent else self.config.profile
        )
        if parent is None:
            found = dict(msg.request_fields)
        else:
            carried = {k: str(v) for k, v in parent.fields.items() if k != "question"}
            found = merge_fields(extract_fields(msg.new_text), carried)
            if msg.new_text.strip():
                found["question"] = strip_closing(msg.new_text.strip())
        if "name" not in found and msg.from_name:
            # The display name is a fallback, never a reason to skip asking for a name.
            found["name"] = msg.from_name
        if msg.attachments:
            # SOP 003: a photo, screenshot or video attached is the complaint's evidence.
            found["evidence_files"] = _file_names(msg)
        validation = validate_fields(found, profile.required_fields, now.astimezone(self.tz).date())
        number = store.next_ticket_number(session, profile, now.astimezone(self.tz).year)
        ticket = models.Ticket(
            number=number,
            profile=profile.id,
            # The applicant is the sender (From), never a Reply-To (recorded below, shown to staff).
            applicant_email=msg.from_addr,
            applicant_name=validation.values.get("name", msg.from_name)[:200],
            subject=msg.subject[:500],
            fields={
                **{k: v for k, v in found.items() if k not in validation.values},
                **validation.values,
            },
            issues=[_issue_dict(i) for i in validation.issues],
            root_message_id=msg.message_id,
            parent_id=parent.id if parent else None,
            created_at=now,
            updated_at=now,
        )
        event = Event.REQUEST_COMPLETE if validation.complete else Event.REQUEST_INCOMPLETE
        store.add_ticket(session, ticket)
        effects.transition(
            ticket,
            event,
            actor=msg.from_addr,
            now=now,
            inbound=row,
            detail=_summary(validation.issues),
            data={"warnings": [i.code for i in validation.warnings]},
        )
        row.ticket = ticket
        if other_reply_to(msg):
            effects.record(
                ticket,
                "reply_to_differs",
                actor=msg.from_addr,
                now=now,
                inbound=row,
                detail=f"Reply-To {msg.reply_to} differs from From {msg.from_addr}: not used",
                data={"reply_to": msg.reply_to},
            )
        if validation.complete:
            self._registered(session, effects, ticket, profile, msg, now)
        else:
            self._ask_missing(session, effects, ticket, profile, msg, now, still=False)

    def info_received(
        self,
        session: Session,
        effects: Effects,
        row: models.InboundMessage,
        msg: InboundMessage,
        ticket: models.Ticket,
        now: datetime,
    ) -> None:
        """The applicant's reply to a request awaiting data (the ticket is AWAITING_INFO)."""
        profile = self.config.profiles.get(ticket.profile, self.config.profile)
        new = msg.fields_of(msg.new_text)
        # A reply may carry only the missing value, unlabelled ("19860926 201505 1 001").
        new = _unlabelled_answer(new, msg.new_text, ticket.issues)
        # What the reply states under a label is the applicant's latest word, also for a field
        # given before ("Permasalahan: maaf, pertanyaan saya ubah: …"); unlabelled prose only
        # fills what is missing (a "terima kasih" under the data is no new question).
        labelled = msg.fields_of(msg.new_text, prose_question=False)
        pending = {i["field"] for i in ticket.issues}
        merged = dict(ticket.fields)
        changed = sorted(
            n for n, v in labelled.items() if n not in pending and n in merged and merged[n] != v
        )
        for name, value in new.items():
            if name in pending or name not in merged or name in labelled:
                merged[name] = value
        if msg.attachments:
            # Evidence sent later (the screenshot the reply was asked for) adds to what came before.
            earlier = str(merged.get("evidence_files") or "")
            merged["evidence_files"] = ", ".join(x for x in (earlier, _file_names(msg)) if x)[:400]
        validation = validate_fields(merged, profile.required_fields, now.astimezone(self.tz).date())
        ticket.fields = {**merged, **validation.values}
        ticket.issues = [_issue_dict(i) for i in validation.issues]
        if validation.values.get("name"):
            ticket.applicant_name = validation.values["name"][:200]
        got = sorted((set(new) | ({"evidence"} if msg.attachments else set())) & pending)
        if validation.complete:
            effects.transition(
                ticket,
                Event.REQUEST_COMPLETE,
                actor=msg.from_addr,
                now=now,
                inbound=row,
                detail=f"data completed: {', '.join(got) or '-'}"
                + (f"; changed: {', '.join(changed)}" if changed else ""),
                data={"completed": got, "changed": changed},
            )
            self._registered(session, effects, ticket, profile, msg, now)
        else:
            repeated = self.repeats_earlier_text(session, ticket, row, msg)
            effects.transition(
                ticket,
                Event.INFO_STILL_MISSING,
                actor=msg.from_addr,
                now=now,
                inbound=row,
                detail=_summary(validation.issues),
            )
            self._ask_missing(session, effects, ticket, profile, msg, now, still=True, repeated=repeated)

    def route(self, ticket: models.Ticket, profile: Profile) -> Routing:
        """The field and / or region a new ticket belongs to, and the people one level below the
        lead who serve it (SOP 004: the Inspektur Pembantu of the region; SOP 001: the consultant
        of the field or of the applicant's region)."""
        return routing.route(
            profile,
            ticket.subject,
            str(ticket.fields.get("question", "")),
            str(ticket.fields.get("unit", "")),
            self.config.staff_with_roles(list(profile.delegation[1:2]), profile.id),
        )

    def _registered(
        self,
        session: Session,
        effects: Effects,
        ticket: models.Ticket,
        profile: Profile,
        msg: InboundMessage,
        now: datetime,
    ) -> None:
        """SOP 002 step 2: acknowledge the applicant, pass the request to the head(s).

        With an eligibility roster (SOP 000), an applicant whose NIP is not in it is refused.
        """
        ctx = self.replies.context(ticket, profile)
        roster = self.config.rosters.get(profile.id)
        if roster is not None and ticket.fields.get("id_number", "") not in roster:
            effects.transition(
                ticket,
                Event.REJECT,
                actor="system",
                now=now,
                detail="not eligible: NIP not in the employee roster",
                data={"reason": "not_in_roster"},
            )
            self.replies.send_to_applicant(
                session,
                effects,
                ticket,
                profile,
                "not_eligible",
                "not_eligible",
                ctx,
                now,
                quiet=no_autoreply_reason(msg),
            )
            return
        self.replies.send_to_applicant(
            session,
            effects,
            ticket,
            profile,
            "ack",
            "ack",
            ctx,
            now,
            quiet=no_autoreply_reason(msg),
        )
        recipients = self.config.staff_with_roles(list(profile.notify_roles), profile.id)
        if not recipients:
            effects.record(
                ticket,
                "no_recipient",
                actor="system",
                now=now,
                detail=f"no active staff with role {', '.join(profile.notify_roles)}",
                data={"roles": list(profile.notify_roles)},
            )
            log.error("ticket %s: no staff with role %s to notify", ticket.number, profile.notify_roles)
        routed = self.route(ticket, profile)
        if routed.keys:
            effects.record(
                ticket,
                "routed",
                actor="system",
                now=now,
                detail=f"{routed.label}: {', '.join(m.name for m in routed.people) or '-'}",
                data={str(k): v for k, v in routed.keys.items()},
            )
        if profile.auto_assign_routed and len(routed.best) == 1:
            target = routed.best[0]
            ticket.assignee_email = target.emails[0]
            effects.transition(
                ticket,
                Event.ASSIGN,
                actor="system",
                now=now,
                detail=f"→ {target.name} <{target.emails[0]}> ({routed.label})",
                data={"assignee": target.emails[0], "by": "routing"},
            )
            self.replies.assigned(session, effects, ticket, profile, None, target, now)
            return
        delegates = self.config.staff_with_roles(list(profile.delegation[1:2]), profile.id)
        suggested = routed.people or delegates
        assign_step = step_of(profile, profile.state_steps.get("new", "assign")) or profile.steps[0]
        answer_step = step_of(profile, profile.state_steps.get("assigned", "review"))
        for member in recipients:
            staff_ctx = {
                **ctx,
                "recipient": member,
                "attachments": msg.attachments,
                "assign_step": {
                    "title": assign_step.title,
                    "duration": assign_step.deadline.describe(profile.language),
                },
                "answer_step": {
                    "title": answer_step.title,
                    "duration": answer_step.deadline.describe(profile.language),
                }
                if answer_step
                else None,
                "example_assignee": suggested[0].name if suggested else "<nama>",
                "route": routed.label,
                "routed": routed.people,
                "reply_to": other_reply_to(msg),
            }
            self.replies.send_to_staff(
                session,
                effects,
                ticket,
                profile,
                member,
                "notify_head",
                "notify",
                staff_ctx,
                now,
                language=_staff_language(member, profile),
            )

    def _ask_missing(
        self,
        session: Session,
        effects: Effects,
        ticket: models.Ticket,
        profile: Profile,
        msg: InboundMessage,
        now: datetime,
        *,
        still: bool,
        repeated: bool = False,
    ) -> None:
        ctx = {**self.replies.context(ticket, profile), "issues": ticket.issues, "still": still}
        self.replies.send_to_applicant(
            session,
            effects,
            ticket,
            profile,
            "missing_fields",
            "missing_fields",
            ctx,
            now,
            quiet=no_autoreply_reason(msg)
            or ("the reply repeats an earlier one word for word" if repeated else None),
        )

    def repeats_earlier_text(
        self, session: Session, ticket: models.Ticket, row: models.InboundMessage, msg: InboundMessage
    ) -> bool:
        """Does this reply say, word for word, what the same sender already wrote on this ticket?
        People add something; an auto-responder repeats itself."""
        mine = _words(msg.new_text)
        if not mine:
            return True
        earlier = store.messages_of_ticket(session, ticket.id)[0]
        for other in earlier:
            if other.id == row.id or other.from_addr != msg.from_addr or not other.raw:
                continue
            try:
                if _words(parse_message(other.raw).new_text) == mine:
                    return True
            except UnreadableMessage:
                continue
        return False


def other_reply_to(msg: InboundMessage) -> str:
    """A Reply-To that names someone other than the sender: shown to staff, never written to."""
    return msg.reply_to if msg.reply_to and msg.reply_to != msg.from_addr else ""


def _words(text: str) -> str:
    return " ".join(text.lower().split())


def _file_names(msg: InboundMessage) -> str:
    return ", ".join(a.filename for a in msg.attachments)[:400]


def _staff_language(member: StaffMember, profile: Profile) -> str:
    return profile.language


def _issue_dict(issue: Any) -> dict[str, str]:
    return {
        "field": issue.field,
        "code": issue.code,
        "value": issue.value if issue.field != "question" else "",
    }


def _summary(issues: Any) -> str:
    return "; ".join(f"{i.field}: {i.code}" for i in issues) if issues else "complete"


def _unlabelled_answer(found: dict[str, str], text: str, issues: list[dict[str, str]]) -> dict[str, str]:
    """When exactly one field is pending and the reply has no label, its short text is the value."""
    pending = [i["field"] for i in issues]
    if len(pending) != 1 or pending[0] in found:
        return found
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines:
        return found
    field = pending[0]
    if field == "question":
        return {**found, field: "\n".join(lines)}
    if field in ("id_number", "phone"):
        # "Mohon maaf terlewat. / NIP saya 19860926 201505 2 001 / Terima kasih": the number.
        number = next((m for m in (_NUMBER.search(ln) for ln in lines[:5]) if m is not None), None)
        return {**found, field: number.group()} if number is not None else found
    if len(lines) <= 3:
        return {**found, field: lines[0]}
    return found


# A NIP, NIK or phone number as people write it: digits with spaces, dots or dashes, perhaps +62.
_NUMBER = re.compile(r"\+?\d(?:[ .()-]{0,2}+\d){6,30}+")
