"""A help desk in a test: one app and the people around it, writing real RFC 5322 mail to it."""

from __future__ import annotations

import email
import email.policy
import secrets
from email.message import EmailMessage

import pytest
from sqlalchemy import select

from mailbot.app import App
from mailbot.pipeline.intake import Outcome, Source
from mailbot.shell import models
from tests.conftest import SERVICE_ADDRESS

APPLICANT = "rina.kartika@kemendesa.example.go.id"
HEAD = "kabag.umum@bpsdm.example.go.id"
HEAD2 = "plh.kabag@bpsdm.example.go.id"
SECRETARIAT = "sekretariat@bpsdm.example.go.id"
BUDI = "budi.santoso@bpsdm.example.go.id"
BUDI2 = "budi.hartono@bpsdm.example.go.id"
DEWI = "dewi.lestari@bpsdm.example.go.id"
IRBAN2 = "irban2@inspektorat.example.go.id"
VENDOR = "support@vendor.example.com"

STAFF = f"""
[[staff]]
name = "Siti Rahmawati"
aliases = ["Kabag Umum"]
emails = ["{HEAD}"]
role = "head"
position = "Kepala Bagian Umum dan Rumah Tangga"

[[staff]]
name = "Agus Plh"
emails = ["{HEAD2}"]
role = "head"

[[staff]]
name = "Tim Sekretariat"
emails = ["{SECRETARIAT}"]
role = "secretariat"

[[staff]]
name = "Budi Santoso"
emails = ["{BUDI}"]
role = "consultant"
nip = "198001012005011001"
position = "Analis SDM Aparatur"
field = "kepegawaian"
region = "Wilayah I"

[[staff]]
name = "Budi Hartono"
emails = ["{BUDI2}"]
role = "consultant"
field = "pengadaan"
region = "Wilayah II"

[[staff]]
name = "Dewi Lestari"
emails = ["{DEWI}"]
role = "consultant"
active = false

[[staff]]
name = "Irban Wilayah II"
aliases = ["Irban II"]
emails = ["{IRBAN2}"]
role = "subhead"
region = "Wilayah II"

[[staff]]
name = "PT Jaringan Andal"
aliases = ["vendor jaringan"]
emails = ["{VENDOR}"]
role = "vendor"
"""


# A complaint under SOP 003 as its form asks for it: identity, the type of complaint, the date and
# time of the incident, the evidence (described here; or attached), the description.
COMPLAINT = (
    "Yth. Tim Sekretariat,\n\n"
    "Nama Lengkap   : Rina Kartika\n"
    "NIP            : 19860926 201505 2 001\n"
    "Unit Kerja     : Biro Perencanaan, Kementerian Hukum dan HAM\n"
    "No. HP         : 0812-3456-7890\n"
    "Jenis Keluhan  : Aplikasi SIMPEG\n"
    "Waktu Kejadian : Senin, 16-11-2026 pukul 08.00 WIB\n"
    "Bukti          : muncul pesan galat 502 Bad Gateway setelah menekan tombol Masuk\n\n"
    "Deskripsi Keluhan:\n"
    "Aplikasi SIMPEG tidak dapat dibuka sejak pagi; akun saya tidak bisa login.\n\n"
    "Hormat saya,\nRina\n"
)


class Desk:
    """One app, and the people around it writing real mail to it."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.n = 0

    def deliver(self, raw: bytes) -> Outcome:
        self.n += 1
        return self.app.process_raw(Source("test", 1, str(self.n)), raw)

    def outbox(self, to: str | None = None, kind: str | None = None) -> list[models.OutboundMessage]:
        with self.app.sessions() as s:
            stmt = select(models.OutboundMessage).order_by(models.OutboundMessage.id)
            rows = list(s.execute(stmt).scalars())
        return [r for r in rows if (to is None or r.recipient == to) and (kind is None or r.kind == kind)]

    def last(self, to: str, kind: str | None = None) -> models.OutboundMessage:
        rows = self.outbox(to, kind)
        assert rows, f"no mail to {to} ({kind})"
        return rows[-1]

    def ticket(self) -> models.Ticket:
        with self.app.sessions() as s:
            return s.execute(select(models.Ticket).order_by(models.Ticket.id.desc())).scalars().first()

    def reply(
        self,
        to: models.OutboundMessage,
        sender: str,
        body: str,
        *,
        headers: dict[str, str] | None = None,
        attach: tuple[str, bytes] | None = None,
    ) -> Outcome:
        return self.deliver(reply_bytes(to, sender, body, headers=headers, attach=attach))


def reply_bytes(
    to: models.OutboundMessage,
    sender: str,
    body: str,
    *,
    headers: dict[str, str] | None = None,
    attach: tuple[str, bytes] | None = None,
) -> bytes:
    """`sender` answers one of our mails as a mail client does: threading headers, the quote below."""
    original = email.message_from_bytes(to.raw, policy=email.policy.default)
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = SERVICE_ADDRESS
    msg["Subject"] = "Re: " + str(original["Subject"])
    msg["Message-ID"] = f"<{secrets.token_hex(8)}@mail.example.go.id>"
    msg["In-Reply-To"] = str(original["Message-ID"])
    msg["References"] = f"{original.get('References', '')} {original['Message-ID']}".strip()
    for k, v in (headers or {}).items():
        msg[k] = v
    quoted = "\n".join("> " + x for x in text_of(to).splitlines())
    msg.set_content(f"{body}\n\nPada Sen, 16 Nov 2026 09.20, Layanan Konsultasi menulis:\n{quoted}\n")
    if attach:
        msg.add_attachment(attach[1], maintype="application", subtype="pdf", filename=attach[0])
    return msg.as_bytes()


def text_of(row: models.OutboundMessage) -> str:
    msg = email.message_from_bytes(row.raw, policy=email.policy.default)
    return str(msg.get_body(("plain",)).get_content())


def attachment_names(row: models.OutboundMessage) -> list[str]:
    msg = email.message_from_bytes(row.raw, policy=email.policy.default)
    return [p.get_filename() or "" for p in msg.iter_attachments()]


def with_attachment(raw: bytes, name: str, data: bytes) -> bytes:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    msg.make_mixed()
    msg.add_attachment(data, maintype="application", subtype="pdf", filename=name)
    return msg.as_bytes()


@pytest.fixture
def desk(make_app, database_url, tmp_path) -> Desk:
    app = make_app(
        database_url=database_url,
        mailbox_url=f"maildir://{tmp_path / 'md'}",
        smtp_url=f"file://{tmp_path / 'out'}",
        staff=STAFF,
    )
    return Desk(app)
