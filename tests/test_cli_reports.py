"""The CLI's report skm and the calendar warnings of check-config and status."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from mailbot.cli import _calendar_warnings, main
from mailbot.config import load_config
from tests.conftest import write_config


def test_report_skm_as_json_and_html(tmp_path, capsys) -> None:
    config = write_config(
        tmp_path,
        database_url=f"sqlite:///{tmp_path / 'm.db'}",
        mailbox_url=f"maildir://{tmp_path / 'md'}",
        smtp_url=f"file://{tmp_path / 'out'}",
    )
    assert main(["--config", str(config), "report", "skm", "--from", "2026-07-01", "--to", "2026-12-31",
                 "--format", "json"]) == 0  # fmt: skip
    data = json.loads(capsys.readouterr().out)
    assert isinstance(data, dict)
    out = tmp_path / "skm.html"
    assert main(["--config", str(config), "report", "skm", "--from", "2026-07-01", "--to", "2026-12-31",
                 "-o", str(out)]) == 0  # fmt: skip
    assert "<html" in out.read_text().lower()


def test_a_year_without_cuti_bersama_is_warned_about(tmp_path) -> None:
    config = load_config(
        write_config(
            tmp_path,
            database_url=f"sqlite:///{tmp_path / 'm.db'}",
            mailbox_url=f"maildir://{tmp_path / 'md'}",
            smtp_url=f"file://{tmp_path / 'out'}",
        )
    )
    assert _calendar_warnings(config, datetime(2026, 12, 4, tzinfo=UTC)) == []  # 2026 and 2027 known
    [warning] = _calendar_warnings(config, datetime(2027, 6, 1, tzinfo=UTC))  # 2028's SKB: not yet
    assert "2028" in warning and "closed_days" in warning
