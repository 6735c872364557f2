"""One inbound message, exactly once: store it, classify it, apply the workflow, queue the replies.

`process_message` runs inside one transaction whose effects (history lines, queued mail) the caller
writes (`persist.apply`) and commits before the message is flagged or moved in its mailbox
(DOMAIN.md s. 5). Run again on the same
(mailbox, UIDVALIDITY, UID) it changes nothing and says so.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import inspect
from sqlalchemy.orm import Session

from mailbot.config import Config
from mailbot.core.classify import (
    Kind,
    ThreadMatch,
    classify,
    machine_reason,
    out_of_office_reply,
    spam_flag,
)
from mailbot.core.message import InboundMessage, UnreadableMessage, parse_headers, parse_message
from mailbot.core.tokens import verify_tokens
from mailbot.core.workflow import InboundStatus, State, next_inbound
from mailbot.pipeline.applicant_replies import ApplicantReplies
from mailbot.pipeline.clocks import Clocks
from mailbot.pipeline.replies import Replies
from mailbot.pipeline.requests import Requests
from mailbot.pipeline.staff_commands import StaffCommands
from mailbot.shell import group_lookups, models, persist, store
from mailbot.shell.mailbox import Oversized
from mailbot.shell.persist import Effects

log = logging.getLogger(__name__)
# Our Message-IDs (tokens.py) as a bounce quotes them.
# A forward's subject prefix, repeated or not: "Fwd:", "FW:", "Fw: Fwd:", "TR:" (Outlook, French).
_FORWARDED = re.compile(r"(?:\s*+(?:fwd?|fw|tr|trs|wg)\s*+:)++", re.IGNORECASE)
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

    def __init__(self, config: Config, replies: Replies, clocks: Clocks) -> None:
        self.config = config
        self.replies = replies
        self.tz = replies.tz
        self.clocks = clocks
        self.requests = Requests(config, replies)
        self.staff_commands = StaffCommands(config, replies)
        self.applicant_replies = ApplicantReplies(config, replies, self.requests)

    # --- entry point ----------------------------------------------------------------------

    def process_message(
        self,
        session: Session,
        effects: Effects,
        source: Source,
        raw: bytes,
        now: datetime,
        parsed: InboundMessage | UnreadableMessage | None = None,
        *,
        release: bool = False,
    ) -> Outcome:
        """`parsed`: the message already parsed (by the parse worker), or its failure.
        `release`: staff release a held message (`mailbot replay --release`): no hold again.

        `effects`: the transaction's (one message's, or its group's, `App.process_batch`): the
        decisions put their history lines and mail there, and the caller writes them
        (`persist.apply`) before it commits; this applies them earlier only where a decision reads
        rows the group wrote. The lookups while it is decided do not flush what it has changed so far."""
        with session.no_autoflush:
            return self._process(session, effects, source, raw, now, parsed, release)

    def _process(
        self,
        session: Session,
        effects: Effects,
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
            size=raw.size if isinstance(raw, Oversized) else len(raw),
            raw=bytes(raw),
        )
        limits = self.config.settings.limits
        if isinstance(raw, Oversized):
            # Only its header block was read (the mailbox said how large it is): refused unread.
            parsed = UnreadableMessage(
                f"message too large: {raw.size} bytes, limit {limits.max_message_bytes}",
                limit="too_large",
                size=raw.size,
                allowed=limits.max_message_bytes,
            )
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
            persist.apply(session, effects)  # its id, for the log and the refusal's history
            group_lookups.remember(session, row, "")
            log.warning("inbound #%s quarantined: %s", row.id, exc.reason)
            if exc.limit:
                self._refuse(session, effects, row, raw, exc, now)
            return Outcome(row, row.status, row.kind, row.reason, None)

        row.message_id = msg.message_id[:998]
        row.from_addr = msg.from_addr[:320]
        row.subject = msg.subject[:500]
        row.content_hash = msg.content_hash

        duplicate = store.find_duplicate(
            session, raw_sha256=raw_sha, message_id=msg.message_id, from_addr=msg.from_addr
        )
        session.add(row)
        group_lookups.remember(session, row, msg.message_id)
        if duplicate is not None:
            return self._duplicate(session, effects, row, duplicate, now, "same message already received")

        if msg.referenced_ids or "[" in msg.subject:
            # A reply: what it refers to may be a row (or mail) this group wrote a moment ago.
            persist.apply(session, effects)
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
                    effects.record(
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
            facts: dict[str, object] = {"spam": why}
            cap = limits.new_tickets_per_sender_per_day
            if why is None and result.kind is Kind.NEW_REQUEST and cap:
                opened = store.tickets_opened_since(session, msg.from_addr, now - timedelta(days=1))
                if opened >= cap:
                    why = f"{opened} new tickets from {msg.from_addr} in 24 hours (cap {cap})"
                    facts = {"opened": opened, "cap": cap, "sender": msg.from_addr}
            if why is not None:
                return self._hold(session, effects, row, thread, msg, now, why, facts)

        if result.kind is Kind.NEW_REQUEST:
            window = limits.duplicate_window_hours
            same = (
                store.find_same_content(session, row.content_hash, store.since(now, window))
                if window
                else None
            )
            if same is not None and same is not row:
                return self._duplicate(session, effects, row, same, now, "same request sent again")
            self.requests.new_request(session, effects, row, msg, now)
        elif result.kind is Kind.FOLLOW_UP:
            assert thread is not None
            self._follow_up(session, effects, row, msg, thread, now)
        elif result.kind in (Kind.STAFF_REPLY, Kind.STAFF_MAIL):
            assert staff is not None
            self.staff_commands.staff_mail(session, effects, row, msg, staff, thread, result.kind, now)
            if row.status is InboundStatus.IGNORED:
                return self._outcome(session, row)
        elif result.kind is Kind.THIRD_PARTY:
            assert thread is not None
            ticket = store.get_ticket(session, thread.ticket_id)
            assert ticket is not None
            row.ticket = ticket
            effects.record(
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
        """Read what a group's messages will look up, in one query per kind (`persist.Known`)."""
        messages = [p for p in parsed if isinstance(p, InboundMessage)]
        window = self.config.settings.limits.duplicate_window_hours
        group_lookups.prefetch(
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
                # Written with the message's persist step, or the commit (which is where a lost
                # race for the ticket's row shows, and the caller retries).
                self.clocks.refresh(ticket)
                number = ticket.number
            group_lookups.remember_content(session, row)
        return Outcome(row, row.status, row.kind, row.reason, number)

    def _hold(
        self,
        session: Session,
        effects: Effects,
        row: models.InboundMessage,
        thread: ThreadMatch | None,
        msg: InboundMessage,
        now: datetime,
        why: str,
        facts: dict[str, object],
    ) -> Outcome:
        """Keep a mail for staff without acting on it or answering it; the digest lists it."""
        _status(row, InboundStatus.HELD)
        row.kind, row.reason = "held", why[:500]
        ticket = store.get_ticket(session, thread.ticket_id) if thread else None
        if ticket is not None:
            row.ticket = ticket
            effects.record(
                ticket,
                "mail_held",
                actor=msg.from_addr or "(unknown)",
                now=now,
                detail=why,
                data={k: v for k, v in facts.items() if v is not None},
            )
        outcome = self._outcome(session, row)
        log.warning("inbound %s held for staff: %s", _label(row), why)
        return outcome

    def _duplicate(
        self,
        session: Session,
        effects: Effects,
        row: models.InboundMessage,
        original: models.InboundMessage,
        now: datetime,
        why: str,
    ) -> Outcome:
        if inspect(original).pending:
            persist.apply(
                session, effects
            )  # a copy of a mail of this very group: name the original by its id
        _status(row, InboundStatus.DUPLICATE)
        row.kind = original.kind or "duplicate"
        row.reason = f"{why} (inbound #{original.id})"
        if original.ticket_id is not None or original.ticket is not None:
            ticket = original.ticket
            row.ticket = ticket
            if ticket is not None:
                effects.record(
                    ticket,
                    "duplicate_received",
                    actor=row.from_addr or "(unknown)",
                    now=now,
                    detail=row.reason,
                    inbound=row,
                    data={"original": original.id, "again": why == "same request sent again"},
                )
        outcome = self._outcome(session, row)
        log.info("inbound %s is a duplicate: %s", _label(row), row.reason)
        return outcome

    def _refuse(
        self,
        session: Session,
        effects: Effects,
        row: models.InboundMessage,
        raw: bytes,
        exc: UnreadableMessage,
        now: datetime,
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
            or self._refused_lately(session, effects, head, now)
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
        self.replies.send_plain(
            session,
            effects,
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

    def _refused_lately(
        self, session: Session, effects: Effects, head: InboundMessage, now: datetime
    ) -> bool:
        """One automatic mail per sender per hour is enough after a refusal."""
        return store.auto_mail_count(session, effects, head.from_addr.lower(), store.since(now, 1)) >= 1

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
        forwarded = _FORWARDED.match(msg.subject)
        if forwarded is not None and msg.from_addr:
            # The applicant forwarding their own request again ("Fwd: Konsultasi ABK", "mohon
            # tanggapannya"): a reminder on the open ticket, not a second ticket.
            ticket = store.open_ticket_of(session, msg.from_addr, msg.subject[forwarded.end() :].strip())
            if ticket is not None:
                return ThreadMatch(ticket.id, ticket.applicant_email, "subject")
        return None

    def _follow_up(
        self,
        session: Session,
        effects: Effects,
        row: models.InboundMessage,
        msg: InboundMessage,
        thread: ThreadMatch,
        now: datetime,
    ) -> None:
        """The applicant's reply in a ticket's thread: the data a request awaits, else a follow-up."""
        ticket = store.get_ticket(session, thread.ticket_id)
        assert ticket is not None
        row.ticket = ticket
        # An out-of-office reply is never the data awaited: applicant_follow_up records it and
        # answers nothing, whatever the ticket's state.
        if ticket.state is not State.AWAITING_INFO or out_of_office_reply(msg):
            self.applicant_replies.applicant_follow_up(session, effects, row, msg, ticket, now)
            return
        self.requests.info_received(session, effects, row, msg, ticket, now)


def _label(row: models.InboundMessage) -> str:
    """How logs name a received mail: its id once stored, else where it came from."""
    return f"#{row.id}" if row.id is not None else f"{row.mailbox} UID {row.uid}"


def _status(row: models.InboundMessage, new: InboundStatus) -> None:
    """The one way a received mail's status changes: checked against workflow's table."""
    row.status = next_inbound(row.status, new)


def _number(session: Session, ticket_id: int | None) -> str | None:
    if ticket_id is None:
        return None
    ticket = store.get_ticket(session, ticket_id)
    return ticket.number if ticket else None
