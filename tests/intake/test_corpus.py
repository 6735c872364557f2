"""Every message of the shared real-world corpus through intake: no unhandled exception, and the
class each must get (machine mail: no reply, no ticket; the .msg file: quarantined)."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from mailbot.core.message import parse_message
from mailbot.core.quotes import strip_quotes
from mailbot.pipeline.intake import Source
from mailbot.shell import models
from tests.conftest import CORPUS, send_all
from tests.servers import iter_corpus

if not (CORPUS / "EXPECTED.tsv").exists():
    pytest.skip(f"corpus folder {CORPUS} is absent", allow_module_level=True)

CASES = list(iter_corpus(CORPUS))


@pytest.fixture
def app(make_app, sqlite_url, tmp_path):
    return make_app(
        database_url=sqlite_url,
        mailbox_url=f"maildir://{tmp_path / 'md'}",
        smtp_url=f"file://{tmp_path / 'out'}",
    )


@pytest.mark.parametrize(("name", "expected"), [c for c in CASES if c[1] != "reply-body-only"])
def test_corpus_message_through_intake(app, name: str, expected: str) -> None:
    raw = (CORPUS / name).read_bytes()
    outcome = app.process_raw(Source("corpus", 1, name), raw)
    with app.sessions() as s:
        outbound = s.scalar(select(func.count()).select_from(models.OutboundMessage))
        tickets = s.scalar(select(func.count()).select_from(models.Ticket))
    if expected == "machine":
        assert outcome.status == "machine", outcome.reason
        assert outbound == 0 and tickets == 0
    elif expected == "human":
        assert outcome.status == "processed", outcome.reason
        assert tickets == 1
        with app.sessions() as s:
            kinds = set(s.scalars(select(models.TicketEvent.kind)))
        # An acknowledgment or the missing-fields reply, unless it came through a list.
        assert outbound >= 1 or "reply_suppressed" in kinds or "mail_not_sent" in kinds
        with app.sessions() as s:
            assert all(r for r in s.scalars(select(models.OutboundMessage.recipient)))
    else:
        assert expected == "not-rfc5322"
        assert outcome.status == "quarantined" and "RFC 5322" in outcome.reason
        assert outbound == 0 and tickets == 0
    send_all(app)  # whatever was queued renders and goes out without error


def test_whole_corpus_in_one_database_keeps_going(app) -> None:
    """One unreadable message never stops the others."""
    outcomes = {}
    for name, expected in CASES:
        if expected == "reply-body-only":
            continue
        outcomes[name] = app.process_raw(Source("corpus", 1, name), (CORPUS / name).read_bytes())
    # A machine mail seen twice (the CRLF copy of rfc3834-01) is a duplicate of a machine mail.
    machine = {n for n, o in outcomes.items() if o.kind == "machine"}
    assert machine == {n for n, e in CASES if e == "machine"}
    assert [n for n, o in outcomes.items() if o.status == "quarantined"] == ["msg_mailparser_outlook_1.msg"]
    result = send_all(app)
    assert result.dead == 0 and result.retried == 0


@pytest.mark.parametrize("name", [n for n, e in CASES if e == "reply-body-only"])
def test_reply_bodies_are_cut_at_the_quote(name: str) -> None:
    body = (CORPUS / name).read_text(errors="replace")
    new = strip_quotes(body)
    assert new and len(new) < len(body.strip())


@pytest.mark.parametrize(("name", "expected"), [c for c in CASES if c[1] == "human"])
def test_parse_keeps_sender_and_text(name: str, expected: str) -> None:
    msg = parse_message((CORPUS / name).read_bytes())
    assert "\r" not in msg.subject and "\n" not in msg.subject
    raw_from = re.search(rb"(?im)^from:", (CORPUS / name).read_bytes()[:20000]) is not None
    assert bool(msg.from_addr) == raw_from
