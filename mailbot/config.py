"""Settings: a TOML file, secrets and connection URLs from the environment, service profiles.

No globals: `load_config` returns a `Config`, and everything that needs a
setting is handed the object. Validation collects every problem at once and
names the key it belongs to (`mailbot check-config`).
"""

from __future__ import annotations

import csv
import itertools
import os
import re
import ssl
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, time
from email.utils import parseaddr
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import unquote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from mailbot.core.durations import Clock, Duration, parse_duration

ENV_CONFIG = "MAILBOT_CONFIG"
ENV_DATABASE_URL = "MAILBOT_DATABASE_URL"
ENV_MAILBOX_URL = "MAILBOT_MAILBOX_URL"
ENV_SMTP_URL = "MAILBOT_SMTP_URL"
ENV_SECRET = "MAILBOT_SECRET"

_ADDR_RE = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
FieldName = Literal["name", "id_number", "unit", "position", "phone", "question"]
FIELD_NAMES: tuple[FieldName, ...] = ("name", "id_number", "unit", "position", "phone", "question")


class ConfigError(Exception):
    """The configuration cannot be used; `problems` lists every (key, message)."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{k}: {m}" for k, m in problems))


def _check_address(value: str) -> str:
    _, addr = parseaddr(value)
    if not addr or not _ADDR_RE.match(addr) or addr != value.strip():
        raise ValueError(f"not an email address: {value!r}")
    return addr.lower()


EmailAddress = Annotated[str, AfterValidator(_check_address)]


def _check_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(
            f"unknown time zone {value!r} (use Asia/Jakarta, Asia/Makassar or Asia/Jayapura)"
        ) from exc
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServiceSettings(_Strict):
    name: str = "Layanan Konsultasi Online"
    office: str = "Sekretariat"
    address: EmailAddress = "konsultasi@localhost.localdomain"
    timezone: Annotated[str, AfterValidator(_check_timezone)] = "Asia/Jakarta"
    language: Literal["id", "en"] = "id"
    profile: str = "sop-002"
    data_dir: Path = Path("var")
    # Marks our own mail (the loop header); defaults to the service address.
    instance_id: str = ""
    # A first run of the embedded default drops sample requests into the Maildir.
    seed_samples: bool = False


class DatabaseSettings(_Strict):
    url: str = "sqlite:///var/mailbot.db"
    echo: bool = False


class MailboxSettings(_Strict):
    url: str = "maildir://var/mailbox"
    password_env: str = "MAILBOT_IMAP_PASSWORD"
    # What happens to a message once it is safely stored: moved to a folder, or flagged.
    after: Literal["move", "flag"] = "move"
    processed_folder: str = "Processed"
    quarantine_folder: str = "Quarantine"
    idle: bool = True
    idle_timeout: float = Field(default=300.0, gt=0)
    poll_interval: float = Field(default=30.0, gt=0)
    batch_size: int = Field(default=200, ge=1, le=5000)
    # Messages processed in one database transaction (a failure in one of them rolls the group
    # back and its messages are processed again one by one, each in its own transaction).
    transaction_size: int = Field(default=50, ge=1, le=1000)
    # Processes that parse the next group of a backlog while the intake thread stores the
    # current one (0: parse in the intake thread).
    parse_workers: int = Field(default=1, ge=0, le=16)
    reconnect_max_seconds: float = Field(default=300.0, gt=0)
    timeout: float = Field(default=60.0, gt=0)
    # PEM file of the CA that signed the server's certificate; empty: the system's CAs.
    ca_file: str = ""


class SmtpSettings(_Strict):
    url: str = "file://var/outbox"
    password_env: str = "MAILBOT_SMTP_PASSWORD"
    timeout: float = Field(default=30.0, gt=0)
    # Temporary failures are retried with exponential backoff until this many attempts.
    max_attempts: int = Field(default=12, ge=1)
    retry_base_seconds: float = Field(default=30.0, gt=0)
    retry_max_seconds: float = Field(default=3600.0, gt=0)
    # Mails claimed and recorded per transaction, and SMTP connections a batch is spread over
    # (the mails of one ticket always go over the same connection, in order).
    batch_size: int = Field(default=250, ge=1)
    connections: int = Field(default=2, ge=1, le=32)
    # The daemon drains the outbox in a child process of its own (another core than intake).
    sender_process: bool = True
    ca_file: str = ""
    # A process claims a mail for this long before sending; if it dies mid-send the claim runs
    # out and the mail is sent again (at-least-once, with the same Message-ID).
    claim_lease_seconds: float = Field(default=600.0, gt=0)


class SecuritySettings(_Strict):
    # HMAC secret for thread tokens; read from this environment variable,
    # else from `secret_file` (created with a random secret on first run).
    secret_env: str = ENV_SECRET
    secret_file: Path = Path("var/secret.key")
    # A staff command answers one of our mails; after this many days that mail no longer
    # carries authority (the late reply gets a transcript, itself a fresh mail to act on).
    command_token_days: int = Field(default=30, ge=0)


class CalendarSettings(_Strict):
    """Working time (DOMAIN.md s. 4): national holidays and cuti bersama come from `holidays`."""

    closed_days: list[date] = []  # extra days the office is closed
    open_days: list[date] = []  # holidays on which the office is open nonetheless
    # The daily digest to each head, office time; `daily_digest = false` turns it off.
    daily_digest: bool = True
    digest_time: time = time(7, 30)
    # How often deadlines are checked.
    sweep_seconds: float = Field(default=60.0, gt=0)


DayName = Literal[
    "senin", "selasa", "rabu", "kamis", "jumat", "sabtu", "minggu",
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday",
]  # fmt: skip
_WEEKDAY = {
    **{d: n for n, d in enumerate(("senin", "selasa", "rabu", "kamis", "jumat", "sabtu", "minggu"))},
    **{
        d: n
        for n, d in enumerate(("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"))
    },
}
FRIDAY = 4
Span = tuple[time, time]


def _cut(hours: Span, breaks: list[Span]) -> tuple[Span, ...]:
    """The open spans of a day: its hours less its breaks (checked: in order, inside the hours)."""
    start, end = hours
    if not start < end:
        raise ValueError(f"hours {start:%H:%M}-{end:%H:%M}: the end must come after the start")
    spans: list[Span] = []
    at = start
    for b_start, b_end in sorted(breaks):
        if not (start < b_start < b_end < end) or b_start < at:
            raise ValueError(
                f"break {b_start:%H:%M}-{b_end:%H:%M} must lie inside the hours "
                f"{start:%H:%M}-{end:%H:%M} and not overlap another break"
            )
        spans.append((at, b_start))
        at = b_end
    spans.append((at, end))
    return tuple(spans)


class _Hours(_Strict):
    """Days, hours, breaks and Friday's own hours and breaks (when they differ)."""

    days: list[DayName] = Field(default=["senin", "selasa", "rabu", "kamis", "jumat"], min_length=1)
    hours: Span
    breaks: list[Span] = []
    # None: Friday is like the other days.
    friday_hours: Span | None = None
    friday_breaks: list[Span] | None = None

    @model_validator(mode="after")
    def _spans_ok(self) -> _Hours:
        self.week()
        return self

    def week(self) -> dict[int, tuple[Span, ...]]:
        """Weekday (0 = Monday) -> the open spans, as `sla.WorkCalendar` takes them."""
        out: dict[int, tuple[Span, ...]] = {}
        for name in self.days:
            day = _WEEKDAY[name]
            if day == FRIDAY and (self.friday_hours is not None or self.friday_breaks is not None):
                breaks = self.friday_breaks if self.friday_breaks is not None else self.breaks
                out[day] = _cut(self.friday_hours or self.hours, breaks)
            else:
                out[day] = _cut(self.hours, self.breaks)
        return out


class HoursPeriodSettings(_Hours):
    """Other hours on dated days, e.g. Ramadan's: the hours of the KemenPAN-RB circular of that
    year, written by the office (`source` names the circular)."""

    name: str
    first_day: date
    last_day: date
    source: str = ""

    @model_validator(mode="after")
    def _dates_ok(self) -> HoursPeriodSettings:
        if self.last_day < self.first_day:
            raise ValueError(f"period {self.name!r}: last_day is before first_day")
        return self


class OfficeHoursSettings(_Hours):
    """The office's hours (DOMAIN.md s. 4); the default is Perpres 21/2023: Monday to Friday
    07:30-16:00 with a break 12:00-13:00, Friday 07:30-16:30 with a break 11:30-13:00."""

    hours: Span = (time(7, 30), time(16, 0))
    breaks: list[Span] = [(time(12, 0), time(13, 0))]
    friday_hours: Span | None = (time(7, 30), time(16, 30))
    friday_breaks: list[Span] | None = [(time(11, 30), time(13, 0))]
    source: str = "Perpres 21/2023"
    periods: list[HoursPeriodSettings] = []

    @model_validator(mode="before")
    @classmethod
    def _own_hours_own_friday(cls, data: Any) -> Any:
        # An office that writes its own hours but no Friday hours keeps Friday like its other
        # days, not Perpres 21/2023's Friday.
        if isinstance(data, dict) and ("hours" in data or "breaks" in data):
            data = {"friday_hours": None, "friday_breaks": None, **data}
        return data

    @model_validator(mode="after")
    def _periods_apart(self) -> OfficeHoursSettings:
        ordered = sorted(self.periods, key=lambda p: p.first_day)
        for a, b in itertools.pairwise(ordered):
            if b.first_day <= a.last_day:
                raise ValueError(f"periods {a.name!r} and {b.name!r} overlap")
        return self


class DocumentSettings(_Strict):
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


class ReportSettings(_Strict):
    # The Laporan Hasil Layanan Konsultasi of the past month, mailed (PDF) to these roles.
    monthly: bool = True
    roles: list[Literal["head", "subhead", "secretariat"]] = ["head"]


class PrivacySettings(_Strict):
    # Personal data of closed tickets older than this is purged by `mailbot privacy purge`.
    retention_days: int = Field(default=1825, ge=30)


class LimitSettings(_Strict):
    max_message_bytes: int = Field(default=25 * 1024 * 1024, ge=1024)
    max_attachments: int = Field(default=50, ge=0)
    max_mime_depth: int = Field(default=10, ge=1)
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


class StaffMember(_Strict):
    name: str
    emails: list[EmailAddress] = Field(min_length=1)
    role: Literal["secretariat", "head", "subhead", "consultant", "vendor"]
    aliases: list[str] = []
    nip: str = ""
    position: str = ""
    field: str = ""
    region: str = ""
    active: bool = True
    # Profiles this person works in; empty means every profile.
    profiles: list[str] = []


class Settings(_Strict):
    service: ServiceSettings = ServiceSettings()
    database: DatabaseSettings = DatabaseSettings()
    mailbox: MailboxSettings = MailboxSettings()
    smtp: SmtpSettings = SmtpSettings()
    security: SecuritySettings = SecuritySettings()
    limits: LimitSettings = LimitSettings()
    calendar: CalendarSettings = CalendarSettings()
    office_hours: OfficeHoursSettings = OfficeHoursSettings()
    documents: DocumentSettings = DocumentSettings()
    reports: ReportSettings = ReportSettings()
    privacy: PrivacySettings = PrivacySettings()
    profiles_dir: Path = Path("config/profiles")
    # Staff directory rows from a CSV file (see README), added to [[staff]].
    staff_csv: Path | None = None
    staff: list[StaffMember] = []


def _check_duration(value: str) -> str:
    parse_duration(value)
    return value


class Step(_Strict):
    id: str
    title: str
    actor: Literal["applicant", "secretariat", "head", "subhead", "consultant", "vendor", "system"]
    duration: Annotated[str, AfterValidator(_check_duration)]
    # "sop": as the duration reads (minutes, hours and days in office hours; "1 x 24 jam" on the
    # wall clock); "wall" or "working" where the SOP says so in other words.
    clock: Clock = "sop"

    @property
    def deadline(self) -> Duration:
        return parse_duration(self.duration).on(self.clock)


Role = Literal["secretariat", "head", "subhead", "consultant", "vendor"]


class Route(_Strict):
    """A routing rule: when `match` (a case-insensitive regex) finds the applicant's work unit
    (route_by = "region" or "unit") or the question and subject (route_by = "field"), the
    ticket goes to the staff whose region / field is `to`."""

    match: str
    to: str

    @field_validator("match")
    @classmethod
    def _regex_ok(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"bad regular expression: {exc}") from exc
        return value


class Profile(_Strict):
    id: str
    title: str
    # What the service calls a request in applicants' mail: "konsultasi", or "keluhan" (SOP 003).
    service_noun: str = "konsultasi"
    office: str = ""
    sop_number: str = ""
    # How the consultation is held, for the Berita Acara (a ticket's field of that name wins).
    consultation_medium: Literal["email", "video", "face_to_face"] = "email"
    number_format: str = "KONS-{year}-{seq:06d}"
    language: Literal["id", "en"] = "id"
    required_fields: list[FieldName] = list(FIELD_NAMES)
    # Roles that receive the disposition request for a new, complete ticket.
    notify_roles: list[Literal["secretariat", "head", "subhead"]] = ["head"]
    # The chain of disposition: a person may ASSIGN to a role further down the list
    # (SOP 004: secretary → Inspektur Pembantu → auditor).
    delegation: list[Role] = ["head", "consultant"]
    # SOP 000: the secretariat answers normative questions itself (ANSWER).
    secretariat_answers: bool = False
    # SOP 003: tickets can be forwarded to an external vendor (FORWARD).
    vendors: bool = False
    # Tell the applicant who handles the ticket once it is assigned.
    notify_applicant_on_assign: bool = True
    # Routing of a new ticket by the applicant's region / work unit or the question's field.
    route_by: Literal["none", "region", "unit", "field"] = "none"
    routes: list[Route] = []
    # Assign the routed person directly instead of suggesting them (SOP 001's customer service).
    auto_assign_routed: bool = False
    # SOP 000: a CSV of active employees (column `nip`), relative to the profiles folder;
    # applicants not in it are refused.
    eligibility_roster: str = ""
    # Commands count only when the sender is proven (mailbot.core.sender_auth), by `authserv`:
    #   "header"        the topmost Authentication-Results of our server (`authserv_id`) shows
    #                   DMARC pass or aligned DKIM pass for the From domain;
    #   "microsoft365"  the same in Exchange Online's header (it carries no authserv-id);
    #   "dkim"          mailbot checks the mail's DKIM signature itself (DNS lookups).
    require_authentication: bool = False
    authserv: Literal["header", "microsoft365", "dkim"] = "header"
    authserv_id: str = ""
    # The answer carries the satisfaction form (SKM); a complete survey closes the ticket.
    survey: bool = True
    # A follow-up question within this many days after the answer reopens the ticket;
    # later it opens a new ticket linked to the old one.
    reopen_window_days: int = Field(default=14, ge=0)
    # Which step's clock runs in which ticket state (step ids of `steps`).
    state_steps: dict[Literal["new", "assigned", "forwarded", "answered"], str] = {
        "new": "assign",
        "assigned": "review",
        "forwarded": "review",
        "answered": "survey",
    }
    # In state `assigned`, the step by the role of the person the ticket is assigned to
    # (SOP 004: subhead = the Inspektur Pembantu's step, consultant = the auditor's).
    role_steps: dict[Role, str] = {}
    # The person responsible is reminded when this share of a step's time has passed.
    remind_at: float = Field(default=0.75, gt=0, lt=1)
    # Applicants who have not returned the survey are reminded, then the ticket closes without it.
    survey_reminder_after: Annotated[str, AfterValidator(_check_duration)] = "2 hari kerja"
    survey_close_after: Annotated[str, AfterValidator(_check_duration)] = "5 hari kerja"
    steps: list[Step] = Field(min_length=1)

    @field_validator("number_format")
    @classmethod
    def _number_format_ok(cls, value: str) -> str:
        try:
            sample = value.format(year=2026, seq=1)
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"bad format ({exc}); use {{year}} and {{seq}}") from exc
        if "{seq" not in value:
            raise ValueError("must contain {seq}")
        if not re.fullmatch(r"[A-Za-z0-9/._-]+", sample):
            raise ValueError("may only produce letters, digits and / . _ -")
        return value

    @model_validator(mode="after")
    def _authserv_id_given(self) -> Profile:
        if self.require_authentication and self.authserv == "header" and not self.authserv_id:
            raise ValueError('require_authentication with authserv = "header" needs authserv_id')
        return self

    @model_validator(mode="after")
    def _role_steps_known(self) -> Profile:
        ids = {s.id for s in self.steps}
        unknown = sorted(v for v in self.role_steps.values() if v not in ids)
        if unknown:
            raise ValueError(f"role_steps names steps that are not in [[steps]]: {', '.join(unknown)}")
        return self

    def number_pattern(self) -> re.Pattern[str]:
        """A regex that finds this profile's ticket numbers in a subject line."""
        return _number_pattern(self.number_format)


@lru_cache(maxsize=64)
def _number_pattern(number_format: str) -> re.Pattern[str]:
    """Made once per format: every incoming subject is matched against every profile's."""
    parts = re.split(r"(\{[^}]*\})", number_format)
    out = []
    for part in parts:
        if part.startswith("{year"):
            out.append(r"\d{4}")
        elif part.startswith("{seq"):
            out.append(r"\d+")
        else:
            out.append(re.escape(part))
    return re.compile(r"(?<![A-Za-z0-9])(" + "".join(out) + r")(?![0-9])", re.IGNORECASE)


@dataclass(frozen=True)
class ConnectionUrl:
    """A parsed mailbox or SMTP URL: scheme, host, port, user, password, path."""

    scheme: str
    host: str
    port: int | None
    user: str
    password: str
    path: str

    def redacted(self) -> str:
        auth = f"{self.user}:***@" if self.user else ""
        port = f":{self.port}" if self.port else ""
        if self.scheme in ("maildir", "file"):
            return f"{self.scheme}://{self.path}"
        return f"{self.scheme}://{auth}{self.host}{port}/{self.path}"


MAILBOX_SCHEMES = {"imap": 143, "imap+starttls": 143, "imaps": 993, "maildir": None}
SMTP_SCHEMES = {"smtp": 25, "smtp+starttls": 587, "smtps": 465, "file": None}


def parse_connection_url(url: str, schemes: Mapping[str, int | None], base: Path) -> ConnectionUrl:
    """Parse `imap://user:pw@host:port/FOLDER`, `maildir:///path`, `smtp+starttls://…`, `file://…`.

    A relative local path (`maildir://var/mailbox`) is taken relative to `base`.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in schemes:
        raise ValueError(f"unsupported scheme {scheme!r} in {url!r}; use one of {', '.join(schemes)}")
    if schemes[scheme] is None:
        raw_path = unquote((parts.netloc or "") + parts.path)
        if not raw_path:
            raise ValueError(f"{url!r} names no folder")
        path = Path(raw_path)
        if not path.is_absolute():
            path = base / path
        return ConnectionUrl(scheme, "", None, "", "", str(path))
    if not parts.hostname:
        raise ValueError(f"{url!r} names no host")
    try:
        port = parts.port or schemes[scheme]
    except ValueError as exc:
        raise ValueError(f"bad port in {url!r}") from exc
    return ConnectionUrl(
        scheme=scheme,
        host=parts.hostname,
        port=port,
        user=unquote(parts.username or ""),
        password=unquote(parts.password or ""),
        path=unquote(parts.path.lstrip("/")),
    )


@dataclass(frozen=True)
class Config:
    """The loaded configuration: settings, profiles, resolved paths and secrets."""

    settings: Settings
    profiles: dict[str, Profile]
    base_dir: Path
    source: Path | None
    database_url: str
    mailbox: ConnectionUrl
    smtp: ConnectionUrl
    secret: bytes
    # [[staff]] and the rows of staff_csv.
    staff: tuple[StaffMember, ...] = ()
    # Per profile with an eligibility roster: the NIPs in it.
    rosters: dict[str, frozenset[str]] = field(default_factory=dict)

    @property
    def service(self) -> ServiceSettings:
        return self.settings.service

    @property
    def data_dir(self) -> Path:
        d = self.settings.service.data_dir
        return d if d.is_absolute() else self.base_dir / d

    @property
    def profile(self) -> Profile:
        return self.profiles[self.settings.service.profile]

    @property
    def instance_id(self) -> str:
        return self.settings.service.instance_id or self.settings.service.address

    def staff_by_email(self, address: str) -> StaffMember | None:
        address = address.lower()
        for member in self.staff:
            if member.active and address in member.emails:
                return member
        return None

    def staff_with_roles(self, roles: list[str], profile: str) -> list[StaffMember]:
        return [
            m
            for m in self.staff
            if m.active and m.role in roles and (not m.profiles or profile in m.profiles)
        ]


def _pydantic_problems(exc: ValidationError, prefix: str = "") -> list[tuple[str, str]]:
    problems = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"])
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        problems.append((prefix + key, msg))
    return problems


def _read_toml(path: Path, key: str) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh), []
    except OSError as exc:
        return {}, [(key, f"cannot read {path}: {exc.strerror}")]
    except tomllib.TOMLDecodeError as exc:
        return {}, [(key, f"{path} is not valid TOML: {exc}")]


def _profile_problems(exc: ValidationError, filename: str, data: dict[str, Any]) -> list[tuple[str, str]]:
    """A profile's problems; a step's unreadable time names the step and the profile."""
    name = data.get("id") if isinstance(data.get("id"), str) else filename
    raw_steps = data.get("steps")
    steps: list[Any] = raw_steps if isinstance(raw_steps, list) else []
    problems = []
    for (key, msg), err in zip(_pydantic_problems(exc, f"{filename}: "), exc.errors(), strict=True):
        loc = err["loc"]
        where = ""
        index = loc[1] if len(loc) >= 3 and loc[0] == "steps" else None
        if isinstance(index, int) and loc[2] in ("duration", "clock"):
            step = steps[index] if index < len(steps) and isinstance(steps[index], dict) else {}
            where = f"step {step.get('id', index)!r} of profile {name!r}: "
        elif loc and loc[0] in ("survey_reminder_after", "survey_close_after"):
            where = f"profile {name!r}: "
        problems.append((key, where + msg))
    return problems


def load_profiles(directory: Path) -> tuple[dict[str, Profile], list[tuple[str, str]]]:
    profiles: dict[str, Profile] = {}
    problems: list[tuple[str, str]] = []
    if not directory.is_dir():
        return profiles, [("profiles_dir", f"{directory} is not a folder")]
    for path in sorted(directory.glob("*.toml")):
        data, errs = _read_toml(path, f"profiles_dir/{path.name}")
        problems += errs
        if errs:
            continue
        try:
            profile = Profile.model_validate(data)
        except ValidationError as exc:
            problems += _profile_problems(exc, path.name, data)
            continue
        if profile.id in profiles:
            problems.append((f"{path.name}: id", f"profile {profile.id!r} defined twice"))
        profiles[profile.id] = profile
    return profiles, problems


STAFF_CSV_COLUMNS = (
    "name",
    "emails",
    "role",
    "aliases",
    "nip",
    "position",
    "field",
    "region",
    "active",
    "profiles",
)


def load_staff_csv(path: Path) -> tuple[list[tuple[str, StaffMember]], list[tuple[str, str]]]:
    """Staff rows from a CSV file; list cells (emails, aliases, profiles) are separated by ';'."""
    rows: list[tuple[str, StaffMember]] = []
    problems: list[tuple[str, str]] = []
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            unknown = set(reader.fieldnames or ()) - set(STAFF_CSV_COLUMNS)
            if unknown:
                problems.append(("staff_csv", f"unknown columns: {', '.join(sorted(unknown))}"))
            for n, row in enumerate(reader, start=2):
                key = f"staff_csv:{n}"
                data: dict[str, Any] = {
                    k: (v or "").strip() for k, v in row.items() if k in STAFF_CSV_COLUMNS
                }
                for list_key in ("emails", "aliases", "profiles"):
                    data[list_key] = [x.strip() for x in data.get(list_key, "").split(";") if x.strip()]
                active = str(data.pop("active", "") or "yes").lower()
                data["active"] = active not in ("no", "tidak", "false", "0", "n")
                try:
                    rows.append((key, StaffMember.model_validate(data)))
                except ValidationError as exc:
                    problems += _pydantic_problems(exc, f"{key}.")
    except OSError as exc:
        problems.append(("staff_csv", f"cannot read {path}: {exc.strerror}"))
    return rows, problems


def load_roster(path: Path) -> frozenset[str]:
    """The NIPs of an employee roster CSV (a `nip` column; spaces and dots inside are ignored)."""
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        if "nip" not in (reader.fieldnames or ()):
            raise ValueError(f"{path} has no 'nip' column")
        return frozenset(re.sub(r"\D", "", row["nip"] or "") for row in reader if row.get("nip"))


def default_config_path() -> Path:
    """`config/mailbot.toml` beside the project, the embedded default."""
    return Path(__file__).resolve().parent.parent / "config" / "mailbot.toml"


def _load_secret(settings: Settings, data_dir: Path, base: Path, create: bool) -> bytes:
    env_value = os.environ.get(settings.security.secret_env, "")
    if env_value:
        return env_value.encode()
    path = settings.security.secret_file
    if not path.is_absolute():
        path = base / path
    if path.exists():
        return path.read_bytes().strip()
    if not create:
        return b""
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = os.urandom(32).hex().encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(secret)
    return secret


def load_config(path: Path | None = None, *, create_secret: bool = True) -> Config:
    """Load and validate; raises ConfigError listing every problem found."""
    if path is None:
        env_path = os.environ.get(ENV_CONFIG)
        path = Path(env_path) if env_path else default_config_path()
    path = path.resolve()
    data, problems = _read_toml(path, "config")
    if problems:
        raise ConfigError(problems)
    # Relative paths in the file are relative to the project (the config folder's parent)
    # when the file lives in a `config/` folder, else to the file's own folder.
    base = path.parent.parent if path.parent.name == "config" else path.parent
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_pydantic_problems(exc)) from None

    profiles_dir = (
        settings.profiles_dir if settings.profiles_dir.is_absolute() else base / settings.profiles_dir
    )
    profiles, problems = load_profiles(profiles_dir)
    if settings.service.profile not in profiles and not any(p[0] == "profiles_dir" for p in problems):
        problems.append(("service.profile", f"no profile {settings.service.profile!r} in {profiles_dir}"))
    staff: list[tuple[str, StaffMember]] = [(f"staff.{i}", m) for i, m in enumerate(settings.staff)]
    if settings.staff_csv is not None:
        csv_path = settings.staff_csv if settings.staff_csv.is_absolute() else base / settings.staff_csv
        rows, errs = load_staff_csv(csv_path)
        staff += rows
        problems += errs
    for key, member in staff:
        for p in member.profiles:
            if p not in profiles:
                problems.append((f"{key}.profiles", f"no profile {p!r}"))
    seen: dict[str, str] = {}
    for key, member in staff:
        for addr in member.emails:
            if addr in seen:
                problems.append((f"{key}.emails", f"{addr} is also {seen[addr]}"))
            seen[addr] = key
    if settings.service.address in seen:
        problems.append(("service.address", "must not be a staff member's address"))
    rosters: dict[str, frozenset[str]] = {}
    for profile in profiles.values():
        if profile.eligibility_roster:
            roster_path = Path(profile.eligibility_roster)
            roster_path = roster_path if roster_path.is_absolute() else profiles_dir / roster_path
            try:
                rosters[profile.id] = load_roster(roster_path)
            except (OSError, ValueError) as exc:
                problems.append((f"{profile.id}.eligibility_roster", str(exc)))

    data_dir = (
        settings.service.data_dir
        if settings.service.data_dir.is_absolute()
        else base / settings.service.data_dir
    )

    database_url = os.environ.get(ENV_DATABASE_URL) or settings.database.url
    database_url = _absolute_sqlite_url(database_url, base)
    mailbox_url = os.environ.get(ENV_MAILBOX_URL) or settings.mailbox.url
    smtp_url = os.environ.get(ENV_SMTP_URL) or settings.smtp.url
    mailbox = smtp = None
    try:
        mailbox = parse_connection_url(mailbox_url, MAILBOX_SCHEMES, base)
    except ValueError as exc:
        problems.append((ENV_MAILBOX_URL if os.environ.get(ENV_MAILBOX_URL) else "mailbox.url", str(exc)))
    try:
        smtp = parse_connection_url(smtp_url, SMTP_SCHEMES, base)
    except ValueError as exc:
        problems.append((ENV_SMTP_URL if os.environ.get(ENV_SMTP_URL) else "smtp.url", str(exc)))
    if problems or mailbox is None or smtp is None:
        raise ConfigError(problems)
    if mailbox.scheme.startswith("imap") and not mailbox.password:
        mailbox = _with_password(mailbox, os.environ.get(settings.mailbox.password_env, ""))
    if smtp.scheme.startswith("smtp") and smtp.user and not smtp.password:
        smtp = _with_password(smtp, os.environ.get(settings.smtp.password_env, ""))
    secret = _load_secret(settings, data_dir, base, create_secret)
    return Config(
        settings=settings,
        profiles=profiles,
        base_dir=base,
        source=path,
        database_url=database_url,
        mailbox=mailbox,
        smtp=smtp,
        secret=secret,
        staff=tuple(m for _, m in staff),
        rosters=rosters,
    )


@lru_cache(maxsize=8)
def tls_context(ca_file: str) -> ssl.SSLContext:
    """A verifying TLS context; `ca_file` adds an office's own CA (never disables verification).
    Made once per CA file and shared by every connection: loading the system's certificates cost
    about 20 ms of CPU, and the sender connects again after every pause in the outbox."""
    return ssl.create_default_context(cafile=ca_file or None)


def _with_password(url: ConnectionUrl, password: str) -> ConnectionUrl:
    return ConnectionUrl(url.scheme, url.host, url.port, url.user, password, url.path)


def _absolute_sqlite_url(url: str, base: Path) -> str:
    """`sqlite:///var/x.db` is relative; make it relative to the project, not the cwd."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith("sqlite:////") and ":memory:" not in url:
        rel = url[len(prefix) :]
        return prefix + str(base / rel)
    return url
