"""The exported mbox threads as mail clients thread it (JWZ): one thread per ticket, rooted at the
request, whatever mail the ticket produced (#21 item 7)."""

from __future__ import annotations

import email
import email.policy
import mailbox
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailbot.shell import models
from tests.conftest import ROOT, Clock, request_mail, send_all
from tests.desk import BUDI, HEAD, Desk

RINA = "rina.kartika@kemendesa.example.go.id"
AGUS = "agus.salim@kemendesa.example.go.id"

# --- JWZ threading (https://www.jwz.org/doc/threading.html) ---------------------------------

_MSGID = re.compile(r"<[^<>\s]+>")
_REPLY = re.compile(r"^\s*((re|fwd?|aw|bls|balas)\s*(\[\d+\])?\s*:\s*)+", re.IGNORECASE)


@dataclass(eq=False)
class Container:
    """A node of the thread tree: a message, or the place of one that is only referenced."""

    message_id: str
    message: Message | None = None
    parent: Container | None = None
    children: list[Container] = field(default_factory=list)

    def add(self, child: Container) -> None:
        child.parent = self
        self.children.append(child)

    def unlink(self) -> None:
        if self.parent is not None:
            self.parent.children.remove(self)
            self.parent = None

    def reaches(self, other: Container) -> bool:
        """`other` is this container or below it."""
        return self is other or any(c.reaches(other) for c in self.children)

    def walk(self) -> Iterator[Container]:
        yield self
        for child in self.children:
            yield from child.walk()

    def subject(self) -> str:
        if self.message is not None:
            return str(self.message["Subject"] or "")
        return self.children[0].subject() if self.children else ""


def _ids(value: object) -> list[str]:
    return _MSGID.findall(str(value or ""))


def jwz_thread(messages: list[Message], *, group_by_subject: bool = True) -> list[Container]:
    """The root set of JWZ's algorithm: steps 1-4, and step 5 (subject grouping) if asked."""
    id_table: dict[str, Container] = {}
    for n, msg in enumerate(messages):
        # Step 1A: the message's container, filling an empty one (a duplicate id gets its own).
        [mid, *_] = _ids(msg["Message-ID"]) or [f"<no-id-{n}@jwz>"]
        this = id_table.get(mid)
        if this is not None and this.message is not None:
            mid = f"<duplicate-{n}@jwz>"
            this = None
        if this is None:
            this = id_table[mid] = Container(mid)
        this.message = msg
        # Step 1B: link the References in order, parent to child, never making a loop and never
        # moving a container that already has a parent. No References: the In-Reply-To.
        refs = _ids(msg["References"]) or _ids(msg["In-Reply-To"])[:1]
        previous: Container | None = None
        for ref in refs:
            node = id_table.setdefault(ref, Container(ref))
            if previous is not None and node.parent is None and not node.reaches(previous):
                previous.add(node)
            previous = node
        # Step 1C: the message's parent is the last reference (its own claim wins).
        this.unlink()
        if previous is not None and not this.reaches(previous):
            previous.add(this)
    # Step 2: the root set; step 3: the id table is no longer needed.
    roots = [c for c in id_table.values() if c.parent is None]
    # Step 4: prune empty containers.
    roots = _prune(roots, at_root=True)
    if group_by_subject:
        roots = _group_by_subject(roots)
    return roots


def _prune(containers: list[Container], *, at_root: bool) -> list[Container]:
    kept: list[Container] = []
    for c in containers:
        c.children = _prune(c.children, at_root=False)
        for child in c.children:
            child.parent = c
        if c.message is None and not c.children:
            continue  # nothing here: dropped
        if c.message is None and (not at_root or len(c.children) == 1):
            # Empty with children: the children take its place (at the root only when one).
            for child in c.children:
                child.parent = c.parent
            kept.extend(c.children)
            continue
        kept.append(c)
    return kept


def _base_subject(subject: str) -> tuple[str, bool]:
    stripped = _REPLY.sub("", subject).strip()
    return stripped, stripped != subject.strip()


def _group_by_subject(roots: list[Container]) -> list[Container]:
    """Step 5: roots with the same subject (without Re:) are gathered under one."""
    table: dict[str, Container] = {}
    for c in roots:
        base, is_reply = _base_subject(c.subject())
        if not base:
            continue
        old = table.get(base)
        if (
            old is None
            or (c.message is None and old.message is not None)
            or (old.message is not None and _base_subject(old.subject())[1] and not is_reply)
        ):
            table[base] = c
    result = list(roots)
    for c in roots:
        base, is_reply = _base_subject(c.subject())
        that = table.get(base)
        if that is None or that is c or c not in result:
            continue
        result.remove(c)
        if that.message is None and c.message is None:
            for child in list(c.children):
                child.unlink()
                that.add(child)
        elif that.message is None:
            that.add(c)
        elif c.message is None:
            result.remove(that)
            c.add(that)
            result.append(c)
            table[base] = c
        elif is_reply and not _base_subject(that.subject())[1]:
            that.add(c)
        else:
            both = Container(f"<subject-{len(result)}@jwz>")
            result.remove(that)
            both.add(that)
            both.add(c)
            result.append(both)
            table[base] = both
    return result


def _mail(headers: str) -> Message:
    return email.message_from_string(headers + "\n\nx\n")


def test_jwz_links_references_fills_gaps_and_prunes() -> None:
    a = _mail("Message-ID: <a@x>\nSubject: Tanya")
    # c's parent b was never received: an empty container holds its place.
    c = _mail("Message-ID: <c@x>\nSubject: Re: Tanya\nReferences: <a@x> <b@x>\nIn-Reply-To: <b@x>")
    d = _mail("Message-ID: <d@x>\nSubject: Re: Tanya\nIn-Reply-To: <c@x>")
    loop = _mail("Message-ID: <e@x>\nSubject: Lain\nReferences: <e@x>")
    roots = jwz_thread([d, c, a, loop], group_by_subject=False)
    assert sorted(r.message_id for r in roots) == ["<a@x>", "<e@x>"]
    [top] = [r for r in roots if r.message_id == "<a@x>"]
    # b is empty with one child: pruned, c moves up under a.
    assert [ch.message_id for ch in top.children] == ["<c@x>"]
    assert [ch.message_id for ch in top.children[0].children] == ["<d@x>"]


def test_jwz_groups_roots_by_subject_only_in_step_five() -> None:
    a = _mail("Message-ID: <a@x>\nSubject: Tanya ABK")
    b = _mail("Message-ID: <b@x>\nSubject: Re: Tanya ABK")  # its parent is unknown
    assert len(jwz_thread([a, b], group_by_subject=False)) == 2
    [root] = jwz_thread([a, b])
    assert root.message_id == "<a@x>" and [c.message_id for c in root.children] == ["<b@x>"]


# --- a full ticket through the real pipeline -------------------------------------------------

_NO_PHONE = (
    "Yth. Tim Sekretariat,\n\n"
    "Nama Lengkap : Rina Kartika\n"
    "NIP          : 19860926 201505 2 001\n"
    "Unit Kerja   : Biro Perencanaan, Kementerian Desa PDTT\n"
    "Jabatan      : Analis Kebijakan Ahli Muda\n\n"
    "Permasalahan:\n"
    "Bagaimana tata cara penyusunan Analisis Beban Kerja untuk jabatan\n"
    "fungsional yang baru dibentuk?\n\n"
    "Hormat saya,\nRina\n"
)


def _export(tmp_path: Path) -> Path:
    out = tmp_path / "arsip.mbox"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mailbot",
            "--config",
            str(tmp_path / "mailbot.toml"),
            "export",
            "mbox",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return out


def _two_interleaved_tickets(desk: Desk, clock: Clock) -> None:
    """Rina's ticket (missing phone first, a follow-up, answer, survey) and Agus's (reminders,
    escalation, an answer, a survey reminder), their mail interleaved in time."""
    desk.deliver(request_mail(body=_NO_PHONE))
    desk.reply(desk.last(RINA, "missing_fields"), RINA, "No. HP : 0812-3456-7890")
    desk.deliver(request_mail(sender=AGUS, name="Agus Salim", subject="Kenaikan pangkat fungsional"))
    rina, agus = _numbers(desk)
    clock.advance(minutes=8)
    desk.app.sweep_deadlines()  # reminders to the head (both disposition steps)
    clock.advance(minutes=3)
    desk.app.sweep_deadlines()  # escalations
    desk.reply(_last_of(desk, HEAD, "notify", rina), HEAD, "ASSIGN Budi Santoso")
    desk.reply(_last_of(desk, HEAD, "notify", agus), HEAD, "ASSIGN Budi Santoso\nNOTE mohon segera")
    desk.reply(_last_of(desk, RINA, "assigned", rina), RINA, "Apakah perlu melampirkan peta jabatan?")
    desk.reply(_last_of(desk, BUDI, "assign", rina), BUDI, "ABK disusun per jabatan dengan peta jabatan.")
    desk.reply(_last_of(desk, RINA, "answer", rina), RINA, "4 4 3 4 4 4 4 3 4\nKomentar/saran: jelas")
    desk.reply(_last_of(desk, BUDI, "assign", agus), BUDI, "Angka kredit dinilai oleh tim penilai.")
    clock.advance(days=3)
    desk.app.sweep_deadlines()  # Agus's survey reminder
    send_all(desk.app)


def _numbers(desk: Desk) -> list[str]:
    with desk.app.sessions() as s:
        return list(s.execute(select(models.Ticket.number).order_by(models.Ticket.id)).scalars())


def _message_ids(s: Session, ticket_id: int) -> set[str]:
    inbound = select(models.InboundMessage.message_id).where(models.InboundMessage.ticket_id == ticket_id)
    outbound = select(models.OutboundMessage.message_id).where(models.OutboundMessage.ticket_id == ticket_id)
    return set(s.execute(inbound).scalars()) | set(s.execute(outbound).scalars())


def _last_of(desk: Desk, to: str, kind: str, number: str) -> models.OutboundMessage:
    rows = [r for r in desk.outbox(to, kind) if f"[{number}]" in r.subject]
    assert rows, f"no {kind} mail to {to} for {number}"
    return rows[-1]


def test_every_mail_of_a_ticket_threads_to_its_request(desk: Desk, clock: Clock, tmp_path: Path) -> None:
    _two_interleaved_tickets(desk, clock)
    with desk.app.sessions() as s:
        tickets = list(s.execute(select(models.Ticket).order_by(models.Ticket.id)).scalars())
        ids_of = {t.id: _message_ids(s, t.id) for t in tickets}
        kinds = set(s.execute(select(models.OutboundMessage.kind)).scalars())
    # The scenario produced every kind of a ticket's mail this test is about.
    assert {
        "missing_fields", "ack", "notify", "reminder", "escalation", "transcript", "assign", "assigned",
        "follow_up", "answer", "survey_thanks", "survey_reminder",
    } <= kinds, kinds  # fmt: skip
    box = mailbox.mbox(_export(tmp_path))
    messages = [email.message_from_bytes(box.get_bytes(k), policy=email.policy.compat32) for k in box.keys()]  # noqa: SIM118
    assert len(messages) == sum(len(v) for v in ids_of.values())

    # In the file, each ticket's mail is one run (tickets do not interleave).
    owner = {mid: t.number for t in tickets for mid in ids_of[t.id]}
    runs = [owner[_ids(m["Message-ID"])[0]] for m in messages]
    assert [n for i, n in enumerate(runs) if i == 0 or runs[i - 1] != n] == [t.number for t in tickets]

    # Threaded by References and In-Reply-To alone (mutt's strict_threads), and with JWZ's subject
    # grouping too: one thread per ticket, its root the request, holding all of the ticket's mail.
    for by_subject in (False, True):
        roots = jwz_thread(messages, group_by_subject=by_subject)
        assert len(roots) == len(tickets), [r.subject() for r in roots]
        in_file_order = sorted(roots, key=lambda r: runs.index(owner[r.message_id]))
        for ticket, root in zip(tickets, in_file_order, strict=True):
            assert root.message is not None and root.message_id == ticket.root_message_id
            assert {c.message_id for c in root.walk()} == ids_of[ticket.id]

    # Every mail mailbot sent names the request first in References, and its parent last.
    for m in messages:
        if m["X-Mailbot-Ticket"]:
            refs = _ids(m["References"])
            number = str(m["X-Mailbot-Ticket"])
            [ticket] = [t for t in tickets if t.number == number]
            assert refs[0] == ticket.root_message_id and refs[-1] == _ids(m["In-Reply-To"])[0], m["Subject"]
