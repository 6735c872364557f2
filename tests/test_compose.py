"""Composing outgoing mail: the header short cut writes what the Header class would have written."""

from __future__ import annotations

from datetime import UTC, datetime
from email import message_from_bytes
from email.policy import Compat32

from hypothesis import given, settings
from hypothesis import strategies as st

from mailbot.compose import _WIRE, MailSpec, Rendered, build_mail

NAMES = st.sampled_from(["Subject", "To", "From", "Message-ID", "References", "X-Mailbot-Ticket", "X"])
# Header text as it occurs: mostly printable ASCII with spaces, sometimes tabs, runs of spaces,
# long words, non-ASCII letters and line breaks (which must all take the Header class's path).
VALUES = st.lists(
    st.sampled_from([*"abcXYZ019<>@.=?-_ ", "  ", "\t", "é", "\r\n", "x" * 40]), max_size=40
).map("".join)


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
        from_addr="konsultasi@bpsdm.example.go.id",
        from_name="Layanan Konsultasi",
        instance_id="konsultasi@bpsdm.example.go.id",
        now=datetime(2026, 11, 21, 3, 0, tzinfo=UTC),
    )
    head = env.raw.split(b"\r\n\r\n", 1)[0]
    assert all(len(line) <= 78 for line in head.split(b"\r\n")), head
    assert b"=?utf-8?" in head
    parsed = message_from_bytes(env.raw)
    assert parsed["To"] == "Rina Kartika <rina@example.go.id>"
    assert parsed["Message-ID"] == "<x@y>"
