"""Where the configuration and the database are, read without validating the rest.

`load_config` (the full, validated configuration) builds on this; the read-only commands
(`tickets list`, `tickets show`, `status`) stop here. They need only the database, the office's
time zone and the service's profiles, and a monitor calls them every minute: importing the
validation (pydantic, the settings' models) and SQLAlchemy took 0.4 s of their 0.6 s. Standard
library only, so that importing this module costs next to nothing.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

ENV_CONFIG = "MAILBOT_CONFIG"
ENV_DATABASE_URL = "MAILBOT_DATABASE_URL"
# The defaults of the settings these commands read (mailbot.settings takes them from here).
DEFAULT_DATABASE_URL = "sqlite:///var/mailbot.db"
DEFAULT_TIMEZONE = "Asia/Jakarta"
DEFAULT_DATA_DIR = "var"
DEFAULT_PROFILE = "sop-002"
BUILTIN_PROFILES = Path(str(resources.files("mailbot") / "profiles"))

NO_CONFIG = (
    "no configuration given: run `mailbot init DIR` to write one (DIR/mailbot.toml), "
    f"then pass --config DIR/mailbot.toml or set ${ENV_CONFIG}"
)


class ConfigError(Exception):
    """The configuration cannot be used; `problems` lists every (key, message)."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{k}: {m}" for k, m in problems))


def default_config_path() -> Path | None:
    """The checkout's `config/mailbot.toml` (the embedded default of ./run.sh) when mailbot runs
    from a checkout; None when it is installed as a package, which brings no configuration."""
    checkout = Path(str(resources.files("mailbot"))).parent
    path = checkout / "config" / "mailbot.toml"
    return path if (checkout / "pyproject.toml").is_file() and path.is_file() else None


def config_path(given: Path | None) -> Path:
    """The configuration file: `--config`, else $MAILBOT_CONFIG, else the checkout's default;
    resolved. ConfigError when there is none or it does not exist."""
    path = given
    if path is None:
        env_path = os.environ.get(ENV_CONFIG)
        path = Path(env_path) if env_path else default_config_path()
        if path is None:
            raise ConfigError([("config", NO_CONFIG)])
    path = path.resolve()
    if not path.exists():
        raise ConfigError([("config", f"{path} does not exist; `mailbot init DIR` writes DIR/mailbot.toml")])
    if path.is_dir():
        said = f"{path} is a folder, not the configuration file"
        if (path / "mailbot.toml").is_file():
            said += f"; did you mean {path / 'mailbot.toml'}?"
        raise ConfigError([("config", said)])
    return path


def config_base(path: Path) -> Path:
    """What relative paths in the file are relative to: the project (the config folder's parent)
    when the file lives in a `config/` folder, else the file's own folder."""
    return path.parent.parent if path.parent.name == "config" else path.parent


def database_url(url: str | None, base: Path) -> str:
    """The database URL in use: $MAILBOT_DATABASE_URL, else the file's (`url`, None when the file
    has none), with a relative SQLite path made relative to the project, not the cwd."""
    url = os.environ.get(ENV_DATABASE_URL) or url or DEFAULT_DATABASE_URL
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith("sqlite:////") and ":memory:" not in url:
        rel = url[len(prefix) :]
        # The base is a path, the URL is a URL: a folder named "a#b?c" or "50%" is escaped, and
        # SQLAlchemy decodes it back (unescaped, "?" would start the URL's query).
        escaped = _escape(str(base))
        if rel.startswith("file:") and _is_sqlite_uri(rel):
            # sqlite:///file:PATH?...&uri=true: SQLite's own URI, whose PATH SQLite decodes once
            # more; one already absolute stays as it is.
            path = rel[len("file:") :]
            return url if path.startswith("/") else f"{prefix}file:{_escape(escaped)}/{path}"
        return prefix + escaped + "/" + rel
    return url


def _escape(text: str) -> str:
    return text.replace("%", "%25").replace("?", "%3F").replace("#", "%23")


def _is_sqlite_uri(rel: str) -> bool:
    """uri=true in the URL's query: SQLAlchemy hands the path to SQLite as a URI."""
    query = parse_qs(rel.partition("?")[2])
    return query.get("uri", [""])[-1].lower() in ("1", "t", "true", "y", "yes", "on")


@dataclass(frozen=True)
class Location:
    """What the read-only commands need of the configuration, as the full loader would resolve it."""

    source: Path
    base: Path
    database_url: str
    timezone: ZoneInfo
    data_dir: Path
    profile: str  # the service's profile ([service] profile)
    profiles_dir: Path  # the office's ([profiles_dir]), else the ones shipped with mailbot


def locate(given: Path | None) -> Location:
    """Read the few settings the read-only commands need. ConfigError when the file is missing,
    is not TOML, or one of those settings has the wrong type or an unknown time zone; the rest of
    the file is not looked at (`mailbot check-config` validates everything)."""
    path = config_path(given)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError([("config", f"cannot read {path}: {exc}")]) from None
    base = config_base(path)
    service = _table(data, "service")
    database = _table(data, "database")
    zone_name = _text(service, "service.timezone", DEFAULT_TIMEZONE)
    try:
        zone = ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError([("service.timezone", f"unknown time zone {zone_name!r}")]) from None
    data_dir = Path(_text(service, "service.data_dir", DEFAULT_DATA_DIR))
    profiles_dir = data.get("profiles_dir")
    if profiles_dir is not None and not isinstance(profiles_dir, str):
        raise ConfigError([("profiles_dir", "must be a path (text)")])
    return Location(
        source=path,
        base=base,
        database_url=database_url(_text(database, "database.url", "") or None, base),
        timezone=zone,
        data_dir=data_dir if data_dir.is_absolute() else base / data_dir,
        profile=_text(service, "service.profile", DEFAULT_PROFILE),
        profiles_dir=BUILTIN_PROFILES if profiles_dir is None else _resolve(Path(profiles_dir), base),
    )


def _resolve(path: Path, base: Path) -> Path:
    return path if path.is_absolute() else base / path


def _table(data: dict[str, Any], key: str) -> dict[str, Any]:
    table = data.get(key, {})
    if not isinstance(table, dict):
        raise ConfigError([(key, "must be a table")])
    return table


def _text(table: dict[str, Any], key: str, default: str) -> str:
    value = table.get(key.rpartition(".")[2], default)
    if not isinstance(value, str):
        raise ConfigError([(key, "must be text")])
    return value
