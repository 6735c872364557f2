"""The staff directory: its roles and one member's row ([[staff]] or the staff CSV)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from mailbot.settings.base import EmailAddress, StrictModel

# The roles of the staff directory. "records": the Tata Usaha (TU) that receives a step's report
# and archives it (SOP 001's TU Itwil of the applicant's region). "chief": the head of the whole
# office above the disposition chain (SOP 004's Inspektur), who receives escalations and reports.
Role = Literal["secretariat", "head", "subhead", "consultant", "vendor", "records", "chief"]


class StaffMember(StrictModel):
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
