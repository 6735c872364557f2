"""Duties of UU 27/2022 (PDP): everything held about one person as a bundle, and the purge of
personal data of closed tickets past the retention period, keeping the anonymous figures.

The purge reaches past the database: the mailbox keeps its own copies of received mail (the
processed and quarantine folders, or flagged in place) and a file:// outbox keeps every mail
sent as an .eml file. Those are removed after the database commit (remove_copies); what could
not be removed yet waits in the data folder for the next purge.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import logging
import os
import re
import zipfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from mailbot.config import Config
from mailbot.core.message import parse_headers
from mailbot.core.workflow import State
from mailbot.shell import models, persist, store
from mailbot.shell.mailbox import MailboxError, StoredCopy, open_source
from mailbot.shell.persist import Effects

log = logging.getLogger(__name__)

PURGED_DOMAIN = "purged.invalid"


def _person_tickets(session: Session, who: str) -> list[models.Ticket]:
    digits = re.sub(r"\D", "", who)
    if "@" in who:
        stmt = select(models.Ticket).where(models.Ticket.applicant_email == who.strip().lower())
        return list(session.execute(stmt.order_by(models.Ticket.id)).scalars())
    if len(digits) not in (9, 16, 18):
        raise ValueError(f"{who!r} is neither an email address nor a NIK/NIP")
    # JSON field queries differ per backend: read the candidates and compare in Python.
    tickets = session.execute(select(models.Ticket).order_by(models.Ticket.id)).scalars()
    # The number the applicant gave, and a second one given beside it (NIP / NIK in one field).
    return [
        t
        for t in tickets
        if digits
        in (
            re.sub(r"\D", "", str(t.fields.get("id_number", ""))),
            re.sub(r"\D", "", str(t.fields.get("id_number_other", ""))),
        )
    ]


def export_person(session: Session, who: str, out: Path) -> tuple[int, int]:
    """Write a zip with `person.json` (tickets, fields, history, surveys) and every message
    to or from the person. Returns (tickets, messages)."""
    tickets = _person_tickets(session, who)
    emails = {t.applicant_email for t in tickets} | ({who.strip().lower()} if "@" in who else set())
    messages = 0
    data: dict[str, Any] = {
        "subject": who,
        "exported_at": datetime.now().astimezone().isoformat(),
        "tickets": [],
    }
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        for t in tickets:
            survey = session.execute(
                select(models.Survey).where(models.Survey.ticket_id == t.id)
            ).scalar_one_or_none()
            data["tickets"].append(
                {
                    "number": t.number,
                    "state": t.state.value,
                    "created_at": t.created_at.isoformat(),
                    "applicant_email": t.applicant_email,
                    "applicant_name": t.applicant_name,
                    "subject": t.subject,
                    "fields": t.fields,
                    "history": [
                        {"at": e.at.isoformat(), "actor": e.actor, "kind": e.kind, "detail": e.detail}
                        for e in t.events
                    ],
                    "survey": {"scores": survey.scores, "comment": survey.comment} if survey else None,
                }
            )
            inbound, outbound = store.messages_of_ticket(session, t.id)
            for m in inbound:
                if m.from_addr in emails:  # staff mail of the ticket is in the history above
                    bundle.writestr(f"messages/{t.number}/in-{m.id}.eml", m.raw)
                    messages += 1
            for o in outbound:
                if o.recipient in emails:
                    bundle.writestr(f"messages/{t.number}/out-{o.id}.eml", o.raw)
                    messages += 1
        # Mail from the person that opened no ticket (duplicates, machine mail, quarantine).
        loose = session.execute(
            select(models.InboundMessage).where(
                models.InboundMessage.from_addr.in_(emails), models.InboundMessage.ticket_id.is_(None)
            )
        ).scalars()
        for m in loose:
            bundle.writestr(f"messages/other/in-{m.id}.eml", m.raw)
            messages += 1
        # Mail quarantined before its sender was read (a processing failure stores no From):
        # its header is read here, leniently.
        for m in _unattributed(session):
            if _sender_of(m.raw) in emails:
                bundle.writestr(f"messages/other/in-{m.id}.eml", m.raw)
                messages += 1
        bundle.writestr("person.json", json.dumps(data, indent=2, ensure_ascii=False))
    return len(tickets), messages


def _unattributed(session: Session) -> list[models.InboundMessage]:
    stmt = select(models.InboundMessage).where(
        models.InboundMessage.from_addr == "",
        models.InboundMessage.ticket_id.is_(None),
        models.InboundMessage.raw != b"",
    )
    return list(session.execute(stmt.order_by(models.InboundMessage.id)).scalars())


def _sender_of(raw: bytes) -> str:
    """The From (or Sender) address of raw bytes, lower-case, or "" when none can be read."""
    try:
        return parse_headers(raw).from_addr
    except Exception:  # a mail the parser gave up on: try the bare header lines
        head = re.split(rb"\r?\n\r?\n", raw[:65536], maxsplit=1)[0].decode("utf-8", "replace")
        for line in head.splitlines():
            name, _, value = line.partition(":")
            if name.strip().lower() in ("from", "sender"):
                address = email.utils.parseaddr(value)[1]
                if "@" in address:
                    return address.strip().lower()
        return ""


@dataclass(frozen=True)
class PurgeResult:
    tickets: int
    messages: int
    # What lies outside the database: the mailbox's copies of purged mail, and the SHA-256
    # and size of every purged outbound mail (a file:// outbox wrote each one as a file).
    copies: tuple[StoredCopy, ...] = ()
    sent: tuple[tuple[str, int], ...] = ()


def _copy_of(m: models.InboundMessage) -> StoredCopy:
    return StoredCopy(m.mailbox, m.uidvalidity, m.uid, m.raw_sha256, m.size, m.message_id)


def purge(session: Session, *, older_than: timedelta, now: datetime) -> PurgeResult:
    """Remove personal data of closed or rejected tickets last changed before `now - older_than`.

    Kept: number, profile, state, dates, work unit, assignee, the history's kinds and times, the
    survey's scores (the anonymous figures the reports need). Gone: name, NIK/NIP, phone, position,
    the question, the address, subjects, the history's texts, the survey comment and every raw
    message. The ticket's history records the purge (written before this returns: the caller
    owns the transaction and commits).
    """
    effects = Effects()
    result = _purge(session, effects, older_than=older_than, now=now)
    persist.apply(session, effects)
    return result


def _purge(session: Session, effects: Effects, *, older_than: timedelta, now: datetime) -> PurgeResult:
    cutoff = now - older_than
    stmt = select(models.Ticket).where(
        models.Ticket.state.in_([State.CLOSED, State.REJECTED]),
        models.Ticket.updated_at < cutoff,
        ~models.Ticket.applicant_email.like(f"%@{PURGED_DOMAIN}"),
    )
    tickets = 0
    messages = 0
    copies: list[StoredCopy] = []
    sent: list[tuple[str, int]] = []
    for ticket in list(session.execute(stmt).scalars()):
        email = ticket.applicant_email
        ticket.fields = {"unit": ticket.fields.get("unit", "")} if ticket.fields.get("unit") else {}
        ticket.issues = []
        ticket.applicant_email = f"ticket-{ticket.id}@{PURGED_DOMAIN}"
        ticket.applicant_name = ""
        ticket.subject = ""
        ticket.root_message_id = ""
        for event in ticket.events:
            event.detail = ""
            event.data = {}
            if event.actor == email:
                event.actor = "pemohon"
        inbound, outbound = store.messages_of_ticket(session, ticket.id)
        for m in inbound:
            if m.raw and m.mailbox != "replay":  # a replay came from a file or a row
                copies.append(_copy_of(m))
            m.raw, m.from_addr, m.subject, m.message_id, m.content_hash = b"", "", "", "", ""
            messages += 1
        for o in outbound:
            if o.raw:
                sent.append((hashlib.sha256(o.raw).hexdigest(), len(o.raw)))
            o.raw, o.subject = b"", ""
            if o.recipient == email:
                o.recipient, o.rcpt_to, o.mail_from = "", [], o.mail_from
            messages += 1
        survey = session.execute(
            select(models.Survey).where(models.Survey.ticket_id == ticket.id)
        ).scalar_one_or_none()
        if survey is not None:
            survey.comment = ""
        effects.record(
            ticket,
            "purged",
            actor="system",
            now=now,
            detail=f"personal data removed after {older_than.days} days",
            data={"days": older_than.days},
        )
        tickets += 1
    # Mail from nobody's ticket (duplicates, machine mail) past the retention period goes too.
    loose = session.execute(
        select(models.InboundMessage).where(
            models.InboundMessage.ticket_id.is_(None),
            models.InboundMessage.received_at < cutoff,
            or_(models.InboundMessage.raw != b"", models.InboundMessage.from_addr != ""),
        )
    ).scalars()
    for m in loose:
        if m.raw and m.mailbox != "replay":  # a replay came from a file or a row
            copies.append(_copy_of(m))
        m.raw, m.from_addr, m.subject = b"", "", ""
        messages += 1
    return PurgeResult(tickets, messages, tuple(copies), tuple(sent))


# --- copies outside the database ------------------------------------------------------------

PENDING_FILE = "purge-pending.json"


@dataclass
class CopiesRemoved:
    mailbox: int = 0  # messages removed from the mailbox's folders
    outbox: int = 0  # .eml files removed from a file:// outbox
    pending: int = 0  # copies left for the next purge (the mailbox could not be reached)
    unreachable: int = 0  # copies of another mailbox than the configured one (not looked for)
    errors: list[str] = field(default_factory=list)


def remove_copies(config: Config, result: PurgeResult) -> CopiesRemoved:
    """After the purge's commit: remove the mailbox's copies of the purged mail and the outbox's
    .eml files, together with whatever an earlier purge could not remove. What fails now is
    kept in the data folder (hashes and mailbox keys only) and tried again next time."""
    done = CopiesRemoved()
    pending_path = config.data_dir / PENDING_FILE
    copies, sent = _load_pending(pending_path)
    copies = list(dict.fromkeys([*copies, *result.copies]))
    sent = list(dict.fromkeys([*sent, *result.sent]))
    left_copies: list[StoredCopy] = []
    if copies:
        source = open_source(config)
        reachable = [c for c in copies if c.mailbox == source.name]
        done.unreachable = len(copies) - len(reachable)
        if reachable:
            try:
                source.connect()
                try:
                    done.mailbox = source.delete_copies(reachable)
                finally:
                    source.close()
            except MailboxError as exc:
                done.errors.append(f"mailbox: {exc}")
                left_copies = reachable
    left_sent: list[tuple[str, int]] = []
    if sent and config.smtp.scheme == "file":
        try:
            done.outbox = _remove_sent_files(Path(config.smtp.path), sent)
        except OSError as exc:
            done.errors.append(f"outbox folder: {exc}")
            left_sent = sent
    done.pending = len(left_copies) + len(left_sent)
    _save_pending(pending_path, left_copies, left_sent)
    return done


def _remove_sent_files(folder: Path, sent: Sequence[tuple[str, int]]) -> int:
    """Remove the .eml files whose bytes are one of the purged outbound mails (by size, then
    SHA-256: the file holds exactly the bytes that were queued)."""
    if not folder.is_dir():
        return 0
    sizes = {size for _, size in sent}
    hashes = {sha for sha, _ in sent}
    removed = 0
    with os.scandir(folder) as it:
        entries = [e for e in it if e.is_file() and e.name.endswith(".eml")]
    for entry in entries:
        if entry.stat().st_size not in sizes:
            continue
        path = Path(entry.path)
        if hashlib.sha256(path.read_bytes()).hexdigest() in hashes:
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def _load_pending(path: Path) -> tuple[list[StoredCopy], list[tuple[str, int]]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return [], []
    except (OSError, ValueError) as exc:
        log.warning("cannot read %s (%s): earlier purges' leftovers are not retried", path, exc)
        return [], []
    copies = [StoredCopy(**c) for c in data.get("copies", [])]
    sent = [(str(sha), int(size)) for sha, size in data.get("sent", [])]
    return copies, sent


def _save_pending(path: Path, copies: list[StoredCopy], sent: list[tuple[str, int]]) -> None:
    if not copies and not sent:
        path.unlink(missing_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps({"copies": [asdict(c) for c in copies], "sent": sent}), encoding="utf-8")
    os.replace(tmp, path)
