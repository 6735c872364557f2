"""The only way mail is queued: the context every template gets, the automatic mails to the
applicant and to staff (relays, the assignment), and the history each of them may see."""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import inspect
from sqlalchemy.orm import Session

from mailbot.config import Config
from mailbot.core.attachments import Names, files_of_raw, unique_name
from mailbot.core.authz import level
from mailbot.core.compose import Envelope, MailSpec, OutgoingAttachment, render, ticket_thread
from mailbot.core.fields import FIELDS
from mailbot.core.masking import mask_number
from mailbot.core.public_record import Person, PublicEntry, public_history, zone_name
from mailbot.core.tokens import make_message_id, make_plain_message_id
from mailbot.core.withheld import fit, withheld_text
from mailbot.settings import Profile, StaffMember
from mailbot.shell import models, persist, store
from mailbot.shell.persist import Effects

log = logging.getLogger(__name__)


class Replies:
    """Composes and queues mail; needs the Config and the office's time zone, never a socket."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.tz = ZoneInfo(config.service.timezone)

    # --- context and people ----------------------------------------------------------------

    def context(self, ticket: models.Ticket, profile: Profile) -> dict[str, Any]:
        fields = {name: ticket.fields.get(name, "") for name in FIELDS}
        return {
            "service": self.config.service,
            "profile": profile,
            "ticket": ticket,
            "fields": fields,
            "masked_id": mask_number(fields["id_number"]) if fields["id_number"] else "",
            "masked_phone": mask_number(fields["phone"]) if fields["phone"] else "",
            # The steps still ahead, as the acknowledgment lists them: the applicant's own
            # (sending the request) is done by the time anything is mailed.
            "steps": [
                {"title": s.title, "duration": s.deadline.describe(profile.language)}
                for s in profile.steps
                if s.actor != "applicant"
            ],
            "tz": self.tz,
            "zone": zone_name(self.tz),
            "handler_name": self._name_of(ticket.assignee_email),
        }

    def _name_of(self, address: str | None) -> str:
        """A staff member's name where a name serves (transcripts, notices), else the address."""
        if not address:
            return ""
        member = next((m for m in self.config.staff if address.lower() in m.emails), None)
        return member.name if member else address

    def public_person(self, address: str) -> Person | None:
        """A staff member (active or not) as an applicant may see them: name and position."""
        address = address.lower()
        member = next((m for m in self.config.staff if address in m.emails), None)
        return Person(member.name, member.position) if member else None

    def leads(self, profile: Profile) -> list[StaffMember]:
        return self.config.staff_with_roles(list(profile.notify_roles), profile.id)

    # --- history -----------------------------------------------------------------------

    def history(self, ticket: models.Ticket) -> list[dict[str, Any]]:
        """The internal riwayat konsultasi, for staff: every event but the mail bookkeeping."""
        hidden = {"mail_queued", "mail_sent"}
        return [
            {
                "at": e.at.astimezone(self.tz),
                "actor": e.actor,
                "kind": e.kind,
                "state": e.state,
                "detail": e.detail,
                "data": e.data or {},
            }
            for e in ticket.events
            if e.kind not in hidden
        ]

    def public_history(self, ticket: models.Ticket) -> list[PublicEntry]:
        """The applicant's copy of the riwayat konsultasi: the public view, never the internal log."""
        return public_history(
            ticket.events,
            applicant=ticket.applicant_email,
            question=str(ticket.fields.get("question", "")),
            person=self.public_person,
            tz=self.tz,
        )

    # --- queueing --------------------------------------------------------------------------

    @staticmethod
    def _held(
        effects: Effects,
        ticket: models.Ticket,
        now: datetime,
        event: str,
        why: str,
        kind: str,
        to_addr: str,
        data: dict[str, Any],
    ) -> None:
        """A mail the loop guard or the rate limit keeps back: recorded on the ticket and logged."""
        effects.record(
            ticket,
            event,
            actor="system",
            now=now,
            detail=f"{kind} to {to_addr} {why}",
            data={"mail": kind, "to": to_addr, **data},
        )
        log.warning("%s: %s to %s %s (ticket %s)", event, kind, to_addr, why, ticket.number)

    def send(
        self,
        session: Session,
        effects: Effects,
        ticket: models.Ticket,
        *,
        template: str,
        kind: str,
        to_addr: str,
        to_name: str,
        context: dict[str, Any],
        now: datetime,
        reply_to_applicant: bool,
        language: str,
        quiet: str | None = None,
        thread: tuple[str, tuple[str, ...]] | None = None,
        attachments: tuple[OutgoingAttachment, ...] = (),
        by_staff: bool = False,
    ) -> str | None:
        """Queue one automatic mail, unless a rule says not to; the history says which.

        `by_staff`: a mail a staff member's command sends (the answer, a request for
        information, a closing, a disposition's notice). The loop guard and the rate limit keep
        mailbot from answering a machine that answers it; they never hold back what a person
        decided to send (a busy applicant asking three things a day still gets the answers)."""
        if quiet:
            effects.record(
                ticket,
                "reply_suppressed",
                actor="system",
                now=now,
                detail=f"{kind} to {to_addr} not sent: {quiet}",
                data={"mail": kind, "to": to_addr, "reason": quiet},
            )
            return None
        if not to_addr:
            effects.record(
                ticket,
                "mail_not_sent",
                actor="system",
                now=now,
                detail=f"{kind}: the request has no sender address to answer",
                data={"mail": kind},
            )
            log.warning("ticket %s: no address to send %s to", ticket.number, kind)
            return None
        limits = self.config.settings.limits
        fresh = ticket.created_at == now  # a ticket opened by this very mail has sent nothing yet
        outsider = self.config.staff_by_email(to_addr) is None
        if reply_to_applicant and not fresh and outsider and not by_staff:
            sent = store.thread_mail_times(
                session, effects, ticket.id, to_addr.lower(), kind, now - timedelta(days=1)
            )
            if len(sent) >= limits.same_reply_per_day:
                return self._held(
                    effects,
                    ticket,
                    now,
                    "reply_suppressed",
                    f"not sent: loop guard ({len(sent)} today)",
                    kind,
                    to_addr,
                    {"guard": "loop", "count": len(sent)},
                )
        if (
            outsider
            and not by_staff
            and (
                store.auto_mail_count(session, effects, to_addr.lower(), store.since(now, 1))
                >= limits.auto_replies_per_recipient_per_hour
            )
        ):
            return self._held(
                effects,
                ticket,
                now,
                "mail_suppressed",
                "held back: rate limit per recipient reached",
                kind,
                to_addr,
                {"guard": "rate"},
            )
        domain = self.config.service.address.split("@", 1)[1]
        rendered = render(template, language, context, self.config.templates_dir)
        # Every mail of a ticket, to anyone, threads to the request (#21 item 7).
        in_reply_to, references = ticket_thread(ticket.root_message_id, thread)
        spec = MailSpec(
            to_addr=to_addr,
            to_name=to_name,
            rendered=rendered,
            message_id=make_message_id(self.config.secret, ticket.number, kind, domain, to_addr),
            in_reply_to=in_reply_to,
            references=references,
            auto_submitted="auto-replied" if reply_to_applicant else "auto-generated",
            ticket_number=ticket.number,
            language=language,
            attachments=attachments,
        )
        envelope = self._queue(session, effects, spec, kind, ticket, now)
        return envelope.message_id

    def _queue(
        self,
        session: Session,
        effects: Effects,
        spec: MailSpec,
        kind: str,
        ticket: models.Ticket | None,
        now: datetime,
    ) -> Envelope:
        """Compose a mail from our address and write it into the outbox. With files that would make
        it larger than limits.max_outgoing_bytes, the largest are left out and a note says where
        they are (core/withheld.py); the ticket's history says so."""
        limit = self.config.settings.limits.max_outgoing_bytes
        envelope = fit(
            spec,
            max_bytes=limit,
            from_addr=self.config.service.address,
            from_name=self.config.service.name,
            instance_id=self.config.instance_id,
            now=now.astimezone(self.tz),  # the Date header in the office's zone (+0700, +0800, +0900)
            office=self.config.templates_dir,
        )
        store.enqueue(session, effects, envelope, kind=kind, ticket=ticket, now=now)
        if envelope.withheld:
            files = withheld_text(envelope.withheld)
            detail = f"{kind} → {spec.to_addr}: {files} left out, over {limit} bytes"
            # The log names no file (a name can carry a person's name or number).
            number = ticket.number if ticket else "-"
            log.warning(
                "%s: %d file(s) left out, over %d bytes (ticket %s)",
                kind,
                len(envelope.withheld),
                limit,
                number,
            )
            if ticket is not None:
                effects.record(
                    ticket,
                    "files_withheld",
                    actor="system",
                    now=now,
                    detail=detail,
                    data={
                        "mail": kind,
                        "to": spec.to_addr,
                        "files": [w.filename for w in envelope.withheld],
                        "limit": limit,
                    },
                )
        return envelope

    def send_to_applicant(
        self,
        session: Session,
        effects: Effects,
        ticket: models.Ticket,
        profile: Profile,
        template: str,
        kind: str,
        context: dict[str, Any],
        now: datetime,
        **extra: Any,
    ) -> str | None:
        """An automatic answer to the ticket's applicant, in the profile's language, in their thread."""
        return self.send(
            session,
            effects,
            ticket,
            template=template,
            kind=kind,
            to_addr=ticket.applicant_email,
            to_name=ticket.applicant_name,
            context=context,
            now=now,
            reply_to_applicant=True,
            language=profile.language,
            **extra,
        )

    def send_to_staff(
        self,
        session: Session,
        effects: Effects,
        ticket: models.Ticket,
        profile: Profile,
        person: StaffMember,
        template: str,
        kind: str,
        context: dict[str, Any],
        now: datetime,
        *,
        language: str | None = None,
        **extra: Any,
    ) -> str | None:
        """An automatic mail to a staff member about a ticket, in the profile's language unless given."""
        return self.send(
            session,
            effects,
            ticket,
            template=template,
            kind=kind,
            to_addr=person.emails[0],
            to_name=person.name,
            context=context,
            now=now,
            reply_to_applicant=False,
            language=language or profile.language,
            **extra,
        )

    def send_plain(
        self,
        session: Session,
        effects: Effects,
        *,
        template: str,
        kind: str,
        to_addr: str,
        to_name: str,
        context: dict[str, Any],
        now: datetime,
        in_reply_to: str,
        language: str,
        attachments: tuple[OutgoingAttachment, ...] = (),
    ) -> None:
        """A mail that belongs to no ticket (HELP or LIST outside a thread)."""
        domain = self.config.service.address.split("@", 1)[1]
        spec = MailSpec(
            to_addr=to_addr,
            to_name=to_name,
            rendered=render(template, language, context, self.config.templates_dir),
            message_id=make_plain_message_id(domain),
            in_reply_to=in_reply_to,
            references=(in_reply_to,) if in_reply_to else (),
            auto_submitted="auto-replied",
            language=language,
            attachments=attachments,
        )
        self._queue(session, effects, spec, kind, None, now)

    # --- mail to staff ---------------------------------------------------------------------

    def relay(
        self,
        session: Session,
        effects: Effects,
        ticket: models.Ticket,
        profile: Profile,
        person: StaffMember,
        text: str,
        kind: str,
        author: str,
        row: models.InboundMessage,
        now: datetime,
    ) -> None:
        ctx = {
            **self.context(ticket, profile),
            "recipient": person,
            "text": text,
            "author": author,
            "relay_kind": kind,
            "history": self.history(ticket),
        }
        self.send_to_staff(
            session,
            effects,
            ticket,
            profile,
            person,
            "follow_up",
            kind,
            ctx,
            now,
            attachments=attachments_of(row.raw),
        )

    def assigned(
        self,
        session: Session,
        effects: Effects,
        ticket: models.Ticket,
        profile: Profile,
        by: StaffMember | None,
        target: StaffMember,
        now: datetime,
    ) -> None:
        """After an assignment: the Surat Tugas mail, and the applicant told who handles it."""
        self.assignment_mail(session, effects, ticket, profile, by, target, now, kind="assign")
        if profile.notify_applicant_on_assign:
            ctx = {**self.context(ticket, profile), "assignee": target}
            self.send_to_applicant(
                session,
                effects,
                ticket,
                profile,
                "assigned_applicant",
                "assigned",
                ctx,
                now,
                by_staff=by is not None,
            )

    def assignment_mail(
        self,
        session: Session,
        effects: Effects,
        ticket: models.Ticket,
        profile: Profile,
        by: StaffMember | None,
        target: StaffMember,
        now: datetime,
        *,
        kind: str,
    ) -> None:
        """The assignee's Surat Tugas in substance: the ticket, its full history, the applicant's files."""
        if inspect(ticket).pending:
            persist.apply(
                session, effects
            )  # a ticket opened by this message (auto-assigned): its mail, stored
        inbound, _ = store.messages_of_ticket(session, ticket.id)
        files: list[OutgoingAttachment] = []
        names = Names()  # one name per file across the applicant's mails
        seen: set[bytes] = set()  # and each file once: a completion often carries the files again
        for m in inbound:
            if m.from_addr == ticket.applicant_email:
                files += attachments_of(m.raw, names, seen)
        ctx = {
            **self.context(ticket, profile),
            "assignee": target,
            "assigned_by": by,
            # A vendor is outside the office: the public view of the history (as the applicant
            # reads it), never the internal log with its notes and staff addresses.
            "history": [] if kind == "forward" else self.history(ticket),
            "public_history": self.public_history(ticket) if kind == "forward" else [],
            "attachments": files,
            "vendor": kind == "forward",
            "can_delegate": (level(profile, target.role) or 0) < len(profile.delegation) - 1,
        }
        self.send_to_staff(
            session,
            effects,
            ticket,
            profile,
            target,
            "assignment",
            kind,
            ctx,
            now,
            attachments=tuple(files),
        )


def attachments_of(
    raw: bytes, taken: set[str] | None = None, seen: set[bytes] | None = None
) -> tuple[OutgoingAttachment, ...]:
    """The files of a stored mail to pass along: attached, pasted and inline ones alike
    (core/attachments.py says which parts are files). With `taken`, the names already used in
    the same mail (lower-case), a repeated name gets a number (image.png, image-2.png); with
    `seen`, the digests of the files it carries already, a file sent again is left out. Their
    size is not bounded here: a mail over limits.max_outgoing_bytes leaves the largest out
    with a note (core/withheld.py), instead of dropping files unsaid."""
    taken = Names() if taken is None else taken
    seen = set() if seen is None else seen
    files: list[OutgoingAttachment] = []
    for f in files_of_raw(raw):
        digest = hashlib.sha256(f.data).digest()
        if digest not in seen:
            seen.add(digest)
            files.append(OutgoingAttachment(unique_name(f.filename, taken), f.content_type, f.data))
    return tuple(files)
