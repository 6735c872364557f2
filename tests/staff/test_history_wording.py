"""Staff read a ticket's history in Indonesian (STYLE.md: what staff read is formal Indonesian
first): the automatic lines are worded from the facts they keep, not shown as the internal log's
English; a line written before those facts were kept shows its detail as stored."""

from __future__ import annotations

from datetime import UTC, datetime

from mailbot.core.compose import environment
from tests.conftest import request_mail
from tests.desk import BUDI, HEAD, Desk, text_of

_AT = datetime(2026, 12, 4, 3, 0, tzinfo=UTC)


def _history(*lines: dict) -> str:
    macros = environment().get_template("id/_macros.j2").module
    base = {"at": _AT, "actor": "system", "state": "new", "detail": "", "data": {}}
    rows = [{**base, **line} for line in lines]
    return str(macros.history_text(rows))


def test_an_assignee_reads_why_the_acknowledgment_was_not_sent_in_indonesian(desk: Desk) -> None:
    # A person writing through a list expander: registered, but never answered automatically.
    desk.deliver(request_mail(headers="Precedence: bulk\n"))
    desk.reply(desk.last(HEAD, "notify"), HEAD, "ASSIGN Budi Santoso")
    body = text_of(desk.last(BUDI, "assign"))
    history = body.split("Riwayat konsultasi:")[1]
    assert "Balasan otomatis tidak dikirim" in history
    assert "tanda terima kepada rina.kartika@kemendesa.example.go.id tidak dikirim" in history
    assert "email pemohon tidak boleh dibalas otomatis (Precedence: bulk" in history
    assert "not sent" not in history
    # The head's own command line, later, in the history a STATUS shows: without the internal codes.
    desk.reply(desk.last(HEAD, "transcript"), HEAD, "STATUS")
    status = text_of(desk.last(HEAD, "transcript")).split("Riwayat konsultasi:")[1]
    assert "Perintah petugas (kabag.umum@bpsdm.example.go.id): ASSIGN Budi Santoso" in status
    assert "→ assigned" not in status


def test_each_automatic_line_is_worded_from_its_facts() -> None:
    text = _history(
        {
            "kind": "reply_suppressed",
            "detail": "answer to a@b.id not sent: loop guard (3 today)",
            "data": {"mail": "answer", "to": "a@b.id", "guard": "loop", "count": 3},
        },
        {
            "kind": "mail_suppressed",
            "detail": "ack to a@b.id held back: rate limit per recipient reached",
            "data": {"mail": "ack", "to": "a@b.id", "guard": "rate"},
        },
        {
            "kind": "files_withheld",
            "detail": "assign → b@x.id: scan.pdf left out, over 100 bytes",
            "data": {"mail": "assign", "to": "b@x.id", "files": ["scan.pdf"], "limit": 100},
        },
        {
            "kind": "no_recipient",
            "detail": "no active staff with role records for the step archive",
            "data": {"roles": ["records"], "step": "Pengarsipan"},
        },
        {
            "kind": "reminder",
            "detail": "answer due 07-12-2026 10.00",
            "data": {"step": "Jawaban", "due": "07-12-2026 10.00"},
        },
        {
            "kind": "escalation",
            "detail": "answer overdue since 07-12-2026 10.00",
            "data": {"step": "Jawaban", "due": "07-12-2026 10.00"},
        },
        {
            "kind": "close",
            "detail": "closed without a survey after 5 hari kerja",
            "data": {"reason": "no_survey", "after": "5 hari kerja"},
        },
        {
            "kind": "duplicate_received",
            "actor": "a@b.id",
            "detail": "same request sent again (inbound #7)",
            "data": {"original": 7, "again": True},
        },
        {"kind": "purged", "detail": "personal data removed after 1825 days", "data": {"days": 1825}},
        {
            "kind": "mail_dead",
            "detail": "a@b.id: permanent failure: 550 5.1.1 no such user",
            "data": {"mail": "answer", "to": "a@b.id", "error": "550 5.1.1 no such user", "permanent": True},
        },
        {
            "kind": "mail_dead",
            "detail": "a@b.id: gave up after 8 attempts: 451 try later",
            "data": {"mail": "ack", "to": "a@b.id", "error": "451 try later", "permanent": False, "tries": 8},
        },
        {
            "kind": "mail_held",
            "actor": "a@b.id",
            "detail": "4 new tickets from a@b.id in 24 hours (cap 3)",
            "data": {"opened": 4, "cap": 3, "sender": "a@b.id"},
        },
        {
            "kind": "mail_held",
            "actor": "a@b.id",
            "detail": "X-Spam-Flag: YES",
            "data": {"spam": "X-Spam-Flag: YES"},
        },
        {
            "kind": "commands_refused",
            "actor": "kabag@x.id",
            "detail": "CLOSE selesai → role_lead_only; NOTE cek → not_executed",
            "data": {"lines": [["CLOSE selesai", False], ["NOTE cek", False]]},
        },
        {
            "kind": "commands",
            "actor": "kabag@x.id",
            "detail": "ASSIGN Budi → assigned",
            "data": {"lines": [["ASSIGN Budi", True]]},
        },
    )
    for wording in (
        "jawaban kepada a@b.id tidak dikirim: pengaman pengulangan (3 kali dalam 24 jam)",
        "tanda terima kepada a@b.id ditahan: batas email otomatis per penerima tercapai",
        "scan.pdf tidak disertakan pada surat tugas (disposisi) kepada b@x.id: "
        "ukuran email melebihi 100 bita",
        "tidak ada petugas aktif dengan peran records untuk tahap Pengarsipan",
        "Jawaban, batas waktu 07-12-2026 10.00",
        "Jawaban, melewati batas waktu 07-12-2026 10.00",
        "ditutup tanpa survei setelah 5 hari kerja",
        "pengajuan yang sama dikirim lagi (email masuk #7)",
        "data pribadi dihapus setelah 1825 hari",
        "jawaban kepada a@b.id gagal terkirim (ditolak server penerima): 550 5.1.1 no such user",
        "tanda terima kepada a@b.id gagal terkirim setelah 8 kali percobaan: 451 try later",
        "4 tiket baru dari a@b.id dalam 24 jam (batas 3)",
        "ditandai sebagai spam oleh server email (X-Spam-Flag: YES)",
        "CLOSE selesai (tidak dijalankan); NOTE cek (tidak dijalankan)",
        "Perintah petugas (kabag@x.id): ASSIGN Budi\n",
    ):
        assert wording in text, wording
    for english in (
        "not sent",
        "held back",
        "left out",
        "no active staff",
        "overdue",
        "without a survey",
        "gave up",
        "permanent failure",
        "new tickets",
        "→",
    ):
        assert english not in text, english


def test_numbers_in_the_facts_are_masked_but_times_are_not() -> None:
    text = _history(
        {
            "kind": "files_withheld",
            "data": {"mail": "assign", "to": "b@x.id", "files": ["KTP 3201234567890123.pdf"], "limit": 9},
            "detail": "x",
        },
        {"kind": "reminder", "detail": "x", "data": {"step": "Jawaban", "due": "07-12-2026 10.00"}},
    )
    assert "3201234567890123" not in text and "KTP 3201" in text
    assert "batas waktu 07-12-2026 10.00" in text


def test_a_line_without_its_facts_shows_its_detail_as_stored() -> None:
    text = _history({"kind": "reply_suppressed", "detail": "ack to a@b.id not sent: Precedence: bulk"})
    assert "Balasan otomatis tidak dikirim (system): ack to a@b.id not sent: Precedence: bulk" in text
