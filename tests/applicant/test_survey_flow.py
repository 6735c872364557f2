"""The survey through the whole app: replies in the regulation's letters close the ticket; a
thank-you quoting the whole answer records no survey. Real mail, Outlook and Gmail style."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from mailbot.core.workflow import State
from mailbot.shell import models
from tests.applicant.test_answer_survey import _outlook_reply
from tests.conftest import CONSULTANT, HEAD, request_mail
from tests.desk import Desk

APPLICANT = "rina.kartika@kemendesa.example.go.id"
# The answer itself is a numbered list whose items start with the words of the scale.
ANSWER = (
    "Jawaban kami:\n1. Sesuai dengan Permenpan RB 1/2020, ABK disusun per jabatan.\n"
    "2. Cepat atau lambat hasilnya dilaporkan.\n3. d\n4. Gratis untuk semua instansi."
)


def _answered(desk: Desk) -> models.OutboundMessage:
    desk.deliver(request_mail())
    desk.reply(desk.last(HEAD, "notify"), HEAD, "ASSIGN Budi Santoso")
    desk.reply(desk.last(CONSULTANT, "assign"), CONSULTANT, ANSWER)
    assert desk.ticket().state is State.ANSWERED
    return desk.last(APPLICANT, "answer")


def _surveys(desk: Desk) -> list[models.Survey]:
    with desk.app.sessions() as s:
        return list(s.execute(select(models.Survey)).scalars())


@pytest.mark.parametrize("style", ["outlook", "gmail"])
def test_letters_close_the_ticket(desk: Desk, style: str) -> None:
    answer = _answered(desk)
    body = "1. d\n2. c\n3. d\n4. d\n5. c\n6. d\n7. d\n8. c\n9. d\nKomentar/saran: sangat membantu"
    if style == "outlook":
        desk.deliver(_outlook_reply(answer.raw, APPLICANT, "Rina Kartika", body))
    else:
        desk.reply(answer, APPLICANT, body)
    assert desk.ticket().state is State.CLOSED
    [survey] = _surveys(desk)
    assert survey.complete and survey.comment == "sangat membantu"
    assert survey.scores == {"1": 4, "2": 3, "3": 4, "4": 4, "5": 3, "6": 4, "7": 4, "8": 3, "9": 4}


@pytest.mark.parametrize("body", ["Terima kasih banyak Pak.", "Baik, terima kasih, sudah jelas"])
@pytest.mark.parametrize("style", ["outlook", "gmail"])
def test_a_thank_you_is_no_survey(desk: Desk, style: str, body: str) -> None:
    answer = _answered(desk)
    if style == "outlook":
        desk.deliver(_outlook_reply(answer.raw, APPLICANT, "Rina Kartika", body))
    else:
        desk.reply(answer, APPLICANT, body)
    assert _surveys(desk) == []
    assert not desk.outbox(APPLICANT, "survey_incomplete")
