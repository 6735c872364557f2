"""Composing outgoing mail: the header short cut writes what the Header class would have written."""

from __future__ import annotations

from datetime import UTC, datetime
from email import message_from_bytes
from email.policy import Compat32
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jinja2 import Environment, StrictUndefined, Undefined, UndefinedError

from mailbot.core.compose import (
    _WIRE,
    MailSpec,
    OutgoingAttachment,
    Rendered,
    _alternative_bytes,
    _headers,
    _with_email_package,
    build_mail,
    environment,
)

# Who sends, as `build_mail` and `_headers` are told it.
SERVICE: dict[str, Any] = {
    "from_addr": "konsultasi@bpsdm.example.go.id",
    "from_name": "Layanan Konsultasi",
    "instance_id": "konsultasi@bpsdm.example.go.id",
    "now": datetime(2026, 11, 21, 3, 0, tzinfo=UTC),
}
NAMES = st.sampled_from(["Subject", "To", "From", "Message-ID", "References", "X-Mailbot-Ticket", "X"])
# Header text as it occurs: mostly printable ASCII with spaces, sometimes tabs, runs of spaces,
# long words, non-ASCII letters and line breaks (which must all take the Header class's path).
VALUES = st.lists(
    st.sampled_from([*"abcXYZ019<>@.=?-_ ", "  ", "\t", "é", "\r\n", "x" * 40]), max_size=40
).map("".join) | st.text(  # one long word, as a Message-ID
    st.sampled_from([*"abcXYZ019<>@.=?-_;,", "é", "\t"]), min_size=50, max_size=200
)


@settings(max_examples=2000)
@given(name=NAMES, value=VALUES)
def test_short_ascii_headers_fold_as_the_header_class_folds_them(name: str, value: str) -> None:
    reference = Compat32(linesep="\r\n", max_line_length=78)
    assert _WIRE.fold(name, value) == reference.fold(name, value)
    assert _WIRE.fold_binary(name, value) == reference.fold_binary(name, value)


def test_a_long_subject_is_still_folded_and_a_non_ascii_one_encoded() -> None:
    rendered = Rendered(
        subject="Konsultasi " + "penyusunan anggaran " * 6 + "— jawaban",
        text="Isi",
        html="<p>Isi</p>",
    )
    spec = MailSpec(
        to_addr="rina@example.go.id", to_name="Rina Kartika", rendered=rendered, message_id="<x@y>"
    )
    env = build_mail(
        spec,
        **SERVICE,
    )
    head = env.raw.split(b"\r\n\r\n", 1)[0]
    assert all(len(line) <= 78 for line in head.split(b"\r\n")), head
    assert b"=?utf-8?" in head
    parsed = message_from_bytes(env.raw)
    assert parsed["To"] == "Rina Kartika <rina@example.go.id>"
    assert parsed["Message-ID"] == "<x@y>"


TEXTS = st.text(st.characters(exclude_categories=("Cs",)), max_size=300) | st.sampled_from(
    ["", "\n", "x" * 57, "y" * 58, "baris satu\r\nbaris dua\n", "é" * 100]
)


@settings(max_examples=500)
@given(
    text=TEXTS,
    html=TEXTS,
    subject=VALUES,
    to_name=VALUES,
    in_reply_to=st.sampled_from(["", "<a@b>"]),
    references=st.lists(st.sampled_from(["<r1@x>", "<r2@x>", ""]), max_size=25).map(tuple),
    ticket=st.sampled_from(["", "KONS-2026-00001"]),
)
def test_mail_without_attachments_is_written_as_the_email_package_writes_it(
    text: str,
    html: str,
    subject: str,
    to_name: str,
    in_reply_to: str,
    references: tuple[str, ...],
    ticket: str,
) -> None:
    spec = MailSpec(
        to_addr="rina@example.go.id",
        to_name=to_name,
        rendered=Rendered(subject=subject, text=text, html=html),
        message_id="<m@x>",
        in_reply_to=in_reply_to,
        references=references,
        ticket_number=ticket,
    )
    headers = _headers(
        spec,
        **SERVICE,
    )
    assert _alternative_bytes(spec, headers, "0123abcd") == _with_email_package(spec, headers, "0123abcd")


def test_mail_with_attachments_still_carries_them() -> None:
    spec = MailSpec(
        to_addr="rina@example.go.id",
        to_name="Rina",
        rendered=Rendered(subject="Jawaban", text="Isi", html="<p>Isi</p>"),
        message_id="<m@x>",
        attachments=(OutgoingAttachment("riwayat é.pdf", "application/pdf", b"%PDF-1.4 x"),),
    )
    env = build_mail(
        spec,
        **SERVICE,
    )
    parsed = message_from_bytes(env.raw)
    assert parsed.get_content_type() == "multipart/mixed"
    parts = [p for p in parsed.walk() if p.get_filename()]
    assert [(p.get_filename(), p.get_payload(decode=True)) for p in parts] == [
        ("riwayat é.pdf", b"%PDF-1.4 x")
    ]


@given(
    keys=st.lists(st.sampled_from(["name", "items", "get", "keys", "__class__", "x", "copy"]), max_size=5),
    attribute=st.sampled_from(["name", "items", "get", "keys", "__class__", "x", "copy", "missing"]),
)
def test_dict_attribute_short_cut_finds_what_jinja_finds(keys: list[str], attribute: str) -> None:
    obj = {k: f"value of {k}" for k in keys}
    ours = environment().getattr(obj, attribute)
    theirs = Environment(undefined=StrictUndefined).getattr(obj, attribute)
    assert type(ours) is type(theirs)
    if not isinstance(theirs, Undefined):
        assert ours == theirs


def test_template_reads_dict_values_and_reports_a_missing_one() -> None:
    env = environment()
    template = env.from_string("{{ fields.name }} / {{ fields.items() | list | length }}")
    assert template.render(fields={"name": "Rina", "unit": "Biro"}) == "Rina / 2"
    with pytest.raises(UndefinedError, match="has no attribute 'phone'"):
        env.from_string("{{ fields.phone }}").render(fields={"name": "Rina"})
