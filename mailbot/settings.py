"""The configuration schema: pure pydantic models of mailbot.toml and the service profiles.

No I/O and no environment: `mailbot.config` reads the file, the secrets and the
connection URLs, and validates them against these models. The core imports from here.
"""

from __future__ import annotations

import itertools
import re
from datetime import date, time
from email.utils import parseaddr
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
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
FieldName = Literal[
    "name", "id_number", "unit", "position", "phone", "question",
    # A complaint (SOP 003): its type, the date and time of the incident, the evidence.
    "complaint_type", "incident_time", "evidence",
]  # fmt: skip
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
    # The office's own templates: a file in this folder (id/ack.txt.j2, documents/id/surat_tugas.html.j2)
    # is used instead of the shipped one of the same name; None: the shipped templates only.
    templates_dir: Path | None = None


class DatabaseSettings(_Strict):
    url: str = "sqlite:///var/mailbot.db"
    echo: bool = False


class OAuth2Settings(_Strict):
    """Where an XOAUTH2 access token comes from: `provider` (microsoft, google) or `command`. The
    login user is the URL's. Secrets never sit here: the variables named by the *_env keys hold them."""

    provider: Literal["microsoft", "google"] | None = None
    # microsoft: client credentials of an Entra ID app registration (msal).
    tenant_id_env: str = "MAILBOT_OAUTH2_TENANT_ID"
    client_id_env: str = "MAILBOT_OAUTH2_CLIENT_ID"
    client_secret_env: str = "MAILBOT_OAUTH2_CLIENT_SECRET"
    authority: str = "https://login.microsoftonline.com"  # another cloud: login.microsoftonline.us
    # google: a service account's JSON key, with domain-wide delegation to act as the URL's user.
    key_file: Path | None = None
    scope: str = ""  # empty: https://outlook.office365.com/.default, https://mail.google.com/
    # A program (run without a shell) that prints an access token; it is used for token_lifetime.
    command: str = ""
    command_timeout: float = Field(default=30.0, gt=0)
    token_lifetime: float = Field(default=3600.0, gt=0)
    # A token is replaced this many seconds before it expires.
    refresh_margin: float = Field(default=300.0, ge=0)

    @model_validator(mode="after")
    def _one_source(self) -> OAuth2Settings:
        if (self.provider is None) == (not self.command.strip()):
            raise ValueError('set either provider ("microsoft" or "google") or command')
        if self.provider == "google" and self.key_file is None:
            raise ValueError('provider = "google" needs key_file (the service account\'s JSON key)')
        if self.command and self.token_lifetime <= self.refresh_margin:
            raise ValueError("token_lifetime must be longer than refresh_margin")
        return self


class _Login(_Strict):
    """How mailbot logs in to a mail server: a password, or XOAUTH2 with a token of [*.oauth2]."""

    auth: Literal["password", "xoauth2"] = "password"
    oauth2: OAuth2Settings | None = None

    @model_validator(mode="after")
    def _oauth2_with_xoauth2(self) -> _Login:
        if self.auth == "xoauth2" and self.oauth2 is None:
            raise ValueError('auth = "xoauth2" needs an oauth2 table (provider or command)')
        if self.auth == "password" and self.oauth2 is not None:
            raise ValueError('an oauth2 table is used only with auth = "xoauth2"')
        return self


class MailboxSettings(_Login):
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


class SmtpSettings(_Login):
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
    # The daemon drains the outbox in a child process of its own (another core than intake),
    # started when mail is queued; with nothing to send for this long it exits until there is.
    sender_process: bool = True
    sender_idle_seconds: float = Field(default=300.0, gt=0)
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
    # (A profile's `report_roles` wins: SOP 004's report goes to the Inspektur, role "chief".)
    roles: list[Literal["head", "subhead", "secretariat", "chief"]] = ["head"]


class PrivacySettings(_Strict):
    # Personal data of closed tickets older than this is purged by `mailbot privacy purge`.
    retention_days: int = Field(default=1825, ge=30)


class LimitSettings(_Strict):
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


# The roles of the staff directory. "records": the Tata Usaha (TU) that receives a step's report
# and archives it (SOP 001's TU Itwil of the applicant's region). "chief": the head of the whole
# office above the disposition chain (SOP 004's Inspektur), who receives escalations and reports.
Role = Literal["secretariat", "head", "subhead", "consultant", "vendor", "records", "chief"]
RouteKey = Literal["region", "unit", "field"]


class StaffMember(_Strict):
    name: str
    emails: list[EmailAddress] = Field(min_length=1)
    role: Role
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
    # None: the five SOP profiles shipped with mailbot (package data, mailbot/profiles).
    profiles_dir: Path | None = None
    # Staff directory rows from a CSV file (see README), added to [[staff]].
    staff_csv: Path | None = None
    staff: list[StaffMember] = []


def _check_duration(value: str) -> str:
    parse_duration(value)
    return value


class Step(_Strict):
    id: str
    title: str
    actor: Literal["applicant", "system"] | Role
    duration: Annotated[str, AfterValidator(_check_duration)]
    # "sop": as the duration reads (minutes, hours and days in office hours; "1 x 24 jam" on the
    # wall clock); "wall" or "working" where the SOP says so in other words.
    clock: Clock = "sop"
    # A step after the answer (`after_answer`) whose output is a report: the actor sends it with
    # REPORT / LAPORAN and it goes to these roles (SOP 001 step 4: the customer service's report
    # to the TU of the applicant's region). A step without it is done with ARCHIVE / ARSIP.
    report_to: list[Role] = []

    @property
    def deadline(self) -> Duration:
        return parse_duration(self.duration).on(self.clock)


class Route(_Strict):
    """A routing rule: when `match` (a case-insensitive regex) finds the applicant's work unit
    (by = "region" or "unit") or the question and subject (by = "field"), the ticket goes to the
    staff whose region / field is `to`. `by` may be left out when the profile routes one way."""

    match: str
    to: str
    by: RouteKey | None = None

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
    # Who is told when a step is overdue (escalation); the first of these roles that has active
    # staff in the profile, else the heads, else `notify_roles` (SOP 004: the Inspektur, "chief").
    escalate_to: list[Role] = ["head"]
    # Who receives the monthly Laporan Hasil Layanan Konsultasi of the active profile; empty:
    # [reports] roles (SOP 004: the Inspektur).
    report_roles: list[Role] = []
    # The chain of disposition: a person may ASSIGN to a role further down the list
    # (SOP 004: secretary → Inspektur Pembantu → auditor).
    delegation: list[Role] = ["head", "consultant"]
    # SOP 000: the secretariat answers normative questions itself (ANSWER).
    secretariat_answers: bool = False
    # SOP 000 step 5: the secretariat marks a question normative (NORMATIVE / NORMATIF) and so
    # takes it to answer itself: the ticket is assigned to that member and the answer step's
    # clock (step 6, "1 x 24 jam") runs from then.
    normative_answers: bool = False
    # SOP 003: tickets can be forwarded to an external vendor (FORWARD).
    vendors: bool = False
    # Tell the applicant who handles the ticket once it is assigned.
    notify_applicant_on_assign: bool = True
    # Routing of a new ticket by the applicant's region / work unit and/or the question's field:
    # "field", "region", or a list (SOP 001: ["field", "region"], the consultant of the matching
    # field or of the applicant's region). "none" or [] routes nothing.
    route_by: list[RouteKey] = []
    routes: list[Route] = []
    # Assign the routed person directly instead of suggesting them (SOP 001's customer service).
    auto_assign_routed: bool = False
    # SOP 000: a CSV of active employees (column `nip`), relative to the profiles folder;
    # applicants not in it are refused.
    eligibility_roster: str = ""
    # Whose active employees the service is for, as the refusal names them (SOP 000: "pegawai
    # aktif Kementerian PUPR", not the Inspektorat Jenderal that runs it); empty: `office`.
    eligible_employer: str = ""
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
    # Steps after the answer, one after another, each with its own clock from the end of the one
    # before (the first from the answer): SOP 001 steps 4-5, the customer service's report to the
    # TU of the applicant's region, then the TU's archiving. Done with REPORT / ARCHIVE.
    after_answer: list[str] = []
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

    @field_validator("route_by", mode="before")
    @classmethod
    def _route_by_list(cls, value: Any) -> Any:
        if value == "none":
            return []
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _role_steps_known(self) -> Profile:
        ids = {s.id for s in self.steps}
        for key, named in (("role_steps", self.role_steps.values()), ("after_answer", self.after_answer)):
            unknown = sorted(v for v in named if v not in ids)
            if unknown:
                raise ValueError(f"{key} names steps that are not in [[steps]]: {', '.join(unknown)}")
        for step in self.steps:
            if step.id in self.after_answer and step.actor in ("applicant", "system", "vendor"):
                raise ValueError(f"after_answer step {step.id!r}: its actor must be a staff role")
        return self

    @model_validator(mode="after")
    def _routes_say_how(self) -> Profile:
        for n, route in enumerate(self.routes, 1):
            if route.by is None and len(self.route_by) != 1:
                raise ValueError(
                    f'routes[{n}] ({route.to!r}): say by = "field" or "region" when route_by is '
                    f"{self.route_by or 'none'}"
                )
            if route.by is not None and route.by not in self.route_by:
                raise ValueError(f"routes[{n}] ({route.to!r}): by = {route.by!r} is not in route_by")
        return self

    def route_key(self, route: Route) -> RouteKey:
        """What a routing rule looks at: its own `by`, else the profile's one way."""
        return route.by or self.route_by[0]

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
