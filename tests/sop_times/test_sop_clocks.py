"""Each SOP profile walked step by step on a moving clock (issue #20): every step runs on its own
clock (office minutes and hours; "1 x 24 jam" on the wall clock) across a weekend, the midday
break, a Friday afternoon in WIT and cuti bersama, and no reminder or escalation is mailed
outside office hours."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from mailbot.app import App, create_app
from mailbot.config import load_config
from mailbot.core.working_time import has_cuti_bersama
from mailbot.shell import models
from tests.conftest import Clock, request_mail, write_config
from tests.desk import (
    APPLICANT,
    BUDI,
    BUDI2,
    COMPLAINT,
    HEAD,
    HEAD2,
    IRBAN2,
    SECRETARIAT,
    STAFF,
    VENDOR,
    Desk,
    text_of,
)

WIB = ZoneInfo("Asia/Jakarta")
WIT = ZoneInfo("Asia/Jayapura")


TU1 = "tu.itwil1@itjen.example.go.id"
TU2 = "tu.itwil2@itjen.example.go.id"
CHIEF = "inspektur@inspektorat.example.go.id"
# The directory of the walks: tests.desk's people, the TU of two regions (SOP 001) and the
# Inspektur (SOP 004).
WALK_STAFF = (
    STAFF
    + f"""
[[staff]]
name = "TU Itwil I"
emails = ["{TU1}"]
role = "records"
region = "Wilayah I"

[[staff]]
name = "TU Itwil II"
emails = ["{TU2}"]
role = "records"
region = "Wilayah II"

[[staff]]
name = "Inspektur Kabupaten"
emails = ["{CHIEF}"]
role = "chief"
position = "Inspektur"
"""
)


@dataclass(frozen=True)
class Do:
    """At `at` (office time), `sender` answers the last mail of `kind` to them with `text`
    (None: the applicant's request arrives); then the ticket runs `step`, due at `due`."""

    at: tuple[int, ...]
    sender: str | None
    kind: str
    text: str
    step: str
    due: tuple[int, ...] | None
    # The step after the answer that runs then (SOP 001's report and archiving), and its due time.
    after: tuple[str, tuple[int, ...]] | None = None


@dataclass(frozen=True)
class Walk:
    profile: str
    tz: ZoneInfo
    actions: list[Do]
    until: tuple[int, ...]  # the clock runs on to here after the last action
    # (kind, recipient, office time it is queued): every reminder and escalation of the walk.
    notices: list[tuple[str, str, tuple[int, ...]]]
    late: bool  # the period report's view: some step escalated
    unit: str = ""  # the applicant's work unit, when the walk routes by region
    body: str = ""  # the request's text, when not tests.conftest.request_mail's (SOP 003)


WALKS = [
    # SOP 002, WIB. The case: a request on Saturday 10:00 is not escalated on Saturday;
    # the head's 10 minutes run from Monday 07:30.
    Walk(
        "sop-002",
        WIB,
        [
            Do((2026, 11, 21, 10, 0), None, "", "", "assign", (2026, 11, 23, 7, 40)),
            Do((2026, 11, 23, 7, 35), HEAD, "notify", "ASSIGN Budi Santoso", "review", (2026, 11, 26, 7, 35)),
        ],
        (2026, 11, 27, 12, 0),
        [
            # 75 % of 3 working days (16 h 52.5 min of office time) from Monday 07:35.
            ("reminder", BUDI, (2026, 11, 25, 9, 27, 30)),
            ("escalation", HEAD, (2026, 11, 26, 7, 35)),
            ("escalation", HEAD2, (2026, 11, 26, 7, 35)),
        ],
        True,
    ),
    # SOP 001, WIB, across the midday break: 2 office hours from Monday 11:00 end at 14:00. After
    # the answer the customer service's report (1 hari) and the TU's archiving (1/2 hari: half of
    # a working day's 7.5 office hours) run one after the other, each on its own clock; the report
    # goes to the TU of the applicant's region (Jawa Timur: Wilayah II).
    Walk(
        "sop-001",
        WIB,
        [
            Do((2026, 11, 16, 11, 0), None, "", "", "assign", (2026, 11, 16, 14, 0)),
            Do(
                (2026, 11, 16, 13, 50),
                SECRETARIAT,
                "notify",
                "ASSIGN Budi Santoso",
                "review",
                (2026, 11, 17, 13, 50),
            ),
            Do(
                (2026, 11, 17, 11, 0),
                BUDI,
                "assign",
                "ANSWER\nJawaban konsultan.",
                "",
                None,
                ("report", (2026, 11, 18, 11, 0)),
            ),
            Do(
                (2026, 11, 18, 10, 0),
                SECRETARIAT,
                "record_step",
                "LAPORAN\nKonsultasi ABK telah dijawab konsultan bidang kepegawaian.",
                "",
                None,
                ("archive", (2026, 11, 18, 14, 45)),
            ),
            Do((2026, 11, 18, 14, 0), TU2, "record_step", "ARSIP", "", None),
        ],
        (2026, 11, 19, 12, 0),
        [
            # 75 % of 2 office hours = 90 minutes from 11:00: an hour before the break, 30 after it.
            ("reminder", SECRETARIAT, (2026, 11, 16, 13, 30)),
            # 75 % of a working day (5 h 37.5 min) from Monday 13:50; answered at 11:00, in time.
            ("reminder", BUDI, (2026, 11, 17, 10, 57, 30)),
            # The report: 75 % of a working day from Tuesday 11:00.
            ("reminder", SECRETARIAT, (2026, 11, 18, 9, 7, 30)),
            # The archiving: 75 % of 3 h 45 min from Wednesday 10:00, across the break.
            ("reminder", TU2, (2026, 11, 18, 13, 48, 45)),
        ],
        False,
        unit="Kantor Wilayah Kementerian Hukum dan HAM Jawa Timur",
    ),
    # SOP 001, WIB, the steps after the answer across cuti bersama (24 December 2026), Christmas
    # and a weekend: the report is due on Monday 28 December and escalated then; the archiving
    # goes to the TU of Wilayah I (Aceh).
    Walk(
        "sop-001",
        WIB,
        [
            Do((2026, 12, 23, 8, 0), None, "", "", "assign", (2026, 12, 23, 10, 0)),
            Do(
                (2026, 12, 23, 8, 30),
                SECRETARIAT,
                "notify",
                "ASSIGN Budi Santoso",
                "review",
                (2026, 12, 28, 8, 30),
            ),
            Do(
                (2026, 12, 23, 15, 0),
                BUDI,
                "assign",
                "Jawaban konsultan.",
                "",
                None,
                ("report", (2026, 12, 28, 15, 0)),
            ),
            Do(
                (2026, 12, 29, 8, 0),
                SECRETARIAT,
                "record_step",
                "LAPORAN\nLaporan layanan konsultasi.",
                "",
                None,
                ("archive", (2026, 12, 29, 11, 45)),
            ),
            Do((2026, 12, 29, 11, 0), TU1, "record_step", "arsip", "", None),
        ],
        (2026, 12, 30, 12, 0),
        [
            ("reminder", SECRETARIAT, (2026, 12, 28, 13, 7, 30)),  # 1 h on the 23rd, 4 h 37.5 min on the 28th
            ("escalation", HEAD, (2026, 12, 28, 15, 0)),
            ("escalation", HEAD2, (2026, 12, 28, 15, 0)),
            ("reminder", TU1, (2026, 12, 29, 10, 48, 45)),
        ],
        True,
        unit="Kantor Wilayah Kementerian Hukum dan HAM Aceh",
    ),
    # SOP 004, WIT (Asia/Jayapura), a Friday afternoon: Friday closes at 16:30, the Irban's hour
    # ends on Monday; the auditor's own 1 – 2 hours start at the ASSIGN that names the auditor,
    # and the overdue step goes to the Inspektur, not to the Sekretaris. After the answer the
    # Irban's report to the Inspektur (30 menit) and the admin's filing (5 menit) run across the
    # midday break.
    Walk(
        "sop-004",
        WIT,
        [
            Do((2026, 11, 20, 16, 0), None, "", "", "assign", (2026, 11, 20, 16, 10)),
            Do(
                (2026, 11, 20, 16, 5),
                HEAD,
                "notify",
                "ASSIGN Irban II",
                "assign_auditor",
                (2026, 11, 23, 8, 5),
            ),
            Do(
                (2026, 11, 23, 8, 0), IRBAN2, "assign", "ASSIGN Budi Santoso", "review", (2026, 11, 23, 10, 0)
            ),
            Do(
                (2026, 11, 23, 11, 40),
                BUDI,
                "assign",
                "Hasil konsultasi dituangkan dalam Berita Acara.",
                "",
                None,
                ("report", (2026, 11, 23, 13, 10)),
            ),
            Do(
                (2026, 11, 23, 13, 5),
                IRBAN2,
                "record_step",
                "LAPORAN\nLayanan SIKUWAS telah diberikan; Berita Acara terlampir.",
                "",
                None,
                ("archive", (2026, 11, 23, 13, 10)),
            ),
            Do((2026, 11, 23, 13, 20), SECRETARIAT, "record_step", "ARSIP", "", None),
        ],
        (2026, 11, 23, 16, 0),
        [
            ("reminder", IRBAN2, (2026, 11, 23, 7, 50)),  # 45 office minutes: 25 on Friday, 20 on Monday
            ("reminder", BUDI, (2026, 11, 23, 9, 30)),
            ("escalation", CHIEF, (2026, 11, 23, 10, 0)),
            ("reminder", IRBAN2, (2026, 11, 23, 13, 2, 30)),  # 22.5 minutes: 20 before the break
            ("reminder", SECRETARIAT, (2026, 11, 23, 13, 8, 45)),
            ("escalation", CHIEF, (2026, 11, 23, 13, 10)),
        ],
        True,
    ),
    # SOP 001, WIT, a Friday afternoon: the answer at Friday 15:30 starts the report's working
    # day, due on Monday 15:30; the archiving's half day runs from Monday 14:00 into Tuesday.
    Walk(
        "sop-001",
        WIT,
        [
            Do((2026, 11, 20, 9, 0), None, "", "", "assign", (2026, 11, 20, 11, 0)),
            Do(
                (2026, 11, 20, 9, 30),
                SECRETARIAT,
                "notify",
                "ASSIGN Budi Hartono",
                "review",
                (2026, 11, 23, 9, 30),
            ),
            Do(
                (2026, 11, 20, 15, 30),
                BUDI2,
                "assign",
                "Jawaban konsultan.",
                "",
                None,
                ("report", (2026, 11, 23, 15, 30)),
            ),
            Do(
                (2026, 11, 23, 14, 0),
                SECRETARIAT,
                "record_step",
                "LAPORAN\nLaporan layanan konsultasi.",
                "",
                None,
                ("archive", (2026, 11, 24, 9, 15)),
            ),
            Do((2026, 11, 24, 9, 0), TU2, "record_step", "ARSIP", "", None),
        ],
        (2026, 11, 24, 12, 0),
        [
            ("reminder", SECRETARIAT, (2026, 11, 23, 13, 30)),  # 6 of 8 office hours: 1 on Friday
            ("reminder", TU2, (2026, 11, 24, 8, 18, 45)),  # 2 h 48 min 45 s: 2 h on Monday
        ],
        False,
        unit="Kantor Wilayah Kementerian Hukum dan HAM Jawa Timur",
    ),
    # SOP 004, WIB, the steps after the answer across cuti bersama: the auditor answers late on
    # Wednesday 23 December 2026 at 15:50; the Irban's 30 minutes for the report to the Inspektur
    # are 10 that day and 20 on Monday 28 December (24 cuti bersama, 25 Christmas, a weekend).
    Walk(
        "sop-004",
        WIB,
        [
            Do((2026, 12, 23, 13, 0), None, "", "", "assign", (2026, 12, 23, 13, 10)),
            Do(
                (2026, 12, 23, 13, 5),
                HEAD,
                "notify",
                "ASSIGN Irban II",
                "assign_auditor",
                (2026, 12, 23, 14, 5),
            ),
            Do(
                (2026, 12, 23, 13, 30),
                IRBAN2,
                "assign",
                "ASSIGN Budi Santoso",
                "review",
                (2026, 12, 23, 15, 30),
            ),
            Do(
                (2026, 12, 23, 15, 50),
                BUDI,
                "assign",
                "Hasil konsultasi dalam Berita Acara.",
                "",
                None,
                ("report", (2026, 12, 28, 7, 50)),
            ),
            Do(
                (2026, 12, 28, 8, 0),
                IRBAN2,
                "record_step",
                "LAPORAN\nLayanan telah diberikan.",
                "",
                None,
                ("archive", (2026, 12, 28, 8, 5)),
            ),
            Do((2026, 12, 28, 8, 3), SECRETARIAT, "record_step", "ARSIP", "", None),
        ],
        (2026, 12, 28, 12, 0),
        [
            ("reminder", BUDI, (2026, 12, 23, 15, 0)),
            ("escalation", CHIEF, (2026, 12, 23, 15, 30)),
            ("reminder", IRBAN2, (2026, 12, 28, 7, 42, 30)),
            ("escalation", CHIEF, (2026, 12, 28, 7, 50)),
        ],
        True,
    ),
    # SOP 003, WIB, across Christmas cuti bersama (24 December 2026), Christmas and a weekend.
    Walk(
        "sop-003",
        WIB,
        [
            Do((2026, 12, 23, 15, 45), None, "", "", "assign", (2026, 12, 28, 7, 45)),
            Do(
                (2026, 12, 28, 7, 40),
                SECRETARIAT,
                "notify",
                "TERUSKAN vendor jaringan",
                "vendor",
                (2026, 12, 29, 7, 40),
            ),
        ],
        (2026, 12, 29, 9, 0),
        [
            ("reminder", SECRETARIAT, (2026, 12, 28, 7, 37, 30)),  # 22.5 office minutes in
            ("reminder", VENDOR, (2026, 12, 28, 14, 17, 30)),  # 5 h 37.5 min, the break left out
            ("escalation", HEAD, (2026, 12, 29, 7, 40)),
            ("escalation", HEAD2, (2026, 12, 29, 7, 40)),
        ],
        True,
        body=COMPLAINT,
    ),
    # SOP 000, WIB: the secretariat identifies the question in 5 office minutes (step 5) and marks
    # it normative (NORMATIF): the ticket is then its own, on the "1 x 24 jam" answer step (step
    # 6), on the wall clock, not on the 5 minutes. Friday 16:28: due on Saturday 16:29, recorded
    # late then; the escalation waits for the next opening: Monday 8 March 2027 is Nyepi, then
    # cuti bersama and Idul Fitri to Monday 15 March.
    Walk(
        "sop-000",
        WIB,
        [
            Do((2027, 3, 5, 16, 28), None, "", "", "assign", (2027, 3, 16, 7, 33)),
            Do((2027, 3, 5, 16, 29), SECRETARIAT, "notify", "NORMATIF", "review", (2027, 3, 6, 16, 29)),
            Do((2027, 3, 16, 9, 0), SECRETARIAT, "notify", "JAWAB\nJawaban normatif.", "", None),
        ],
        (2027, 3, 16, 12, 0),
        [("escalation", HEAD, (2027, 3, 16, 7, 30)), ("escalation", HEAD2, (2027, 3, 16, 7, 30))],
        True,
    ),
    # SOP 000, WIB, across the midday break: 5 office minutes from Monday 11:58 end at 13:03; the
    # normative answer is due 1 x 24 jam after NORMATIF (Tuesday 13:01). Its reminder (75 %, 07:01
    # on Tuesday, before the office opens) is mailed at the opening; answered in time. Twenty
    # minutes after NORMATIF nobody is escalated to (the case).
    Walk(
        "sop-000",
        WIB,
        [
            Do((2026, 11, 16, 11, 58), None, "", "", "assign", (2026, 11, 16, 13, 3)),
            Do((2026, 11, 16, 13, 1), SECRETARIAT, "notify", "normatif", "review", (2026, 11, 17, 13, 1)),
            Do((2026, 11, 17, 10, 0), SECRETARIAT, "notify", "JAWAB\nJawaban normatif.", "", None),
        ],
        (2026, 11, 18, 12, 0),
        [("reminder", SECRETARIAT, (2026, 11, 17, 7, 30))],
        False,
    ),
    # SOP 000, WIT, a Friday afternoon: not normative. Identification from Friday 16:27 (3 office
    # minutes left) is due on Monday 07:32 and escalated then; ASSIGN to the Pemberi Layanan at
    # 07:40 starts the same "1 x 24 jam" answer step for him.
    Walk(
        "sop-000",
        WIT,
        [
            Do((2026, 11, 20, 16, 27), None, "", "", "assign", (2026, 11, 23, 7, 32)),
            Do(
                (2026, 11, 23, 7, 40),
                SECRETARIAT,
                "notify",
                "TUGASKAN Budi Santoso",
                "review",
                (2026, 11, 24, 7, 40),
            ),
            Do((2026, 11, 24, 7, 35), BUDI, "assign", "Jawaban Pemberi Layanan.", "", None),
        ],
        (2026, 11, 24, 12, 0),
        [
            ("reminder", SECRETARIAT, (2026, 11, 23, 7, 30, 45)),  # 3.75 office minutes in
            ("escalation", HEAD, (2026, 11, 23, 7, 32)),
            ("escalation", HEAD2, (2026, 11, 23, 7, 32)),
            ("reminder", BUDI, (2026, 11, 24, 7, 30)),  # 75 % fell at 01:40, before the opening
        ],
        True,
    ),
]


def _app(tmp_path: Path, clock: Clock, profile: str, tz: ZoneInfo) -> App:
    path = write_config(
        tmp_path,
        database_url=f"sqlite:///{tmp_path / 'db.sqlite'}",
        mailbox_url=f"maildir://{tmp_path / 'md'}",
        smtp_url=f"file://{tmp_path / 'out'}",
        staff=WALK_STAFF,
        profile=profile,
        daily_digest=False,
    )
    path.write_text(path.read_text().replace('timezone = "Asia/Jakarta"', f'timezone = "{tz.key}"'))
    return create_app(load_config(path), clock=clock)


def _request(unit: str) -> bytes:
    if not unit:
        return request_mail()
    body = request_mail().decode().split("\r\n\r\n", 1)[1]
    return request_mail(body=body.replace("Biro Perencanaan, Kementerian Desa PDTT", unit))


def _sweep_until(desk: Desk, clock: Clock, until: datetime) -> None:
    """Sweep when the ticket asks to be looked at (as the minute scheduler would) and at least
    every 20 minutes besides, so that a mail sent at the wrong time would be caught."""
    ticket = desk.ticket()
    if ticket is not None and ticket.next_check_at is not None and ticket.next_check_at <= clock.now:
        desk.app.sweep_deadlines()  # "look now": the minute scheduler's next run
    while clock.now < until:
        step = clock.now + timedelta(minutes=20)
        ticket = desk.ticket()
        if (
            ticket is not None
            and ticket.next_check_at is not None
            and clock.now < ticket.next_check_at < step
        ):
            step = ticket.next_check_at
        clock.now = min(step, until)
        desk.app.sweep_deadlines()


@pytest.mark.parametrize("walk", WALKS, ids=[f"{w.profile}-{i}" for i, w in enumerate(WALKS)])
def test_walk_through_the_steps(walk: Walk, tmp_path: Path, clock: Clock) -> None:
    assert has_cuti_bersama(2026) and has_cuti_bersama(2027), "holidays lacks the cuti bersama"
    local: Callable[[tuple[int, ...]], datetime] = lambda t: datetime(*t, tzinfo=walk.tz)  # noqa: E731
    clock.now = local(walk.actions[0].at)
    app = _app(tmp_path, clock, walk.profile, walk.tz)
    try:
        desk = Desk(app)
        cal = app.deadlines.calendar
        for do in walk.actions:
            _sweep_until(desk, clock, local(do.at))
            if do.sender is None:
                desk.deliver(request_mail(body=walk.body) if walk.body else _request(walk.unit))
            else:
                desk.reply(desk.last(do.sender, do.kind), do.sender, do.text)
            ticket = desk.ticket()
            assert ticket.step == do.step, (do, ticket.state)
            assert ticket.due_at == (local(do.due) if do.due else None), (do.step, ticket.due_at)
            with app.sessions() as s:
                after = app.clocks.after_answer(s.get(models.Ticket, ticket.id))
                got_after = (after.step, after.due_at) if after else None
            want_after = (do.after[0], local(do.after[1])) if do.after else None
            assert got_after == want_after, do
        _sweep_until(desk, clock, local(walk.until))

        notices = [m for m in desk.outbox() if m.kind in ("reminder", "escalation")]
        for m in notices:
            assert cal.is_open(m.created_at), (
                f"{m.kind} to {m.recipient} at {m.created_at.astimezone(walk.tz)}"
            )
        got = [(m.kind, m.recipient, m.created_at) for m in notices]
        want = [(kind, to, local(t)) for kind, to, t in walk.notices]
        assert got == want
        with app.sessions() as s:
            escalated = s.execute(select(models.Notice).where(models.Notice.kind == "escalation")).first()
        assert (escalated is not None) is walk.late
    finally:
        app.close()


# --- SOP 004: the Irban's step, the auditor's step, the Inspektur ------------------------------


def test_sop_004_the_irban_and_the_auditor_each_have_their_own_step(tmp_path: Path, clock: Clock) -> None:
    """Step 5 (the Irban names an auditor, 1 jam) and step 6 (the auditor, 1 – 2 jam) each run on
    their own clock: the reminder and the escalation while the ticket sits with the Irban name the
    Irban's step and hour; the auditor's two hours start at the ASSIGN that names the auditor and
    stop while the applicant is asked. The Inspektur gets the escalation, not the Sekretaris."""
    local: Callable[..., datetime] = lambda *t: datetime(2026, 11, 16, *t, tzinfo=WIB)  # noqa: E731
    clock.now = local(9, 0)
    app = _app(tmp_path, clock, "sop-004", WIB)
    try:
        desk = Desk(app)
        desk.deliver(request_mail())
        clock.now = local(9, 5)
        desk.reply(desk.last(HEAD, "notify"), HEAD, "ASSIGN Irban II")
        ticket = desk.ticket()
        assert (ticket.step, ticket.due_at) == ("assign_auditor", local(10, 5))
        _sweep_until(desk, clock, local(9, 50))
        reminder = text_of(desk.last(IRBAN2, "reminder"))
        assert "Inspektur Pembantu menelaah dan menunjuk PPUPD/Auditor" in " ".join(reminder.split())
        assert "1 jam pada jam kerja" in reminder and "PPUPD/Auditor memberikan" not in reminder
        _sweep_until(desk, clock, local(10, 6))
        escalation = desk.last(CHIEF, "escalation")
        assert "menunjuk PPUPD/Auditor" in escalation.subject + text_of(escalation)
        assert not desk.outbox(HEAD, "escalation") and not desk.outbox(HEAD2, "escalation")
        # The Inspektur cannot dispose (not in the chain): the mail suggests what they can do.
        assert "ASSIGN <nama>" not in text_of(escalation) and "EXTEND <hari>" in text_of(escalation)

        clock.now = local(10, 30)
        desk.reply(desk.last(IRBAN2, "assign"), IRBAN2, "ASSIGN Budi Santoso")
        ticket = desk.ticket()
        # Two office hours from 10:30: 90 minutes before the midday break, 30 after it.
        assert (ticket.step, ticket.due_at) == ("review", local(13, 30))
        clock.now = local(11, 0)
        desk.reply(desk.last(BUDI, "assign"), BUDI, "REQUEST-INFO Mohon kirimkan SK pembentukan tim.")
        assert desk.ticket().step == ""  # waiting for the applicant: no clock
        clock.now = local(14, 0)
        desk.reply(desk.last(APPLICANT, "request_info"), APPLICANT, "SK terlampir, nomor 12/2026.")
        ticket = desk.ticket()
        # Paused 11:00-14:00 (two office hours, the break left out): due two office hours later.
        assert (ticket.step, ticket.due_at) == ("review", local(15, 30))
    finally:
        app.close()


def test_sop_004_the_monthly_report_goes_to_the_inspektur(tmp_path: Path, clock: Clock) -> None:
    clock.now = datetime(2026, 10, 14, 9, 0, tzinfo=WIB)
    app = _app(tmp_path, clock, "sop-004", WIB)
    try:
        desk = Desk(app)
        desk.deliver(request_mail())
        clock.now = datetime(2026, 11, 2, 8, 0, tzinfo=WIB)  # the first working day of November
        assert app.sweep_deadlines().monthly_report == 1
        assert [m.recipient for m in desk.outbox(kind="monthly_report")] == [CHIEF]
    finally:
        app.close()


def test_sop_004_the_irbans_report_reaches_the_inspektur(tmp_path: Path, clock: Clock) -> None:
    """Step 7: the Irban who named the auditor reports (LAPORAN) to the Inspektur; step 8: the
    admin files it (ARSIP). Only the step's own people may; the ticket is closed meanwhile."""
    app = _app(tmp_path, clock, "sop-004", WIB)
    try:
        desk = Desk(app)
        desk.deliver(request_mail())
        desk.reply(desk.last(HEAD, "notify"), HEAD, "ASSIGN Irban II")
        desk.reply(desk.last(IRBAN2, "assign"), IRBAN2, "ASSIGN Budi Santoso")
        desk.reply(desk.last(BUDI, "assign"), BUDI, "Hasil konsultasi: pengadaan melalui e-katalog.")
        task = desk.last(IRBAN2, "record_step")
        assert "Inspektur Pembantu melaporkan hasil layanan kepada Inspektur" in " ".join(
            text_of(task).split()
        )
        assert not desk.outbox(SECRETARIAT, "record_step") and not desk.outbox(CHIEF)
        desk.reply(desk.last(HEAD, "notify"), HEAD, "LAPORAN\nSaya laporkan.")  # the head is not the Irban
        assert "bukan tugas peran Bapak/Ibu" in text_of(desk.last(HEAD, "transcript"))
        desk.reply(task, IRBAN2, "LAPORAN\nLayanan SIKUWAS telah diberikan melalui e-katalog.")
        report = desk.last(CHIEF, "record_step")
        text = " ".join(text_of(report).split())
        assert "Yth. Bapak/Ibu Inspektur Kabupaten," in text and "Layanan SIKUWAS telah diberikan" in text
        assert "ARSIP" not in text  # the Inspektur reads it; the admin files it
        archive = desk.last(SECRETARIAT, "record_step")
        assert "ARSIP pada baris pertama" in " ".join(text_of(archive).split())
        desk.reply(archive, SECRETARIAT, "ARSIP")
        with app.sessions() as session:
            ticket = session.get(models.Ticket, desk.ticket().id)
            assert [e.data["step"] for e in ticket.events if e.kind == "step_done"] == ["report", "archive"]
            assert app.clocks.after_answer(ticket) is None
    finally:
        app.close()
