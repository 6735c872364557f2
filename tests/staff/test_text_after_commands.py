"""Text a staff member writes below their commands is never dropped unsaid: under a disposition it
is the disposition's note for the assignee (never shown to the applicant); anywhere else the
transcript says it went to nobody, so a consultant who wrote NOTE and then the answer knows that
no answer went out."""

from __future__ import annotations

from sqlalchemy import select

from mailbot.core.workflow import State
from mailbot.shell import models
from tests.conftest import request_mail
from tests.desk import APPLICANT, BUDI, HEAD, Desk, text_of


def _kinds(desk: Desk) -> list[tuple[str, str]]:
    with desk.app.sessions() as s:
        ticket = s.scalars(select(models.Ticket)).one()
        return [(e.kind, e.detail) for e in ticket.events]


def test_text_below_a_disposition_is_its_note_for_the_assignee_only(desk: Desk) -> None:
    desk.deliver(request_mail())
    desk.reply(
        desk.last(HEAD, "notify"),
        HEAD,
        "ASSIGN budi santoso\nMohon dijawab segera karena terkait tenggat SKP.\n\nSiti",
    )
    assert ("note", "Mohon dijawab segera karena terkait tenggat SKP.") in _kinds(desk)
    transcript = text_of(desk.last(HEAD, "transcript"))
    assert "> Mohon dijawab segera karena terkait tenggat SKP." in transcript
    assert "disimpan sebagai catatan disposisi" in transcript
    assignment = desk.last(BUDI, "assign")
    assert "Mohon dijawab segera karena terkait tenggat SKP." in text_of(assignment)
    assert "tenggat SKP" not in text_of(desk.last(APPLICANT, "assigned"))
    desk.reply(assignment, BUDI, "ABK disusun per jabatan dengan 1.250 jam efektif per tahun.")
    answer = text_of(desk.last(APPLICANT, "answer"))
    assert "1.250 jam efektif" in answer and "tenggat SKP" not in answer


def test_a_sign_off_below_the_commands_is_not_a_note(desk: Desk) -> None:
    desk.deliver(request_mail())
    desk.reply(desk.last(HEAD, "notify"), HEAD, "ASSIGN budi santoso\n\nTerima kasih,\nSiti R.")
    assert "note" not in [kind for kind, _ in _kinds(desk)]
    transcript = text_of(desk.last(HEAD, "transcript"))
    assert "catatan disposisi" not in transcript and "TIDAK DIPROSES" not in transcript


def test_an_answer_written_below_a_note_is_not_sent_and_the_transcript_says_so(desk: Desk) -> None:
    desk.deliver(request_mail())
    desk.reply(desk.last(HEAD, "notify"), HEAD, "ASSIGN budi santoso")
    desk.reply(
        desk.last(BUDI, "assign"),
        BUDI,
        "NOTE sudah saya telepon pemohon\n\nABK disusun per jabatan dengan 1.250 jam efektif per tahun.",
    )
    assert desk.ticket().state is State.ASSIGNED
    assert not desk.outbox(APPLICANT, "answer")
    transcript = text_of(desk.last(BUDI, "transcript"))
    assert "> ABK disusun per jabatan dengan 1.250 jam efektif per tahun." in transcript
    assert "TIDAK DIPROSES: teks di bawah perintah tidak dikirim kepada siapa pun" in transcript
    assert "JAWAB di baris pertama" in transcript
    assert "catatan disimpan dalam riwayat" in transcript  # the NOTE itself was kept


def test_a_greeting_above_the_commands_is_passed_over(desk: Desk) -> None:
    desk.deliver(request_mail())
    desk.reply(desk.last(HEAD, "notify"), HEAD, "Baik,\nTUGASKAN Budi Santoso")
    assert desk.ticket().state is State.ASSIGNED
    desk.reply(
        desk.last(BUDI, "assign"), BUDI, "Yth. Ibu Kabag,\n\nCATATAN pemohon sudah saya telepon, menunggu SK"
    )
    assert desk.ticket().state is State.ASSIGNED
    assert not desk.outbox(APPLICANT, "answer")
    assert ("note", "pemohon sudah saya telepon, menunggu SK") in _kinds(desk)


def test_a_reply_with_commands_below_its_first_line_is_held_not_sent(desk: Desk) -> None:
    desk.deliver(request_mail())
    desk.reply(desk.last(HEAD, "notify"), HEAD, "ASSIGN budi santoso")
    desk.reply(
        desk.last(BUDI, "assign"),
        BUDI,
        "Sudah saya cek dokumennya.\nNOTE pemohon belum melampirkan SK, saya telepon besok",
    )
    assert desk.ticket().state is State.ASSIGNED
    assert not desk.outbox(APPLICANT, "answer")
    held = " ".join(text_of(desk.last(BUDI, "answer_held")).split())
    assert "memuat perintah" in held and "JAWAB pada baris pertama" in held
    assert not desk.outbox(HEAD, "answer_held")  # the assignee's own matter, not the head's


def test_an_acknowledgment_to_the_office_is_not_the_answer(desk: Desk) -> None:
    desk.deliver(request_mail())
    desk.reply(desk.last(HEAD, "notify"), HEAD, "ASSIGN budi santoso")
    desk.reply(desk.last(BUDI, "assign"), BUDI, "Siap Bu, segera saya tindaklanjuti.\n\nBudi")
    assert desk.ticket().state is State.ASSIGNED
    assert not desk.outbox(APPLICANT, "answer")
    assert "tanggapan kepada kantor" in " ".join(text_of(desk.last(BUDI, "answer_held")).split())
    # Sent with JAWAB, the same words are the answer.
    desk.reply(desk.last(BUDI, "assign"), BUDI, "JAWAB\nSiap, dokumen Ibu sudah lengkap.")
    assert desk.ticket().state is State.ANSWERED


def test_the_assignees_signature_block_does_not_reach_the_applicant(desk: Desk) -> None:
    desk.deliver(request_mail())
    desk.reply(desk.last(HEAD, "notify"), HEAD, "ASSIGN budi santoso")
    desk.reply(
        desk.last(BUDI, "assign"),
        BUDI,
        "ABK disusun per jabatan dengan 1.250 jam efektif per tahun.\n"
        "Informasi lebih lanjut: hubungi BKN di 021-8093008 pada jam kerja.\n\n"
        "Terima kasih,\nBudi Santoso, S.E.\nAnalis SDM Aparatur\nNIP. 198001012005011001\n"
        "Telp. 0812-9999-8888 (WA)",
    )
    answer = text_of(desk.last(APPLICANT, "answer"))
    assert "1.250 jam efektif" in answer and "021-8093008" in answer  # the office's number stays
    assert "0812-9999-8888" not in answer and "198001012005011001" not in answer


def test_a_reassigned_consultant_is_told_and_their_late_answer_is_not_sent(desk: Desk) -> None:
    desk.deliver(request_mail())
    desk.reply(desk.last(HEAD, "notify"), HEAD, "ASSIGN Budi Santoso")
    first = desk.last(BUDI, "assign")
    desk.reply(desk.last(HEAD, "transcript"), HEAD, "ASSIGN Budi Hartono")
    told = " ".join(text_of(desk.last(BUDI, "reassigned")).split())
    assert "dialihkan oleh Siti Rahmawati kepada Budi Hartono" in told
    desk.reply(first, BUDI, "ABK disusun per jabatan dengan 1.250 jam efektif per tahun.")
    assert not desk.outbox(APPLICANT, "answer")
    held = " ".join(text_of(desk.last(BUDI, "answer_held")).split())
    assert "tidak sedang ditugaskan kepada Bapak/Ibu (penanggung jawab: Budi Hartono)" in held


def test_a_heads_reply_without_a_command_is_recorded_and_said_so(desk: Desk) -> None:
    desk.deliver(request_mail())
    desk.reply(desk.last(HEAD, "notify"), HEAD, "Tolak saja, ini bukan kewenangan BPSDM. Arahkan ke BKN.")
    assert desk.ticket().state is State.NEW
    held = desk.last(HEAD, "answer_held")
    assert "tidak ada perintah yang dijalankan" in held.subject
    assert "REJECT <alasan>" in text_of(held)
    # Told a few times a day, not at every reply.
    for _ in range(4):
        desk.reply(desk.last(HEAD, "notify"), HEAD, "Mohon ditindaklanjuti segera oleh tim.")
    assert len(desk.outbox(HEAD, "answer_held")) == 3


def test_a_rejection_reason_over_two_lines_reaches_the_applicant_without_the_signature(desk: Desk) -> None:
    desk.deliver(request_mail())
    desk.reply(
        desk.last(HEAD, "notify"),
        HEAD,
        "TOLAK Pertanyaan ini bukan kewenangan BPSDM.\nSilakan Ibu menghubungi BKN Regional I.\nSiti",
    )
    assert desk.ticket().state is State.REJECTED
    rejected = text_of(desk.last(APPLICANT, "rejected"))
    assert "bukan kewenangan BPSDM." in rejected and "BKN Regional I." in rejected
    assert "\nSiti" not in rejected.split("Alasan:")[1].split("Atas pengertian")[0]
    assert "TIDAK DIPROSES" not in text_of(desk.last(HEAD, "transcript"))


def test_a_staff_members_new_mail_without_a_command_is_answered_once_a_day(desk: Desk) -> None:
    mail = request_mail(sender=BUDI, name="Budi Santoso", subject="Pertanyaan soal ABK")
    desk.deliver(mail)
    transcript = " ".join(text_of(desk.last(BUDI, "transcript")).split())
    assert "bukan balasan atas email tiket dan tidak memuat perintah" in transcript
    desk.deliver(request_mail(sender=BUDI, name="Budi Santoso", subject="Pertanyaan lain"))
    assert len(desk.outbox(BUDI, "transcript")) == 1
