"""Settings: a TOML file, secrets and connection URLs from the environment, service profiles.

No globals: `load_config` returns a `Config`, and everything that needs a
setting is handed the object. Validation collects every problem at once and
names the key it belongs to (`mailbot check-config`).
"""

from __future__ import annotations

import csv
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from pydantic import (
    ValidationError,
)

from mailbot import locate
from mailbot.locate import BUILTIN_PROFILES, config_base, config_path
from mailbot.secret import load_secret
from mailbot.settings import (
    ENV_MAILBOX_URL,
    ENV_SMTP_URL,
    ConfigError,
    OAuth2Settings,
    Profile,
    ServiceSettings,
    Settings,
    StaffMember,
)

if TYPE_CHECKING:
    import ssl


@dataclass(frozen=True)
class OAuth2Login:
    """An XOAUTH2 login as loaded: the user, the token source's settings, and the provider's
    secrets read from the environment (never from the file; empty when the variable is unset)."""

    user: str
    settings: OAuth2Settings
    key: str = field(default="", compare=False)  # "mailbox.oauth2" or "smtp.oauth2"
    tenant_id: str = ""
    client_id: str = ""
    client_secret: str = field(default="", repr=False)
    key_file: Path | None = None  # google: the key file's path, resolved


@dataclass(frozen=True)
class ConnectionUrl:
    """A parsed mailbox or SMTP URL: scheme, host, port, user, password, path; `oauth2` when the
    login is XOAUTH2 (`auth = "xoauth2"`) instead of the password."""

    scheme: str
    host: str
    port: int | None
    user: str
    password: str
    path: str
    oauth2: OAuth2Login | None = None

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
    def templates_dir(self) -> Path | None:
        """The office's template folder ([service] templates_dir), resolved; None: shipped ones only."""
        d = self.settings.service.templates_dir
        return None if d is None else d if d.is_absolute() else self.base_dir / d

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


def load_config(path: Path | None = None, *, create_secret: bool = True) -> Config:
    """Load and validate; raises ConfigError listing every problem found."""
    path = config_path(path)
    data, problems = _read_toml(path, "config")
    if problems:
        raise ConfigError(problems)
    base = config_base(path)
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_pydantic_problems(exc)) from None

    profiles_dir = (
        BUILTIN_PROFILES
        if settings.profiles_dir is None
        else settings.profiles_dir
        if settings.profiles_dir.is_absolute()
        else base / settings.profiles_dir
    )
    profiles, problems = load_profiles(profiles_dir)
    if settings.service.profile not in profiles and not any(p[0] == "profiles_dir" for p in problems):
        problems.append(("service.profile", f"no profile {settings.service.profile!r} in {profiles_dir}"))
    templates_dir = settings.service.templates_dir
    if templates_dir is not None and not (base / templates_dir).is_dir():
        problems.append(("service.templates_dir", f"{base / templates_dir} is not a folder"))
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

    database_url, mailbox, smtp, url_problems = connection_urls(settings, base)
    problems += url_problems
    if problems or mailbox is None or smtp is None:
        raise ConfigError(problems)
    secret = load_secret(settings, base, create_secret)
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
    import ssl  # not at start-up: only a connection to a server needs it

    return ssl.create_default_context(cafile=ca_file or None)


def connection_urls(
    settings: Settings, base: Path
) -> tuple[str, ConnectionUrl | None, ConnectionUrl | None, list[tuple[str, str]]]:
    """The database URL and the parsed mailbox and SMTP URLs (the environment's first, with
    passwords from the environment where the URL has none), and the problems of those that do
    not parse. `check-config` reads them from a file whose other settings are wrong. An XOAUTH2
    login (`auth = "xoauth2"`) comes with its secrets from the environment."""
    problems: list[tuple[str, str]] = []
    database_url = locate.database_url(settings.database.url, base)
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
    if mailbox is not None and mailbox.scheme.startswith("imap") and not mailbox.password:
        mailbox = _with_password(mailbox, os.environ.get(settings.mailbox.password_env, ""))
    if smtp is not None and smtp.scheme.startswith("smtp") and smtp.user and not smtp.password:
        smtp = _with_password(smtp, os.environ.get(settings.smtp.password_env, ""))
    if mailbox is not None:
        mailbox = _with_oauth2(mailbox, settings.mailbox.oauth2, "mailbox", base, problems)
    if smtp is not None:
        smtp = _with_oauth2(smtp, settings.smtp.oauth2, "smtp", base, problems)
    return database_url, mailbox, smtp, problems


def _with_password(url: ConnectionUrl, password: str) -> ConnectionUrl:
    return replace(url, password=password)


def _with_oauth2(
    url: ConnectionUrl,
    settings: OAuth2Settings | None,
    section: str,
    base: Path,
    problems: list[tuple[str, str]],
) -> ConnectionUrl:
    """An IMAP or SMTP URL with its XOAUTH2 login ([mailbox.oauth2], [smtp.oauth2]); the
    provider's secrets come from the environment variables the settings name."""
    if settings is None or url.scheme in ("maildir", "file"):
        return url
    if not url.user:
        problems.append((f"{section}.url", 'auth = "xoauth2" needs the mailbox address as the URL\'s user'))
        return url
    key_file = settings.key_file
    if key_file is not None and not key_file.is_absolute():
        key_file = base / key_file
    microsoft = settings.provider == "microsoft"
    login = OAuth2Login(
        user=url.user,
        settings=settings,
        key=f"{section}.oauth2",
        tenant_id=os.environ.get(settings.tenant_id_env, "").strip() if microsoft else "",
        client_id=os.environ.get(settings.client_id_env, "").strip() if microsoft else "",
        client_secret=os.environ.get(settings.client_secret_env, "").strip() if microsoft else "",
        key_file=key_file,
    )
    return replace(url, oauth2=login)
