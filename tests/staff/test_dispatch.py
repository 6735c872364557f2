"""Disposition by email through the whole intake, on SQLite and PostgreSQL: every mail is real
RFC 5322 text, every reply answers a mail mailbot actually queued (read back from the outbox)."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

from sqlalchemy import select

from mailbot.app import App
from mailbot.core.workflow import State
from mailbot.pipeline.intake import Source
from mailbot.shell import models, persist
from tests.conftest import PROFILES, request_mail
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
    attachment_names,
    reply_bytes,
    text_of,
    with_attachment,
)

TU1 = "tu.itwil1@itjen.example.go.id"
TU2 = "tu.itwil2@itjen.example.go.id"
# tests.desk's people and the TU of two regions (SOP 001's TU Itwil).
MORE_STAFF = f"""
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
"""


def _profile_desk(
    make_app, sqlite_url, tmp_path, profile: str, extra_profile: str = "", staff: str = STAFF
) -> Desk:
    profiles = PROFILES
    if extra_profile:
        profiles = tmp_path / "profiles"
        profiles.mkdir()
        for p in [*PROFILES.glob("*.toml"), *PROFILES.glob("*.csv")]:
            (profiles / p.name).write_text(p.read_text())
        keys = {line.split("=")[0].strip() for line in extra_profile.splitlines() if "=" in line}
        kept = [
            line
            for line in (PROFILES / f"{profile}.toml").read_text().splitlines()
            if line.split("=")[0].strip() not in keys
        ]
        (profiles / f"{profile}.toml").write_text(extra_profile + "\n".join(kept) + "\n")
    app = make_app(
        database_url=sqlite_url,
        mailbox_url=f"maildir://{tmp_path / 'md'}",
        smtp_url=f"file://{tmp_path / 'out'}",
        staff=staff,
        profile=profile,
        profiles_dir=profiles,
    )
    return Desk(app)


# --- SOP 002 -------------------------------------------------------------------------------


def test_full_disposition_loop(desk: Desk) -> None:
    desk.deliver(with_attachment(request_mail(), "SK-pengangkatan.pdf", b"%PDF-1.4 sk"))
    notify = desk.last(HEAD, "notify")
    assert "ASSIGN Budi Santoso" in text_of(notify)

    desk.reply(notify, HEAD, "ASSIGN budi santoso\nNOTE mohon dijawab hari ini\n\nSiti")
    ticket = desk.ticket()
    assert ticket.state is State.ASSIGNED and ticket.assignee_email == BUDI

    transcript = desk.last(HEAD, "transcript")
    text = text_of(transcript)
    assert "> ASSIGN budi santoso" in text and "DILAKSANAKAN: ditugaskan kepada Budi Santoso" in text
    assert "> NOTE mohon dijawab hari ini" in text and "catatan disimpan" in text
    assert "Tiket KONS-2026-000001 sedang ditangani, penanggung jawab: Budi Santoso." in text
    assert "@bpsdm" not in text.split("Riwayat")[0]  # a name where a name serves

    assignment = desk.last(BUDI, "assign")
    body = text_of(assignment)
    assert "Penerima tugas : Budi Santoso, NIP 198001012005011001, Analis SDM Aparatur" in body
    assert "Riwayat konsultasi:" in body and "Disposisi / penugasan (kabag.umum@" in body
    assert "mohon dijawab hari ini" in body  # the NOTE written after ASSIGN reaches the assignee
    assert attachment_names(assignment) == ["SK-pengangkatan.pdf"]
    assert "Budi Santoso" in text_of(desk.last(APPLICANT, "assigned"))

    # The consultant's plain reply is the answer; the quote below it is not.
    desk.reply(
        assignment,
        BUDI,
        "ABK disusun per jabatan dengan 1.250 jam efektif per tahun.",
        attach=("Pedoman-ABK.pdf", b"%PDF-1.4 pedoman"),
    )
    ticket = desk.ticket()
    assert ticket.state is State.ANSWERED
    answer = text_of(desk.last(APPLICANT, "answer"))
    assert "ABK disusun per jabatan dengan 1.250 jam efektif per tahun." in answer
    assert "Salinan riwayat konsultasi" in answer and "Didisposisikan kepada Budi Santoso" in answer
    assert "mohon dijawab hari ini" not in answer and "@bpsdm" not in answer  # the head's note stays inside
    assert "Penerima tugas" not in answer  # the quoted assignment mail did not leak into the answer
    assert attachment_names(desk.last(APPLICANT, "answer")) == ["Pedoman-ABK.pdf"]  # the consultant's file


def test_ambiguous_and_unknown_names_change_nothing(desk: Desk) -> None:
    desk.deliver(request_mail())
    notify = desk.last(HEAD, "notify")
    desk.reply(notify, HEAD, "ASSIGN Budi")
    assert desk.ticket().state is State.NEW
    text = text_of(desk.last(HEAD, "transcript"))
    assert (
        '"Budi" cocok dengan beberapa orang: Budi Santoso (Analis SDM Aparatur)' in text
        and "Budi Hartono" in text
    )

    desk.reply(notify, HEAD, "TUGASKAN Joko Widodo")
    text = text_of(desk.last(HEAD, "transcript"))
    assert 'tidak ada petugas bernama "Joko Widodo"' in text
    # Who may be assigned in SOP 002's chain: consultants, not the inactive Dewi, not a sub-head.
    assert "Yang dapat ditugaskan: Budi Santoso, Budi Hartono\n" in text.replace("\r\n", "\n")
    assert desk.ticket().state is State.NEW


def test_forged_from_and_forwarded_tokens_do_not_command(desk: Desk) -> None:
    desk.deliver(request_mail())
    ticket = desk.ticket()
    # Forged: From the head, the ticket number in the subject, but no token of ours.
    forged = request_mail(
        sender=HEAD, name="Siti", subject=f"Re: [{ticket.number}] disposisi", body="ASSIGN Budi Santoso\n"
    )
    desk.deliver(forged)
    assert desk.ticket().state is State.NEW
    assert "hanya berlaku sebagai balasan langsung" in text_of(desk.last(HEAD, "transcript"))
    # The head's mail forwarded to the other head, who replies to it: the token is not theirs.
    desk.reply(desk.last(HEAD, "notify"), HEAD2, "ASSIGN Budi Santoso")
    assert desk.ticket().state is State.NEW
    assert "hanya berlaku sebagai balasan langsung" in text_of(desk.last(HEAD2, "transcript"))
    # A staff member using the applicant's acknowledgment (signed for the applicant) gets nothing either.
    desk.reply(desk.last(APPLICANT, "ack"), HEAD, "ASSIGN Budi Santoso")
    assert desk.ticket().state is State.NEW


def test_role_refusal_makes_the_whole_mail_act_not_at_all(desk: Desk) -> None:
    desk.deliver(request_mail())
    desk.reply(desk.last(HEAD, "notify"), HEAD, "ASSIGN Budi Santoso")
    assignment = desk.last(BUDI, "assign")
    desk.reply(assignment, BUDI, "NOTE sudah saya cek\nCLOSE selesai\n")
    ticket = desk.ticket()
    assert ticket.state is State.ASSIGNED
    text = text_of(desk.last(BUDI, "transcript"))
    assert "TIDAK dijalankan" in text and "hanya pimpinan atau sekretariat" in text
    with desk.app.sessions() as s:
        kinds = [e.kind for e in s.get(models.Ticket, ticket.id).events]
    assert "note" not in kinds and "commands_refused" in kinds


def test_first_of_two_heads_wins_and_the_second_is_told(desk: Desk) -> None:
    desk.deliver(request_mail())
    n1, n2 = desk.last(HEAD, "notify"), desk.last(HEAD2, "notify")
    desk.reply(n1, HEAD, "ASSIGN Budi Santoso")
    desk.reply(n2, HEAD2, "ASSIGN Budi Hartono")
    ticket = desk.ticket()
    assert ticket.assignee_email == BUDI
    text = text_of(desk.last(HEAD2, "transcript"))
    assert "sudah ditangani lebih dulu oleh Siti Rahmawati" in text and "sedang ditangani" in text
    assert desk.outbox(BUDI2) == []


def test_concurrent_commands_no_lost_update(desk: Desk) -> None:
    """Two heads' ASSIGNs in overlapping transactions: the first commits, the second is re-run
    against the committed ticket (PostgreSQL: version check; SQLite: the write lock) and refused."""
    desk.deliver(request_mail())
    n1, n2 = desk.last(HEAD, "notify"), desk.last(HEAD2, "notify")
    first = reply_bytes(n1, HEAD, "ASSIGN Budi Santoso")
    second = reply_bytes(n2, HEAD2, "ASSIGN Budi Hartono")
    app = desk.app
    session = app.sessions()
    session.begin()
    effects = persist.Effects()
    app.intake.process_message(session, effects, Source("race", 1, "a"), first, app.clock())
    persist.apply(session, effects)  # written (the ticket's row locked on PostgreSQL), not committed
    other = threading.Thread(target=lambda: app.process_raw(Source("race", 1, "b"), second))
    other.start()
    if app.engine.dialect.name == "postgresql":
        _wait_until_blocked(app)
    session.commit()
    session.close()
    other.join(timeout=60)
    assert not other.is_alive()
    ticket = desk.ticket()
    assert ticket.assignee_email == BUDI
    with desk.app.sessions() as s:
        kinds = [e.kind for e in s.get(models.Ticket, ticket.id).events]
    assert kinds.count("assign") == 1 and kinds.count("commands_refused") == 1
    assert "sudah ditangani lebih dulu oleh Siti Rahmawati" in text_of(desk.last(HEAD2, "transcript"))
    assert desk.outbox(BUDI2) == []


def _wait_until_blocked(app: App) -> None:
    """Until the second transaction waits on the first one's row lock (seen in pg_locks)."""
    deadline = time.monotonic() + 20
    with app.engine.connect() as conn:
        while time.monotonic() < deadline:
            if conn.exec_driver_sql("SELECT count(*) FROM pg_locks WHERE NOT granted").scalar():
                return
            conn.rollback()
            time.sleep(0.02)
    raise AssertionError("the second transaction never blocked")


def test_follow_ups_and_request_info_reach_the_handler(desk: Desk) -> None:
    desk.deliver(request_mail())
    desk.reply(desk.last(HEAD, "notify"), HEAD, "ASSIGN Budi Santoso")
    desk.reply(desk.last(APPLICANT, "assigned"), APPLICANT, "Tambahan: unit kami berdiri tahun 2024.")
    relayed = desk.last(BUDI, "follow_up")
    assert "Tambahan: unit kami berdiri tahun 2024." in text_of(relayed)

    desk.reply(desk.last(BUDI, "assign"), BUDI, "REQUEST-INFO Mohon kirim SK pembentukan unit.")
    assert desk.ticket().state is State.WAITING_APPLICANT
    ask = desk.last(APPLICANT, "request_info")
    assert "Mohon kirim SK pembentukan unit." in text_of(ask)
    desk.reply(ask, APPLICANT, "Terlampir SK-nya.", attach=("SK-2024.pdf", b"%PDF sk"))
    assert desk.ticket().state is State.ASSIGNED
    relayed = desk.last(BUDI, "follow_up")
    assert "Terlampir SK-nya." in text_of(relayed) and attachment_names(relayed) == ["SK-2024.pdf"]


def test_lead_commands(desk: Desk) -> None:
    desk.deliver(request_mail())
    notify = desk.last(HEAD, "notify")
    desk.reply(notify, HEAD, "URGENT\nPERPANJANG 2\nSTATUS")
    ticket = desk.ticket()
    assert ticket.urgent and ticket.extension_days == 2
    text = text_of(desk.last(HEAD, "transcript"))
    assert "ditandai segera" in text and "diperpanjang 2 hari kerja" in text and "Riwayat konsultasi" in text
    desk.reply(notify, HEAD, "REJECT bukan kewenangan BPSDM")
    assert desk.ticket().state is State.REJECTED
    assert "bukan kewenangan BPSDM" in text_of(desk.last(APPLICANT, "rejected"))
    desk.reply(desk.last(HEAD, "transcript"), HEAD, "REOPEN")
    assert desk.ticket().state is State.NEW


def test_help_and_list_outside_a_thread(desk: Desk) -> None:
    desk.deliver(request_mail())
    desk.deliver(request_mail(sender=HEAD, name="Siti", subject="perintah", body="LIST\nHELP\n"))
    text = text_of(desk.last(HEAD, "transcript"))
    assert "KONS-2026-000001" in text and "ASSIGN <nama>" in text


def test_malformed_command_is_answered_not_executed(desk: Desk) -> None:
    desk.deliver(request_mail())
    desk.reply(desk.last(HEAD, "notify"), HEAD, "ASSIGN\nEXTEND seminggu")
    assert desk.ticket().state is State.NEW
    text = text_of(desk.last(HEAD, "transcript"))
    assert "memerlukan keterangan" in text and "1 sampai 30" in text


# --- the other SOPs ------------------------------------------------------------------------


def test_sop_000_roster_refusal_and_direct_answer(make_app, sqlite_url, tmp_path) -> None:
    desk = _profile_desk(make_app, sqlite_url, tmp_path, "sop-000")
    outsider = request_mail(
        sender="luar@example.com",
        name="Orang Luar",
        body=request_mail().decode().split("\r\n\r\n", 1)[1].replace("2 001", "1 009"),
    )
    desk.deliver(outsider)
    ticket = desk.ticket()
    assert ticket.state is State.REJECTED and ticket.number.startswith("KKO-2026-")
    refusal = " ".join(text_of(desk.last("luar@example.com", "not_eligible")).split())
    assert "tidak terdaftar pada data pegawai" in refusal
    # SOP 000 step 2: the service is for active employees of the ministry, not of its Itjen only.
    assert "diperuntukkan bagi pegawai aktif Kementerian PUPR." in refusal
    assert "Inspektorat Jenderal" not in refusal

    desk.deliver(request_mail())  # Rina is in the roster
    notify = desk.last(SECRETARIAT, "notify")
    desk.reply(notify, SECRETARIAT, "JAWAB\nSesuai Permenpan RB 1/2023, ABK disusun oleh unit pembina.")
    assert desk.ticket().state is State.ANSWERED
    assert "unit pembina" in text_of(desk.last(APPLICANT, "answer"))


def test_sop_000_normative_question_is_the_secretariats_own(make_app, sqlite_url, tmp_path) -> None:
    """SOP 000 step 5: NORMATIF (any case) makes the question the secretariat's own to answer; no
    Surat Tugas, no mail to the applicant; the answer comes later with JAWAB."""
    desk = _profile_desk(make_app, sqlite_url, tmp_path, "sop-000")
    desk.deliver(request_mail())
    notify = desk.last(SECRETARIAT, "notify")
    assert "NORMATIF" in text_of(notify) and "1 x 24 jam" in text_of(notify)
    to_applicant = len(desk.outbox(APPLICANT))
    desk.reply(notify, SECRETARIAT, "normatif")
    ticket = desk.ticket()
    assert ticket.state is State.ASSIGNED and ticket.assignee_email == SECRETARIAT
    assert ticket.step == "review" and ticket.due_at is not None
    transcript = " ".join(text_of(desk.last(SECRETARIAT, "transcript")).split())
    assert "pertanyaan ditetapkan normatif" in transcript and "dalam 1 x 24 jam" in transcript
    assert not desk.outbox(kind="assign") and len(desk.outbox(APPLICANT)) == to_applicant
    with desk.app.sessions() as session:
        events = session.get(models.Ticket, ticket.id).events
        assert [e.data["assignee"] for e in events if e.kind == "normative"] == [SECRETARIAT]
    desk.reply(notify, SECRETARIAT, "JAWAB\nSesuai Permen PUPR 13/2020, hal itu menjadi kewenangan Biro.")
    assert desk.ticket().state is State.ANSWERED
    assert "kewenangan Biro" in text_of(desk.last(APPLICANT, "answer"))


def test_normative_in_one_mail_with_the_answer_and_refused_elsewhere(make_app, sqlite_url, tmp_path) -> None:
    desk = _profile_desk(make_app, sqlite_url, tmp_path, "sop-000")
    desk.deliver(request_mail())
    desk.reply(desk.last(SECRETARIAT, "notify"), SECRETARIAT, "NORMATIF\nJAWAB\nCuti besar: PP 11/2017.")
    ticket = desk.ticket()
    assert ticket.state is State.ANSWERED and ticket.assignee_email == SECRETARIAT
    # In capitals with text after it: a mistake, answered and not executed.
    desk.deliver(request_mail(subject="Pertanyaan kedua"))
    desk.reply(desk.last(SECRETARIAT, "notify"), SECRETARIAT, "NORMATIF sesuai PP 11/2017")
    assert desk.ticket().state is State.NEW
    assert "tidak memerlukan keterangan" in text_of(desk.last(SECRETARIAT, "transcript"))


def test_normative_is_refused_where_the_profile_has_no_normative_answers(desk: Desk) -> None:
    desk.deliver(request_mail())
    desk.reply(desk.last(HEAD, "notify"), HEAD, "NORMATIF")
    assert desk.ticket().state is State.NEW
    assert "DITOLAK: hanya Tim Sekretariat" in text_of(desk.last(HEAD, "transcript"))


def test_sop_003_forward_to_vendor_and_report_back(make_app, sqlite_url, tmp_path) -> None:
    desk = _profile_desk(make_app, sqlite_url, tmp_path, "sop-003")
    desk.deliver(request_mail(subject="Aplikasi SIMPEG tidak bisa login", body=COMPLAINT))
    desk.reply(
        desk.last(SECRETARIAT, "notify"),
        SECRETARIAT,
        "NOTE penyedia ini sering terlambat, pantau\nTERUSKAN vendor jaringan",
    )
    assert desk.ticket().state is State.FORWARDED
    forwarded = desk.last(VENDOR, "forward")
    assert "Penerusan keluhan" in text_of(forwarded) or "keluhan" in forwarded.subject.lower()
    # The vendor is outside the office: the public view of the history, not the internal log.
    history = text_of(forwarded).split("Riwayat penanganan keluhan:")[1]
    assert "sering terlambat" not in history and SECRETARIAT not in history
    assert "Keluhan diterima (pemohon)" in history and "Diteruskan kepada penyedia jasa" in history
    desk.reply(forwarded, VENDOR, "Akun sudah direset, silakan login ulang.")
    report = desk.last(SECRETARIAT, "vendor_report")
    assert "Akun sudah direset" in text_of(report)
    desk.reply(report, SECRETARIAT, "ANSWER\nAkun Anda sudah direset oleh penyedia jasa.")
    assert desk.ticket().state is State.ANSWERED


def test_sop_003_a_complaint_is_asked_for_what_it_lacks(make_app, sqlite_url, tmp_path) -> None:
    """SOP 003 step 1: the type of complaint, the date and time of the incident and the evidence.
    A date and time in the description counts; "terlampir" with nothing attached does not; the
    screenshot attached to the reply does; then the secretariat sees all three."""
    desk = _profile_desk(make_app, sqlite_url, tmp_path, "sop-003")
    body = (
        COMPLAINT.replace("Jenis Keluhan  : Aplikasi SIMPEG\n", "")
        .replace("Waktu Kejadian : Senin, 16-11-2026 pukul 08.00 WIB\n", "")
        .replace("muncul pesan galat 502 Bad Gateway setelah menekan tombol Masuk", "terlampir")
        .replace("sejak pagi;", "sejak Senin 16-11-2026 pukul 08.00;")
    )
    desk.deliver(request_mail(subject="Aplikasi SIMPEG tidak bisa login", body=body))
    ticket = desk.ticket()
    assert ticket.state is State.AWAITING_INFO
    assert [(i["field"], i["code"]) for i in ticket.issues] == [
        ("complaint_type", "missing"),
        ("evidence", "evidence_not_attached"),
    ]
    asked = " ".join(text_of(desk.last(APPLICANT, "missing_fields")).split())
    assert "Jenis Keluhan: belum dicantumkan" in asked
    assert (
        "Bukti (foto/tangkapan layar/video): disebutkan terlampir, tetapi email Bapak/Ibu tidak memuat"
        in asked
    )
    assert "(atau lampirkan berkasnya pada balasan ini)" in asked
    assert "Tanggal dan Waktu Kejadian" not in asked  # told in the description
    assert not desk.outbox(SECRETARIAT)
    desk.reply(
        desk.last(APPLICANT, "missing_fields"),
        APPLICANT,
        "Jenis Keluhan: Aplikasi SIMPEG (login)",
        attach=("galat-502.pdf", b"%PDF-1.4 tangkapan layar"),
    )
    ticket = desk.ticket()
    assert ticket.state is State.NEW, ticket.issues
    assert ticket.fields["evidence"] == "lampiran: galat-502.pdf"
    assert ticket.fields["incident_time"] == "16-11-2026 pukul 08.00"
    notify = text_of(desk.last(SECRETARIAT, "notify"))
    assert "Jenis Keluhan  : Aplikasi SIMPEG (login)" in notify
    assert "Waktu Kejadian : 16-11-2026 pukul 08.00" in notify
    assert "Bukti          : lampiran: galat-502.pdf" in notify
    desk.reply(desk.last(SECRETARIAT, "notify"), SECRETARIAT, "ASSIGN Budi Santoso")
    assignment = desk.last(BUDI, "assign")
    assert "galat-502.pdf" in attachment_names(assignment)
    assert "Jenis Keluhan" in text_of(assignment)


def test_sop_003_an_attachment_is_the_evidence_from_the_start(make_app, sqlite_url, tmp_path) -> None:
    desk = _profile_desk(make_app, sqlite_url, tmp_path, "sop-003")
    body = COMPLAINT.replace(
        "muncul pesan galat 502 Bad Gateway setelah menekan tombol Masuk", "lihat lampiran"
    )
    raw = with_attachment(request_mail(subject="SIMPEG", body=body), "layar.pdf", b"%PDF-1.4 x")
    desk.deliver(raw)
    ticket = desk.ticket()
    assert ticket.state is State.NEW and ticket.fields["evidence"] == "lampiran: layar.pdf"
    ack = text_of(desk.last(APPLICANT, "ack"))
    assert "Jenis Keluhan  : Aplikasi SIMPEG" in ack and "Bukti          : lampiran: layar.pdf" in ack


def test_a_consultation_shows_no_complaint_rows(desk: Desk) -> None:
    body = request_mail().decode().split("\r\n\r\n", 1)[1].replace("Jabatan", "Lampiran: SK.pdf\r\nJabatan")
    desk.deliver(request_mail(body=body))
    assert desk.ticket().state is State.NEW
    for text in (text_of(desk.last(APPLICANT, "ack")), text_of(desk.last(HEAD, "notify"))):
        assert "Bukti" not in text and "Jenis Keluhan" not in text


def test_sop_004_three_levels_routed_by_region(make_app, sqlite_url, tmp_path) -> None:
    desk = _profile_desk(make_app, sqlite_url, tmp_path, "sop-004")
    body = (
        request_mail()
        .decode()
        .split("\r\n\r\n", 1)[1]
        .replace("Biro Perencanaan, Kementerian Desa PDTT", "Dinas Pekerjaan Umum dan Penataan Ruang")
    )
    desk.deliver(request_mail(body=body))
    ticket = desk.ticket()
    assert ticket.number == "SIKUWAS-2026-0001"
    notify = desk.last(HEAD, "notify")
    assert "ASSIGN Irban Wilayah II" in text_of(notify)  # the routed Inspektur Pembantu is suggested
    desk.reply(notify, HEAD, "DISPOSISI Irban II")
    assignment = desk.last(IRBAN2, "assign")
    assert "ASSIGN <nama>" in text_of(assignment)  # a sub-head can delegate further
    desk.reply(assignment, IRBAN2, "ASSIGN Budi Hartono")
    ticket = desk.ticket()
    assert ticket.state is State.ASSIGNED and ticket.assignee_email == BUDI2
    auditor_mail = desk.last(BUDI2, "assign")
    assert "ASSIGN <nama>" not in text_of(auditor_mail)  # the last level answers
    desk.reply(auditor_mail, BUDI2, "ASSIGN Budi Santoso")
    assert "peran Bapak/Ibu tidak dapat mendisposisikan" in text_of(desk.last(BUDI2, "transcript"))
    desk.reply(auditor_mail, BUDI2, "Hasil konsultasi: pengadaan dapat dilakukan melalui e-katalog.")
    assert desk.ticket().state is State.ANSWERED


def test_sop_001_auto_assign_by_field(make_app, sqlite_url, tmp_path) -> None:
    desk = _profile_desk(make_app, sqlite_url, tmp_path, "sop-001", "auto_assign_routed = true\n")
    body = (
        request_mail()
        .decode()
        .split("\r\n\r\n", 1)[1]
        .replace(
            "Bagaimana tata cara penyusunan Analisis Beban Kerja",
            "Bagaimana prosedur pengadaan barang dan jasa",
        )
    )
    desk.deliver(request_mail(body=body))
    ticket = desk.ticket()
    assert ticket.state is State.ASSIGNED and ticket.assignee_email == BUDI2
    assert desk.outbox(BUDI2, "assign")


def _with_unit(unit: str, question: str = "") -> bytes:
    body = request_mail().decode().split("\r\n\r\n", 1)[1]
    body = body.replace("Biro Perencanaan, Kementerian Desa PDTT", unit)
    if question:
        body = body.replace("Bagaimana tata cara penyusunan Analisis Beban Kerja", question)
    return request_mail(body=body)


def test_sop_001_routes_by_field_or_region(make_app, sqlite_url, tmp_path) -> None:
    """SOP 001 step 2: the consultant of the question's field or of the applicant's region; the one
    who matches both first, and assigned directly only when one person is the best match."""
    desk = _profile_desk(make_app, sqlite_url, tmp_path, "sop-001", "auto_assign_routed = true\n")
    # Region only (Jawa Timur: Wilayah II): Budi Hartono.
    desk.deliver(_with_unit("Kantor Wilayah Kementerian Hukum dan HAM Jawa Timur"))
    ticket = desk.ticket()
    assert ticket.state is State.ASSIGNED and ticket.assignee_email == BUDI2
    # Field (kepegawaian: Budi Santoso) and region (Aceh: Wilayah I, Budi Santoso too): him.
    desk.deliver(_with_unit("Kanwil Kemenkumham Aceh", "Bagaimana prosedur mutasi kepegawaian"))
    assert desk.ticket().assignee_email == BUDI
    # Field kepegawaian (Budi Santoso) and region Wilayah II (Budi Hartono): two people match one
    # key each; nobody is assigned, both are suggested to the customer service.
    desk.deliver(_with_unit("Kanwil Kemenkumham Jawa Timur", "Bagaimana prosedur mutasi kepegawaian"))
    ticket = desk.ticket()
    assert ticket.state is State.NEW and ticket.assignee_email is None
    assert "ASSIGN Budi Santoso" in text_of(desk.last(SECRETARIAT, "notify"))
    with desk.app.sessions() as session:
        routed = [e for e in session.get(models.Ticket, ticket.id).events if e.kind == "routed"]
        assert routed[0].data == {"field": "kepegawaian", "region": "Wilayah II"}


def test_sop_001_report_to_the_tu_of_the_region_and_archiving(make_app, sqlite_url, tmp_path) -> None:
    """SOP 001 steps 4-5: after the answer the customer service reports (LAPORAN) to the TU of the
    applicant's region, who archives it (ARSIP); only the step's own role and verb count."""
    desk = _profile_desk(make_app, sqlite_url, tmp_path, "sop-001", staff=STAFF + MORE_STAFF)
    desk.deliver(_with_unit("Kantor Wilayah Kementerian Hukum dan HAM Jawa Timur"))
    desk.reply(desk.last(SECRETARIAT, "notify"), SECRETARIAT, "ARSIP")
    assert "tidak ada tahap laporan atau pengarsipan" in text_of(desk.last(SECRETARIAT, "transcript"))
    desk.reply(desk.last(SECRETARIAT, "notify"), SECRETARIAT, "ASSIGN Budi Hartono")
    assignment = desk.last(BUDI2, "assign")
    desk.reply(assignment, BUDI2, "Pengadaan di bawah Rp200 juta dapat melalui pengadaan langsung.")
    assert desk.ticket().state is State.ANSWERED
    task = desk.last(SECRETARIAT, "record_step")
    text = " ".join(text_of(task).split())
    assert "Tahap: Customer service membuat laporan" in text and "LAPORAN pada baris pertama" in text
    assert "pengadaan langsung" in text  # the answer, to report on
    assert not desk.outbox(TU1) and not desk.outbox(TU2)
    # The consultant is not the customer service; ARSIP is not the report step's verb.
    desk.reply(assignment, BUDI2, "LAPORAN\nsudah")
    assert "bukan tugas peran Bapak/Ibu" in text_of(desk.last(BUDI2, "transcript"))
    desk.reply(task, SECRETARIAT, "ARSIP")
    assert "diselesaikan dengan LAPORAN" in text_of(desk.last(SECRETARIAT, "transcript"))
    desk.reply(task, SECRETARIAT, "LAPORAN")
    assert "tulis isi laporan" in text_of(desk.last(SECRETARIAT, "transcript"))
    desk.reply(task, SECRETARIAT, "LAPORAN\nKonsultasi pengadaan langsung telah dijawab konsultan.")
    assert "dikirim kepada TU Itwil II" in text_of(desk.last(SECRETARIAT, "transcript"))
    assert not desk.outbox(TU1)
    report = desk.last(TU2, "record_step")
    text = " ".join(text_of(report).split())
    assert report.subject.startswith("[KONS-ITJ-2026-00001] Laporan layanan konsultasi")
    assert "Yth. TU Itwil II," in text_of(report) and "telah dijawab konsultan" in text
    assert "ARSIP pada baris pertama" in text and "1/2 hari kerja" in text
    desk.reply(report, TU2, "Arsip")
    assert 'tahap "TU wilayah menerima dan mengarsipkan dokumen layanan" dicatat selesai' in " ".join(
        text_of(desk.last(TU2, "transcript")).split()
    )
    with desk.app.sessions() as session:
        ticket = session.get(models.Ticket, desk.ticket().id)
        assert [e.data["step"] for e in ticket.events if e.kind == "step_done"] == ["report", "archive"]
        assert desk.app.clocks.after_answer(ticket) is None
    # The applicant read none of it.
    for mail in desk.outbox(APPLICANT):
        assert "LAPORAN" not in text_of(mail) and "ARSIP" not in text_of(mail)


def test_authentication_results_required(make_app, sqlite_url, tmp_path) -> None:
    desk = _profile_desk(
        make_app,
        sqlite_url,
        tmp_path,
        "sop-002",
        'require_authentication = true\nauthserv_id = "mx.bpsdm.example.go.id"\n',
    )
    desk.deliver(request_mail())
    notify = desk.last(HEAD, "notify")
    desk.reply(
        notify,
        HEAD,
        "ASSIGN Budi Santoso",
        headers={"Authentication-Results": "evil.example; dkim=pass header.d=bpsdm.example.go.id"},
    )
    assert desk.ticket().state is State.NEW
    assert "tidak memastikan keaslian pengirim" in text_of(desk.last(HEAD, "transcript"))
    desk.reply(
        notify,
        HEAD,
        "ASSIGN Budi Santoso",
        headers={
            "Authentication-Results": "mx.bpsdm.example.go.id; dmarc=pass header.from=bpsdm.example.go.id"
        },
    )
    assert desk.ticket().state is State.ASSIGNED


def test_staff_from_csv(tmp_path: Path) -> None:
    from mailbot.config import load_staff_csv

    path = tmp_path / "staff.csv"
    path.write_text(
        "name,emails,role,aliases,region,active\n"
        "Irban I,irban1@x.go.id;irban.satu@x.go.id,subhead,Irban Satu,Wilayah I,ya\n"
        "Auditor Lama,lama@x.go.id,consultant,,,tidak\n"
        "Salah,bukan-alamat,boss,,,\n"
    )
    rows, problems = load_staff_csv(path)
    assert [(m.name, m.emails, m.active) for _, m in rows] == [
        ("Irban I", ["irban1@x.go.id", "irban.satu@x.go.id"], True),
        ("Auditor Lama", ["lama@x.go.id"], False),
    ]
    assert {k for k, _ in problems} == {"staff_csv:4.emails.0", "staff_csv:4.role"}


def test_the_surat_tugas_history_speaks_indonesian_without_codes(desk: Desk) -> None:
    """The internal riwayat in the assignee's mail: each line a label staff read, the fields an
    incomplete request lacked by their names, no stored code ("unit: missing", "complete") and no
    kind left untranslated."""
    incomplete = request_mail(
        body="Nama Lengkap : Rina Kartika\nNIP : 19860926 201505 2 001\n\n"
        "Pertanyaan: Bagaimana tata cara penyusunan Analisis Beban Kerja untuk jabatan baru?\n",
        headers="Reply-To: lain@example.com\r\n",
    )
    desk.deliver(incomplete)
    desk.reply(desk.last(APPLICANT, "missing_fields"), APPLICANT, "Unit Kerja: Biro Perencanaan")
    desk.reply(
        desk.last(APPLICANT, "missing_fields"),
        APPLICANT,
        "Jabatan: Analis Kebijakan\nNo. HP: 0812-3456-7890",
    )
    desk.reply(desk.last(HEAD, "notify"), HEAD, "ASSIGN Budi Santoso")
    history = text_of(desk.last(BUDI, "assign")).split("Riwayat konsultasi:")[1]
    assert "Pengajuan diterima, data belum lengkap (" in history
    assert "Data belum lengkap: Unit Kerja/Instansi, Jabatan, Nomor Telepon" in history
    assert "Alamat Reply-To berbeda dari pengirim (tidak dipakai)" in history
    assert not re.search(r"\b(?:missing|complete|invalid)\b", history), history
    assert not re.search(r"\b[a-z]+(?:_[a-z]+)+\b", history), history  # no kind left as its code


def test_a_disposition_names_the_assignee_as_heads_write_it(desk: Desk) -> None:
    desk.deliver(request_mail())
    desk.reply(desk.last(HEAD, "notify"), HEAD, "Disposisi kepada Sdr. Budi Santoso")
    ticket = desk.ticket()
    assert ticket.state is State.ASSIGNED and ticket.assignee_email == BUDI
    desk.deliver(request_mail(subject="Pertanyaan lain"))
    notify = next(m for m in desk.outbox(HEAD, "notify") if "000002" in m.subject)
    desk.reply(notify, HEAD, "TUGASKAN ke Pak Budi Santoso, mohon segera")
    with desk.app.sessions() as s:
        second = s.execute(select(models.Ticket).where(models.Ticket.number.like("%000002"))).scalar_one()
        assert second.state is State.ASSIGNED and second.assignee_email == BUDI
