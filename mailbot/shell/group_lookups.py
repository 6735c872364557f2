"""A group transaction's lookups: what its messages will ask of stored mail, read once per kind
for the whole group (`prefetch`) and kept current as the group's own rows are added (`remember`)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import func, orm, select

from mailbot.shell import models
from mailbot.shell.persist import Known, Session, known_of
from mailbot.shell.store import NOT_PROCESSED


def prefetch(
    session: orm.Session,
    *,
    sources: Iterable[tuple[str, int, str]],
    shas: Iterable[str],
    message_ids: Iterable[str],
    content_hashes: Iterable[str],
    content_since: datetime | None,
    recipients: Iterable[str],
    mail_since: datetime,
    opened_since: datetime | None = None,
) -> Known:
    """Read, for a whole group, what its messages' lookups will ask; the answers stay with the
    session's transaction."""
    session.flush()
    known = Known()
    if isinstance(session, Session):
        session.known = known
    inbound = models.InboundMessage
    keys = set(sources)
    known.sources.update(dict.fromkeys(keys))
    for mailbox, uidvalidity in {(m, v) for m, v, _ in keys}:
        uids = [u for m, v, u in keys if (m, v) == (mailbox, uidvalidity)]
        for row in session.execute(
            select(inbound).where(
                inbound.mailbox == mailbox, inbound.uidvalidity == uidvalidity, inbound.uid.in_(uids)
            )
        ).scalars():
            known.sources[(row.mailbox, row.uidvalidity, row.uid)] = row
    wanted = set(shas)
    known.by_sha.update(dict.fromkeys(wanted))
    if wanted:
        for row in session.execute(
            select(inbound)
            .where(inbound.raw_sha256.in_(wanted), inbound.status.not_in(NOT_PROCESSED))
            .order_by(inbound.id)
        ).scalars():
            if known.by_sha.get(row.raw_sha256) is None:
                known.by_sha[row.raw_sha256] = row
    mids = {m for m in message_ids if m}
    for mid in mids:
        known.by_message_id.setdefault(mid, [])
    if mids:
        for row in session.execute(
            select(inbound)
            .where(inbound.message_id.in_(mids), inbound.status.not_in(NOT_PROCESSED))
            .order_by(inbound.id)
        ).scalars():
            known.by_message_id[row.message_id].append(row)
    hashes = {h for h in content_hashes if h}
    if content_since is not None and hashes:
        known.content_since = content_since
        for h in hashes:
            known.by_content.setdefault(h, [])
        for row in session.execute(
            select(inbound)
            .where(
                inbound.content_hash.in_(hashes),
                inbound.received_at >= content_since,
                inbound.ticket_id.is_not(None),
            )
            .order_by(inbound.id)
        ).scalars():
            known.by_content[row.content_hash].append(row)
    people = {r.lower() for r in recipients if r}
    if people:
        counts = {
            recipient: int(count)
            for recipient, count in session.execute(
                select(models.OutboundMessage.recipient, func.count())
                .where(
                    models.OutboundMessage.recipient.in_(people),
                    models.OutboundMessage.created_at >= mail_since,
                )
                .group_by(models.OutboundMessage.recipient)
            )
        }
        known.mail_counts.update({p: counts.get(p, 0) for p in people})
    senders = {r for r in recipients if r}
    if senders and opened_since is not None:
        opened = {
            applicant: int(count)
            for applicant, count in session.execute(
                select(models.Ticket.applicant_email, func.count())
                .where(models.Ticket.applicant_email.in_(senders), models.Ticket.created_at >= opened_since)
                .group_by(models.Ticket.applicant_email)
            )
        }
        known.opened.update({p: opened.get(p, 0) for p in senders})
    return known


def remember(session: orm.Session, row: models.InboundMessage, message_id: str) -> None:
    """A message of the group is stored: later messages' lookups find it (as a query would have)."""
    known = known_of(session)
    if known is None:
        return
    known.sources[(row.mailbox, row.uidvalidity, row.uid)] = row
    if row.status not in NOT_PROCESSED:
        if known.by_sha.get(row.raw_sha256) is None:
            known.by_sha[row.raw_sha256] = row
        if message_id and message_id in known.by_message_id:
            known.by_message_id[message_id].append(row)


def remember_content(session: orm.Session, row: models.InboundMessage) -> None:
    """A message of the group now belongs to a ticket: a later copy of its content finds it."""
    known = known_of(session)
    if (
        known is not None
        and row.content_hash in known.by_content
        and (row.ticket_id is not None or row.ticket is not None)
    ):
        known.by_content[row.content_hash].append(row)
