"""Replies as people and their mail clients really send them (issues #18 items 4-5, #19, #21 item 4).

A thank-you reopens nothing; an out-of-office reply is never an answer and reopens nothing; a
helpdesk that answers each mail with a new thread cannot open tickets without end; mail the
server flagged as spam is held for staff and can be released.
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from mailbot.cli import main
from mailbot.core.classify import courtesy_only, out_of_office
from mailbot.core.workflow import State
from mailbot.shell import models
from tests.conftest import request_mail
from tests.desk import APPLICANT, BUDI, HEAD, Desk, text_of


def _answered(desk: Desk) -> None:
    desk.deliver(request_mail())
    desk.reply(desk.last(HEAD, "notify"), HEAD, "ASSIGN Budi Santoso")
    desk.reply(desk.last(BUDI, "assign"), BUDI, "ABK disusun per jabatan dengan 1.250 jam efektif per tahun.")
    assert desk.ticket().state is State.ANSWERED


def _events(desk: Desk) -> list[models.TicketEvent]:
    ticket_id = desk.ticket().id
    with desk.app.sessions() as s:
        return list(s.get(models.Ticket, ticket_id).events)


@pytest.mark.parametrize(
    "text",
    [
        "Terima kasih banyak Pak.",
        "Baik, terima kasih, sudah jelas",
        "Terima kasih atas jawabannya, sangat membantu.\n\nSalam,\nRina Kartika\nBiro Perencanaan",
        "Thank you very much for the answer.",
        "Matur nuwun, Bu.",
    ],
)
def test_a_thank_you_reopens_nothing_and_offers_the_survey_again(desk: Desk, clock, text: str) -> None:
    _answered(desk)
    to_budi = len(desk.outbox(BUDI))
    clock.advance(hours=1)
    desk.reply(desk.last(APPLICANT, "answer"), APPLICANT, text)
    ticket = desk.ticket()
    assert ticket.state is State.ANSWERED
    assert len(desk.outbox(BUDI)) == to_budi  # nothing relayed to the consultant
    assert "applicant_thanks" in [e.kind for e in _events(desk)]
    again = desk.last(APPLICANT, "survey_again")
    assert "FORMULIR KEPUASAN" in text_of(again)


@pytest.mark.parametrize(
    "text",
    [
        "Terima kasih, tapi saya masih bingung soal perhitungan jam efektif untuk jabatan baru.",
        "Terima kasih. Apakah ini berlaku juga untuk PPPK?",
        "Mohon dijelaskan lagi bagian jam kerja efektif",
        "Terima kasih pak, tapi masih kurang jelas",
        "Terima kasih, jawaban belum sesuai",
        "Terima kasih. Lampiran tidak ada",
        "Terima kasih, saya tidak puas",
    ],
)
def test_a_reply_that_asks_something_reopens(desk: Desk, text: str) -> None:
    _answered(desk)
    desk.reply(desk.last(APPLICANT, "answer"), APPLICANT, text)
    assert desk.ticket().state is State.ASSIGNED
    assert text.split(",", maxsplit=1)[0] in text_of(desk.last(BUDI, "follow_up"))


OOO_TEXTS = [
    "Saya sedang cuti sampai dengan tanggal 4 Januari 2027. Untuk keperluan mendesak, hubungi Sdr. Agus.",
    "Terima kasih atas email Bapak/Ibu. Saya tidak berada di kantor hingga 5 Januari 2027.",
    "I am currently out of the office until Monday, 4 January, with limited access to email.",
]


@pytest.mark.parametrize("text", OOO_TEXTS)
def test_the_assignees_out_of_office_is_held_not_sent_as_the_answer(desk: Desk, text: str) -> None:
    desk.deliver(request_mail())
    desk.reply(desk.last(HEAD, "notify"), HEAD, "ASSIGN Budi Santoso")
    to_applicant = len(desk.outbox(APPLICANT))
    desk.reply(desk.last(BUDI, "assign"), BUDI, text)
    assert desk.ticket().state is State.ASSIGNED
    assert len(desk.outbox(APPLICANT)) == to_applicant
    held = text_of(desk.last(BUDI, "answer_held"))
    assert "JAWAB" in held
    assert desk.outbox(HEAD, "answer_held")  # the lead knows too
    # Confirmed with JAWAB, it is the answer.
    desk.reply(desk.last(BUDI, "answer_held"), BUDI, "JAWAB\nABK disusun per jabatan.")
    assert desk.ticket().state is State.ANSWERED


@pytest.mark.parametrize("text", OOO_TEXTS)
def test_the_applicants_out_of_office_after_the_answer_reopens_nothing(desk: Desk, text: str) -> None:
    _answered(desk)
    sent = len(desk.outbox())
    desk.reply(desk.last(APPLICANT, "answer"), APPLICANT, text)
    assert desk.ticket().state is State.ANSWERED
    assert len(desk.outbox()) == sent  # no reply to an auto-reply: no ping-pong
    assert "applicant_auto_reply" in [e.kind for e in _events(desk)]


@pytest.mark.parametrize(
    "text",
    [
        "Pak, bagaimana dengan pegawai yang sedang cuti sampai akhir tahun, apakah tetap dihitung?",
        "Mohon maaf baru membalas, saya sedang dinas luar kemarin. Apakah jawabannya berlaku untuk PPPK?",
    ],
)
def test_a_question_that_mentions_leave_is_a_question_not_an_out_of_office(desk: Desk, text: str) -> None:
    _answered(desk)
    desk.reply(desk.last(APPLICANT, "answer"), APPLICANT, text)
    assert desk.ticket().state is State.ASSIGNED
    assert "applicant_auto_reply" not in [e.kind for e in _events(desk)]


def test_data_sent_while_away_completes_the_request(desk: Desk) -> None:
    desk.deliver(request_mail(body="Nama: Rina Kartika\nSaya mau bertanya tentang penyusunan ABK unit kami."))
    assert desk.ticket().state is State.AWAITING_INFO
    desk.reply(
        desk.last(APPLICANT, "missing_fields"),
        APPLICANT,
        "Mohon maaf baru membalas, saya sedang dinas luar kemarin.\n"
        "NIP: 19860926 201505 2 001\nUnit Kerja: Biro Perencanaan\nJabatan: Analis Kebijakan\n"
        "Nomor Telepon: 0812-3456-7890",
    )
    assert desk.ticket().state is State.NEW
    assert "applicant_auto_reply" not in [e.kind for e in _events(desk)]


def test_two_out_of_office_replies_cannot_ping_pong(desk: Desk) -> None:
    desk.deliver(request_mail())
    desk.reply(desk.last(HEAD, "notify"), HEAD, "ASSIGN Budi Santoso")
    for _ in range(7):
        desk.reply(desk.last(BUDI, "assign"), BUDI, OOO_TEXTS[0])
        desk.reply(desk.last(APPLICANT), APPLICANT, OOO_TEXTS[1])
    assert desk.outbox(APPLICANT, "answer") == []
    assert desk.ticket().state is State.ASSIGNED


def test_pure_rules_do_not_take_prose_for_courtesy_or_vacation() -> None:
    assert not out_of_office("Pegawai yang sedang cuti tidak dihitung dalam ABK unit kerja.")
    assert not out_of_office("Untuk pegawai yang bertugas di luar kantor, gunakan surat tugas.")
    assert not out_of_office("Pegawai yang sedang cuti sampai akhir tahun tetap dihitung dalam ABK.")
    assert not courtesy_only("Terima kasih pak, tapi masih kurang jelas")
    for satisfied in ("Puas", "Sangat puas", "Sangat memuaskan, terima kasih", "Semua sangat baik"):
        assert courtesy_only(satisfied), satisfied
    assert not courtesy_only("Saya sudah mencoba tetapi masih gagal login.")
    assert not courtesy_only("Terima kasih. " + "Bagaimana dengan jabatan pelaksana " * 5)


def test_an_auto_responder_that_opens_a_new_thread_each_time_is_capped(desk: Desk, clock) -> None:
    helpdesk = "helpdesk@vendor-lain.example.com"
    cap = desk.app.config.settings.limits.new_tickets_per_sender_per_day
    for i in range(cap + 5):
        desk.deliver(
            request_mail(
                sender=helpdesk,
                name="Helpdesk",
                subject=f"Tiket #{1000 + i} telah dibuat",
                body=f"Permintaan Anda telah kami terima dengan nomor {1000 + i}.\n",
            )
        )
        clock.advance(minutes=50)
    with desk.app.sessions() as s:
        tickets = s.execute(select(models.Ticket).where(models.Ticket.applicant_email == helpdesk)).all()
        held = s.execute(select(models.InboundMessage).where(models.InboundMessage.status == "held")).all()
    assert len(tickets) == cap and len(held) == 5
    assert len(desk.outbox(helpdesk)) <= cap
    # The next day, the cap counts again from zero: a real person is not shut out for good.
    clock.advance(days=1)
    desk.deliver(request_mail(sender=helpdesk, name="Helpdesk", subject="Pertanyaan baru"))
    assert desk.ticket().applicant_email == helpdesk and desk.ticket().subject == "Pertanyaan baru"


def test_spam_flagged_mail_is_held_listed_and_can_be_released(desk: Desk, clock, tmp_path) -> None:
    out = desk.deliver(request_mail(headers="X-Spam-Flag: YES\r\nX-Spam-Status: Yes, score=7.1\r\n"))
    assert out.status == "held" and out.ticket_number is None
    assert desk.outbox(APPLICANT) == []
    # The head's digest lists it.
    clock.advance(hours=23)  # Tuesday 08:00 WIB, after the digest time
    desk.app.sweep_deadlines()
    digest = text_of(desk.last(HEAD, "digest"))
    assert f"#{out.inbound_id}" in digest
    # Released by staff: processed as if it had not been held.
    config = tmp_path / "mailbot.toml"
    assert config.exists()
    assert main(["--config", str(config), "replay", str(out.inbound_id), "--release"]) == 0
    ticket = desk.ticket()
    assert ticket.applicant_email == APPLICANT
    assert desk.outbox(APPLICANT, "ack")
    with desk.app.sessions() as s:
        assert s.get(models.InboundMessage, out.inbound_id).status == "released"


@pytest.mark.parametrize(
    "subject",
    [
        "Undeliverable: Jawaban atas pengajuan",
        "Pesan tidak dapat dikirim: Jawaban",
        "Tidak Terkirim: Jawaban",
    ],
)
def test_bounces_without_a_null_return_path_are_machine_mail(desk: Desk, subject: str) -> None:
    out = desk.deliver(
        request_mail(sender="postmaster-relay@kemendesa.example.go.id", name="Sistem", subject=subject)
    )
    assert out.status == "machine"
    assert desk.outbox("postmaster-relay@kemendesa.example.go.id") == []


def _awaiting(desk: Desk) -> None:
    desk.deliver(
        request_mail(body="Nama: Rina Kartika\nSaya mau bertanya tentang penyusunan ABK unit kami ya Pak.")
    )
    assert desk.ticket().state is State.AWAITING_INFO


DATA = (
    "NIP: 19860926 201505 2 001\nUnit Kerja: Biro Perencanaan\nJabatan: Analis Kebijakan\n"
    "Nomor Telepon: 0812-3456-7890\n"
)


def test_a_question_restated_under_its_label_with_the_data_replaces_the_first(desk: Desk) -> None:
    _awaiting(desk)
    desk.reply(
        desk.last(APPLICANT, "missing_fields"),
        APPLICANT,
        DATA + "Permasalahan: Maaf pertanyaan saya ubah: bagaimana menghitung formasi PPPK tahun 2027?",
    )
    ticket = desk.ticket()
    assert ticket.state is State.NEW
    assert "formasi PPPK tahun 2027" in ticket.fields["question"]
    assert "formasi PPPK tahun 2027" in text_of(desk.last(HEAD, "notify"))
    completed = next(e for e in _events(desk) if e.kind == "request_complete" and e.data.get("changed"))
    assert completed.data["changed"] == ["question"]


def test_thanks_under_the_data_is_no_new_question(desk: Desk) -> None:
    _awaiting(desk)
    desk.reply(
        desk.last(APPLICANT, "missing_fields"), APPLICANT, DATA + "\nTerima kasih banyak atas bantuannya Pak"
    )
    ticket = desk.ticket()
    assert ticket.state is State.NEW
    assert "penyusunan ABK" in ticket.fields["question"]


def test_the_one_missing_number_sent_with_a_word_around_it(desk: Desk) -> None:
    desk.deliver(
        request_mail(
            body="Nama: Rina Kartika\nUnit Kerja: Biro Perencanaan\nJabatan: Analis Kebijakan\n"
            "Nomor Telepon: 0812-3456-7890\nPertanyaan: Bagaimana menyusun ABK unit kami?"
        )
    )
    assert [i["field"] for i in desk.ticket().issues] == ["id_number"]
    desk.reply(
        desk.last(APPLICANT, "missing_fields"),
        APPLICANT,
        "Mohon maaf terlewat.\nNIP saya 19860926 201505 2 001\nTerima kasih",
    )
    ticket = desk.ticket()
    assert ticket.state is State.NEW and ticket.fields["id_number"].replace(" ", "") == "198609262015052001"


def test_a_request_forwarded_again_by_its_applicant_is_a_reminder_not_a_second_ticket(desk: Desk) -> None:
    desk.deliver(request_mail())
    notified = len(desk.outbox(HEAD, "notify"))
    desk.deliver(
        request_mail(
            subject="Fwd: Konsultasi penyusunan Analisis Beban Kerja",
            body="Mohon tanggapannya, Pak.\n\n---------- Forwarded message ---------\n"
            "From: Rina Kartika <rina.kartika@kemendesa.example.go.id>\nDate: Mon, 16 Nov 2026\n"
            "Subject: Konsultasi penyusunan Analisis Beban Kerja\n\nNama: Rina Kartika\n",
        )
    )
    with desk.app.sessions() as s:
        assert s.scalar(select(func.count()).select_from(models.Ticket)) == 1
    assert len(desk.outbox(HEAD, "notify")) == notified
    assert "Mohon tanggapannya" in text_of(desk.last(HEAD, "follow_up"))
