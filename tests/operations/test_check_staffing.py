"""`check-config` warns when the active profile hands work or mail to a role nobody holds: the
task, the report or the disposition request would reach nobody, or escalations fall back."""

from __future__ import annotations

import re

import pytest

from mailbot.cli import main
from mailbot.cli.check import staffing_warnings
from mailbot.config import load_config
from tests.conftest import write_config

HEAD_ONLY = """
[[staff]]
name = "Siti Rahmawati"
emails = ["kabag.umum@bpsdm.example.go.id"]
role = "head"

[[staff]]
name = "Budi Santoso"
emails = ["budi.santoso@bpsdm.example.go.id"]
role = "consultant"
"""

CHIEF_ELSEWHERE = (
    HEAD_ONLY
    + """
[[staff]]
name = "Bambang Suryadi"
emails = ["inspektur@bpsdm.example.go.id"]
role = "chief"
profiles = ["sop-002"]
"""
)


def _config(tmp_path, profile: str, staff: str):
    from tests.conftest import PROFILES  # the shipped profiles

    return write_config(
        tmp_path,
        database_url=f"sqlite:///{tmp_path / 'm.db'}",
        mailbox_url=f"maildir://{tmp_path / 'md'}",
        smtp_url=f"file://{tmp_path / 'out'}",
        profile=profile,
        profiles_dir=PROFILES,
        staff=staff,
    )


def test_sop_004_without_an_inspektur_is_warned_about(tmp_path, capsys) -> None:
    path = _config(tmp_path, "sop-004", CHIEF_ELSEWHERE)  # the chief works in another profile only
    warnings = staffing_warnings(load_config(path))
    assert any("'chief'" in w and "report_to of step" in w for w in warnings)
    assert any("escalate_to (chief)" in w and "heads instead" in w for w in warnings)
    assert any("'subhead'" in w for w in warnings)  # the Irban's step has nobody
    assert main(["--config", str(path), "check-config", "--offline"]) == 0  # warnings, not problems
    out = capsys.readouterr().out
    assert "WARNING: profile sop-004: no active staff member has the role 'chief'" in out


@pytest.mark.parametrize("profile", ["sop-000", "sop-001", "sop-002", "sop-003", "sop-004"])
def test_the_staff_directory_of_mailbot_init_serves_every_profile(profile, tmp_path, capsys) -> None:
    assert main(["init", str(tmp_path / "office")]) == 0
    path = tmp_path / "office" / "mailbot.toml"
    path.write_text(re.sub(r'(?m)^profile = "sop-002"', f'profile = "{profile}"', path.read_text()))
    config = load_config(path)
    assert config.profile.id == profile
    assert staffing_warnings(config) == []


def test_an_inactive_member_does_not_count(tmp_path) -> None:
    staff = HEAD_ONLY.replace('role = "head"', 'role = "head"\nactive = false')
    warnings = staffing_warnings(load_config(_config(tmp_path, "sop-002", staff)))
    assert any("'head'" in w and "notify_roles" in w for w in warnings)


def test_the_escalation_warning_names_who_receives_them_instead(tmp_path) -> None:
    """The sweep escalates to escalate_to, else the heads, else the profile's notify_roles
    (pipeline/reminders.py); the warning says which of them, or that nobody would receive them."""
    secretariat_only = """
[[staff]]
name = "Dewi Lestari"
emails = ["sekretariat@bpsdm.example.go.id"]
role = "secretariat"

[[staff]]
name = "Budi Santoso"
emails = ["budi.santoso@bpsdm.example.go.id"]
role = "consultant"
"""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    warnings = staffing_warnings(load_config(_config(tmp_path / "a", "sop-000", secretariat_only)))
    escalation = [w for w in warnings if "escalate_to" in w]
    assert len(escalation) == 1 and "notify_roles (secretariat) instead" in escalation[0], warnings
    assert "heads instead" not in escalation[0]
    nobody = HEAD_ONLY.replace('role = "head"', 'role = "head"\nactive = false')
    warnings = staffing_warnings(load_config(_config(tmp_path / "b", "sop-002", nobody)))
    escalation = [w for w in warnings if "escalate_to" in w]
    assert len(escalation) == 1 and "reach nobody" in escalation[0], warnings
