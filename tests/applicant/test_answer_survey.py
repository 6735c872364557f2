"""The end of the service loop: answer, survey, IKM; against real Dovecot and aiosmtpd."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from sqlalchemy import select

from mailbot.core.workflow import State
from mailbot.shell import models
from tests.conftest import CONSULTANT, HEAD, ROOT, SERVICE_ADDRESS, request_mail, send_all
from tests.desk import Desk, text_of

APPLICANT = "rina.kartika@kemendesa.example.go.id"


def _outlook_reply(original: bytes, sender: str, sender_name: str, body: str) -> bytes:
    """An Outlook reply: new text on top, the rule, the Indonesian header block, the old mail below."""
    import email
    import email.policy

    msg = email.message_from_bytes(original, policy=email.policy.default)
    old = str(msg.get_body(("plain",)).get_content())
    return (
        f"From: {sender_name} <{sender}>\r\nTo: {SERVICE_ADDRESS}\r\n"
        f"Subject: RE: {msg['Subject']}\r\nMessage-ID: <{os.urandom(6).hex()}@outlook.example.go.id>\r\n"
        f"In-Reply-To: {msg['Message-ID']}\r\nReferences: {msg['Message-ID']}\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\n"
        + (
            f"{body}\n\nSalam,\n{sender_name}\n\n________________________________\n"
            f"Dari: Layanan Konsultasi Online <{SERVICE_ADDRESS}>\nDikirim: Senin, 16 November 2026 09.20\n"
            f"Kepada: {sender_name} <{sender}>\nSubjek: {msg['Subject']}\n\n{old}"
        ).replace("\n", "\r\n")
    ).encode()


@pytest.mark.imap
def test_request_assign_answer_survey_ikm_end_to_end(imap, smtp, database_url, make_app, tmp_path):
    app = make_app(database_url=database_url, mailbox_url=imap.url(), smtp_url=smtp.url)

    def cycle() -> None:
        app.run_intake_once()
        send_all(app)

    imap.deliver(request_mail())
    cycle()
    [notify] = smtp.handler.to(HEAD)
    imap.deliver(_outlook_reply(notify.data, HEAD, "Siti Rahmawati", "ASSIGN Budi Santoso"))
    cycle()
    [assignment] = smtp.handler.to(CONSULTANT)
    answer_text = "Analisis Beban Kerja disusun per jabatan dengan jam kerja efektif 1.250 jam per tahun."
    imap.deliver(_outlook_reply(assignment.data, CONSULTANT, "Budi Santoso", answer_text))
    cycle()

    answer = [r for r in smtp.handler.to(APPLICANT) if "Jawaban atas" in r.subject]
    assert len(answer) == 1
    text = answer[0].text()
    assert answer_text in text
    assert "Penerima tugas" not in text and "Dikirim: Senin" not in text and "Salam,\r\nBudi" not in text
    assert "Salinan riwayat konsultasi" in text and "Didisposisikan kepada Budi Santoso" in text
    assert "FORMULIR KEPUASAN PENGGUNA LAYANAN (SKM)" in text and "U9. Sarana dan prasarana: ___" in text
    assert (
        answer[0].message["In-Reply-To"]
        == "<" + answer[0].message["References"].split("<")[1].split(">")[0] + ">"
    )

    survey = reply_from_applicant(answer[0].data, "4 4 3 4 4 4 4 3 4\nKomentar/saran: jawabannya jelas")
    imap.deliver(survey)
    cycle()
    with app.sessions() as s:
        ticket = s.execute(select(models.Ticket)).scalar_one()
        assert ticket.state is State.CLOSED
        row = s.execute(select(models.Survey)).scalar_one()
        assert row.complete and row.comment == "jawabannya jelas" and row.consultant == CONSULTANT
    assert "Terima kasih atas penilaian" in smtp.handler.to(APPLICANT)[-1].subject

    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "mailbot",
            "--config",
            str(tmp_path / "mailbot.toml"),
            "report",
            "ikm",
            "--from",
            "2026-11-01",
            "--to",
            "2026-11-30",
            "--by",
            "consultant",
            "--json",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    [group] = json.loads(out.stdout)["groups"]
    # NRR 4,4,3,4,4,4,4,3,4 → sum 34 → 34/9 x 25 = 94.44, grade A; NRR tertimbang NRR x 1/9.
    scores = [4, 4, 3, 4, 4, 4, 4, 3, 4]
    assert group == {
        "group": CONSULTANT,
        "respondents": 1,
        "answered": {f"U{n}": 1 for n in range(1, 10)},
        "ikm": 94.44,
        "grade": "A",
        "grade_label": "Sangat Baik",
        "nrr": {f"U{n}": float(v) for n, v in enumerate(scores, start=1)},
        "nrr_weighted": {f"U{n}": round(v / 9, 4) for n, v in enumerate(scores, start=1)},
        "unrated": [],
    }
    assert group["nrr_weighted"]["U3"] == 0.3333


def reply_from_applicant(original: bytes, body: str) -> bytes:
    import email
    import email.policy

    msg = email.message_from_bytes(original, policy=email.policy.default)
    quoted = "\n".join("> " + x for x in str(msg.get_body(("plain",)).get_content()).splitlines())
    return (
        f"From: Rina Kartika <{APPLICANT}>\r\nTo: {SERVICE_ADDRESS}\r\nSubject: Re: {msg['Subject']}\r\n"
        f"Message-ID: <{os.urandom(6).hex()}@kemendesa.example.go.id>\r\nIn-Reply-To: {msg['Message-ID']}\r\n"
        f"References: {msg['Message-ID']}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        + (
            f"{body}\n\nPada Sen, 16 Nov 2026 pukul 10.00 Layanan Konsultasi <{SERVICE_ADDRESS}> "
            f"menulis:\n{quoted}\n"
        ).replace("\n", "\r\n")
    ).encode()


def _answered(desk: Desk) -> models.OutboundMessage:
    desk.deliver(request_mail())
    desk.reply(desk.last(HEAD, "notify"), HEAD, "ASSIGN Budi Santoso")
    desk.reply(desk.last(CONSULTANT, "assign"), CONSULTANT, "Jawaban: gunakan 1.250 jam efektif.")
    assert desk.ticket().state is State.ANSWERED
    return desk.last(APPLICANT, "answer")


def test_partial_survey_and_wrong_values_are_asked_again(desk: Desk) -> None:
    answer = _answered(desk)
    desk.deliver(reply_from_applicant(answer.raw, "U1: 4\nU2: Mudah\nU3: 7"))
    assert desk.ticket().state is State.ANSWERED
    ask = text_of(desk.last(APPLICANT, "survey_incomplete"))
    assert (
        "U1=4, U2=3" in ask
        and 'U3. Waktu penyelesaian: "7"' in ask
        and "U9. Sarana dan prasarana: ___" in ask
    )
    desk.deliver(
        reply_from_applicant(
            desk.last(APPLICANT, "survey_incomplete").raw,
            "U3: 3\nU4: Gratis\nU5: 4\nU6: 4\nU7: 4\nU8: 3\nU9: Baik",
        )
    )
    assert desk.ticket().state is State.CLOSED
    with desk.app.sessions() as s:
        survey = s.execute(select(models.Survey)).scalar_one()
    assert survey.scores == {"1": 4, "2": 3, "3": 3, "4": 4, "5": 4, "6": 4, "7": 4, "8": 3, "9": 3}


def test_follow_up_question_within_window_reopens(desk: Desk, clock) -> None:
    answer = _answered(desk)
    clock.advance(days=3)
    desk.deliver(reply_from_applicant(answer.raw, "Apakah ini berlaku juga untuk jabatan pelaksana?"))
    ticket = desk.ticket()
    assert ticket.state is State.ASSIGNED and ticket.number == "KONS-2026-000001"
    assert "jabatan pelaksana" in text_of(desk.last(CONSULTANT, "follow_up"))


def test_follow_up_after_window_opens_a_linked_ticket(desk: Desk, clock) -> None:
    answer = _answered(desk)
    clock.advance(days=20)
    desk.deliver(reply_from_applicant(answer.raw, "Pertanyaan lanjutan: bagaimana dengan jabatan pelaksana?"))
    with desk.app.sessions() as s:
        old, new = s.execute(select(models.Ticket).order_by(models.Ticket.id)).scalars().all()
    assert old.state is State.ANSWERED and new.parent_id == old.id and new.state is State.NEW
    assert new.number == "KONS-2026-000002" and new.fields["id_number"] == old.fields["id_number"]
    assert new.fields["question"].startswith("Pertanyaan lanjutan")
