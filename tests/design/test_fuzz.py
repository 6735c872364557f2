"""Fuzzing the intake (#18 item 6): real mail mutated in its bytes, headers, MIME boundaries,
charsets and transfer encodings, fed to the daemon's own entry (`App.process_batch` one by one,
and a Maildir drained by `App.run_intake_once`). Every mutant must end in exactly one recorded
outcome, none by an unhandled exception; a copy delivered again is not handled twice; a mail
marked as a machine's (null Return-Path, Auto-Submitted, a delivery report) gets no mail back.

The suite runs a fixed seed and a bounded number of mutants; `bench/fuzz.py` runs the same
harness longer (`--count`, `--seed`) and saves what fails as .eml files."""

from __future__ import annotations

import email
import email.policy
import logging
import mailbox
import random
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

from sqlalchemy import func, select

from mailbot.app import App
from mailbot.pipeline.intake import Source
from mailbot.shell import models
from tests.conftest import CORPUS, DATA, SERVICE_ADDRESS, request_mail, send_all
from tests.desk import APPLICANT, BUDI, HEAD, STAFF, reply_bytes
from tests.servers import start_smtp

SUITE_SEED = 18
SUITE_ALONE = 200  # mutants fed one by one (each also delivered twice)
SUITE_MAILDIR = 120  # mutants drained from a Maildir in the daemon's batches and groups

FINAL = {"processed", "duplicate", "machine", "ignored", "quarantined", "held"}


# --- the seeds: real mail, built here, from tests/data and from the shared corpus -------------


APPLICANT2 = "agus.pratama@kemenpan.example.go.id"


def _sender(i: int) -> str:
    """A new request's sender, one per mutant: the flood cap stays out of the way, and a mail
    queued to this address is known to answer mutant `i`."""
    return f"rina.kartika+f{i}@kemendesa.example.go.id"


_TAGGED = re.compile(r"\+f(\d+)@")


def _alternative_qp() -> bytes:
    msg = EmailMessage()
    msg["From"] = '"Rina Kartika, S.E." <rina.kartika@kemendesa.example.go.id>'
    msg["To"] = SERVICE_ADDRESS
    msg["Subject"] = "Konsultasi — penyusunan ABK jabatan fungsional"
    msg["Message-ID"] = "<alt@kemendesa.example.go.id>"
    msg.set_content(
        "Nama Lengkap: Rina Kartika\nNIP: 19860926 201505 2 001\nUnit Kerja: Biro Perencanaan\n"
        "Jabatan: Analis Kebijakan\nNo. HP: 0812-3456-7890\nPermasalahan: ABK untuk jabatan baru - "
        "bagaimana caranya? Résumé terlampir.\n",
        charset="iso-8859-1",
        cte="quoted-printable",
    )
    msg.add_alternative(
        "<html><body><table><tr><td>Nama</td><td>Rina Kartika</td></tr><tr><td>Pertanyaan</td>"
        "<td>ABK <b>jabatan</b> baru?</td></tr></table><p>Hormat saya,<br>Rina</p></body></html>",
        subtype="html",
    )
    return msg.as_bytes()


def _attachment() -> bytes:
    msg = email.message_from_bytes(request_mail(), policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    msg.make_mixed()
    msg.add_attachment(
        b"%PDF-1.4\n" + bytes(range(256)) * 4,
        maintype="application",
        subtype="pdf",
        filename="Surat Permohonan Señora.pdf",
    )
    return msg.as_bytes()


def _html_only() -> bytes:
    msg = EmailMessage()
    msg["From"] = "Rina Kartika <rina.kartika@kemendesa.example.go.id>"
    msg["To"] = SERVICE_ADDRESS
    msg["Subject"] = "=?windows-1252?q?Konsultasi_=96_mutasi_pegawai?="
    msg["Message-ID"] = "<html@kemendesa.example.go.id>"
    msg.set_content(
        "<div>Nama: Rina Kartika</div><div>NIK: 3201010101010001</div><div>Unit Kerja: Biro Umum</div>"
        "<div>Jabatan: Analis</div><div>Telepon: 081234567890</div><p>Pertanyaan: bagaimana "
        "prosedur mutasi \u2013 antar instansi?</p><![if !supportLists]><span>x</span><![endif]>",
        subtype="html",
        charset="windows-1252",
        cte="base64",
    )
    return msg.as_bytes()


def _nested_related() -> bytes:
    msg = EmailMessage()
    msg["From"] = "Rina Kartika <rina.kartika@kemendesa.example.go.id>"
    msg["To"] = SERVICE_ADDRESS
    msg["Subject"] = "Pertanyaan dengan gambar"
    msg["Message-ID"] = "<nested@kemendesa.example.go.id>"
    msg.set_content("Nama: Rina Kartika\nPertanyaan: lihat gambar.\n")
    msg.add_alternative(
        '<p>Nama: Rina Kartika</p><p>Pertanyaan: lihat <img src="cid:g1"></p>', subtype="html"
    )
    html = msg.get_payload()[1]
    assert isinstance(html, EmailMessage)
    html.add_related(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, maintype="image", subtype="png", cid="<g1>")
    msg.make_mixed()
    forwarded = email.message_from_bytes(request_mail(subject="Surat asli"), policy=email.policy.default)
    msg.attach(_as_rfc822(forwarded))
    return msg.as_bytes()


def _as_rfc822(inner: email.message.Message) -> EmailMessage:
    part = EmailMessage()
    part.set_content(inner)
    return part


def _utf8_headers() -> bytes:
    return (
        "From: Rína Kartíka <rína@bücher.example>\r\nTo: konsultasi@bpsdm.example.go.id\r\n"
        "Subject: Pertanyaan tentang tunjangan kinerja\r\nMessage-ID: <utf8@bücher.example>\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\n"
        "Nama: Rína Kartíka\r\nPertanyaan: bagaimana menghitung tunjangan kinerja?\r\n"
    ).encode()


def _autoreply(ack: models.OutboundMessage) -> bytes:
    original = email.message_from_bytes(ack.raw, policy=email.policy.default)
    return (
        f"From: Rina Kartika <{APPLICANT}>\r\nTo: {SERVICE_ADDRESS}\r\n"
        f"Subject: Balasan otomatis: {original['Subject']}\r\n"
        f"Message-ID: <auto@kemendesa.example.go.id>\r\nIn-Reply-To: {original['Message-ID']}\r\n"
        "Auto-Submitted: auto-replied\r\nX-Autoreply: yes\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\n"
        "Saya sedang cuti sampai dengan tanggal 4 Januari 2027.\r\n"
    ).encode()


def _bounce(ack: models.OutboundMessage) -> bytes:
    """A delivery report of our acknowledgment, as Postfix writes one (RFC 3464)."""
    head = ack.raw.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
    return (
        "Return-Path: <>\r\nFrom: MAILER-DAEMON@mail.kemendesa.example.go.id (Mail Delivery System)\r\n"
        f"To: {SERVICE_ADDRESS}\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        "Message-ID: <bounce@mail.kemendesa.example.go.id>\r\nAuto-Submitted: auto-replied\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B1/report"\r\n\r\n'
        "--B1/report\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
        f"<{APPLICANT}>: host mail.kemendesa.example.go.id said: 550 5.1.1 User unknown\r\n\r\n"
        "--B1/report\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mail.kemendesa.example.go.id\r\n\r\n"
        f"Final-Recipient: rfc822; {APPLICANT}\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n"
        "--B1/report\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"{head}\r\n\r\n--B1/report--\r\n"
    ).encode()


def _data_seeds() -> list[tuple[str, bytes]]:
    """The mail files under tests/data (the reply bodies there are text, not mail)."""
    return [(f"data:{p.relative_to(DATA)}", p.read_bytes()) for p in sorted(DATA.rglob("*.eml"))]


def _corpus_seeds(corpus: Path | None) -> list[tuple[str, bytes]]:
    if corpus is None or not (corpus / "EXPECTED.tsv").exists():
        return []
    seeds = []
    for line in (corpus / "EXPECTED.tsv").read_text().splitlines()[1:]:
        name, _, expected = line.partition("\t")
        if name and expected.strip() != "reply-body-only":
            seeds.append((f"corpus:{name}", (corpus / name).read_bytes()))
    return seeds


# --- mutations ----------------------------------------------------------------------------------

_HEAD_END = re.compile(rb"\r?\n\r?\n")
_BOUNDARY = re.compile(rb'boundary\s*=\s*"?([^";\r\n]+)"?', re.IGNORECASE)
_CHARSET = re.compile(rb'charset\s*=\s*"?([^";\s]*)"?', re.IGNORECASE)
_CTE = re.compile(rb"^(content-transfer-encoding[ \t]*:)[^\r\n]*", re.IGNORECASE | re.MULTILINE)
_CT = re.compile(rb"^(content-type[ \t]*:[ \t]*)([^;\r\n]*)", re.IGNORECASE | re.MULTILINE)

TOKENS = [
    b"\x00", b"\r", b"\n", b"\r\n", b"\r\n\r\n", b"\n\n", b"--", b"=?", b"?=", b"\xff", b"\xfe\xff",
    b"<", b">", b"\xc3", b"\xe2\x80", b"\x1b[31m", b"\r\n.\r\n", b"\nFrom ", b"=\r\n", b"=ZZ", b"\t",
    b"<![foo[", b"<!--", b"]]>", b"&#x0;", b"&#99999999;", b"\\", b'"', b"(", b")", b",", b";", b":",
    b"=?utf-8?b?", b"=?x?q?=FF?=", b"\xf0\x9f\x98\x80", b"\xed\xa0\x80", b"a" * 1000, b" " * 500,
]  # fmt: skip

NASTY_VALUES = [
    b"", b" ", b"<>", b"< >", b"\x00", b"\xff\xfe", "rína@bücher.example".encode(), b"a" * 5000,
    b"<" * 300, b"=?utf-8?b?QmNjOiBldmlsQGV4YW1wbGUuY29t?=", b'"unterminated <x@y>', b"@@@",
    b"x@y, , ,<>, ;", b"(comment (nested (deep", b"=?unknown-8bit?q?=FF?=", b"=?utf-8?q?=E2=80?=",
    b"=?iso-2022-jp?b?GyRCJDMkcxsoQg==?=", b"=?utf-8?b?invalid base64?=", b"=?utf-8?",
    b"<a@b> <c@d> <e@f>", b"no-angle@brackets", b"Mon, 99 Foo 2026 99:99:99 +9999", b"multipart/mixed",
    b"text/plain; charset=", b"<mb.1.ack.00.00@bpsdm.example.go.id>", b"auto-replied", b"no",
    b"\"\\\"\" <\"@\"@x>", b"undisclosed-recipients:;", b"KONS-2026-000001", b"[KONS-2026-000001]",
]  # fmt: skip

EXTRA_HEADERS = [
    b"Return-Path: <>", b"Auto-Submitted: auto-replied", b"Auto-Submitted: no", b"Precedence: bulk",
    b"X-Spam-Flag: YES", b"List-Id: <daftar.example.go.id>", b"X-Autoreply: yes",
    b"Content-Type: multipart/report", b"MIME-Version: 2.0", b"Content-Transfer-Encoding: base64",
    b"Content-Type: text/html; charset=utf-16",
    b"X-Mailbot-Loop: konsultasi@bpsdm.example.go.id", b"In-Reply-To: <mb.1.ack.00.00@bpsdm.example.go.id>",
    b"Reply-To: korban@example.go.id", b"Sender: <>", b"From: <>", b"From:",
    b"References: " + b"<r@x> " * 400,
    b"Subject: Re: [KONS-2026-000001] tambahan", b"Content-Disposition: attachment; filename*=utf-8''%FF.pdf",
]  # fmt: skip

CHARSETS = [
    b"x-unknown", b"utf-16", b"utf-7", b"unicode-1-1-utf-7", b"iso-2022-jp", b"gb2312", b"cp1252",
    b"utf-32", b"", b"utf-8'", b"us-ascii", b"x-mac-roman", b"big5", b"koi8-r", b"latin-1", b"a" * 200,
    b"utf-8\"; charset=\"ascii", b"\xff", b"iso-8859-99",
]  # fmt: skip

ENCODINGS = [
    b"base64", b"quoted-printable", b"x-uuencode", b"uuencode", b"7bit", b"8bit", b"binary", b"bogus",
    b" BASE64 ", b"", b"base64; x=y", b"quoted-printable\x00",
]  # fmt: skip

CONTENT_TYPES = [
    b"multipart/mixed", b"multipart/alternative", b"multipart/report", b"message/rfc822", b"text/plain",
    b"text/html", b"multipart/", b"/", b"message/delivery-status", b"application/ms-tnef",
    b"multipart/digest",
    b"text/rfc822-headers", b"message/partial",
]  # fmt: skip


def _split(raw: bytes) -> tuple[list[bytes], bytes, bytes]:
    """Header fields (each with its folded lines), the line ending, and the rest (from the blank
    line on)."""
    m = _HEAD_END.search(raw)
    head, rest = (raw[: m.start()], raw[m.start() :]) if m else (raw, b"")
    eol = b"\r\n" if b"\r\n" in head else b"\n"
    return re.split(rb"\r?\n(?![ \t])", head), eol, rest


def _join(fields: list[bytes], eol: bytes, rest: bytes) -> bytes:
    return eol.join(fields) + rest


def _pos(rng: random.Random, raw: bytes) -> int:
    return rng.randrange(len(raw) + 1)


# Each mutation: (rng, raw) -> raw. Their names go into a finding, to say what was done.


def m_flip_bits(rng: random.Random, raw: bytes) -> bytes:
    data = bytearray(raw)
    for _ in range(rng.randint(1, 8)):
        if data:
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    return bytes(data)


def m_insert_token(rng: random.Random, raw: bytes) -> bytes:
    at = _pos(rng, raw)
    token = rng.choice(TOKENS) if rng.random() < 0.8 else rng.randbytes(rng.randint(1, 32))
    return raw[:at] + token + raw[at:]


def m_delete_span(rng: random.Random, raw: bytes) -> bytes:
    at = _pos(rng, raw)
    return raw[:at] + raw[at + rng.randint(1, 200) :]


def m_duplicate_span(rng: random.Random, raw: bytes) -> bytes:
    at = _pos(rng, raw)
    span = raw[at : at + rng.randint(1, 400)]
    to = _pos(rng, raw)
    return raw[:to] + span * rng.randint(1, 4) + raw[to:]


def m_truncate(rng: random.Random, raw: bytes) -> bytes:
    return raw[: _pos(rng, raw)]


def m_line_endings(rng: random.Random, raw: bytes) -> bytes:
    lf = raw.replace(b"\r\n", b"\n")
    choice = rng.randrange(4)
    if choice == 0:
        return lf
    if choice == 1:
        return lf.replace(b"\n", b"\r")  # classic Mac: CR only
    if choice == 2:
        return lf.replace(b"\n", b"\r\n")
    lines = lf.split(b"\n")
    return b"".join(line + rng.choice([b"\n", b"\r\n", b"\r", b"\n\r"]) for line in lines)


def m_drop_header(rng: random.Random, raw: bytes) -> bytes:
    fields, eol, rest = _split(raw)
    if len(fields) > 1:
        del fields[rng.randrange(len(fields))]
    return _join(fields, eol, rest)


def m_duplicate_header(rng: random.Random, raw: bytes) -> bytes:
    fields, eol, rest = _split(raw)
    fields.insert(rng.randrange(len(fields) + 1), rng.choice(fields))
    return _join(fields, eol, rest)


def m_shuffle_headers(rng: random.Random, raw: bytes) -> bytes:
    fields, eol, rest = _split(raw)
    rng.shuffle(fields)
    return _join(fields, eol, rest)


def m_header_value(rng: random.Random, raw: bytes) -> bytes:
    fields, eol, rest = _split(raw)
    i = rng.randrange(len(fields))
    name = fields[i].split(b":", 1)[0] if b":" in fields[i] else b"X-Broken"
    fields[i] = name + b": " + rng.choice(NASTY_VALUES)
    return _join(fields, eol, rest)


def m_add_header(rng: random.Random, raw: bytes) -> bytes:
    fields, eol, rest = _split(raw)
    fields.insert(rng.randrange(len(fields) + 1), rng.choice(EXTRA_HEADERS))
    return _join(fields, eol, rest)


def m_break_header(rng: random.Random, raw: bytes) -> bytes:
    fields, eol, rest = _split(raw)
    i = rng.randrange(len(fields))
    choice = rng.randrange(5)
    if choice == 0:
        fields[i] = fields[i].replace(b":", b"", 1)  # no colon: the header block ends here
    elif choice == 1:
        fields[i] = fields[i].replace(b":", b" :", 1)
    elif choice == 2:
        fields[i] = b" " + fields[i]  # a continuation line with nothing to continue
    elif choice == 3:
        cut = _pos(rng, fields[i])
        fields[i] = fields[i][:cut] + eol + rng.choice([b" ", b"\t", b" " + eol + b" "]) + fields[i][cut:]
    else:
        fields[i] = fields[i] + eol + b" "  # a whitespace-only continuation line
    return _join(fields, eol, rest)


def m_encoded_word(rng: random.Random, raw: bytes) -> bytes:
    fields, eol, rest = _split(raw)
    targets = [i for i, f in enumerate(fields) if re.match(rb"(?i)(from|to|subject|cc|reply-to):", f)]
    if not targets:
        return raw
    i = rng.choice(targets)
    name, _, value = fields[i].partition(b":")
    charset = rng.choice([b"utf-8", b"x-unknown", b"iso-2022-jp", b"utf-16", b"", b"gb2312"])
    word = rng.choice(
        [
            b"=?" + charset + b"?b?" + rng.randbytes(rng.randint(1, 30)).hex().encode() + b"?=",
            b"=?" + charset + b"?q?" + b"=FF=FE=E2=80" + b"?=",
            b"=?" + charset + b"?b?" + b"4pyT?=",
            b"=?" + charset + b"?x?abc?=",
            b"=?" + charset + b"*id?q?abc?=",
        ]
    )
    fields[i] = name + b": " + word + rng.choice([b"", b" ", b"\t"]) + value.strip()
    return _join(fields, eol, rest)


def m_eight_bit_header(rng: random.Random, raw: bytes) -> bytes:
    fields, eol, rest = _split(raw)
    i = rng.randrange(len(fields))
    text = rng.choice(["Rína Kartíka", "кириллица", "日本語", "\U0001f600"])
    data = text.encode(rng.choice(["utf-8", "latin-1", "utf-16"]), "replace")
    fields[i] = fields[i] + b" " + data
    return _join(fields, eol, rest)


def m_boundary(rng: random.Random, raw: bytes) -> bytes:
    found = _BOUNDARY.findall(raw)
    if not found:
        return m_content_type(rng, raw)
    b = rng.choice(found)
    delim = b"--" + b
    choice = rng.randrange(8)
    if choice == 0:  # the parameter names a boundary that never comes
        return raw.replace(b, b"other-" + b, 1)
    if choice == 1:  # no closing delimiter
        return raw.replace(delim + b"--", b"", 1)
    if choice == 2:  # one delimiter line missing
        starts = [m.start() for m in re.finditer(re.escape(delim), raw)]
        if not starts:
            return raw
        at = rng.choice(starts[1:] or starts)
        return raw[:at] + raw[at + len(delim) :]
    if choice == 3:  # one delimiter line twice
        at = raw.find(delim, raw.find(delim) + 1)
        return raw[:at] + delim + b"\r\n" + raw[at:] if at >= 0 else raw
    if choice == 4:  # an empty boundary
        return _BOUNDARY.sub(b'boundary=""', raw, count=1)
    if choice == 5:  # every boundary the same one: the inner parts end the outer
        for other in found:
            raw = raw.replace(other, found[0])
        return raw
    if choice == 6:  # a delimiter inside a part's body
        at = _pos(rng, raw)
        return raw[:at] + b"\r\n" + delim + rng.choice([b"", b"--"]) + b"\r\n" + raw[at:]
    return _BOUNDARY.sub(b"x=y", raw, count=1)  # the parameter gone


def m_content_type(rng: random.Random, raw: bytes) -> bytes:
    matches = list(_CT.finditer(raw))
    if not matches:
        fields, eol, rest = _split(raw)
        fields.append(b"Content-Type: " + rng.choice(CONTENT_TYPES))
        return _join(fields, eol, rest)
    m = rng.choice(matches)
    return raw[: m.start(2)] + rng.choice(CONTENT_TYPES) + raw[m.end(2) :]


def m_charset(rng: random.Random, raw: bytes) -> bytes:
    matches = list(_CHARSET.finditer(raw))
    if not matches:
        return _CT.sub(lambda m: m.group(0) + b"; charset=" + rng.choice(CHARSETS), raw, count=1)
    m = rng.choice(matches)
    return raw[: m.start(1)] + rng.choice(CHARSETS) + raw[m.end(1) :]


def m_transfer_encoding(rng: random.Random, raw: bytes) -> bytes:
    matches = list(_CTE.finditer(raw))
    if not matches:
        fields, eol, rest = _split(raw)
        fields.append(b"Content-Transfer-Encoding: " + rng.choice(ENCODINGS))
        return _join(fields, eol, rest)
    m = rng.choice(matches)
    return raw[: m.end(1)] + b" " + rng.choice(ENCODINGS) + raw[m.end() :]


def m_corrupt_encoded_body(rng: random.Random, raw: bytes) -> bytes:
    """Damage the body of an encoded part: a base64 line cut, bad padding, bad QP escapes."""
    lines = raw.split(b"\n")
    b64 = [i for i, line in enumerate(lines) if re.fullmatch(rb"[A-Za-z0-9+/=]{16,}\r?", line)]
    if b64 and rng.random() < 0.6:
        i = rng.choice(b64)
        lines[i] = rng.choice([lines[i][: len(lines[i]) // 2], lines[i] + b"===", b"!!!" + lines[i], b"="])
        return b"\n".join(lines)
    at = _pos(rng, raw)
    return raw[:at] + rng.choice([b"=ZZ", b"=\r\n=\r\n", b"=", b"=0", b"=\xff", b"=3D=3"]) + raw[at:]


def m_wrap(rng: random.Random, raw: bytes) -> bytes:
    """Put the mail inside another structure, or in front of it an mbox line or blank lines."""
    choice = rng.randrange(3)
    if choice == 0:
        return b"From MAILER-DAEMON Mon Nov 16 09:12:00 2026\n" + raw
    if choice == 1:
        return b"\r\n\r\n  " + raw
    fields, eol, _rest = _split(raw)
    keep = [f for f in fields if not f.lower().startswith((b"content-", b"mime-"))]
    keep.append(b'Content-Type: multipart/mixed; boundary="w"')
    return _join(keep, eol, eol + eol + b"--w" + eol + raw + eol + b"--w--" + eol)


MUTATIONS: list[Callable[[random.Random, bytes], bytes]] = [
    m_flip_bits,
    m_insert_token,
    m_delete_span,
    m_duplicate_span,
    m_truncate,
    m_line_endings,
    m_drop_header,
    m_duplicate_header,
    m_shuffle_headers,
    m_header_value,
    m_add_header,
    m_break_header,
    m_encoded_word,
    m_eight_bit_header,
    m_boundary,
    m_boundary,  # twice: MIME structure is where parsers differ most
    m_content_type,
    m_charset,
    m_transfer_encoding,
    m_corrupt_encoded_body,
    m_wrap,
]


def mutate(rng: random.Random, raw: bytes, seeds: list[tuple[str, bytes]]) -> tuple[bytes, list[str]]:
    """One to four mutations; now and then a splice of two seeds first."""
    ops = []
    if rng.random() < 0.05:
        other = rng.choice(seeds)[1]
        raw = raw[: _pos(rng, raw)] + other[_pos(rng, other) :]
        ops.append("splice")
    for _ in range(rng.choice([1, 1, 2, 2, 3, 4])):
        op = rng.choice(MUTATIONS)
        raw = op(rng, raw)
        ops.append(op.__name__[2:])
    return raw, ops


# --- the oracle: is this a machine's mail, read independently of mailbot -----------------------


def machine_marked(raw: bytes) -> str | None:
    """The RFC signals that a mail came from a machine, read by the standard library from the
    mutant's own bytes: a null Return-Path (RFC 5321 s. 4.5.5), Auto-Submitted other than "no"
    (RFC 3834 s. 5), a multipart/report (RFC 6522). None of them may ever be answered."""
    try:
        msg = email.message_from_bytes(raw.lstrip(b" \t\r\n"))
    except Exception:  # the standard library itself gives up: mailbot's parser does as well
        return None
    if raw.lstrip(b" \t\r\n").startswith(b"From "):
        return None  # an mbox line first: the parser reads no header block
    for value in msg.get_all("Return-Path") or []:
        if str(value).strip().strip("<>").strip() == "":
            return "null Return-Path"
    for value in msg.get_all("Auto-Submitted") or []:
        text = str(value).strip().lower()
        if text and not text.startswith("no"):
            return f"Auto-Submitted: {text[:40]}"
    if msg.get_content_type() == "multipart/report":
        return "multipart/report"
    return None


# --- the harness --------------------------------------------------------------------------------


@dataclass
class Finding:
    index: int
    seed: str
    ops: list[str]
    problem: str
    raw: bytes

    def __str__(self) -> str:
        return f"mutant {self.index} of {self.seed} ({'+'.join(self.ops)}): {self.problem}"


@dataclass
class Report:
    outcomes: Counter[str] = field(default_factory=Counter)
    findings: list[Finding] = field(default_factory=list)
    mutants: int = 0

    def line(self) -> str:
        parts = ", ".join(f"{k} {v}" for k, v in sorted(self.outcomes.items()))
        return f"{self.mutants} mutants: {parts}; {len(self.findings)} findings"


class _Rollbacks(logging.Handler):
    """Counts groups the intake rolled back: each is a message that raised inside a group."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if "rolled back" in record.getMessage():
            self.messages.append(record.getMessage())


class Fuzzer:
    """Mutants of real mail against one app. Seed `seed` and index `i` give the same mutant on
    every run (`random.Random(f"{seed}:{i}")`); what the app has seen before shapes its outcome."""

    def __init__(
        self, app: App, seed: int, corpus: Path | None = CORPUS, advance: Callable[[], None] = lambda: None
    ):
        self.app = app
        self.seed = seed
        self.advance = advance
        self.seeds = self._built_seeds() + _data_seeds() + _corpus_seeds(corpus)

    def _built_seeds(self) -> list[tuple[str, bytes]]:
        """Mail built here, including replies to two tickets the app opens now: one new, one
        answered (the survey is out)."""
        setup = Source("fuzz-setup", 1, "0")

        def deliver(raw: bytes) -> None:
            nonlocal setup
            setup = Source(setup.mailbox, 1, str(int(setup.uid) + 1))
            outcome = self.app.process_raw(setup, raw)
            assert outcome.status == "processed", outcome.reason

        deliver(request_mail())
        ack, notify = self._last(APPLICANT, "ack"), self._last(HEAD, "notify")
        deliver(request_mail(sender=APPLICANT2, name="Agus Pratama", subject="Konsultasi jabatan"))
        deliver(reply_bytes(self._last(HEAD, "notify"), HEAD, "ASSIGN Budi Santoso"))
        deliver(
            reply_bytes(self._last(BUDI, "assign"), BUDI, "Jawaban: gunakan 1.250 jam efektif per tahun.")
        )
        answer = self._last(APPLICANT2, "answer")
        return [
            ("request", request_mail()),
            ("request-incomplete", request_mail(body="Nama: Rina\nPertanyaan: bagaimana menyusun ABK?\n")),
            ("request-alternative-qp", _alternative_qp()),
            ("request-attachment", _attachment()),
            ("request-html-base64", _html_only()),
            ("request-nested-forward", _nested_related()),
            ("request-utf8-headers", _utf8_headers()),
            ("autoreply", _autoreply(ack)),
            ("bounce", _bounce(ack)),
            ("follow-up", reply_bytes(ack, APPLICANT, "Tambahan: Jabatan Analis Kebijakan Ahli Muda.")),
            ("out-of-office", reply_bytes(ack, APPLICANT, "Saya sedang cuti sampai dengan 4 Januari 2027.")),
            ("head-assign", reply_bytes(notify, HEAD, "ASSIGN Budi Santoso\nNOTE mohon segera")),
            ("head-help", reply_bytes(notify, HEAD, "HELP")),
            ("consultant-answer", reply_bytes(notify, BUDI, "Jawaban: ABK disusun per jabatan.")),
            ("survey", reply_bytes(answer, APPLICANT2, "4 4 3 4 4 4 4 3 4\nSaran: pertahankan.")),
            ("survey-partial", reply_bytes(answer, APPLICANT2, "1. a\n2. d\nU3: Sangat sesuai\n9. 5")),
            ("thanks", reply_bytes(answer, APPLICANT2, "Terima kasih banyak Pak.")),
            ("new-question", reply_bytes(answer, APPLICANT2, "Bagaimana jika dua jabatan itu digabung?")),
        ]

    def _last(self, to: str, kind: str) -> models.OutboundMessage:
        with self.app.sessions() as s:
            row = s.scalars(
                select(models.OutboundMessage)
                .where(models.OutboundMessage.recipient == to, models.OutboundMessage.kind == kind)
                .order_by(models.OutboundMessage.id.desc())
            ).first()
        assert row is not None, f"no {kind} mail to {to}"
        return row

    def mutant(self, i: int) -> tuple[str, list[str], bytes]:
        rng = random.Random(f"{self.seed}:{i}")
        name, raw = rng.choice(self.seeds)
        raw = _personal(raw, i, name)
        raw, ops = mutate(rng, raw, self.seeds)
        return name, ops, raw

    def _outbound(self) -> int:
        with self.app.sessions() as s:
            return s.scalar(select(func.count()).select_from(models.OutboundMessage)) or 0

    def _rows(self, source: Source) -> list[models.InboundMessage]:
        with self.app.sessions() as s:
            return list(
                s.scalars(
                    select(models.InboundMessage).where(
                        models.InboundMessage.mailbox == source.mailbox,
                        models.InboundMessage.uidvalidity == source.uidvalidity,
                        models.InboundMessage.uid == source.uid,
                    )
                )
            )

    # One by one, as the daemon processes a message alone (a group of one, or a group redone).

    def run_alone(self, indices: Iterable[int], report: Report) -> None:
        for i in indices:
            self.advance()
            name, ops, raw = self.mutant(i)
            report.mutants += 1
            for problem in self._check_alone(i, raw, report):
                report.findings.append(Finding(i, name, ops, problem, raw))

    def _check_alone(self, i: int, raw: bytes, report: Report) -> list[str]:
        problems = []
        source = Source("fuzz", 1, str(i))
        before = self._outbound()
        try:
            [outcome] = self.app.process_batch([(source, raw)])
        except Exception as exc:
            return [f"unhandled {type(exc).__name__}: {exc}"]
        sent = self._outbound() - before
        report.outcomes[outcome.status] += 1
        rows = self._rows(source)
        if len(rows) != 1:
            problems.append(f"{len(rows)} stored rows for one mail")
        elif rows[0].status != outcome.status or rows[0].status not in FINAL:
            problems.append(f"stored status {rows[0].status}, outcome {outcome.status}")
        if outcome.kind == "error":
            problems.append(f"crashed: {outcome.reason[:300]}")
        elif outcome.quarantined and not outcome.reason:
            problems.append("quarantined without a reason")
        why = machine_marked(raw)
        if sent and (why or outcome.status == "machine"):
            problems.append(f"{sent} mails queued in answer to machine mail ({why or outcome.reason})")
        # Delivered again (a new UID: the server's copy, a restart before the move): nothing more.
        before = self._outbound()
        try:
            [again] = self.app.process_batch([(Source("fuzz", 1, f"{i}.again"), raw)])
            [same] = self.app.process_batch([(source, raw)])
        except Exception as exc:
            return [*problems, f"unhandled on the second delivery {type(exc).__name__}: {exc}"]
        if again.kind == "error":
            problems.append(f"second copy crashed: {again.reason[:300]}")
        if self._outbound() - before:
            problems.append(f"second copy ({again.status}: {again.reason[:100]}) queued mail again")
        if not same.already_done or len(self._rows(source)) != 1:
            problems.append("the same UID was processed twice")
        return problems

    # A Maildir drained the daemon's way: batches, groups in one transaction, the parse worker.

    def run_maildir(self, path: Path, indices: list[int], report: Report) -> None:
        md = mailbox.Maildir(path, create=True)
        keys: dict[str, int] = {}
        raws: dict[int, tuple[str, list[str], bytes]] = {}
        for i in indices:
            raws[i] = self.mutant(i)
            keys[md.add(raws[i][2])] = i
        report.mutants += len(indices)
        watch = _Rollbacks()
        logging.getLogger("mailbot.app").addHandler(watch)
        try:
            stats = self.app.run_intake_once()
            again = self.app.run_intake_once()
        except Exception as exc:
            report.findings.append(
                Finding(-1, "maildir", [], f"intake raised {type(exc).__name__}: {exc}", b"")
            )
            return
        finally:
            logging.getLogger("mailbot.app").removeHandler(watch)

        def find(i: int, problem: str) -> None:
            name, ops, raw = raws[i]
            report.findings.append(Finding(i, name, ops, problem, raw))

        for message in watch.messages:
            report.findings.append(Finding(-1, "maildir", [], message, b""))
        if stats.fetched != len(indices) or again.fetched:
            report.findings.append(
                Finding(
                    -1, "maildir", [], f"fetched {stats.fetched} of {len(indices)}, then {again.fetched}", b""
                )
            )
        name = f"maildir:{path}"
        with self.app.sessions() as s:
            rows = list(s.scalars(select(models.InboundMessage).where(models.InboundMessage.mailbox == name)))
            tagged = [
                (r.recipient, r.kind)
                for r in s.scalars(select(models.OutboundMessage))
                if _TAGGED.search(r.recipient)
            ]
        by_key: dict[str, list[models.InboundMessage]] = {}
        for row in rows:
            by_key.setdefault(row.uid, []).append(row)
        for key, i in keys.items():
            got = by_key.get(key, [])
            if len(got) != 1:
                find(i, f"{len(got)} stored rows for one mail")
                continue
            row = got[0]
            report.outcomes[row.status] += 1
            if row.status not in FINAL:
                find(i, f"left in status {row.status}")
            if row.kind == "error":
                find(i, f"crashed: {row.reason[:300]}")
        for recipient, kind in tagged:
            m = _TAGGED.search(recipient)
            assert m is not None
            i = int(m.group(1))
            if i in raws and (why := machine_marked(raws[i][2])):
                find(i, f"{kind} mail queued in answer to machine mail ({why})")
        moved = {
            folder: {k.split(":", 1)[0] for k in _keys(path / f".{folder}")}
            for folder in ("Processed", "Quarantine")
        }
        quarantined = {k for k, rs in by_key.items() if rs[0].status == "quarantined"}
        if set(_keys(path)) or moved["Quarantine"] != quarantined & set(keys):
            report.findings.append(Finding(-1, "maildir", [], "mailbox and database disagree", b""))
        if moved["Processed"] | moved["Quarantine"] != set(keys):
            report.findings.append(Finding(-1, "maildir", [], "a mail was lost from the mailbox", b""))


def _keys(folder: Path) -> list[str]:
    return [p.name.split(":", 1)[0] for sub in ("new", "cur") for p in (folder / sub).glob("*")]


_MESSAGE_ID = re.compile(rb"(?im)^message-id[ \t]*:[^\r\n]*")


def _personal(raw: bytes, i: int, name: str) -> bytes:
    """Mutant `i`'s own copy of a seed: its own Message-ID, and a new request its own sender."""
    mid = b"Message-ID: <fuzz-%d@kemendesa.example.go.id>" % i
    raw = _MESSAGE_ID.sub(lambda _: mid, raw, count=1) if _MESSAGE_ID.search(raw) else mid + b"\r\n" + raw
    if name.startswith("request"):
        raw = raw.replace(APPLICANT.encode(), _sender(i).encode())
    return raw


# --- the suite's bounded run ----------------------------------------------------------------------


def _fuzz_app(make_app, sqlite_url: str, tmp_path: Path) -> App:
    app: App = make_app(
        database_url=sqlite_url,
        mailbox_url=f"maildir://{tmp_path / 'md'}",
        smtp_url=f"file://{tmp_path / 'out'}",
        staff=STAFF,
    )
    return app


def _fail(report: Report) -> str:
    lines = [report.line(), *map(str, report.findings[:20])]
    return "\n".join(lines) + "\n(reproduce: .venv/bin/python bench/fuzz.py --seed N --count M --save DIR)"


def test_mutants_one_by_one(make_app, sqlite_url, tmp_path, clock) -> None:
    app = _fuzz_app(make_app, sqlite_url, tmp_path)
    fuzzer = Fuzzer(app, SUITE_SEED, advance=lambda: clock.advance(minutes=7))
    report = Report()
    fuzzer.run_alone(range(SUITE_ALONE), report)
    assert not report.findings, _fail(report)
    # The mutants reach every outcome, not only the quarantine.
    assert {"processed", "machine", "quarantined", "duplicate"} <= set(report.outcomes), report.line()
    assert report.outcomes["processed"] > SUITE_ALONE // 4, report.line()


def test_mutants_drained_from_a_maildir(make_app, sqlite_url, tmp_path) -> None:
    app = _fuzz_app(make_app, sqlite_url, tmp_path)
    fuzzer = Fuzzer(app, SUITE_SEED + 1)
    report = Report()
    fuzzer.run_maildir(tmp_path / "md", list(range(SUITE_MAILDIR)), report)
    assert not report.findings, _fail(report)
    assert sum(report.outcomes.values()) == SUITE_MAILDIR


# --- what the fuzzer found, each a regression test ---------------------------------------------


def test_a_request_from_an_internationalised_address_is_answered(make_app, sqlite_url, tmp_path) -> None:
    """Found by the fuzzer: a request from `rína@bücher.example` (RFC 6532) raised
    UnicodeEncodeError while its acknowledgment was composed (formataddr takes ASCII only), so it
    was quarantined unanswered. The reply's To now carries the address in UTF-8, or the domain
    alone in its IDNA form, and goes out over SMTPUTF8 or as ASCII."""
    smtp = start_smtp(enable_SMTPUTF8=True)
    try:
        app = make_app(database_url=sqlite_url, mailbox_url=f"maildir://{tmp_path / 'md'}", smtp_url=smtp.url)
        raw = (DATA / "fuzz-utf8-address.eml").read_bytes()
        domain_only = raw.replace("rína@".encode(), b"rina@").replace(b"<utf8-address@", b"<idna@")
        outcomes = app.process_batch([(Source("t", 1, "1"), raw), (Source("t", 1, "2"), domain_only)])
        assert [(o.status, o.kind) for o in outcomes] == [("processed", "new_request")] * 2
        assert send_all(app).sent == 2
        to = {}
        for received in smtp.handler.received:
            msg = email.message_from_bytes(received.data, policy=email.policy.default)
            to[received.rcpt_tos[0]] = str(msg["To"])
        assert to == {
            "rína@bücher.example": "Rína <rína@bücher.example>",
            "rina@bücher.example": "Rína <rina@xn--bcher-kva.example>",
        }
    finally:
        smtp.controller.stop()


def test_any_null_return_path_or_auto_submitted_is_machine_mail(make_app, sqlite_url, tmp_path) -> None:
    """Found by the fuzzer: a `Return-Path: <>` below the delivering server's own Return-Path was
    not seen (only the first copy of the header was read), and the mail was answered. Every copy
    of Return-Path and of Auto-Submitted counts now."""
    app = _fuzz_app(make_app, sqlite_url, tmp_path)
    raw = (DATA / "fuzz-second-return-path-null.eml").read_bytes()
    auto = raw.replace(b"Return-Path: <>", b"Auto-Submitted: no\r\nAuto-Submitted: auto-replied")
    auto = auto.replace(b"<second-return-path@", b"<second-auto-submitted@")
    outcomes = app.process_batch([(Source("t", 1, "1"), raw), (Source("t", 1, "2"), auto)])
    assert [o.status for o in outcomes] == ["machine", "machine"]
    with app.sessions() as s:
        assert s.scalar(select(func.count()).select_from(models.OutboundMessage)) == 0
