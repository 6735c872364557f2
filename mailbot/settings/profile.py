"""A service profile (one SOP): its steps and their clocks, routing rules, roles and options."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from mailbot.core.durations import Clock, Duration, parse_duration
from mailbot.settings.base import StrictModel
from mailbot.settings.staff import Role

FieldName = Literal[
    "name", "id_number", "unit", "position", "phone", "question",
    # A complaint (SOP 003): its type, the date and time of the incident, the evidence.
    "complaint_type", "incident_time", "evidence",
]  # fmt: skip
FIELD_NAMES: tuple[FieldName, ...] = ("name", "id_number", "unit", "position", "phone", "question")
RouteKey = Literal["region", "unit", "field"]


def _check_duration(value: str) -> str:
    parse_duration(value)
    return value


class Step(StrictModel):
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


class Route(StrictModel):
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


class Profile(StrictModel):
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

    def step(self, step_id: str | None) -> Step | None:
        """The step of this id (a ticket's `after_step`, a step run's), None for none or an id the
        profile no longer has."""
        return next((s for s in self.steps if s.id == step_id), None) if step_id else None

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
