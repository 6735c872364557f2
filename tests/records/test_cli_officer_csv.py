"""`report period --format csv` as an officer opens it in a spreadsheet: every row has the
header's columns, whatever group it belongs to."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

from mailbot.cli import main
from tests.conftest import CONSULTANT, HEAD, request_mail
from tests.desk import Desk


def test_every_row_of_the_period_csv_has_the_headers_columns(desk: Desk, clock, tmp_path) -> None:
    clock.now = datetime(2026, 11, 16, 2, 0, tzinfo=UTC)
    desk.deliver(request_mail())
    desk.reply(desk.last(HEAD, "notify"), HEAD, "ASSIGN Budi Santoso")
    desk.reply(desk.last(CONSULTANT, "assign"), CONSULTANT, "Jawaban untuk Bapak.")
    out = tmp_path / "laporan.csv"
    argv = ["--config", str(tmp_path / "mailbot.toml"), "report", "period", "--from", "2026-11-01",
            "--to", "2026-11-30", "--format", "csv", "-o", str(out)]  # fmt: skip
    assert main(argv) == 0
    header, *rows = list(csv.reader(io.StringIO(out.read_text(encoding="utf-8"))))
    groups = {row[0] for row in rows}
    assert {"total", "unit", "consultant", "profile", "step"} <= groups
    assert [len(row) for row in rows] == [len(header)] * len(rows)
