"""The Laporan's rows per SOP step (issue #20 item 1): every step that ran on a ticket of the period,
measured against its own due time on its own clock, as the sweep computes it, on the real pipeline
with a moving clock. Escalation notices play no part: a step done late while no sweep ran is late."""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from mailbot.app import App, create_app
from mailbot.cli import main
from mailbot.config import load_config
from mailbot.records.documents import PeriodReport, period_csv, period_report, render_period_html
from mailbot.records.reports import clock_histories, step_runs
from mailbot.shell import models
from mailbot.shell.holiday_cache import work_calendar
from tests.conftest import Clock, request_mail, write_config
from tests.desk import APPLICANT, BUDI, HEAD, IRBAN2, SECRETARIAT, Desk
from tests.sop_times.test_sop_clocks import TU2, WALK_STAFF, WALKS, Walk, _request, _sweep_until

WIB = ZoneInfo("Asia/Jakarta")
JATIM = "Kantor Wilayah Kementerian Hukum dan HAM Jawa Timur"  # SOP 001: Wilayah II, its TU
NOVEMBER = (date(2026, 11, 1), date(2026, 11, 30))
# An office that opens at 08:00 (its own [office_hours]): Saturday's request meets its first
# working minute on Monday at 08:00.
OPENS_AT_EIGHT = """
[office_hours]
hours = ["08:00", "16:00"]
breaks = [["12:00", "13:00"]]
"""


def at(t: tuple[int, ...], tz: ZoneInfo) -> datetime:
    """A walk's office time (year, month, day, hour, minute[, second])."""
    return datetime(t[0], t[1], t[2], t[3], t[4], t[5] if len(t) > 5 else 0, tzinfo=tz)


def wib(*t: int) -> datetime:
    return at(t, WIB)


def _app(tmp_path: Path, clock: Clock, database_url: str, profile: str, extra: str = "") -> App:
    path = write_config(
        tmp_path,
        database_url=database_url,
        mailbox_url=f"maildir://{tmp_path / 'md'}",
        smtp_url=f"file://{tmp_path / 'out'}",
        staff=WALK_STAFF,
        profile=profile,
        daily_digest=False,
        extra=extra,
    )
    return create_app(load_config(path), clock=clock)


def _report(app: App, start: date, end: date, now: datetime | None = None) -> PeriodReport:
    with app.sessions() as session:
        return period_report(session, app.config, start, end, now)


def _rows(report: PeriodReport) -> dict[str, tuple[int, int, int, int]]:
    """Each step: started, done in time, done late, open and overdue at the period's end."""
    return {r.step: (r.started, r.in_time, r.late, r.open_overdue) for r in report.steps}


def _escalated(app: App) -> list[str]:
    with app.sessions() as session:
        return list(session.scalars(select(models.Notice.key).where(models.Notice.kind == "escalation")))


def test_sop_004_the_irbans_step_late_the_auditors_in_time(
    tmp_path: Path, clock: Clock, database_url: str
) -> None:
    """Each of SOP 004's steps has its row: the Sekretaris's disposition, the Irban's hour to name
    the auditor (late), the auditor's 1 – 2 hours (in time in office hours: the midday break does
    not count), the Irban's report to the Inspektur and the admin's filing (late). No sweep runs
    at all: nothing was escalated, and the late steps are late all the same."""
    clock.now = wib(2026, 11, 16, 9, 0)
    app = _app(tmp_path, clock, database_url, "sop-004")
    try:
        desk = Desk(app)
        desk.deliver(request_mail())  # the disposition's 10 minutes: due 09:10
        clock.now = wib(2026, 11, 16, 9, 5)
        desk.reply(desk.last(HEAD, "notify"), HEAD, "ASSIGN Irban II")  # the Irban's hour: due 10:05
        clock.now = wib(2026, 11, 16, 11, 0)
        desk.reply(desk.last(IRBAN2, "assign"), IRBAN2, "ASSIGN Budi Santoso")
        # Two office hours from 11:00: one before the break, one after it: due 14:00 (13:00 on the
        # wall clock, which would make 13:30 late).
        assert desk.ticket().due_at == wib(2026, 11, 16, 14, 0)
        clock.now = wib(2026, 11, 16, 13, 30)
        desk.reply(desk.last(BUDI, "assign"), BUDI, "Hasil konsultasi dituangkan dalam Berita Acara.")
        clock.now = wib(2026, 11, 16, 13, 50)  # the report's 30 minutes: due 14:00
        desk.reply(desk.last(IRBAN2, "record_step"), IRBAN2, "LAPORAN\nLayanan SIKUWAS telah diberikan.")
        clock.now = wib(2026, 11, 16, 14, 30)  # the filing's 5 minutes were due 13:55
        desk.reply(desk.last(SECRETARIAT, "record_step"), SECRETARIAT, "ARSIP")
        assert _escalated(app) == []

        report = _report(app, *NOVEMBER)
        assert [r.step for r in report.steps] == ["assign", "assign_auditor", "review", "report", "archive"]
        assert _rows(report) == {
            "assign": (1, 1, 0, 0),
            "assign_auditor": (1, 0, 1, 0),
            "review": (1, 1, 0, 0),
            "report": (1, 1, 0, 0),
            "archive": (1, 0, 1, 0),
        }
        irban = report.steps[1]
        assert (irban.actor, irban.time, irban.clock) == ("subhead", "1 jam", "working")
        assert irban.title.startswith("Inspektur Pembantu menelaah dan menunjuk PPUPD/Auditor")
        assert (report.total.completed, report.total.in_time, report.total.late) == (1, 0, 1)
        # The Laporan names each step, its role and its clock, in formal Indonesian.
        html = " ".join(render_period_html(app.config, report, clock()).split())
        assert "Inspektur Pembantu menelaah dan menunjuk PPUPD/Auditor (Surat Tugas)" in html
        assert "Pimpinan wilayah (Inspektur Pembantu)" in html and "1 jam (jam kerja)" in html
        assert "Belum selesai, lewat batas waktu" in html and "pada akhir periode" in html
    finally:
        app.close()


def test_sop_001_a_late_report_to_the_tu_in_json_and_csv(
    tmp_path: Path, clock: Clock, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """SOP 001's steps after the answer have rows of their own: the customer service's report to
    the TU (1 hari, late) and the TU's archiving (1/2 hari, in time). `report period` writes the
    same rows as JSON and as CSV."""
    clock.now = wib(2026, 11, 16, 9, 0)
    app = _app(tmp_path, clock, database_url, "sop-001")
    try:
        desk = Desk(app)
        desk.deliver(_request(JATIM))  # 2 office hours: due 11:00
        clock.now = wib(2026, 11, 16, 9, 30)
        desk.reply(desk.last(SECRETARIAT, "notify"), SECRETARIAT, "ASSIGN Budi Santoso")
        clock.now = wib(2026, 11, 16, 15, 0)  # the answer; the report's working day: due Tue 15:00
        desk.reply(desk.last(BUDI, "assign"), BUDI, "ANSWER\nJawaban konsultan.")
        clock.now = wib(2026, 11, 18, 9, 0)  # Wednesday: late; the archiving's half day: due 13:45
        desk.reply(desk.last(SECRETARIAT, "record_step"), SECRETARIAT, "LAPORAN\nLaporan layanan konsultasi.")
        clock.now = wib(2026, 11, 18, 11, 0)
        desk.reply(desk.last(TU2, "record_step"), TU2, "ARSIP")
        report = _report(app, *NOVEMBER)
        assert _rows(report) == {
            "assign": (1, 1, 0, 0),
            "review": (1, 1, 0, 0),
            "report": (1, 0, 1, 0),
            "archive": (1, 1, 0, 0),
        }
        after_answer = [(r.actor, r.time) for r in report.steps[2:]]
        assert after_answer == [("secretariat", "1 hari"), ("records", "1/2 hari")]
        assert report.total.late == 1
    finally:
        app.close()

    config = str(tmp_path / "mailbot.toml")
    period = ["report", "period", "--from", "2026-11-01", "--to", "2026-11-30"]
    assert main(["--config", config, *period, "--format", "json"]) == 0
    from_json = json.loads(capsys.readouterr().out)["steps"]
    assert main(["--config", config, *period, "--format", "csv"]) == 0
    from_csv = [r for r in csv.DictReader(io.StringIO(capsys.readouterr().out)) if r["group_by"] == "step"]
    assert from_json == [
        {
            "profile": "sop-001",
            "step": r["name"],
            "title": r["title"],
            "actor": r["actor"],
            "time": r["time"],
            "clock": r["clock"],
            "started": int(r["started"]),
            "in_time": int(r["in_time"]),
            "late": int(r["late"]),
            "open_overdue": int(r["open_overdue"]),
        }
        for r in from_csv
    ]
    late = [(s["step"], s["late"]) for s in from_json]
    assert late == [("assign", 0), ("review", 0), ("report", 1), ("archive", 0)]


def test_a_saturday_request_disposed_at_mondays_first_minute_is_in_time(
    tmp_path: Path, clock: Clock, database_url: str
) -> None:
    """The issue's case: a request on Saturday 10:00 WIB, the head's 10 office minutes start at
    Monday's opening (08:00 at this office), the disposition at 08:00 is in time. The sweep runs
    all weekend and escalates nothing; the report agrees."""
    clock.now = wib(2026, 11, 21, 10, 0)
    app = _app(tmp_path, clock, database_url, "sop-002", OPENS_AT_EIGHT)
    try:
        desk = Desk(app)
        desk.deliver(request_mail())
        assert desk.ticket().due_at == wib(2026, 11, 23, 8, 10)
        _sweep_until(desk, clock, wib(2026, 11, 23, 8, 0))
        desk.reply(desk.last(HEAD, "notify"), HEAD, "ASSIGN Budi Santoso")
        assert _escalated(app) == []
        assert _rows(_report(app, *NOVEMBER, clock()))["assign"] == (1, 1, 0, 0)
    finally:
        app.close()


def test_a_step_open_and_overdue_at_the_periods_end(tmp_path: Path, clock: Clock, database_url: str) -> None:
    """A disposition due at 15:10 and not done by the end of the day: open while the period runs,
    open and overdue from 15:10 and at the period's end; what happens after the end (the ASSIGN
    next morning) does not change that period's report, and a period that holds it counts it late."""
    clock.now = wib(2026, 11, 16, 15, 0)
    app = _app(tmp_path, clock, database_url, "sop-002")
    try:
        desk = Desk(app)
        desk.deliver(request_mail())
        day = (date(2026, 11, 16), date(2026, 11, 16))
        assert _rows(_report(app, *day, wib(2026, 11, 16, 15, 5))) == {"assign": (1, 0, 0, 0)}
        running = _report(app, *day, wib(2026, 11, 16, 15, 30))
        assert _rows(running) == {"assign": (1, 0, 0, 1)}
        assert "pada 16 November 2026 pukul 15.30" in render_period_html(app.config, running, clock())
        clock.now = wib(2026, 11, 17, 8, 0)
        desk.reply(desk.last(HEAD, "notify"), HEAD, "ASSIGN Budi Santoso")
        ended = _report(app, *day, clock())
        assert _rows(ended) == {"assign": (1, 0, 0, 1)}  # the review started after the period
        assert (ended.total.received, ended.total.completed) == (1, 0)
        two_days = _report(app, date(2026, 11, 16), date(2026, 11, 17), clock())
        assert _rows(two_days) == {"assign": (1, 0, 1, 0), "review": (1, 0, 0, 0)}
    finally:
        app.close()


def test_pauses_and_extend_as_the_sweep_counts_them(tmp_path: Path, clock: Clock, database_url: str) -> None:
    """The review's 3 working days stop while the applicant is asked (REQUEST-INFO) and gain a
    day with EXTEND 1: the report's due time is the one the sweep stored on the ticket, and an
    answer after the first due time but before that one is in time. A paused step whose time
    had not run out is not overdue."""
    clock.now = wib(2026, 11, 16, 9, 0)
    app = _app(tmp_path, clock, database_url, "sop-002")
    try:
        desk = Desk(app)
        desk.deliver(request_mail())
        clock.now = wib(2026, 11, 16, 9, 5)
        desk.reply(desk.last(HEAD, "notify"), HEAD, "ASSIGN Budi Santoso")
        assert desk.ticket().due_at == wib(2026, 11, 19, 9, 5)
        clock.now = wib(2026, 11, 17, 9, 5)
        desk.reply(desk.last(BUDI, "assign"), BUDI, "REQUEST-INFO Mohon kirimkan SK pembentukan tim.")
        clock.now = wib(2026, 11, 19, 12, 0)  # past the first due time, but the clock stands still
        assert _rows(_report(app, *NOVEMBER, clock()))["review"] == (1, 0, 0, 0)
        clock.now = wib(2026, 11, 20, 9, 5)  # three working days later the applicant answers
        desk.reply(desk.last(APPLICANT, "request_info"), APPLICANT, "SK terlampir, nomor 12/2026.")
        clock.now = wib(2026, 11, 20, 10, 0)
        desk.reply(desk.last(HEAD, "notify"), HEAD, "EXTEND 1")
        stored = desk.ticket().due_at
        assert stored == wib(2026, 11, 25, 9, 5)  # 2 days left from Friday, then one more
        ticket_id = desk.ticket().id
        with app.sessions() as session:
            history = clock_histories(session, [ticket_id], wib(2026, 12, 1, 0, 0))[ticket_id]
        profile = app.config.profiles["sop-002"]
        runs = step_runs(history, profile, work_calendar(app.config), lambda _: "consultant")
        assert [(r.step, r.due_at) for r in runs if r.ended_at is None] == [("review", stored)]
        clock.now = wib(2026, 11, 25, 9, 0)
        desk.reply(desk.last(BUDI, "follow_up"), BUDI, "ANSWER\nJawaban setelah SK diterima.")
        assert _rows(_report(app, *NOVEMBER, clock())) == {"assign": (1, 1, 0, 0), "review": (1, 1, 0, 0)}
    finally:
        app.close()


@pytest.mark.parametrize("walk", WALKS, ids=[f"{w.profile}-{i}" for i, w in enumerate(WALKS)])
def test_the_report_is_late_exactly_where_the_sweep_escalated(
    walk: Walk, tmp_path: Path, clock: Clock
) -> None:
    """Every walk of tests/sop_times/test_sop_clocks.py (weekends, the midday break, a Friday afternoon in
    WIT, cuti bersama, "1 x 24 jam", the steps after the answer): the steps the report counts late
    or open and overdue are the steps the sweep escalated, one for one."""

    def local(t: tuple[int, ...]) -> datetime:
        return at(t, walk.tz)

    clock.now = local(walk.actions[0].at)
    path = write_config(
        tmp_path,
        database_url=f"sqlite:///{tmp_path / 'db.sqlite'}",
        mailbox_url=f"maildir://{tmp_path / 'md'}",
        smtp_url=f"file://{tmp_path / 'out'}",
        staff=WALK_STAFF,
        profile=walk.profile,
        daily_digest=False,
    )
    path.write_text(path.read_text().replace('timezone = "Asia/Jakarta"', f'timezone = "{walk.tz.key}"'))
    app = create_app(load_config(path), clock=clock)
    try:
        desk = Desk(app)
        for do in walk.actions:
            _sweep_until(desk, clock, local(do.at))
            if do.sender is None:
                desk.deliver(request_mail(body=walk.body) if walk.body else _request(walk.unit))
            else:
                desk.reply(desk.last(do.sender, do.kind), do.sender, do.text)
        _sweep_until(desk, clock, local(walk.until))
        escalated = Counter(key.split(":")[1] for key in _escalated(app))
        report = _report(app, local(walk.actions[0].at).date(), clock.now.date(), clock())
        late = Counter({r.step: r.late + r.open_overdue for r in report.steps if r.late + r.open_overdue})
        assert late == escalated
        assert bool(late) is walk.late
        # Every step the walk ran has its row, started once.
        ran = {do.step for do in walk.actions if do.step} | {do.after[0] for do in walk.actions if do.after}
        assert {r.step: r.started for r in report.steps} == dict.fromkeys(ran, 1)
        assert period_csv(report).count("\nstep,") == len(ran)
    finally:
        app.close()


def test_a_step_the_profile_no_longer_has_is_left_out_of_the_table(tmp_path: Path) -> None:
    """An office edits its profile (a step renamed or dropped) while tickets that ran the old
    step are in the period: the Laporan is made without that row, not stopped by it."""
    from mailbot.records.reports import StepRun, StepTally

    config = load_config(
        write_config(
            tmp_path,
            database_url=f"sqlite:///{tmp_path / 'm.db'}",
            mailbox_url=f"maildir://{tmp_path / 'md'}",
            smtp_url=f"file://{tmp_path / 'out'}",
        )
    )
    profile = config.profiles["sop-002"]
    known = profile.steps[0].id
    started = wib(2026, 11, 16, 9, 0)

    def run(step: str) -> StepRun:
        return StepRun(
            f"{step}:1", step, False, started, wib(2026, 11, 16, 10, 0), wib(2026, 11, 16, 9, 30), True
        )

    tally = StepTally(wib(2026, 11, 30, 16, 0))
    assert tally.add(profile, [run("a-step-since-removed"), run(known)]) is False
    assert [row.step for row in tally.rows.values()] == [known]
    assert tally.rows[("sop-002", known)].in_time == 1
