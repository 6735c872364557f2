"""Attachments people actually send (#21 item 3): pasted screenshots (Gmail, Outlook) and Apple
Mail's inline files reach the assignee, the vendor and the applicant; a mail that would be too
large with them goes without the largest and says where they are, at compose time (our limit)
and at send time (a real aiosmtpd advertising a smaller SIZE)."""

from __future__ import annotations

import email
import email.policy
import secrets
from collections.abc import Callable, Iterator
from email.message import EmailMessage, Message
from pathlib import Path

import pytest
from sqlalchemy import select

from mailbot.app import App
from mailbot.core.attachments import clean_filename, files_of_raw, pixel_size, unique_name
from mailbot.core.compose import Withheld
from mailbot.core.withheld import choose, shrink
from mailbot.core.workflow import State
from mailbot.shell import models
from tests.conftest import DATA, SERVICE_ADDRESS, send_all
from tests.desk import (
    APPLICANT,
    BUDI,
    HEAD,
    SECRETARIAT,
    STAFF,
    VENDOR,
    Desk,
    reply_bytes,
    text_of,
)
from tests.servers import SmtpServer, start_smtp

GMAIL = DATA / "gmail_pasted_screenshots.eml"  # two screenshots, both named image.png by Gmail
OUTLOOK = DATA / "outlook_pasted_screenshot.eml"  # image001.png, and the signature's 1x1 spacer GIF
APPLE = DATA / "apple_mail_inline_pdf.eml"  # a PDF Apple Mail marks inline, between two HTML parts


def _files(raw: bytes) -> dict[str, bytes]:
    """The files of a mail as its reader's mail program lists them: name -> bytes."""
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    out: dict[str, bytes] = {}
    for part in msg.iter_attachments():
        assert isinstance(part, EmailMessage)
        data = part.get_payload(decode=True)
        assert isinstance(data, bytes)
        out[part.get_filename() or ""] = data
    return out


def _sent_files(path: Path) -> list[tuple[str, bytes]]:
    """The files of a sample mail, decoded with the standard library only (the expected bytes)."""
    msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    found = []
    for part in msg.walk():
        data = part.get_payload(decode=True)
        if part.get_content_maintype() in ("image", "application") and isinstance(data, bytes):
            found.append((str(part.get_filename()), data))
    return found


def _sent_file(path: Path, name: str) -> bytes:
    return next(data for n, data in _sent_files(path) if n == name)


def _html(raw: bytes) -> str:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    body = msg.get_body(("html",))
    assert body is not None
    return str(body.get_content())


# --- which parts are files -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sample", "expected"),
    [
        (GMAIL, [("image.png", "image/png", True), ("image-2.png", "image/png", True)]),
        (OUTLOOK, [("image001.png", "image/png", True)]),  # not image002.gif, the 1 x 1 spacer
        (APPLE, [("SKP 2026 Dewi Anggraini.pdf", "application/pdf", True)]),
    ],
)
def test_pasted_and_inline_files_are_files_and_the_body_is_not(
    sample: Path, expected: list[tuple[str, str, bool]]
) -> None:
    files = files_of_raw(sample.read_bytes())
    assert [(f.filename, f.content_type, f.inline) for f in files] == expected
    # Decoded byte for byte, the spacer left out.
    originals = [data for name, data in _sent_files(sample) if name != "image002.gif"]
    assert [f.data for f in files] == originals


def test_the_outlook_spacer_is_a_1x1_gif_and_screenshots_are_not_tiny() -> None:
    assert pixel_size(_sent_file(OUTLOOK, "image002.gif")) == (1, 1)
    assert pixel_size(_sent_file(OUTLOOK, "image001.png")) == (602, 338)


def _mail(body_parts: str, boundary: str = "b1") -> bytes:
    return (
        "From: Rina Kartika <rina.kartika@kemendesa.example.go.id>\r\n"
        f"To: {SERVICE_ADDRESS}\r\nSubject: Bukti\r\nMessage-ID: <{secrets.token_hex(6)}@example.go.id>\r\n"
        f'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="{boundary}"\r\n\r\n'
        + body_parts.replace("\n", "\r\n")
    ).encode()


PNG_1X1 = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)


def test_parts_without_names_get_one_and_what_is_not_evidence_stays_out() -> None:
    import base64

    big_png = PNG_1X1[:16] + bytes.fromhex("0000028000000168") + PNG_1X1[24:]  # 640 x 360 in its IHDR
    raw = _mail(
        "--b1\n"
        'Content-Type: multipart/alternative; boundary="b2"\n\n'
        "--b2\nContent-Type: text/plain; charset=utf-8\n\nLihat gambar.\n"
        "--b2\nContent-Type: text/watch-html; charset=utf-8\n\n<b>Lihat gambar.</b>\n"
        '--b2\nContent-Type: multipart/related; boundary="b3"\n\n'
        "--b3\nContent-Type: text/html; charset=utf-8\n\n<p>Lihat <img src=cid:x1></p>\n"
        "--b3\nContent-Type: image/png\nContent-ID: <x1>\nContent-Transfer-Encoding: base64\n\n"
        f"{base64.b64encode(big_png).decode()}\n"
        "--b3\nContent-Type: image/png\nContent-ID: <px>\nContent-Transfer-Encoding: base64\n\n"
        f"{base64.b64encode(PNG_1X1).decode()}\n"
        "--b3--\n--b2--\n"
        "--b1\nContent-Type: image/png\nContent-Disposition: attachment\n"
        "Content-Transfer-Encoding: base64\n\n"
        f"{base64.b64encode(PNG_1X1).decode()}\n"
        '--b1\nContent-Type: application/pdf; name="=?UTF-8?B?U3VyYXQgcGVybW9ob25hbi5wZGY=?="\n'
        'Content-Disposition: inline; filename="..\\\\..\\\\Windows\\\\Surat.pdf"\n\n%PDF-1.4 x\n'
        "--b1\nContent-Type: message/rfc822\n\n"
        "From: atasan@example.go.id\nSubject: Disposisi\n\nMohon ditindaklanjuti.\n"
        "--b1\nContent-Type: application/pkcs7-signature; name=smime.p7s\n"
        "Content-Disposition: attachment; filename=smime.p7s\n\nMIAGCSqG\n"
        "--b1--\n"
    )
    files = files_of_raw(raw)
    assert [(f.filename, f.inline) for f in files] == [
        ("gambar-1.png", True),  # the pasted image without a name; not the 1x1 one beside it
        ("gambar-2.png", False),  # a 1x1 image the sender attached goes along: they meant it
        ("Surat.pdf", True),  # a path is never a name of ours
        ("pesan-1.eml", True),  # a forwarded mail goes whole
    ]  # neither the watch-html alternative nor the S/MIME signature
    assert b"Mohon ditindaklanjuti." in files[3].data


def test_names_are_cleaned_and_made_unique() -> None:
    assert clean_filename("C:\\Users\\rina\\Desktop\\bukti\x00.png") == "bukti.png"
    assert clean_filename("../../.bashrc") == "bashrc"
    long = clean_filename("a" * 300 + ".pdf")
    assert len(long) == 150 and long.endswith(".pdf")
    taken: set[str] = set()
    assert [unique_name(n, taken) for n in ("image.png", "IMAGE.png", "image.png", "README")] == [
        "image.png",
        "IMAGE-2.png",
        "image-3.png",
        "README",
    ]


def test_choose_leaves_out_the_largest_first() -> None:
    assert choose([100, 5000, 300], room=500) == {1}
    assert choose([100, 5000, 300], room=350) == {1, 2}
    assert choose([100, 5000, 300], room=-1) == {0, 1, 2}
    assert choose([100, 200], room=1000) == set()


# --- passed on through the real pipeline -----------------------------------------------------


def test_gmail_screenshots_reach_the_assignee_under_their_names(desk: Desk) -> None:
    desk.deliver(GMAIL.read_bytes())
    notify = desk.last(HEAD, "notify")
    assert "image.png, image-2.png" in text_of(notify)  # the head sees what will be passed on
    desk.reply(notify, HEAD, "ASSIGN Budi Santoso")
    assignment = desk.last(BUDI, "assign")
    assert "Lampiran pemohon: image.png, image-2.png" in text_of(assignment)
    originals = [f.data for f in files_of_raw(GMAIL.read_bytes())]
    assert list(_files(assignment.raw).values()) == originals


def test_apple_mail_inline_pdf_reaches_the_assignee(desk: Desk) -> None:
    desk.deliver(APPLE.read_bytes())
    desk.reply(desk.last(HEAD, "notify"), HEAD, "ASSIGN Budi Santoso")
    pdf = _sent_file(APPLE, "SKP 2026 Dewi Anggraini.pdf")
    assert _files(desk.last(BUDI, "assign").raw) == {"SKP 2026 Dewi Anggraini.pdf": pdf}


@pytest.fixture
def vendor_desk(make_app: Callable[..., App], sqlite_url: str, tmp_path: Path) -> Desk:
    """SOP 003: complaints, forwarded to the vendor."""
    return Desk(
        make_app(
            database_url=sqlite_url,
            mailbox_url=f"maildir://{tmp_path / 'md'}",
            smtp_url=f"file://{tmp_path / 'out'}",
            staff=STAFF,
            profile="sop-003",
        )
    )


def test_outlook_screenshot_reaches_the_vendor_and_the_spacer_pixel_does_not(vendor_desk: Desk) -> None:
    vendor_desk.deliver(OUTLOOK.read_bytes())
    vendor_desk.reply(vendor_desk.last(SECRETARIAT, "notify"), SECRETARIAT, "TERUSKAN vendor jaringan")
    assert vendor_desk.ticket().state is State.FORWARDED
    forwarded = vendor_desk.last(VENDOR, "forward")
    assert _files(forwarded.raw) == {"image001.png": _sent_file(OUTLOOK, "image001.png")}


def _reply_with_screenshot(to: models.OutboundMessage, sender: str, text: str, png: bytes) -> bytes:
    """A Gmail reply with a screenshot pasted into it: multipart/related, the image inline."""
    msg = email.message_from_bytes(reply_bytes(to, sender, text), policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    msg.add_alternative(
        f'<div dir="ltr">{text}<br><img src="cid:ii_a1" alt="image.png"></div>', subtype="html"
    )
    html = msg.get_body(("html",))
    assert isinstance(html, EmailMessage)
    html.add_related(png, "image", "png", cid="<ii_a1>", filename="image.png", disposition="inline")
    return msg.as_bytes()


def test_the_consultants_pasted_screenshot_reaches_the_applicant(desk: Desk) -> None:
    shot = _sent_file(OUTLOOK, "image001.png")
    desk.deliver(GMAIL.read_bytes())
    desk.reply(desk.last(HEAD, "notify"), HEAD, "ASSIGN Budi Santoso")
    answer = "Silakan atur ulang kata sandi melalui menu berikut."
    desk.deliver(_reply_with_screenshot(desk.last(BUDI, "assign"), BUDI, answer, shot))
    assert desk.ticket().state is State.ANSWERED
    assert _files(desk.last(APPLICANT, "answer").raw) == {"image.png": shot}


# --- too large: left out with a note -----------------------------------------------------------


@pytest.fixture
def small_desk(make_app: Callable[..., App], sqlite_url: str, tmp_path: Path) -> Desk:
    """Outgoing mail limited to 40,000 bytes: the 40 KB screenshot (55 KB in base64) cannot go."""
    return Desk(
        make_app(
            database_url=sqlite_url,
            mailbox_url=f"maildir://{tmp_path / 'md'}",
            smtp_url=f"file://{tmp_path / 'out'}",
            staff=STAFF,
            extra="[limits]\nmax_outgoing_bytes = 40000\n",
        )
    )


def _history(desk: Desk, kind: str) -> list[models.TicketEvent]:
    with desk.app.sessions() as s:
        stmt = (
            select(models.TicketEvent).where(models.TicketEvent.kind == kind).order_by(models.TicketEvent.id)
        )
        return list(s.execute(stmt).scalars())


def test_over_the_configured_limit_the_largest_file_stays_behind_with_a_note(small_desk: Desk) -> None:
    small_desk.deliver(GMAIL.read_bytes())
    small_desk.reply(small_desk.last(HEAD, "notify"), HEAD, "ASSIGN Budi Santoso")
    assignment = small_desk.last(BUDI, "assign")
    assert small_desk.ticket().state is State.ASSIGNED
    assert len(assignment.raw) <= 40000
    assert list(_files(assignment.raw)) == ["image-2.png"]  # the small one still goes
    text = text_of(assignment)
    assert text.startswith("CATATAN TENTANG LAMPIRAN")
    assert "  - image.png (41 KB)" in text and "batas 40 KB" in text
    assert "arsip tiket KONS-2026-000001" in text and "mailbot export mbox arsip.mbox --ticket" in text
    assert "Penugasan (Surat Tugas)" in assignment.subject and "Bapak/Ibu ditugaskan" in text
    assert "Catatan tentang lampiran" in _html(assignment.raw) and "<li>image.png (41 KB)</li>" in _html(
        assignment.raw
    )
    [line] = _history(small_desk, "files_withheld")
    assert line.detail.startswith(f"assign → {BUDI}: image.png (40679 bytes) left out, over 40000 bytes")


def test_the_applicant_is_told_to_ask_the_secretariat_not_given_a_command(small_desk: Desk) -> None:
    small_desk.deliver(OUTLOOK.read_bytes().replace(b"agus.salim@bpsdm", b"agus.salim@kemendesa"))
    small_desk.reply(small_desk.last(HEAD, "notify"), HEAD, "ASSIGN Budi Santoso")
    big = _sent_file(GMAIL, "image.png")
    answer = "Koneksi sudah pulih; hasil uji terlampir."
    small_desk.deliver(_reply_with_screenshot(small_desk.last(BUDI, "assign"), BUDI, answer, big))
    sent = small_desk.last("agus.salim@kemendesa.example.go.id", "answer")
    assert _files(sent.raw) == {}
    text = text_of(sent)
    assert "Bapak/Ibu dapat memintanya kepada sekretariat" in text and "KONS-2026-000001" in text
    assert "mailbot export" not in text and answer in text


# --- at send time, against the server's SIZE --------------------------------------------------


@pytest.fixture
def small_server() -> Iterator[SmtpServer]:
    server = start_smtp(data_size_limit=30_000)  # aiosmtpd advertises SIZE 30000 in its EHLO
    yield server
    server.controller.stop()


def test_a_server_with_a_smaller_size_gets_the_mail_without_the_files(
    make_app: Callable[..., App], sqlite_url: str, tmp_path: Path, small_server: SmtpServer
) -> None:
    app = make_app(
        database_url=sqlite_url,
        mailbox_url=f"maildir://{tmp_path / 'md'}",
        smtp_url=small_server.url,
        staff=STAFF,
    )
    desk = Desk(app)
    desk.deliver(GMAIL.read_bytes())
    desk.reply(desk.last(HEAD, "notify"), HEAD, "ASSIGN Budi Santoso")
    queued = desk.last(BUDI, "assign")
    assert len(queued.raw) > 30_000  # under our 10 MB, over this server's SIZE
    result = send_all(app)
    assert result.dead == 0 and result.sent == len(desk.outbox())
    [received] = small_server.handler.to(BUDI)
    assert len(received.data) <= 30_000
    assert list(_files(received.data)) == ["image-2.png"]
    text = text_of(desk.last(BUDI, "assign"))
    assert (
        "  - image.png (41 KB)" in text and "batas 30 KB" in text and "arsip tiket KONS-2026-000001" in text
    )
    # The outbox (and so the archive) holds the mail as it went out, under the same Message-ID.
    sent = desk.last(BUDI, "assign")
    assert sent.status == "sent" and sent.raw == received.data
    assert _header(received.data, "Message-ID") == _header(queued.raw, "Message-ID") == sent.message_id
    for name in ("From", "To", "Subject", "Date", "In-Reply-To", "References", "Auto-Submitted"):
        assert _header(received.data, name) == _header(queued.raw, name)
    [line] = _history(desk, "files_withheld")
    assert "image.png (40679 bytes) left out" in line.detail and "SIZE 30000" in line.detail
    assert line.outbound_id == sent.id


def test_the_send_time_note_is_the_offices_own_where_it_has_one(
    make_app: Callable[..., App], sqlite_url: str, tmp_path: Path, small_server: SmtpServer
) -> None:
    office = tmp_path / "kop" / "id"
    office.mkdir(parents=True)
    (office / "_files_withheld.txt.j2").write_text(
        "CATATAN KANTOR: {% for f in files %}{{ f.filename }} {% endfor %}ada di sekretariat.\n"
    )
    app = make_app(
        database_url=sqlite_url,
        mailbox_url=f"maildir://{tmp_path / 'md'}",
        smtp_url=small_server.url,
        staff=STAFF,
        service_extra=f'templates_dir = "{tmp_path / "kop"}"',
    )
    desk = Desk(app)
    desk.deliver(GMAIL.read_bytes())
    desk.reply(desk.last(HEAD, "notify"), HEAD, "ASSIGN Budi Santoso")
    assert send_all(app).dead == 0
    text = text_of(desk.last(BUDI, "assign"))
    assert "CATATAN KANTOR: image.png ada di sekretariat." in text


def test_a_552_refusal_without_size_sends_the_mail_without_any_file(
    make_app: Callable[..., App], sqlite_url: str, tmp_path: Path, smtp: SmtpServer
) -> None:
    app = make_app(
        database_url=sqlite_url, mailbox_url=f"maildir://{tmp_path / 'md'}", smtp_url=smtp.url, staff=STAFF
    )
    desk = Desk(app)
    desk.deliver(GMAIL.read_bytes())
    send_all(app)
    desk.reply(desk.last(HEAD, "notify"), HEAD, "ASSIGN Budi Santoso")
    smtp.handler.replies = ["552 5.3.4 Message size exceeds fixed maximum message size"]
    assert send_all(app).dead == 0
    [received] = smtp.handler.to(BUDI)
    assert _files(received.data) == {}
    text = email.message_from_bytes(received.data, policy=email.policy.default)
    body = text.get_body(("plain",))
    assert body is not None and "image.png (41 KB)" in str(body.get_content())
    assert "image-2.png (3 KB)" in str(body.get_content())


def test_a_mail_too_large_without_files_is_still_a_dead_letter(
    make_app: Callable[..., App], sqlite_url: str, tmp_path: Path
) -> None:
    server = start_smtp(data_size_limit=3_000)  # smaller than any mail of ours
    try:
        app = make_app(
            database_url=sqlite_url,
            mailbox_url=f"maildir://{tmp_path / 'md'}",
            smtp_url=server.url,
            staff=STAFF,
        )
        Desk(app).deliver(GMAIL.read_bytes())
        result = send_all(app)
        assert result.sent == 0 and result.dead >= 1
        assert "over the server's SIZE 3000" in result.errors[0]
    finally:
        server.controller.stop()


def _header(raw: bytes, name: str) -> str:
    return " ".join(str(email.message_from_bytes(raw, policy=email.policy.compat32)[name]).split())


def test_shrink_keeps_every_header_and_refuses_mail_without_files() -> None:
    from datetime import UTC, datetime

    from mailbot.core.compose import MailSpec, OutgoingAttachment, Rendered, build_mail

    spec = MailSpec(
        to_addr=BUDI,
        to_name="Budi Santoso",
        rendered=Rendered(
            "[KONS-2026-000001] Penugasan", "Yth. Bapak Budi,\n", "<html><body><p>Yth.</p></body></html>"
        ),
        message_id="<mb.test@bpsdm.example.go.id>",
        in_reply_to="<req@x>",
        references=("<req@x>",),
        auto_submitted="auto-generated",
        ticket_number="KONS-2026-000001",
        attachments=(OutgoingAttachment("bukti é.png", "image/png", b"\x89PNG" + b"x" * 5000),),
    )
    kwargs = {
        "from_addr": SERVICE_ADDRESS,
        "from_name": "Layanan Konsultasi",
        "instance_id": "t",
        "now": datetime(2026, 11, 16, tzinfo=UTC),
    }
    raw = build_mail(spec, **kwargs).raw  # type: ignore[arg-type]
    smaller = shrink(raw, 4000)
    assert smaller is not None and smaller.withheld == (Withheld("bukti é.png", 5004),)
    head = raw.split(b"\r\n\r\n", 1)[0]
    new_head = smaller.raw.split(b"\r\n\r\n", 1)[0]
    for line in head.split(b"\r\n"):
        if not line.lower().startswith((b"content-type", b"mime-version", b" boundary")):
            assert line in new_head.split(b"\r\n")
    parsed: Message = email.message_from_bytes(smaller.raw, policy=email.policy.default)
    assert parsed.get_content_type() == "multipart/alternative"
    without = build_mail(MailSpec(**{**spec.__dict__, "attachments": ()}), **kwargs).raw  # type: ignore[arg-type]
    assert shrink(without, 100) is None


def test_the_note_in_english_and_for_mail_of_no_ticket() -> None:
    from mailbot.core.withheld import NoteFacts, note

    text, html = note(
        NoteFacts("en", "KONS-2026-000007", "Layanan Konsultasi", True, 10_240_000),
        [Withheld("rekaman <layar>.mp4", 14_200_000)],
    )
    assert text.startswith("NOTE ON ATTACHMENTS") and "  - rekaman <layar>.mp4 (14.2 MB)" in text
    assert "10.2 MB size limit" in text and "archive of ticket KONS-2026-000007" in text
    assert "mailbot export mbox arsip.mbox --ticket KONS-2026-000007" in text
    assert "<li>rekaman &lt;layar&gt;.mp4 (14.2 MB)</li>" in html  # a name from outside, escaped
    text, _ = note(NoteFacts("id", "", "Layanan Konsultasi", False, None), [Withheld("laporan.pdf", 900)])
    assert "  - laporan.pdf (1 KB)" in text and "kepada sekretariat Layanan Konsultasi" in text
    assert "arsip tiket" not in text
