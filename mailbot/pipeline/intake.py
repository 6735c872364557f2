"""One inbound message, exactly once: store it, classify it, apply the workflow, queue the replies.

`process_message` runs inside one transaction that the caller commits before the
message is flagged or moved in its mailbox (DOMAIN.md s. 5). Run again on the same
(mailbox, UIDVALIDITY, UID) it changes nothing and says so.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import inspect
from sqlalchemy.orm import Session

from mailbot.config import Config, Profile, StaffMember
from mailbot.core.classify import (
    Kind,
    ThreadMatch,
    classify,
    machine_reason,
    no_autoreply_reason,
    spam_flag,
)
from mailbot.core.compose import Envelope, MailSpec, OutgoingAttachment, build_mail, render
from mailbot.core.fields import FIELDS, extract_fields, merge_fields, strip_closing, validate_fields
from mailbot.core.masking import mask_number
from mailbot.core.message import InboundMessage, UnreadableMessage, parse_headers, parse_message
from mailbot.core.public_record import zone_name
from mailbot.core.tokens import make_message_id, make_plain_message_id, verify_tokens
from mailbot.core.workflow import Event, InboundStatus, State, next_inbound
from mailbot.pipeline.staff_commands import Dispatcher
from mailbot.pipeline.sweep import Clocks
from mailbot.shell import models, store

log = logging.getLogger(__name__)
# Our Message-IDs (tokens.py) as a bounce quotes them.
_OUR_IDS = re.compile(rb"<mb\.(?:\d++|[nx]-[A-Za-z0-9-]++)\.[a-z_]++\.[0-9a-f]++\.[0-9a-f]++@[^>\s]++>")


@dataclass(frozen=True)
class Source:
    """Where a message was read from: (mailbox, UIDVALIDITY, UID) is its identity there."""

    mailbox: str
    uidvalidity: int
    uid: str


@dataclass(frozen=True)
class Outcome:
    """What became of one received mail. Its stored copy's id is known once the transaction has
    flushed (a group of messages is written together)."""

    row: models.InboundMessage
    status: str  # an InboundStatus
    kind: str
    reason: str
    ticket_number: str | None
    already_done: bool = False

    @property
    def inbound_id(self) -> int:
        return self.row.id

    @property
    def quarantined(self) -> bool:
        return self.status == InboundStatus.QUARANTINED


class Intake:
    """The processing core's shell side: needs a Config and a Session, never a socket."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.tz = ZoneInfo(config.service.timezone)
        self.dispatch = Dispatcher(self)
        self.clocks = Clocks(config)

    # --- entry point ----------------------------------------------------------------------

    def process_message(
        self,
        session: Session,
        source: Source,
        raw: bytes,
        now: datetime,
        parsed: InboundMessage | UnreadableMessage | None = None,
        *,
        release: bool = False,
    ) -> Outcome:
        """`parsed`: the message already parsed (by the parse worker), or its failure.
        `release`: staff release a held message (`mailbot replay --release`): no hold again.

        The message's rows are written by one flush at its end (`_outcome`): the lookups while it
        is decided do not flush what it has changed so far."""
        with session.no_autoflush:
            return self._process(session, source, raw, now, parsed, release)

    def _process(
        self,
        session: Session,
        source: Source,
        raw: bytes,
        now: datetime,
        parsed: InboundMessage | UnreadableMessage | None,
        release: bool,
    ) -> Outcome:
        existing = store.find_inbound_by_source(session, source.mailbox, source.uidvalidity, source.uid)
        if existing is not None:
            return Outcome(
                existing,
                existing.status,
                existing.kind,
                existing.reason,
                _number(session, existing.ticket_id),
                already_done=True,
            )
        raw_sha = hashlib.sha256(raw).hexdigest()
        row = models.InboundMessage(
            mailbox=source.mailbox,
            uidvalidity=source.uidvalidity,
            uid=source.uid,
            raw_sha256=raw_sha,
            received_at=now,
            status=next_inbound(None, InboundStatus.PROCESSING),
            size=len(raw),
            raw=raw,
        )
        limits = self.config.settings.limits
        try:
            if isinstance(parsed, UnreadableMessage):
                raise parsed
            msg = parsed or parse_message(
                raw,
                max_bytes=limits.max_message_bytes,
                max_depth=limits.max_mime_depth,
                max_attachments=limits.max_attachments,
            )
        except UnreadableMessage as exc:
            _status(row, InboundStatus.QUARANTINED)
            row.kind, row.reason = "unreadable", exc.reason
            session.add(row)
            session.flush()  # its id, for the log and the refusal's history
            store.remember(session, row, "")
            log.warning("inbound #%s quarantined: %s", row.id, exc.reason)
            if exc.limit:
                self._refuse(session, row, raw, exc, now)
            return Outcome(row, row.status, row.kind, row.reason, None)

        row.message_id = msg.message_id[:998]
        row.from_addr = msg.from_addr[:320]
        row.subject = msg.subject[:500]
        row.content_hash = msg.content_hash

        duplicate = store.find_duplicate(
            session, raw_sha256=raw_sha, message_id=msg.message_id, from_addr=msg.from_addr
        )
        session.add(row)
        store.remember(session, row, msg.message_id)
        if duplicate is not None:
            return self._duplicate(session, row, duplicate, now, "same message already received")

        if msg.referenced_ids or "[" in msg.subject:
            # A reply: what it refers to may be a row this group wrote a moment ago.
            session.flush()
        thread = self._thread(session, msg)
        staff = self.config.staff_by_email(msg.from_addr)
        result = classify(
            msg,
            instance_id=self.config.instance_id,
            thread=thread,
            sender_is_staff=staff is not None,
        )
        row.kind = result.kind.value
        row.reason = result.reason

        if result.kind is Kind.MACHINE:
            _status(row, InboundStatus.MACHINE)
            if thread is None:
                # A bounce carries our mail (or its headers) inside: link it to that mail's ticket.
                ours = sorted(set(_OUR_IDS.findall(raw)))
                found = store.ticket_by_referenced_message(
                    session, [m.decode("ascii", "replace") for m in ours[:20]]
                )
                if found is not None:
                    thread = ThreadMatch(found.id, found.applicant_email, "bounced-copy")
            if thread is not None:
                ticket = store.get_ticket(session, thread.ticket_id)
                if ticket is not None:
                    row.ticket = ticket
                    store.record_event(
                        session,
                        ticket,
                        "machine_mail",
                        actor=msg.from_addr or "(unknown)",
                        now=now,
                        detail=result.reason,
                        inbound=row,
                    )
            outcome = self._outcome(session, row)
            log.info("inbound %s is machine mail (%s): no reply", _label(row), result.reason)
            return outcome

        if not release and result.kind in (Kind.NEW_REQUEST, Kind.FOLLOW_UP, Kind.THIRD_PARTY):
            why = spam_flag(msg)
            cap = limits.new_tickets_per_sender_per_day
            if why is None and result.kind is Kind.NEW_REQUEST and cap:
                opened = store.tickets_opened_since(session, msg.from_addr, now - timedelta(days=1))
                if opened >= cap:
                    why = f"{opened} new tickets from {msg.from_addr} in 24 hours (cap {cap})"
            if why is not None:
                return self._hold(session, row, thread, msg, now, why)

        if result.kind is Kind.NEW_REQUEST:
            window = limits.duplicate_window_hours
            same = (
                store.find_same_content(session, row.content_hash, store.since(now, window))
                if window
                else None
            )
            if same is not None and same is not row:
                return self._duplicate(session, row, same, now, "same request sent again")
            self._new_request(session, row, msg, now)
        elif result.kind is Kind.FOLLOW_UP:
            assert thread is not None
            self._follow_up(session, row, msg, thread, now)
        elif result.kind in (Kind.STAFF_REPLY, Kind.STAFF_MAIL):
            assert staff is not None
            self.dispatch.staff_mail(session, row, msg, staff, thread, result.kind, now)
            if row.status is InboundStatus.IGNORED:
                return self._outcome(session, row)
        elif result.kind is Kind.THIRD_PARTY:
            assert thread is not None
            ticket = store.get_ticket(session, thread.ticket_id)
            assert ticket is not None
            row.ticket = ticket
            store.record_event(
                session,
                ticket,
                result.kind.value,
                actor=msg.from_addr,
                now=now,
                detail=msg.new_text[:2000],
                inbound=row,
            )
        _status(row, InboundStatus.PROCESSED)
        return self._outcome(session, row)

    def prefetch(
        self,
        session: Session,
        items: list[tuple[Source, bytes]],
        parsed: list[InboundMessage | UnreadableMessage],
        now: datetime,
    ) -> None:
        """Read what a group's messages will look up, in one query per kind (`store.Known`)."""
        messages = [p for p in parsed if isinstance(p, InboundMessage)]
        window = self.config.settings.limits.duplicate_window_hours
        store.prefetch(
            session,
            sources=[(s.mailbox, s.uidvalidity, s.uid) for s, _ in items],
            shas=[hashlib.sha256(raw).hexdigest() for _, raw in items],
            message_ids=[m.message_id for m in messages],
            content_hashes=[m.content_hash for m in messages] if window else [],
            content_since=store.since(now, window) if window else None,
            recipients=[m.from_addr for m in messages],
            mail_since=store.since(now, 1),
            opened_since=now - timedelta(days=1),
        )

    # --- steps -----------------------------------------------------------------------------

    def _outcome(self, session: Session, row: models.InboundMessage) -> Outcome:
        number = None
        if row.ticket_id is not None or row.ticket is not None:
            ticket = row.ticket  # held by the row: no second read of a ticket this message changed
            if ticket is not None:
                # Written with the next flush: a later message's or the commit (which is where a
                # lost race for the ticket's row shows, and the caller retries).
                self.clocks.refresh(ticket)
                number = ticket.number
            store.remember_content(session, row)
        return Outcome(row, row.status, row.kind, row.reason, number)

    def _hold(
        self,
        session: Session,
        row: models.InboundMessage,
        thread: ThreadMatch | None,
        msg: InboundMessage,
        now: datetime,
        why: str,
    ) -> Outcome:
        """Keep a mail for staff without acting on it or answering it; the digest lists it."""
        _status(row, InboundStatus.HELD)
        row.kind, row.reason = "held", why[:500]
        ticket = store.get_ticket(session, thread.ticket_id) if thread else None
        if ticket is not None:
            row.ticket = ticket
            store.record_event(
                session, ticket, "mail_held", actor=msg.from_addr or "(unknown)", now=now, detail=why
            )
        outcome = self._outcome(session, row)
        log.warning("inbound %s held for staff: %s", _label(row), why)
        return outcome

    def _duplicate(
        self,
        session: Session,
        row: models.InboundMessage,
        original: models.InboundMessage,
        now: datetime,
        why: str,
    ) -> Outcome:
        if inspect(original).pending:
            session.flush()  # a copy of a mail of this very group: name the original by its id
        _status(row, InboundStatus.DUPLICATE)
        row.kind = original.kind or "duplicate"
        row.reason = f"{why} (inbound #{original.id})"
        if original.ticket_id is not None or original.ticket is not None:
            ticket = original.ticket
            row.ticket = ticket
            if ticket is not None:
                store.record_event(
                    session,
                    ticket,
                    "duplicate_received",
                    actor=row.from_addr or "(unknown)",
                    now=now,
                    detail=row.reason,
                    inbound=row,
                )
        outcome = self._outcome(session, row)
        log.info("inbound %s is a duplicate: %s", _label(row), row.reason)
        return outcome

    def _refuse(
        self, session: Session, row: models.InboundMessage, raw: bytes, exc: UnreadableMessage, now: datetime
    ) -> None:
        """Tell a person whose mail broke a configured limit what happened (never a machine)."""
        try:
            head = parse_headers(raw)
        except Exception:  # the header block itself is broken: nobody to answer safely
            log.info("inbound #%s: no readable header to answer", row.id)
            return
        row.from_addr, row.subject, row.message_id = (
            head.from_addr[:320],
            head.subject[:500],
            head.message_id[:998],
        )
        if (
            not head.from_addr
            or machine_reason(head, self.config.instance_id)
            or self._refused_lately(session, head, now)
        ):
            return
        profile = self.config.profile
        ctx = {
            "service": self.config.service,
            "limit": exc.limit,
            "size": exc.size,
            "allowed": exc.allowed,
            "subject": head.subject,
            "received": now.astimezone(self.tz),
        }
        self.send_plain(
            session,
            template="refused",
            kind="refused",
            to_addr=head.from_addr,
            to_name=head.from_name,
            context=ctx,
            now=now,
            in_reply_to=head.message_id,
            language=profile.language,
        )
        row.kind = "refused"

    def _refused_lately(self, session: Session, head: InboundMessage, now: datetime) -> bool:
        """One automatic mail per sender per hour is enough after a refusal."""
        return store.auto_mail_count(session, head.from_addr.lower(), store.since(now, 1)) >= 1

    def _thread(self, session: Session, msg: InboundMessage) -> ThreadMatch | None:
        """In-Reply-To, then References (signed tokens first), then the ticket number in the subject."""
        refs = msg.referenced_ids
        for token in verify_tokens(self.config.secret, refs, msg.from_addr):
            ticket = (
                store.ticket_by_number(session, token.ticket_number)
                if token.ticket_number is not None
                else store.get_ticket(session, token.ticket_id or 0)
            )
            if ticket is not None:
                return ThreadMatch(ticket.id, ticket.applicant_email, "token", token.message_id)
        ticket = store.ticket_by_referenced_message(session, refs)
        if ticket is not None:
            return ThreadMatch(ticket.id, ticket.applicant_email, "message-id")
        for profile in self.config.profiles.values():
            for number in profile.number_pattern().findall(msg.subject):
                ticket = store.ticket_by_number(session, number)
                if ticket is not None:
                    return ThreadMatch(ticket.id, ticket.applicant_email, "subject")
        return None

    def open_linked(
        self,
        session: Session,
        row: models.InboundMessage,
        msg: InboundMessage,
        parent: models.Ticket,
        now: datetime,
    ) -> None:
        """A follow-up after the reopen window: a new ticket, linked to the old one, with the
        applicant's data carried over and the new text as the question."""
        store.record_event(
            session,
            parent,
            "follow_up_new_ticket",
            actor=msg.from_addr,
            now=now,
            inbound=row,
            detail=msg.new_text[:2000],
        )
        self._new_request(session, row, msg, now, parent=parent)

    def _new_request(
        self,
        session: Session,
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
        store.open_ticket(
            session,
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
            store.record_event(
                session,
                ticket,
                "reply_to_differs",
                actor=msg.from_addr,
                now=now,
                inbound=row,
                detail=f"Reply-To {msg.reply_to} differs from From {msg.from_addr}: not used",
                data={"reply_to": msg.reply_to},
            )
        if validation.complete:
            self._registered(session, ticket, profile, msg, now)
        else:
            self._ask_missing(session, ticket, profile, msg, now, still=False)

    def _follow_up(
        self,
        session: Session,
        row: models.InboundMessage,
        msg: InboundMessage,
        thread: ThreadMatch,
        now: datetime,
    ) -> None:
        ticket = store.get_ticket(session, thread.ticket_id)
        assert ticket is not None
        row.ticket = ticket
        profile = self.config.profiles.get(ticket.profile, self.config.profile)
        if ticket.state is not State.AWAITING_INFO:
            self.dispatch.applicant_follow_up(session, row, msg, ticket, now)
            return
        new = msg.fields_of(msg.new_text)
        # A reply may carry only the missing value, unlabelled ("19860926 201505 1 001").
        new = _unlabelled_answer(new, msg.new_text, ticket.issues)
        pending = {i["field"] for i in ticket.issues}
        merged = dict(ticket.fields)
        for name, value in new.items():
            if name in pending or name not in merged:
                merged[name] = value
        validation = validate_fields(merged, profile.required_fields, now.astimezone(self.tz).date())
        ticket.fields = {**merged, **validation.values}
        ticket.issues = [_issue_dict(i) for i in validation.issues]
        if validation.values.get("name"):
            ticket.applicant_name = validation.values["name"][:200]
        got = sorted(set(new) & pending)
        if validation.complete:
            store.transition(
                session,
                ticket,
                Event.REQUEST_COMPLETE,
                actor=msg.from_addr,
                now=now,
                inbound=row,
                detail=f"data completed: {', '.join(got) or '-'}",
            )
            self._registered(session, ticket, profile, msg, now)
        else:
            repeated = self.repeats_earlier_text(session, ticket, row, msg)
            store.transition(
                session,
                ticket,
                Event.INFO_STILL_MISSING,
                actor=msg.from_addr,
                now=now,
                inbound=row,
                detail=_summary(validation.issues),
            )
            self._ask_missing(session, ticket, profile, msg, now, still=True, repeated=repeated)

    # --- outgoing mail -------------------------------------------------------------------

    def context(self, ticket: models.Ticket, profile: Profile) -> dict[str, Any]:
        fields = {name: ticket.fields.get(name, "") for name in FIELDS}
        return {
            "service": self.config.service,
            "profile": profile,
            "ticket": ticket,
            "fields": fields,
            "masked_id": mask_number(fields["id_number"]) if fields["id_number"] else "",
            "masked_phone": mask_number(fields["phone"]) if fields["phone"] else "",
            "steps": [
                {"title": s.title, "duration": s.deadline.describe(profile.language)} for s in profile.steps
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

    def send(
        self,
        session: Session,
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
    ) -> str | None:
        """Queue one automatic mail, unless a rule says not to; the history says which."""
        if quiet:
            store.record_event(
                session,
                ticket,
                "reply_suppressed",
                actor="system",
                now=now,
                detail=f"{kind} to {to_addr} not sent: {quiet}",
            )
            return None
        if not to_addr:
            store.record_event(
                session,
                ticket,
                "mail_not_sent",
                actor="system",
                now=now,
                detail=f"{kind}: the request has no sender address to answer",
            )
            log.warning("ticket %s: no address to send %s to", ticket.number, kind)
            return None
        limits = self.config.settings.limits
        fresh = ticket.created_at == now  # a ticket opened by this very mail has sent nothing yet
        if reply_to_applicant and not fresh and self.config.staff_by_email(to_addr) is None:
            sent = store.thread_mail_times(session, ticket.id, to_addr.lower(), kind, now - timedelta(days=1))
            if len(sent) >= limits.same_reply_per_day:
                store.record_event(
                    session,
                    ticket,
                    "reply_suppressed",
                    actor="system",
                    now=now,
                    detail=f"{kind} to {to_addr} not sent: loop guard ({len(sent)} today)",
                )
                log.warning("loop guard: %s to %s not sent (ticket %s)", kind, to_addr, ticket.number)
                return None
        if self.config.staff_by_email(to_addr) is None and (
            store.auto_mail_count(session, to_addr.lower(), store.since(now, 1))
            >= limits.auto_replies_per_recipient_per_hour
        ):
            store.record_event(
                session,
                ticket,
                "mail_suppressed",
                actor="system",
                now=now,
                detail=f"{kind} to {to_addr} held back: rate limit per recipient reached",
            )
            log.warning("rate limit: %s to %s not sent (ticket %s)", kind, to_addr, ticket.number)
            return None
        domain = self.config.service.address.split("@", 1)[1]
        rendered = render(template, language, context)
        spec = MailSpec(
            to_addr=to_addr,
            to_name=to_name,
            rendered=rendered,
            message_id=make_message_id(self.config.secret, ticket.number, kind, domain, to_addr),
            in_reply_to=thread[0] if thread else (ticket.root_message_id if reply_to_applicant else ""),
            references=thread[1]
            if thread
            else ((ticket.root_message_id,) if reply_to_applicant and ticket.root_message_id else ()),
            auto_submitted="auto-replied" if reply_to_applicant else "auto-generated",
            ticket_number=ticket.number,
            language=language,
            attachments=attachments,
        )
        envelope = self._queue(session, spec, kind, ticket, now)
        return envelope.message_id

    def _queue(
        self, session: Session, spec: MailSpec, kind: str, ticket: models.Ticket | None, now: datetime
    ) -> Envelope:
        """Compose a mail from our address and write it into the outbox."""
        envelope = build_mail(
            spec,
            from_addr=self.config.service.address,
            from_name=self.config.service.name,
            instance_id=self.config.instance_id,
            now=now.astimezone(self.tz),  # the Date header in the office's zone (+0700, +0800, +0900)
        )
        store.enqueue(session, envelope, kind=kind, ticket=ticket, now=now)
        return envelope

    def send_to_applicant(
        self,
        session: Session,
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

    def send_plain(
        self,
        session: Session,
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
            rendered=render(template, language, context),
            message_id=make_plain_message_id(domain),
            in_reply_to=in_reply_to,
            references=(in_reply_to,) if in_reply_to else (),
            auto_submitted="auto-replied",
            language=language,
            attachments=attachments,
        )
        self._queue(session, spec, kind, None, now)

    def route(self, ticket: models.Ticket, profile: Profile) -> tuple[str, list[StaffMember]]:
        """The region / field / unit a new ticket belongs to, and the people one level below the
        lead who serve it (SOP 004: the Inspektur Pembantu of the region; SOP 001: the field's consultant)."""
        if profile.route_by == "none":
            return "", []
        haystack = (
            f"{ticket.subject}\n{ticket.fields.get('question', '')}"
            if profile.route_by == "field"
            else str(ticket.fields.get("unit", ""))
        )
        for rule in profile.routes:
            if re.search(rule.match, haystack, re.IGNORECASE):
                attribute = "field" if profile.route_by == "field" else "region"
                people = [
                    m
                    for m in self.config.staff_with_roles(list(profile.delegation[1:2]), profile.id)
                    if getattr(m, attribute).casefold() == rule.to.casefold()
                ]
                return rule.to, people
        return "", []

    def _registered(
        self,
        session: Session,
        ticket: models.Ticket,
        profile: Profile,
        msg: InboundMessage,
        now: datetime,
    ) -> None:
        """SOP 002 step 2: acknowledge the applicant, pass the request to the head(s).

        With an eligibility roster (SOP 000), an applicant whose NIP is not in it is refused.
        """
        ctx = self.context(ticket, profile)
        roster = self.config.rosters.get(profile.id)
        if roster is not None and ticket.fields.get("id_number", "") not in roster:
            store.transition(
                session,
                ticket,
                Event.REJECT,
                actor="system",
                now=now,
                detail="not eligible: NIP not in the employee roster",
            )
            self.send_to_applicant(
                session,
                ticket,
                profile,
                "not_eligible",
                "not_eligible",
                ctx,
                now,
                quiet=no_autoreply_reason(msg),
            )
            return
        self.send_to_applicant(
            session,
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
            store.record_event(
                session,
                ticket,
                "no_recipient",
                actor="system",
                now=now,
                detail=f"no active staff with role {', '.join(profile.notify_roles)}",
            )
            log.error("ticket %s: no staff with role %s to notify", ticket.number, profile.notify_roles)
        route, routed = self.route(ticket, profile)
        if route:
            store.record_event(
                session,
                ticket,
                "routed",
                actor="system",
                now=now,
                detail=f"{profile.route_by} {route}: {', '.join(m.name for m in routed) or '-'}",
            )
        if profile.auto_assign_routed and len(routed) == 1:
            target = routed[0]
            ticket.assignee_email = target.emails[0]
            store.transition(
                session,
                ticket,
                Event.ASSIGN,
                actor="system",
                now=now,
                detail=f"→ {target.name} <{target.emails[0]}> ({profile.route_by} {route})",
            )
            self.dispatch.assigned(session, ticket, profile, None, target, now)
            return
        delegates = self.config.staff_with_roles(list(profile.delegation[1:2]), profile.id)
        suggested = routed or delegates
        assign_step = next((s for s in profile.steps if s.id == "assign"), profile.steps[0])
        for member in recipients:
            staff_ctx = {
                **ctx,
                "recipient": member,
                "attachments": msg.attachments,
                "assign_step": {
                    "title": assign_step.title,
                    "duration": assign_step.deadline.describe(profile.language),
                },
                "example_assignee": suggested[0].name if suggested else "<nama>",
                "route": route,
                "routed": routed,
                "reply_to": other_reply_to(msg),
            }
            self.send(
                session,
                ticket,
                template="notify_head",
                kind="notify",
                to_addr=member.emails[0],
                to_name=member.name,
                context=staff_ctx,
                now=now,
                reply_to_applicant=False,
                language=_staff_language(member, profile),
            )

    def _ask_missing(
        self,
        session: Session,
        ticket: models.Ticket,
        profile: Profile,
        msg: InboundMessage,
        now: datetime,
        *,
        still: bool,
        repeated: bool = False,
    ) -> None:
        ctx = {**self.context(ticket, profile), "issues": ticket.issues, "still": still}
        self.send_to_applicant(
            session,
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


def _label(row: models.InboundMessage) -> str:
    """How logs name a received mail: its id once stored, else where it came from."""
    return f"#{row.id}" if row.id is not None else f"{row.mailbox} UID {row.uid}"


def _status(row: models.InboundMessage, new: InboundStatus) -> None:
    """The one way a received mail's status changes: checked against workflow's table."""
    row.status = next_inbound(row.status, new)


def other_reply_to(msg: InboundMessage) -> str:
    """A Reply-To that names someone other than the sender: shown to staff, never written to."""
    return msg.reply_to if msg.reply_to and msg.reply_to != msg.from_addr else ""


def _words(text: str) -> str:
    return " ".join(text.lower().split())


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


def _number(session: Session, ticket_id: int | None) -> str | None:
    if ticket_id is None:
        return None
    ticket = store.get_ticket(session, ticket_id)
    return ticket.number if ticket else None


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
    if len(lines) <= 3:
        return {**found, field: lines[0]}
    return found
