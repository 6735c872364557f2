"""Every reader of mail from outside runs in linear time (issue #18 item 1; STYLE.md habit 10).

Each case feeds one pathological line or header of about 1 MB (MAILBOT_LINEAR_SIZE) to the entry
points that read mail and holds a generous bound. A linear implementation meets it by orders of
magnitude; the quadratic regexes this guards against took 16 s to 83 s for 64 KB. A guard, not a
benchmark: nothing here measures speed beyond "not quadratic".
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailbot.core.classify import classify, courtesy_only, out_of_office_reply
from mailbot.core.commands import parse_commands
from mailbot.core.fields import _LINE_RE, FIELDS, extract_fields, validate_fields
from mailbot.core.html_text import html_to_text
from mailbot.core.message import parse_message
from mailbot.core.quotes import strip_quotes
from mailbot.core.staff_signature import strip_staff_signature
from mailbot.core.staff_text import not_an_answer, text_after_commands
from mailbot.core.survey import parse_survey

SIZE = int(os.environ.get("MAILBOT_LINEAR_SIZE", "1000000"))
BOUND = 5.0  # seconds per reader; linear code needs well under one
TODAY = date(2026, 11, 21)
SP = " " * SIZE


def _mail(body: str, headers: str = "", content_type: str = "text/plain; charset=utf-8") -> bytes:
    return (
        "From: Rina Kartika <rina.kartika@kemendesa.example.go.id>\r\n"
        "To: konsultasi@bpsdm.example.go.id\r\n"
        "Subject: Konsultasi\r\n"
        "Date: Mon, 16 Nov 2026 09:00:00 +0700\r\n"
        "Message-ID: <linear@kemendesa.example.go.id>\r\n"
        f"{headers}MIME-Version: 1.0\r\nContent-Type: {content_type}\r\n\r\n{body}\r\n"
    ).encode()


def _timed(what: str, work: Callable[[], object]) -> None:
    start = time.perf_counter()
    work()
    spent = time.perf_counter() - start
    assert spent < BOUND, f"{what}: {spent:.1f} s for {SIZE:,} characters"


# One body line each: what made a regex backtrack over a long run (spaces, blank lines, quotes).
BODY_LINES = {
    "signature-dashes": "--" + SP + "x",  # fields._SIGNATURE_RE: 16 s at 64 KB
    "wrote": "wrote" + SP + "x",  # quotes._WROTE_END: 83 s at 64 KB
    "on-date-wrote": "On 1.2.2026 rina@example.go.id wrote" + SP + "x",
    "label-value-spaces": "Nama: Rina" + SP + "x",
    "label-spaces": "Nama" + SP + "x",
    "valediction-spaces": "Hormat saya" + SP + "x",
    "dari-spaces": "Dari:" + SP + "x",
    "begin-forwarded": "begin forwarded message" + SP + "x",
    "spaces-dash-spaces": SP[: SIZE // 2] + "-" + SP[: SIZE // 2] + "x",
    "digit-spaces": "1" + SP + "x",
    "phone-spaces": "No. HP: 0812" + SP + "x",
    "id-spaces": "NIP: 1986" + SP + "x",
    # Several fields on one line (fields._INLINE_LABEL): long runs after a value.
    "id-commas": "NIP: 1986" + ", " * (SIZE // 2) + "x",
    "id-letters": "NIP: 1986  " + "a" * SIZE + "x",
    "id-spaced-words": "NIP: 1986" + "  ab" * (SIZE // 4),
    "id-label-runs": "NIP: 1986" + "  Unit Kerja" * (SIZE // 12),
    "blank-lines": "\n" * SIZE,
    "space-lines": " \n" * (SIZE // 2),
    "quoted-every-other-line": "> kutipan\njawaban\n" * (SIZE // 18),
    "valedictions": "Baik\n" + "Salam\n" * (SIZE // 6),
    "dari-lines": "Dari: a\n" * (SIZE // 8),
    "stars": "Dari:" + "*" * SIZE,
    "dashes": "-" * SIZE + "x",
    "underscores": "_" * SIZE + "x",
    # Greetings, closings and signatures (commands._after_greeting, text_after_commands,
    # staff_signature, classify.out_of_office_reply, the survey's "semua N" and labelled row).
    "greetings": "Baik,\n" * (SIZE // 6) + "ASSIGN Budi",
    "thanks-lines": "Terima kasih,\n" * (SIZE // 14),
    "digits-spaced": "NIP. " + "1 " * (SIZE // 2),
    "phone-dashes": "0812" + "-" * SIZE + "x",
    "semua-spaces": "semua" + SP + "4",
    "nilai-spaces": "Nilai:" + SP + "4 4 4",
    "sedang-cuti": "saya sedang cuti sampai " * (SIZE // 24),
}
READERS: dict[str, Callable[[str], object]] = {
    "fields": lambda text: validate_fields(extract_fields(text), FIELDS, TODAY),
    "quotes": strip_quotes,
    "commands": parse_commands,
    "survey": parse_survey,
    "after commands": lambda text: text_after_commands(text, ["Budi Santoso"]),
    "not an answer": not_an_answer,
    "staff signature": lambda text: strip_staff_signature(
        text, names=["Budi Santoso"], nip="198001012005011001"
    ),
    "courtesy": courtesy_only,
    "out of office": lambda text: out_of_office_reply(parse_message(_mail(text))),
}


@pytest.mark.parametrize("reader", list(READERS))
@pytest.mark.parametrize("case", list(BODY_LINES))
def test_a_pathological_line_is_read_in_linear_time(reader: str, case: str) -> None:
    # First, so that a reader that stops at the first line it does not know (commands) reads it.
    text = f"{BODY_LINES[case]}\nNama: Rina Kartika\nPertanyaan: Bagaimana prosedurnya?\n"
    _timed(f"{reader} on {case}", lambda: READERS[reader](text))


@pytest.mark.parametrize("case", ["signature-dashes", "wrote", "label-value-spaces", "blank-lines"])
def test_a_pathological_mail_is_parsed_and_read_in_linear_time(case: str) -> None:
    """Through the parser, as the intake reads a mail: fields, new text, hash, classification."""
    raw = _mail(BODY_LINES[case].replace("\n", "\r\n"))

    def read() -> None:
        msg = parse_message(raw, max_bytes=64 * 1024 * 1024)
        _ = msg.request_fields, msg.new_text, msg.content_hash, msg.referenced_ids
        classify(msg, instance_id="konsultasi@bpsdm.example.go.id", thread=None, sender_is_staff=False)

    _timed(f"parse_message on {case}", read)


HEADERS = {
    "references-40000": "References: " + " ".join(f"<{i}.ref@example.go.id>" for i in range(40_000)),
    "references-1mb": "References: " + " ".join(f"<{i}@x>" for i in range(SIZE // 8)),
    "in-reply-to-and-references": "In-Reply-To: <0@x>\r\nReferences: "
    + " ".join(f"<{i % 5000}@x>" for i in range(SIZE // 10)),
    "subject-open-encoded-words": "Subject: " + "=?utf-8?q?a" * (SIZE // 11),  # stdlib: 15 s at 100 KB
    "subject-spaces": "Subject: Re:" + SP + "x",
    "subject-reply-prefixes": "Subject: " + "Re: " * (SIZE // 4) + "x",
    # Linear, but mail-parser and the standard library parse each address of a header apart
    # (about 5 us a byte): 10,000 addresses, not 1 MB of them.
    "cc-many": "Cc: " + ", ".join(f"a{i}@example.go.id" for i in range(10_000)),
    "cc-open-angles": "Cc: " + "<" * SIZE,
    "in-reply-to-open-angles": "In-Reply-To: " + "<" * SIZE,
    "folded-subject": "Subject: " + "a\r\n " * (SIZE // 4) + "x",
}


@pytest.mark.parametrize("case", list(HEADERS))
def test_a_pathological_header_is_parsed_in_linear_time(case: str) -> None:
    raw = _mail("Nama: Rina Kartika", headers=HEADERS[case] + "\r\n")

    def read() -> None:
        msg = parse_message(raw, max_bytes=64 * 1024 * 1024)
        _ = msg.referenced_ids, msg.content_hash, msg.request_fields
        classify(msg, instance_id="konsultasi@bpsdm.example.go.id", thread=None, sender_is_staff=False)

    _timed(f"parse_message on {case}", read)


def test_forty_thousand_references_keep_their_order_without_repeats() -> None:
    ids = " ".join(f"<{i % 20_000}@x>" for i in range(40_000))
    msg = parse_message(_mail("halo", headers=f"In-Reply-To: <19999@x>\r\nReferences: {ids}\r\n"))
    refs = msg.referenced_ids
    assert len(refs) == 20_000 and refs[:3] == ["<19999@x>", "<19998@x>", "<19997@x>"]


HTML = {
    "unclosed-tags": "<a" * (SIZE // 2),
    "open-angles": "<" * SIZE,
    "marked-sections": "<![foo[" * (SIZE // 7),  # html.parser raises: the fallback scan reads it
    "unclosed-script": "<script>" * (SIZE // 8),
    "spaces-in-cells": "<table><tr><td>a</td><td>" + SP + "</td><td>\t" + SP + "x</td></tr></table>",
    "entities": "&amp" * (SIZE // 4),
}


@pytest.mark.parametrize("case", list(HTML))
def test_pathological_html_is_read_in_linear_time(case: str) -> None:
    _timed(f"html_to_text on {case}", lambda: html_to_text(HTML[case]))


# The field line regex was rewritten to be linear; the plain form it replaced is the reference.
_PLAIN_LINE_RE = re.compile(
    r"^(?P<label>[A-Za-z][A-Za-z0-9 ./()&-]{0,48}?)\s*(?:[:=：]|\s[-–—]\s|\t|\|)\s*(?P<value>.*)$"
)


@settings(max_examples=3000, deadline=None)
@given(st.text(alphabet="aN1 .-–:=|\t()x\u00a0/", max_size=60))
def test_the_linear_field_line_regex_matches_what_the_plain_one_did(line: str) -> None:
    plain, linear = _PLAIN_LINE_RE.match(line), _LINE_RE.match(line)
    assert (plain and plain.group("label", "value")) == (linear and linear.group("label", "value"))


def test_a_header_line_over_998_characters_still_decodes() -> None:
    """Folded before mail-parser (RFC 5322 s. 2.1.1), read word by word: the same subject."""
    subject = " ".join(["=?utf-8?q?Konsultasi_R=C3=ADna?="] * 60) + " tahap II"
    msg = parse_message(
        _mail("halo", headers=f"Subject: {subject}\r\n").replace(b"Subject: Konsultasi\r\n", b"")
    )
    assert len(subject) > 998
    assert msg.subject == "Konsultasi Rína" * 60 + " tahap II"
