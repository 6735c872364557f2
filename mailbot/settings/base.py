"""What every table of the configuration shares: strict frozen models, checked addresses and time
zones, the environment variables' names, and the error that lists every problem."""

from __future__ import annotations

import re
from email.utils import parseaddr
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict

ENV_MAILBOX_URL = "MAILBOT_MAILBOX_URL"
ENV_SMTP_URL = "MAILBOT_SMTP_URL"
ENV_SECRET = "MAILBOT_SECRET"

_ADDR_RE = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")


def _check_address(value: str) -> str:
    _, addr = parseaddr(value)
    if not addr or not _ADDR_RE.match(addr) or addr != value.strip():
        raise ValueError(f"not an email address: {value!r}")
    return addr.lower()


EmailAddress = Annotated[str, AfterValidator(_check_address)]


def check_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(
            f"unknown time zone {value!r} (use Asia/Jakarta, Asia/Makassar or Asia/Jayapura)"
        ) from exc
    return value


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
