"""Hostile attachments and what is passed on (core/attachments.py, core/withheld.py,
core/compose.py file_part, pipeline/replies.py attachments_of), through the real pipeline."""

from __future__ import annotations

import base64
import email
import email.policy
import struct
import time
import zlib
from datetime import UTC, datetime
from email.message import EmailMessage

from sqlalchemy import select

from mailbot.core.attachments import Names, clean_filename, files_of_raw, unique_name
from mailbot.core.compose import MailSpec, OutgoingAttachment, Rendered, build_mail
from mailbot.core.message import parse_message
from mailbot.core.withheld import fit, shrink
from mailbot.shell import models
from tests.conftest import request_mail
from tests.desk import APPLICANT, BUDI, HEAD, Desk, attachment_names, reply_bytes, text_of

NOW = datetime(2026, 11, 16, 2, 0, tzinfo=UTC)


def _mail_with(*parts: tuple[str, bytes]) -> bytes:
    """A request with these parts (header block, body) after its text, as a client writes it."""
    out = [
        b"From: Rina <rina@kemendesa.example.go.id>\r\nTo: konsultasi@bpsdm.example.go.id\r\n"
        b"Subject: t\r\nMessage-ID: <1@kemendesa.example.go.id>\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\nhalo\r\n"
    ]
    for head, body in parts:
        out.append(b"--B\r\n" + head.encode() + b"\r\n\r\n" + body + b"\r\n")
    out.append(b"--B--\r\n")
    return b"".join(out)


def _pdf(disposition: str) -> tuple[str, bytes]:
    head = (
        f"Content-Type: application/pdf\r\nContent-Disposition: {disposition}\r\n"
        "Content-Transfer-Encoding: base64"
    )
    return head, b"aGVsbG8gd29ybGQ="


def _names(raw: bytes) -> list[str]:
    return [f.filename for f in files_of_raw(raw)]


def _png(width: int, height: int, padding: int = 0) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 4)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", idat)
        + b"\0" * padding
        + chunk(b"IEND", b"")
    )


# --- names -------------------------------------------------------------------------------------


def test_a_right_to_left_override_cannot_disguise_an_extension() -> None:
    # "invoice\u202efdp.exe" shows as "invoiceexe.pdf" in a mail program that honours the override.
    raw = _mail_with(_pdf("attachment; filename*=utf-8''invoice%E2%80%AEfdp.exe"))
    assert _names(raw) == ["invoicefdp.exe"]
    # The other invisible format characters and Unicode line breaks go too.
    assert clean_filename("a\u200b\u200f\u2066b\u2028c\ufeff.pdf") == "abc.pdf"


def test_names_of_dots_and_spaces_get_a_name_of_ours() -> None:
    assert _names(_mail_with(_pdf('attachment; filename=". ."'))) == ["lampiran-1.pdf"]
    assert _names(_mail_with(_pdf('attachment; filename=" . . "'))) == ["lampiran-1.pdf"]
    # Windows drops trailing dots and spaces: "evil.exe. . ." is saved as evil.exe; show it so.
    assert clean_filename("evil.exe. . .") == "evil.exe"


def test_a_10000_character_name_keeps_its_extension() -> None:
    raw = _mail_with(_pdf('attachment; filename="' + "a" * 10_000 + '.pdf"'))
    [name] = _names(raw)
    assert len(name) <= 150 and name.endswith(".pdf")
    [listed] = parse_message(raw).attachments
    assert listed.filename == name


def test_many_files_of_the_same_name_are_numbered_in_linear_time() -> None:
    taken = Names()
    start = time.process_time()
    names = [unique_name("image.png", taken) for _ in range(20_000)]
    assert names[:3] == ["image.png", "image-2.png", "image-3.png"] and names[-1] == "image-20000.png"
    assert len(set(names)) == 20_000
    assert time.process_time() - start < 2  # quadratic: 20,000 names took about 110 s
    # A name that looks numbered already is still unique.
    taken = Names()
    assert [unique_name(n, taken) for n in ("a-2.png", "a.png", "a.png")] == ["a-2.png", "a.png", "a-3.png"]


# --- which parts are files -----------------------------------------------------------------------


def _inline_image(data: bytes) -> tuple[str, bytes]:
    head = (
        "Content-Type: image/png\r\nContent-ID: <i1@x>\r\n"
        'Content-Disposition: inline; filename="image.png"\r\nContent-Transfer-Encoding: base64'
    )
    return head, base64.encodebytes(data).replace(b"\n", b"\r\n")


def test_an_inline_image_whose_header_says_1x1_but_carries_megabytes_is_not_decoration() -> None:
    big = _png(1, 1, padding=5 * 1024 * 1024)
    [f] = files_of_raw(_mail_with(_inline_image(big)))
    assert f.data == big
    assert files_of_raw(_mail_with(_inline_image(_png(1, 1)))) == ()  # a real tracking pixel


def test_a_base64_encoded_forwarded_mail_is_passed_on_as_the_mail_it_is() -> None:
    # RFC 2046 s. 5.2.1 allows message/rfc822 no transfer encoding but 7bit, 8bit and binary;
    # some clients base64 it anyway: the file is the mail, not its base64 text.
    inner = b"From: x@y.example\r\nSubject: bukti\r\n\r\nisi\r\n"
    head = "Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64"
    [f] = files_of_raw(_mail_with((head, base64.encodebytes(inner).replace(b"\n", b"\r\n"))))
    assert f.data == inner and f.filename == "pesan-1.eml"


# --- a leak: our own mail attached to the answer ---------------------------------------------------


def _reply_with_original(to: models.OutboundMessage, sender: str, text: str) -> bytes:
    """Outlook's "attach original message" reply: the mail answered goes along as message/rfc822."""
    msg = email.message_from_bytes(reply_bytes(to, sender, text), policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    msg.make_mixed()
    msg.add_attachment(email.message_from_bytes(to.raw, policy=email.policy.default))
    return msg.as_bytes()


def test_the_assignment_mail_attached_to_the_answer_never_reaches_the_applicant(desk: Desk) -> None:
    desk.deliver(request_mail())
    desk.reply(
        desk.last(HEAD, "notify"),
        HEAD,
        "NOTE rahasia internal: pemohon pernah bermasalah\nASSIGN Budi Santoso",
    )
    assignment = desk.last(BUDI, "assign")
    assert "rahasia internal" in text_of(assignment)  # the assignee's copy carries the internal log

    desk.deliver(_reply_with_original(assignment, BUDI, "Jawaban kami: silakan ikuti Permen 1/2026."))

    answer = desk.last(APPLICANT, "answer")
    assert "Permen 1/2026" in text_of(answer)
    assert attachment_names(answer) == []
    assert b"rahasia" not in answer.raw and b"cmFoYXNpYS" not in answer.raw


def test_our_own_mail_quoted_back_is_not_a_file_for_staff_either(desk: Desk) -> None:
    desk.deliver(request_mail())
    ack = desk.last(APPLICANT, "ack")
    # The applicant answers the acknowledgment with it attached, and a file of their own.
    msg = email.message_from_bytes(
        _reply_with_original(ack, APPLICANT, "Berikut bukti tambahan."), policy=email.policy.default
    )
    assert isinstance(msg, EmailMessage)
    msg.add_attachment(b"%PDF-1.4 bukti", maintype="application", subtype="pdf", filename="bukti.pdf")
    desk.deliver(msg.as_bytes())
    desk.reply(desk.last(HEAD, "notify"), HEAD, "ASSIGN Budi Santoso")
    assert attachment_names(desk.last(BUDI, "assign")) == ["bukti.pdf"]


# --- the note on files left out -------------------------------------------------------------------


def _spec(*files: OutgoingAttachment) -> MailSpec:
    rendered = Rendered("Jawaban", "teks", "<html><body><p>teks</p></body></html>")
    return MailSpec(
        "rina@kemendesa.example.go.id", "Rina", rendered, "<m@bpsdm.example.go.id>",
        ticket_number="KONS-2026-000001", attachments=files, auto_submitted="auto-generated",
    )  # fmt: skip


def _build(spec: MailSpec) -> bytes:
    env = build_mail(
        spec, from_addr="k@bpsdm.example.go.id", from_name="K", instance_id="k@bpsdm.example.go.id", now=NOW
    )
    return env.raw


def test_a_forwarded_mail_goes_out_as_a_mail_and_its_size_in_the_note_is_true() -> None:
    inner = b"From: x@y.example\r\nSubject: bukti\r\n\r\n" + b"isi baris\r\nFrom the office\r\n" * 30_000
    raw = _build(_spec(OutgoingAttachment("pesan-1.eml", "message/rfc822", inner)))
    # What a reader's mail program finds: a mail with its own header, not base64 text.
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    [part] = list(msg.iter_attachments())
    assert part.get_content_type() == "message/rfc822"
    [forwarded] = part.iter_parts()
    assert forwarded["Subject"] == "bukti"
    assert [f.data for f in files_of_raw(raw)] == [inner]
    shrunk = shrink(raw, 100_000)
    assert shrunk is not None
    [withheld] = shrunk.withheld
    assert withheld.filename == "pesan-1.eml" and abs(withheld.size - len(inner)) < 100


def test_a_forwarded_mail_with_8bit_text_goes_out_7bit_clean_and_whole() -> None:
    inner = "From: x@y.example\r\nSubject: bukti\r\n\r\nisi dengan é\r\n".encode()
    raw = _build(_spec(OutgoingAttachment("pesan-1.eml", "message/rfc822", inner)))
    assert raw.isascii() and all(len(line) <= 998 for line in raw.split(b"\r\n"))
    assert [(f.filename, f.data) for f in files_of_raw(raw)] == [("pesan-1.eml", inner)]


def test_many_small_files_are_left_out_in_a_few_rebuilds_not_one_per_file() -> None:
    files = tuple(OutgoingAttachment(f"image-{i}.png", "image/png", b"x" * 200) for i in range(4000))
    start = time.process_time()
    envelope = fit(
        _spec(*files), max_bytes=600_000, from_addr="k@bpsdm.example.go.id", from_name="K",
        instance_id="k@bpsdm.example.go.id", now=NOW,
    )  # fmt: skip
    assert len(envelope.raw) <= 600_000 and envelope.withheld
    assert time.process_time() - start < 10  # one rebuild per file left out: 362 rebuilds, 53 s
    start = time.process_time()
    shrunk = shrink(_build(_spec(*files)), 600_000)
    assert shrunk is not None and len(shrunk.raw) <= 600_000
    assert time.process_time() - start < 10


def test_a_file_the_applicant_sends_again_reaches_the_assignee_once(desk: Desk) -> None:
    scan = b"%PDF-1.4 " + bytes(range(256)) * 100
    body = request_mail().decode().split("\r\n\r\n", 1)[1].replace("\r\n", "\n")
    first = email.message_from_bytes(request_mail(body=body.replace("No. HP       : 0812-3456-7890\n", "")))
    assert isinstance(first, email.message.Message)
    request = EmailMessage()
    for name in ("From", "To", "Subject", "Date", "Message-ID"):
        request[name] = str(first[name])
    request.set_content(str(first.get_payload()))
    request.add_attachment(scan, maintype="application", subtype="pdf", filename="SK.pdf")
    desk.deliver(request.as_bytes())
    asked = desk.last(APPLICANT, "missing_fields")
    # The completion, with the same file attached again (Apple Mail's "include attachments").
    msg = email.message_from_bytes(
        reply_bytes(asked, APPLICANT, "No. HP : 0812-3456-7890"), policy=email.policy.default
    )
    assert isinstance(msg, EmailMessage)
    msg.add_attachment(scan, maintype="application", subtype="pdf", filename="SK.pdf")
    desk.deliver(msg.as_bytes())
    desk.reply(desk.last(HEAD, "notify"), HEAD, "ASSIGN Budi Santoso")
    assert attachment_names(desk.last(BUDI, "assign")) == ["SK.pdf"]


def test_the_consultants_rich_text_body_and_business_card_do_not_reach_the_applicant(desk: Desk) -> None:
    desk.deliver(request_mail())
    desk.reply(desk.last(HEAD, "notify"), HEAD, "NOTE rahasia internal\nASSIGN Budi Santoso")
    assignment = desk.last(BUDI, "assign")
    msg = email.message_from_bytes(
        reply_bytes(assignment, BUDI, "Silakan ikuti Permen 1/2026."), policy=email.policy.default
    )
    assert isinstance(msg, EmailMessage)
    # Outlook in rich text: the whole reply, the quoted assignment mail with it, in winmail.dat;
    # and the business card its signature attaches (the consultant's address and mobile number).
    msg.add_attachment(
        b"\x78\x9f\x3e\x22 {\\rtf1 Silakan ikuti ... Catatan internal: rahasia internal}",
        maintype="application",
        subtype="ms-tnef",
        filename="winmail.dat",
    )
    card = "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Budi Santoso\r\nTEL;CELL:+6281234567890\r\nEND:VCARD\r\n"
    msg.add_attachment(card, subtype="vcard", filename="Budi Santoso.vcf")
    msg.add_attachment(b"%PDF-1.4 permen", maintype="application", subtype="pdf", filename="Permen.pdf")
    desk.deliver(msg.as_bytes())
    answer = desk.last(APPLICANT, "answer")
    assert attachment_names(answer) == ["Permen.pdf"]


def test_our_mail_saved_as_an_eml_file_and_attached_is_not_passed_on(desk: Desk) -> None:
    desk.deliver(request_mail())
    desk.reply(desk.last(HEAD, "notify"), HEAD, "NOTE rahasia internal\nASSIGN Budi Santoso")
    assignment = desk.last(BUDI, "assign")
    msg = email.message_from_bytes(
        reply_bytes(assignment, BUDI, "Jawaban terlampir."), policy=email.policy.default
    )
    assert isinstance(msg, EmailMessage)
    msg.add_attachment(
        assignment.raw, maintype="application", subtype="octet-stream", filename="Penugasan.eml"
    )
    desk.deliver(msg.as_bytes())
    assert attachment_names(desk.last(APPLICANT, "answer")) == []


def test_files_of_a_mail_that_also_carries_an_internal_note_are_kept_from_the_applicant(desk: Desk) -> None:
    """Which file belongs to the NOTE and which to the ANSWER cannot be told: none goes to the
    applicant, the transcript says so, and a separate ANSWER mail sends them."""
    desk.deliver(request_mail())
    desk.reply(desk.last(HEAD, "notify"), HEAD, "ASSIGN Budi Santoso")
    memo = ("memo-internal.pdf", b"%PDF-1.4 memo internal, jangan diteruskan")
    desk.deliver(
        reply_bytes(
            desk.last(BUDI, "assign"),
            BUDI,
            "CATATAN memo internal terlampir, jangan diteruskan\nJAWAB Silakan ikuti Permen 1/2026.",
            attach=memo,
        )
    )
    answer = desk.last(APPLICANT, "answer")
    assert "Permen 1/2026" in text_of(answer)
    assert attachment_names(answer) == []
    assert b"memo internal" not in answer.raw
    transcript = text_of(desk.last(BUDI, "transcript"))
    assert "TANPA lampiran (memo-internal.pdf)" in transcript
    with desk.app.sessions() as session:
        kinds = session.scalars(select(models.TicketEvent.kind)).all()
    assert "answer_files_kept" in kinds
