"""The configuration schema: pure pydantic models of mailbot.toml and the service profiles.

No I/O and no environment: `mailbot.config` reads the file, the secrets and the
connection URLs, and validates them against these models. The core imports from here.
One module per part: base (what every table shares), service (the office's own tables),
mail_servers, hours (working time), staff (the directory and its roles), profile (an SOP).
"""

from __future__ import annotations

from pathlib import Path

from mailbot.locate import ENV_CONFIG, ENV_DATABASE_URL, ConfigError
from mailbot.settings.base import (
    ENV_MAILBOX_URL,
    ENV_SECRET,
    ENV_SMTP_URL,
    EmailAddress,
    StrictModel,
)
from mailbot.settings.hours import (
    FRIDAY,
    CalendarSettings,
    DayName,
    HoursPeriodSettings,
    OfficeHoursSettings,
    Span,
)
from mailbot.settings.mail_servers import (
    MailboxSettings,
    OAuth2Settings,
    SmtpSettings,
)
from mailbot.settings.profile import (
    FIELD_NAMES,
    FieldName,
    Profile,
    Route,
    RouteKey,
    Step,
)
from mailbot.settings.service import (
    DatabaseSettings,
    DocumentSettings,
    LimitSettings,
    PrivacySettings,
    ReportSettings,
    SecuritySettings,
    ServiceSettings,
)
from mailbot.settings.staff import (
    Role,
    StaffMember,
)

__all__ = [
    "ENV_CONFIG",
    "ENV_DATABASE_URL",
    "ENV_MAILBOX_URL",
    "ENV_SECRET",
    "ENV_SMTP_URL",
    "FIELD_NAMES",
    "FRIDAY",
    "CalendarSettings",
    "ConfigError",
    "DatabaseSettings",
    "DayName",
    "DocumentSettings",
    "EmailAddress",
    "FieldName",
    "HoursPeriodSettings",
    "LimitSettings",
    "MailboxSettings",
    "OAuth2Settings",
    "OfficeHoursSettings",
    "PrivacySettings",
    "Profile",
    "ReportSettings",
    "Role",
    "Route",
    "RouteKey",
    "SecuritySettings",
    "ServiceSettings",
    "Settings",
    "SmtpSettings",
    "Span",
    "StaffMember",
    "Step",
    "StrictModel",
]


class Settings(StrictModel):
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
