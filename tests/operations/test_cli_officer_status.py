"""`mailbot status` shows its times in office time (WIB here) as every other command does
(issue #21); `status --json` keeps ISO 8601 with the offset, for monitors."""

from __future__ import annotations

import json

from mailbot.cli import main
from mailbot.shell import health


def test_status_shows_office_time_and_json_keeps_iso(make_app, database_url, tmp_path, clock, capsys) -> None:
    app = make_app(
        database_url=database_url,
        mailbox_url=f"maildir://{tmp_path / 'md'}",
        smtp_url=f"file://{tmp_path / 'out'}",
    )
    health.record(app.sessions, "outbox", clock())  # 09:00 WIB, Monday 16 November 2026
    clock.advance(minutes=30)
    health.record(app.sessions, "intake", clock(), error="IMAP login refused")
    config = ["--config", str(tmp_path / "mailbot.toml")]

    main([*config, "status"])
    out = capsys.readouterr().out
    assert "outbox  last ok 2026-11-16 09:00 WIB" in out
    assert "failing since 2026-11-16 09:30 WIB: IMAP login refused" in out
    assert "+00:00" not in out and "T02:" not in out

    main([*config, "status", "--json"])
    components = json.loads(capsys.readouterr().out)["components"]
    assert components["outbox"]["last_ok_at"] == "2026-11-16T02:00:00+00:00"
    assert components["intake"]["failing_since"] == "2026-11-16T02:30:00+00:00"
