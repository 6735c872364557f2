"""Hostile and broken input: fuzzed mail, header injection, oversized and flooding mail, scripts."""

from __future__ import annotations

import base64
import email
import email.policy
from email.message import EmailMessage

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailbot.core.classify import classify
from mailbot.core.fields import extract_fields, validate_fields
from mailbot.core.message import UnreadableMessage, parse_message
from mailbot.core.survey import parse_survey
from tests.conftest import SERVICE_ADDRESS, request_mail
from tests.desk import Desk

HEADER_NAMES = st.sampled_from(
    [
        "From",
        "To",
        "Subject",
        "Message-ID",
        "In-Reply-To",
        "References",
        "Content-Type",
        "Auto-Submitted",
        "Return-Path",
        "Content-Transfer-Encoding",
        "MIME-Version",
        "List-Id",
        "Precedence",
        "X-Loop",
    ]
)
TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=200)


@st.composite
def mails(draw: st.DrawFn) -> bytes:
    headers = draw(st.lists(st.tuples(HEADER_NAMES, TEXT), max_size=12))
    boundary = draw(st.sampled_from(["b", "==x==", "", "--"]))
    body = draw(
        st.one_of(TEXT, st.just(f"--{boundary}\r\nContent-Type: text/html\r\n\r\n<p>x</p>\r\n--{boundary}--"))
    )
    lines = [f"{k}: {v}" for k, v in headers]
    raw = "\r\n".join(lines) + "\r\n\r\n" + body
    return raw.encode("utf-8", "surrogatepass")


def _through_the_core(raw: bytes) -> None:
    try:
        msg = parse_message(raw)
    except UnreadableMessage as exc:
        assert exc.reason
        return
    classify(msg, instance_id=SERVICE_ADDRESS, thread=None, sender_is_staff=False)
    validate_fields(extract_fields(msg.text), ("name", "question"), __import__("datetime").date(2026, 11, 21))
    parse_survey(msg.text, msg.html_text)
    assert "\n" not in msg.subject and "\r" not in msg.from_name


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mails())
def test_structured_fuzz_never_raises(raw: bytes) -> None:
    _through_the_core(raw)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_random_bytes_never_raise(raw: bytes) -> None:
    _through_the_core(raw)


def test_crlf_and_encoded_word_injection_never_reach_an_outgoing_header(desk: Desk) -> None:
    evil_name = base64.b64encode(b"Rina\r\nBcc: evil@example.com").decode()
    evil_subject = base64.b64encode(b"Tanya\r\nBcc: evil2@example.com\r\nX-Injected: 1").decode()
    raw = request_mail(name=f"=?utf-8?b?{evil_name}?=", subject=f"=?utf-8?b?{evil_subject}?=")
    desk.deliver(raw)
    for out in desk.outbox():
        head = out.raw.split(b"\r\n\r\n", 1)[0]
        assert b"\nBcc:" not in head and b"\nX-Injected" not in head
        msg = email.message_from_bytes(out.raw, policy=email.policy.default)
        assert msg["Bcc"] is None and msg["X-Injected"] is None
        assert set(out.rcpt_to) <= {
            "rina.kartika@kemendesa.example.go.id",
            "kabag.umum@bpsdm.example.go.id",
            "plh.kabag@bpsdm.example.go.id",
        }


def test_html_and_scripts_from_mail_are_escaped_in_generated_html(desk: Desk) -> None:
    body = (
        "Nama: <img src=x onerror=alert(1)>\nNIP: 19860926 201505 2 001\nUnit Kerja: <script>x()</script>\n"
        "Jabatan: Analis\nNo HP: 081234567890\nPertanyaan: <b>tebal</b> & </td></table>\n"
    )
    desk.deliver(request_mail(body=body))
    for out in desk.outbox():
        msg = email.message_from_bytes(out.raw, policy=email.policy.default)
        html = str(msg.get_body(("html",)).get_content())
        assert "<script>" not in html and "<img src=x" not in html and "</td></table>" not in html
        assert "&lt;script&gt;" in html or "&lt;img" in html or "&lt;/td&gt;" in html


def _attachment_flood(n: int) -> bytes:
    msg = email.message_from_bytes(request_mail(), policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    msg.make_mixed()
    for i in range(n):
        msg.add_attachment(b"x", maintype="application", subtype="octet-stream", filename=f"f{i}.bin")
    return msg.as_bytes()


def _nested(depth: int) -> bytes:
    inner = "Content-Type: text/plain\r\n\r\nhalo\r\n"
    for i in range(depth):
        inner = f'Content-Type: multipart/mixed; boundary="b{i}"\r\n\r\n--b{i}\r\n{inner}\r\n--b{i}--\r\n'
    return (
        f"From: Rina <rina.kartika@kemendesa.example.go.id>\r\nTo: {SERVICE_ADDRESS}\r\n"
        "Subject: bertingkat\r\n"
        f"Message-ID: <deep@x>\r\nMIME-Version: 1.0\r\n{inner}"
    ).encode()


def test_limits_quarantine_and_answer_with_a_clear_refusal(make_app, sqlite_url, tmp_path) -> None:
    app = make_app(
        database_url=sqlite_url,
        mailbox_url=f"maildir://{tmp_path / 'md'}",
        smtp_url=f"file://{tmp_path / 'out'}",
        extra="[limits]\nmax_message_bytes = 200000\nmax_attachments = 20\nmax_mime_depth = 8\n",
    )
    desk = Desk(app)
    huge = request_mail(body="x" * 300_000, subject="Lampiran besar")
    outcomes = [desk.deliver(huge), desk.deliver(_attachment_flood(50)), desk.deliver(_nested(30))]
    assert [o.status for o in outcomes] == ["quarantined"] * 3
    refusals = desk.outbox("rina.kartika@kemendesa.example.go.id", "refused")
    assert len(refusals) == 1  # one refusal per sender per hour, however many they send
    text = (
        email.message_from_bytes(refusals[0].raw, policy=email.policy.default)
        .get_body(("plain",))
        .get_content()
    )
    assert "melebihi batas 0,2 MB" in text
    assert desk.ticket() is None
    # A machine's oversized mail is quarantined, never answered.
    auto = request_mail(
        sender="noreply@example.com", body="y" * 300_000, headers="Auto-Submitted: auto-generated\r\n"
    )
    assert desk.deliver(auto).status == "quarantined"
    assert desk.outbox("noreply@example.com") == []


def test_a_5000_deep_structure_is_refused_like_a_200_deep_one() -> None:
    """mail-parser names Python's recursion limit MailParserRecursionError: the person is still
    told (limit too_deep), as for a structure over max_mime_depth."""
    from mailbot.core.message import UnreadableMessage, parse_message

    for depth in (200, 5000):
        try:
            parse_message(_nested(depth), max_depth=10)
        except UnreadableMessage as exc:
            assert exc.limit == "too_deep", (depth, exc.reason)
        else:
            raise AssertionError(f"{depth} levels parsed")
