"""Which surveys a period's IKM holds: returned in the period (received_at), partial ones per
element; the same for `report ikm` and the monthly Laporan. Real mail through a real app."""

from __future__ import annotations

from datetime import UTC, date, datetime
from fractions import Fraction
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from mailbot.core.workflow import State
from mailbot.records.reports import (
    SurveyRecord,
    add_period_surveys,
    format_ikm_table,
    group_surveys,
    ikm_report,
    period_bounds,
)
from mailbot.shell import models
from tests.conftest import CONSULTANT, HEAD, request_mail
from tests.desk import Desk

TZ = ZoneInfo("Asia/Jakarta")
RINA = "rina.kartika@kemendesa.example.go.id"
AGUS = "agus.salim@kemendesa.example.go.id"
DEWI = "dewi.anggraini@kemendesa.example.go.id"
NOV = (date(2026, 11, 1), date(2026, 11, 30))
OCT = (date(2026, 10, 1), date(2026, 10, 31))


def _wib(day: date, hour: int = 9) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=TZ).astimezone(UTC)


def _served(desk: Desk, sender: str, name: str, subject: str) -> models.OutboundMessage:
    desk.deliver(request_mail(sender=sender, name=name, subject=subject))
    desk.reply(desk.last(HEAD, "notify"), HEAD, "ASSIGN Budi Santoso")
    desk.reply(desk.last(CONSULTANT, "assign"), CONSULTANT, f"Jawaban untuk {name}.")
    return desk.last(sender, "answer")


@pytest.fixture
def month(desk: Desk, clock) -> Desk:
    """Rina asks in October and returns the survey (letters) on 2 November; Agus asks in
    November and answers eight of nine elements; Dewi only says thank you."""
    clock.now = _wib(date(2026, 10, 29))
    rina = _served(desk, RINA, "Rina Kartika", "Soal ABK")
    clock.now = _wib(date(2026, 11, 2))
    desk.reply(rina, RINA, "1. d\n2. c\n3. d\n4. d\n5. c\n6. d\n7. d\n8. c\n9. d")
    assert desk.ticket().state is State.CLOSED
    clock.now = _wib(date(2026, 11, 16))
    agus = _served(desk, AGUS, "Agus Salim", "Soal jabatan")
    desk.reply(agus, AGUS, "U1: 2\nU2: 2\nU3: 2\nU4: 4\nU5: 2\nU6: 2\nU7: 2\nU8: 2")
    assert desk.ticket().state is State.ANSWERED  # still waiting for U9
    clock.now = _wib(date(2026, 11, 17))
    dewi = _served(desk, DEWI, "Dewi Anggraini", "Soal pelaksana")
    desk.reply(dewi, DEWI, "Terima kasih banyak Pak.")
    with desk.app.sessions() as s:
        assert len(s.execute(select(models.Survey)).scalars().all()) == 2  # Dewi's is no survey
    return desk


def test_a_month_counts_the_surveys_returned_in_it_partial_ones_per_element(month: Desk) -> None:
    with month.app.sessions() as s:
        [row] = ikm_report(s, *NOV, TZ)
        assert ikm_report(s, *OCT, TZ) == []  # Rina asked in October but returned it in November
    tally, ikm = row.tally, row.ikm
    assert tally.respondents == 2 and ikm is not None
    # Rina 4 3 4 4 3 4 4 3 4, Agus 2 2 2 4 2 2 2 2 -: U9 is averaged over Rina alone.
    assert tally.answered == {**dict.fromkeys(range(1, 9), 2), 9: 1}
    assert tally.nrr == {
        1: Fraction(3),
        2: Fraction(5, 2),
        3: Fraction(3),
        4: Fraction(4),
        5: Fraction(5, 2),
        6: Fraction(3),
        7: Fraction(3),
        8: Fraction(5, 2),
        9: Fraction(4),
    }
    assert ikm.weighted[2] == Fraction(5, 18)
    # sum of NRR 27.5 → 27.5 x 1/9 x 25 = 76.388… → 76.39, grade C
    assert ikm.value == Fraction(275, 9 * 4) * 10 and str(ikm.rounded) == "76.39" and ikm.grade == "C"
    assert row.as_json()["nrr_weighted"]["U9"] == round(4 / 9, 4)
    table = format_ikm_table([row], *NOV, "all")
    assert "76.39" in table and "x1/9" in table and " 0.444" in table


def test_partial_surveys_take_their_tickets_grouping_keys(month: Desk) -> None:
    with month.app.sessions() as s:
        rows = {r.group: r for r in ikm_report(s, *NOV, TZ, "consultant")}
    assert list(rows) == [CONSULTANT] and rows[CONSULTANT].tally.respondents == 2


def test_the_laporan_rows_get_the_same_surveys(month: Desk) -> None:
    """add_period_surveys fills documents.Group rows by the rule of `report ikm`."""
    from mailbot.records.documents import Group

    low, high = period_bounds(*NOV, TZ)
    total = Group("Jumlah")
    groups: dict[str, dict[str, Group]] = {"unit": {}, "consultant": {}, "profile": {}}
    with month.app.sessions() as s:
        add_period_surveys(s, low, high, total, groups, Group)
        [row] = ikm_report(s, *NOV, TZ)
        by_unit = {r.group: r for r in ikm_report(s, *NOV, TZ, "unit")}
    assert total.ikm == row.ikm and total.ikm is not None and total.ikm.respondents == 2
    assert {name: g.ikm for name, g in groups["unit"].items()} == {k: r.ikm for k, r in by_unit.items()}
    assert set(groups["consultant"]) == {CONSULTANT}


def test_the_monthly_laporan_and_report_ikm_agree(month: Desk) -> None:
    from mailbot.records.documents import period_report

    with month.app.sessions() as s:
        laporan = period_report(s, month.app.config, *NOV)
        [row] = ikm_report(s, *NOV, TZ)
    assert laporan.total.ikm == row.ikm


def test_the_period_rule_is_one_pure_function() -> None:
    low, high = period_bounds(*NOV, TZ)
    at = [
        datetime(2026, 10, 31, 16, 59, 59, tzinfo=UTC),  # 31 Oct 23:59:59 WIB: October
        datetime(2026, 10, 31, 17, 0, tzinfo=UTC),  # 1 Nov 00:00 WIB: November
        datetime(2026, 11, 30, 16, 59, 59, tzinfo=UTC),  # 30 Nov 23:59:59 WIB: November
        datetime(2026, 11, 30, 17, 0, tzinfo=UTC),  # 1 Dec 00:00 WIB: December
    ]
    records = [SurveyRecord({1: n + 1}, t, unit=f"u{n}") for n, t in enumerate(at)]
    records.append(SurveyRecord({}, at[1]))  # nothing answered: no respondent
    assert group_surveys(records, low, high, "all") == {"semua": [{1: 2}, {1: 3}]}
    assert group_surveys(records, low, high, "unit") == {"u1": [{1: 2}], "u2": [{1: 3}]}
    assert group_surveys(records, low, high, "consultant") == {"(belum ditugaskan)": [{1: 2}, {1: 3}]}
