"""The office's own tables: [service], [database], [security], [documents], [reports], [privacy], [limits]."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from mailbot.locate import DEFAULT_DATA_DIR, DEFAULT_DATABASE_URL, DEFAULT_PROFILE, DEFAULT_TIMEZONE
from mailbot.settings.base import ENV_SECRET, EmailAddress, StrictModel, check_timezone


class ServiceSettings(StrictModel):
    name: str = "Layanan Konsultasi Online"
    office: str = "Sekretariat"
    address: EmailAddress = "konsultasi@localhost.localdomain"
    timezone: Annotated[str, AfterValidator(check_timezone)] = DEFAULT_TIMEZONE
    language: Literal["id", "en"] = "id"
    profile: str = DEFAULT_PROFILE
    data_dir: Path = Path(DEFAULT_DATA_DIR)
    # Marks our own mail (the loop header); defaults to the service address.
    instance_id: str = ""
    # A first run of the embedded default drops sample requests into the Maildir.
    seed_samples: bool = False
    # The office's own templates: a file in this folder (id/ack.txt.j2, documents/id/surat_tugas.html.j2)
    # is used instead of the shipped one of the same name; None: the shipped templates only.
    templates_dir: Path | None = None


class DatabaseSettings(StrictModel):
    url: str = DEFAULT_DATABASE_URL
    echo: bool = False


class SecuritySettings(StrictModel):
    # HMAC secret for thread tokens; read from this environment variable,
    # else from `secret_file` (created with a random secret on first run).
    secret_env: str = ENV_SECRET
    secret_file: Path = Path("var/secret.key")
    # A staff command answers one of our mails; after this many days that mail no longer
    # carries authority (the late reply gets a transcript, itself a fresh mail to act on).
    command_token_days: int = Field(default=30, ge=0)


class DocumentSettings(StrictModel):
    """Letterhead and numbering of the official documents (DOMAIN.md s. 6)."""

    letterhead: list[str] = ["KEMENTERIAN DESA, PEMBANGUNAN DAERAH TERTINGGAL, DAN TRANSMIGRASI",
                             "BADAN PENGEMBANGAN SUMBER DAYA MANUSIA"]  # fmt: skip
    address: str = ""
    phone: str = ""
    email: str = ""
    website: str = ""
    logo: str = ""  # path of a PNG/JPEG/SVG, relative to the project folder
    city: str = "Jakarta"
    disposition_number: str = "{seq:04d}/DISP/{year}"
    task_number: str = "ST-{seq:04d}/KONS/{year}"
    minutes_number: str = "BA-{seq:04d}/KONS/{year}"
    head_name: str = ""  # who signs the Lembar Disposisi and the Surat Tugas
    head_position: str = "Kepala Bagian Umum dan Rumah Tangga"
    head_nip: str = ""
    # The published SKM result's follow-up plan (rencana tindak lanjut, Permenpan RB 14/2017).
    skm_follow_up: list[str] = []


class ReportSettings(StrictModel):
    # The Laporan Hasil Layanan Konsultasi of the past month, mailed (PDF) to these roles.
    monthly: bool = True
    # (A profile's `report_roles` wins: SOP 004's report goes to the Inspektur, role "chief".)
    roles: list[Literal["head", "subhead", "secretariat", "chief"]] = ["head"]


class PrivacySettings(StrictModel):
    # Personal data of closed tickets older than this is purged by `mailbot privacy purge`.
    retention_days: int = Field(default=1825, ge=30)


class LimitSettings(StrictModel):
    max_message_bytes: int = Field(default=25 * 1024 * 1024, ge=1024)
    max_attachments: int = Field(default=50, ge=0)
    max_mime_depth: int = Field(default=10, ge=1)
    # The largest mail mailbot composes with files in it: past it the largest files are left out
    # and a note says where they are (core/withheld.py); the server's SIZE is checked at sending
    # too. 10,240,000 bytes: Zimbra's and Postfix's default message size limit.
    max_outgoing_bytes: int = Field(default=10_240_000, ge=10_000)
    # Automatic mail to one recipient per hour; past it mail is held back (DOMAIN.md s. 5).
    auto_replies_per_recipient_per_hour: int = Field(default=20, ge=1)
    # Loop guard per ticket: the same kind of automatic mail to the same person at most this many
    # times a day, and never again for a reply whose text repeats an earlier one (an auto-responder
    # that slips past every header check cannot keep a conversation with us going).
    same_reply_per_day: int = Field(default=3, ge=1)
    # A second identical request from the same sender inside this window is a duplicate.
    duplicate_window_hours: float = Field(default=72.0, ge=0)
    # New tickets one sender may open in 24 hours; past it new mail is held without any automatic
    # reply and listed in the staff digest (an auto-responder that starts a new thread each time).
    # 0 turns the cap off.
    new_tickets_per_sender_per_day: int = Field(default=20, ge=0)
