"""Hostile input, measured (#18): each item of the issue as its input, run through the real CLI
on a fresh embedded-default setup (`mailbot init` in a temporary folder: SQLite, a Maildir, the
file outbox), with the wall time and the peak memory of the command and what became of the mail.

Usage: .venv/bin/python bench/reliability.py [--only KEY,...] [--keep DIR]

Every measured command runs in a process of its own; its peak memory is its own VmHWM (read from
/proc as it exits: getrusage's maximum for a child would carry the RSS of the process that forked
it). The time is the whole command, its start-up included (the `baseline` row is one ordinary
request). Prints a markdown table for bench/README.md and the rows for the README's reliability
table; exit 1 when an outcome is not the one the issue asks for.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import mailbox
import os
import platform
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MIB = 1024 * 1024
SERVICE = "konsultasi@bpsdm.example.go.id"
APPLICANT = "rina.kartika@kemendesa.example.go.id"
HEAD = "kabag.umum@bpsdm.example.go.id"
BUDI = "budi.santoso@bpsdm.example.go.id"
HELPDESK = "helpdesk@instansi-lain.example.go.id"

# Runs mailbot's command line in this process and reports, as it exits, the process's peak
# resident memory (VmHWM), and the time spent in the work itself (intake, sending, the export),
# apart from the interpreter's start and the imports.
PROBE = """
import runpy, sys, time
import mailbot.app, mailbot.records.archive
spent = [0.0]
def timed(cls, name):
    inner = getattr(cls, name)
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - start
    setattr(cls, name, wrapper)
timed(mailbot.app.App, "run_intake_once")
timed(mailbot.app.App, "sweep_deadlines")
timed(mailbot.app.App, "send_pending")
timed(mailbot.records.archive, "export_mbox")
sys.argv = ["mailbot", *sys.argv[1:]]
code = 0
try:
    runpy.run_module("mailbot", run_name="__main__", alter_sys=True)
except SystemExit as exc:
    code = exc.code or 0
finally:
    hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0].split()[1]
    print("PROBE", hwm, spent[0], file=sys.stderr)
sys.exit(code)
"""


@dataclass
class Measured:
    seconds: float  # the whole command
    work: float  # intake, sweep and sending (run --once), or the export
    peak_mib: float
    exit_code: int
    output: str


@dataclass
class Setup:
    """One fresh embedded-default installation."""

    folder: Path
    config: Path = field(init=False)
    n: int = 0
    digests: set[str] = field(default_factory=set)  # of the attachments sent

    def __post_init__(self) -> None:
        subprocess.run(
            [sys.executable, "-m", "mailbot", "init", str(self.folder)],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        self.config = self.folder / "mailbot.toml"
        text = self.config.read_text()
        self.config.write_text(text.replace("seed_samples = true", "seed_samples = false"))
        for sub in ("new", "cur", "tmp"):
            (self.maildir / sub).mkdir(parents=True, exist_ok=True)
        # The database is created (migrated) before anything is measured, as by a first start.
        self.cli("tickets", "list")

    @property
    def maildir(self) -> Path:
        return self.folder / "var" / "mailbox"

    def drop(self, raw: bytes) -> None:
        """Deliver a mail as a delivery agent does: written to tmp/, renamed into new/."""
        self.n += 1
        name = f"{time.time_ns()}.{os.getpid()}_{self.n}.bench"
        (self.maildir / "tmp" / name).write_bytes(raw)
        os.replace(self.maildir / "tmp" / name, self.maildir / "new" / name)

    def drop_stream(self, head: bytes, line: bytes, size: int) -> int:
        """A mail of `size` bytes written line by line: never whole in this process's memory."""
        self.n += 1
        name = f"{time.time_ns()}.{os.getpid()}_{self.n}.bench"
        written = 0
        with (self.maildir / "tmp" / name).open("wb") as fh:
            fh.write(head)
            written += len(head)
            chunk = line * max(1, (4 * MIB) // len(line))
            while written + len(chunk) <= size:
                fh.write(chunk)
                written += len(chunk)
            while written + len(line) <= size:
                fh.write(line)
                written += len(line)
        os.replace(self.maildir / "tmp" / name, self.maildir / "new" / name)
        return written

    def cli(self, *args: str) -> Measured:
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", PROBE, "--config", str(self.config), *args],
            check=False,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=3600,
        )
        seconds = time.perf_counter() - start
        m = re.search(r"PROBE (\d+) ([0-9.]+)", done.stderr)
        if m is None:
            raise RuntimeError(f"mailbot {' '.join(args)} failed:\n{done.stderr[-3000:]}")
        peak = int(m.group(1)) / 1024
        return Measured(seconds, float(m.group(2)), peak, done.returncode, done.stdout + done.stderr)

    def once(self) -> Measured:
        return self.cli("run", "--once")

    def db(self) -> sqlite3.Connection:
        return sqlite3.connect(self.folder / "var" / "mailbot.db")

    def marks(self) -> tuple[int, int, int]:
        """The last inbound, outbound and ticket ids: what a step adds comes after them."""
        with self.db() as db:
            return tuple(  # type: ignore[return-value]
                db.execute(f"SELECT coalesce(max(id), 0) FROM {t}").fetchone()[0]
                for t in ("inbound_messages", "outbound_messages", "tickets")
            )

    def outbound(self, kind: str, to: str) -> int:
        with self.db() as db:
            row = db.execute(
                "SELECT id FROM outbound_messages WHERE kind = ? AND recipient = ? ORDER BY id", (kind, to)
            ).fetchone()
        assert row is not None, f"no {kind} mail to {to}"
        return int(row[0])

    def message_id(self, outbound_id: int) -> str:
        with self.db() as db:
            return str(
                db.execute(
                    "SELECT message_id FROM outbound_messages WHERE id = ?", (outbound_id,)
                ).fetchone()[0]
            )


@dataclass
class Effect:
    """What one measured step did."""

    inbound: list[tuple[str, str, str]]  # status, kind, reason
    outbound: list[tuple[str, str]]  # kind, recipient
    tickets: int
    states: Counter[str]  # of every ticket, after the step
    stored: list[tuple[int, int]]  # the step's mails: bytes stored, size in the mailbox

    def statuses(self) -> Counter[str]:
        return Counter(status for status, _, _ in self.inbound)

    def mails(self, kind: str | None = None, to: str | None = None) -> int:
        return sum(1 for k, r in self.outbound if (kind is None or k == kind) and (to is None or r == to))


def effect(setup: Setup, marks: tuple[int, int, int]) -> Effect:
    with setup.db() as db:
        inbound = db.execute(
            "SELECT status, kind, reason FROM inbound_messages WHERE id > ? ORDER BY id", (marks[0],)
        ).fetchall()
        outbound = db.execute(
            "SELECT kind, recipient FROM outbound_messages"
            " WHERE id > ? AND kind NOT IN ('digest', 'monthly_report') ORDER BY id",
            (marks[1],),
        ).fetchall()
        tickets = db.execute("SELECT count(*) FROM tickets WHERE id > ?", (marks[2],)).fetchone()[0]
        states = Counter(state for (state,) in db.execute("SELECT state FROM tickets"))
        stored = db.execute(
            "SELECT length(raw), size FROM inbound_messages WHERE id > ? ORDER BY id", (marks[0],)
        ).fetchall()
    return Effect(
        [tuple(r) for r in inbound],  # type: ignore[misc]
        [tuple(r) for r in outbound],  # type: ignore[misc]
        int(tickets),
        states,
        [tuple(r) for r in stored],  # type: ignore[misc]
    )


def who(address: str) -> str:
    known = {APPLICANT: "the applicant", HEAD: "the head", BUDI: "the assignee", HELPDESK: "the sender"}
    return known.get(address, "each applicant")


KINDS = {
    "ack": "acknowledgment",
    "notify": "disposition request",
    "follow_up": "follow-up relayed",
    "answer_held": '"send it with JAWAB" notice',
    "missing_fields": "missing-fields reply",
    "refused": "refusal",
}


def _plural(noun: str) -> str:
    return noun[:-1] + "ies" if noun.endswith("y") else noun + "s"


def describe(e: Effect) -> str:
    parts = [", ".join(f"{n} {s}" for s, n in sorted(e.statuses().items()))]
    if e.tickets:
        parts.append(f"{e.tickets} ticket{'s' if e.tickets > 1 else ''} opened")
    queued = Counter((KINDS.get(k, k), who(r)) for k, r in e.outbound)
    listed = [f"{n} {_plural(noun) if n > 1 else noun} to {to}" for (noun, to), n in queued.items()]
    parts.append("mail queued: " + (", ".join(listed) or "none"))
    return "; ".join(parts)


# --- the inputs ------------------------------------------------------------------------------------


def request(
    body: str | None = None,
    *,
    sender: str = APPLICANT,
    subject: str = "Konsultasi penyusunan Analisis Beban Kerja",
    mid: str = "<req@kemendesa.example.go.id>",
    headers: str = "",
    content_type: str = "text/plain; charset=utf-8",
) -> bytes:
    if body is None:
        body = (
            "Yth. Tim Sekretariat,\n\nNama Lengkap : Rina Kartika\nNIP          : 19860926 201505 2 001\n"
            "Unit Kerja   : Biro Perencanaan, Kementerian Desa PDTT\n"
            "Jabatan      : Analis Kebijakan Ahli Muda\n"
            "No. HP       : 0812-3456-7890\n\nPermasalahan:\nBagaimana tata cara penyusunan Analisis Beban "
            "Kerja untuk jabatan fungsional yang baru dibentuk?\n\nHormat saya,\nRina\n"
        )
    return (
        f"From: Rina Kartika <{sender}>\r\nTo: {SERVICE}\r\nSubject: {subject}\r\n"
        f"Date: Mon, 16 Nov 2026 09:12:00 +0700\r\nMessage-ID: {mid}\r\n{headers}"
        f"MIME-Version: 1.0\r\nContent-Type: {content_type}\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        + body.replace("\n", "\r\n")
    ).encode()


FIELDS_TEXT = (
    "Nama Lengkap : Rina Kartika\nNIP : 19860926 201505 2 001\nUnit Kerja : Biro Perencanaan\n"
    "Jabatan : Analis Kebijakan Ahli Muda\nNo. HP : 0812-3456-7890\n"
)


@dataclass
class Item:
    key: str
    issue: str  # the item of #18, as the README's table names it
    input: str
    run: Callable[[Setup], tuple[Measured, Effect]]
    held: Callable[[Measured, Effect], bool]  # the outcome the issue asks for
    tests: str
    outcome: Callable[[Measured, Effect], str] | None = None  # else what the step did to mail


def _one(setup: Setup, raw: bytes) -> tuple[Measured, Effect]:
    marks = setup.marks()
    setup.drop(raw)
    return setup.once(), effect(setup, marks)


def _ticket(setup: Setup) -> None:
    """A request processed and acknowledged: the thread the next mail answers."""
    setup.drop(request())
    setup.once()


def run_baseline(setup: Setup) -> tuple[Measured, Effect]:
    return _one(setup, request())


def run_signature(setup: Setup) -> tuple[Measured, Effect]:
    body = (
        "Yth. Tim Sekretariat,\n\n"
        + FIELDS_TEXT
        + "\nPermasalahan: penyusunan ABK.\n\n--"
        + " " * 1_000_000
        + "x\n"
    )
    return _one(setup, request(body))


def run_attribution(setup: Setup) -> tuple[Measured, Effect]:
    _ticket(setup)
    ack = setup.outbound("ack", APPLICANT)
    marks = setup.marks()
    text = "Tambahan: jabatan saya Analis Kebijakan Ahli Muda.\nwrote" + " " * 64_000 + "x"
    setup.cli("reply", str(ack), "--as", APPLICANT, "--text", text)
    return setup.once(), effect(setup, marks)


def run_references(setup: Setup) -> tuple[Measured, Effect]:
    _ticket(setup)
    ack_id = setup.message_id(setup.outbound("ack", APPLICANT))
    refs = " ".join(f"<{i}@x.id>" for i in range(119_999)) + f" {ack_id}"
    body = "Tambahan: jabatan saya Analis Kebijakan Ahli Muda.\n"
    raw = request(body, subject="Re: Konsultasi", mid="<refs@kemendesa.example.go.id>",
                  headers=f"In-Reply-To: {ack_id}\r\nReferences: {refs}\r\n")  # fmt: skip
    return _one(setup, raw)


def run_huge(setup: Setup) -> tuple[Measured, Effect]:
    marks = setup.marks()
    head = request("Nama: Rina Kartika\nPertanyaan: lihat lampiran.\n", subject="Lampiran besar")
    setup.drop_stream(head, b"A" * 76 + b"\r\n", 300 * MIB)
    return setup.once(), effect(setup, marks)


def _with_attachment(i: int, size: int, digests: set[str]) -> bytes:
    head = request(
        f"{FIELDS_TEXT}Permasalahan: lihat lampiran {i}.\n",
        subject=f"Konsultasi dengan lampiran {i}",
        mid=f"<big-{i}@kemendesa.example.go.id>",
        sender=f"pemohon{i}@kemendesa.example.go.id",
        content_type='multipart/mixed; boundary="b"',
    ).split(b"\r\n\r\n", 1)
    payload = os.urandom(size)
    digests.add(hashlib.sha256(payload).hexdigest())
    data = base64.encodebytes(payload).replace(b"\n", b"\r\n")
    return (
        head[0] + b"\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + head[1]
        + b"\r\n--b\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n"
        + f'Content-Disposition: attachment; filename="scan-{i}.pdf"\r\n\r\n'.encode()
        + data + b"\r\n--b--\r\n"
    )  # fmt: skip


def run_export_intake(setup: Setup) -> tuple[Measured, Effect]:
    marks = setup.marks()
    for i in range(40):
        setup.drop(_with_attachment(i, 15 * MIB, setup.digests))
    return setup.once(), effect(setup, marks)


def run_export(setup: Setup) -> tuple[Measured, Effect]:
    run_export_intake(setup)
    marks = setup.marks()
    out = setup.folder / "arsip.mbox"
    measured = setup.cli("export", "mbox", str(out))
    written = next((line for line in measured.output.splitlines() if " written to " in line), "?")
    # Read back one message at a time: each attachment as it was sent.
    found = set()
    box = mailbox.mbox(out, create=False)
    for key in box.iterkeys():
        for part in box.get_message(key).walk():
            if part.get_content_type() == "application/pdf":
                found.add(hashlib.sha256(part.get_payload(decode=True)).hexdigest())
    box.close()
    intact = len(found & setup.digests)
    measured.output += (
        f"\n{written.split(' written to ')[0]} written, {out.stat().st_size / MIB:.0f} MiB of mbox,"
        f" {intact} of {len(setup.digests)} attachments intact"
    )
    return measured, effect(setup, marks)


def run_out_of_office(setup: Setup) -> tuple[Measured, Effect]:
    _ticket(setup)
    setup.cli("reply", str(setup.outbound("notify", HEAD)), "--as", HEAD, "--text", "ASSIGN Budi Santoso")
    setup.once()
    marks = setup.marks()
    text = (
        "Terima kasih atas email Anda. Saya sedang cuti sampai dengan tanggal 4 Januari 2027 "
        "dan akan membalas setelah kembali ke kantor."
    )
    setup.cli("reply", str(setup.outbound("assign", BUDI)), "--as", BUDI, "--text", text)
    return setup.once(), effect(setup, marks)


def run_autoresponder(setup: Setup) -> tuple[Measured, Effect]:
    marks = setup.marks()
    for i in range(50):
        setup.drop(
            request(
                f"Terima kasih, pesan Anda sudah kami terima dengan nomor layanan {1000 + i}.\n"
                "Tim kami akan segera menindaklanjuti.\n",
                sender=HELPDESK,
                subject=f"Tiket layanan #{1000 + i} telah dibuat",
                mid=f"<auto-{i}@instansi-lain.example.go.id>",
            )
        )
    return setup.once(), effect(setup, marks)


def run_cdata(setup: Setup) -> tuple[Measured, Effect]:
    html = (
        "<html><body><p>Nama Lengkap: Rina Kartika</p><p>NIP: 19860926 201505 2 001</p>"
        "<p>Unit Kerja: Biro Perencanaan</p><p>Jabatan: Analis</p><p>No. HP: 0812-3456-7890</p>"
        "<p>Permasalahan: penyusunan ABK <![foo[ jabatan baru?</p></body></html>\n"
    )
    return _one(setup, request(html, content_type="text/html; charset=utf-8"))


def run_deep(setup: Setup) -> tuple[Measured, Effect]:
    inner = "Content-Type: text/plain\r\n\r\nhalo\r\n"
    for i in range(5000):
        inner = f'Content-Type: multipart/mixed; boundary="b{i}"\r\n\r\n--b{i}\r\n{inner}\r\n--b{i}--\r\n'
    raw = (
        f"From: Rina Kartika <{APPLICANT}>\r\nTo: {SERVICE}\r\nSubject: bertingkat\r\n"
        f"Message-ID: <deep@kemendesa.example.go.id>\r\nMIME-Version: 1.0\r\n{inner}"
    ).encode()
    return _one(setup, raw)


ITEMS = [
    Item(
        "baseline",
        "(baseline) one ordinary request",
        "a 0.6 KB request with every field",
        run_baseline,
        lambda m, e: e.statuses() == {"processed": 1} and e.mails("ack", APPLICANT) == 1,
        "",
    ),
    Item(
        "signature",
        "1: signature regex, a 1 MB line in a request",
        "`--` + 1,000,000 spaces + `x` in the body (1.0 MB mail)",
        run_signature,
        lambda m, e: e.statuses() == {"processed": 1} and e.tickets == 1 and e.mails("ack", APPLICANT) == 1,
        "test_linear_time.py",
    ),
    Item(
        "attribution",
        "1: attribution regex, a reply",
        "`wrote` + 64,000 spaces + `x` in the applicant's reply to the acknowledgment",
        run_attribution,
        lambda m, e: e.statuses() == {"processed": 1} and e.tickets == 0,
        "test_linear_time.py",
    ),
    Item(
        "references",
        "1: 120,000 References",
        "a reply whose References holds 120,000 ids (1.3 MB header), ours last",
        run_references,
        lambda m, e: e.statuses() == {"processed": 1} and e.tickets == 0,
        "test_linear_time.py",
    ),
    Item(
        "huge",
        "2: a 300 MB mail",
        "a 300 MiB request file in the Maildir (limit 25 MiB)",
        run_huge,
        lambda m, e: (
            e.statuses() == {"quarantined": 1}
            and e.mails("refused", APPLICANT) == 1
            and e.tickets == 0
            and e.stored[0][0] < 64 * 1024
        ),
        "test_oversized.py",
        lambda m, e: f"{describe(e)}; its header block only read and stored ({e.stored[0][0]:,} bytes)",
    ),
    Item(
        "export-intake",
        "3: 40 requests with a 15 MiB attachment each, taken in",
        "40 mails of 20.3 MiB (base64) in the Maildir",
        run_export_intake,
        lambda m, e: e.statuses() == {"processed": 40} and e.tickets == 40,
        "",
    ),
    Item(
        "export",
        "3: `export mbox` of those 40 requests",
        "40 requests with a 15 MiB attachment each, and their acknowledgments",
        run_export,
        lambda m, e: " 40 of 40 attachments intact" in m.output,
        "test_export_memory.py",
        lambda m, e: m.output.strip().splitlines()[-1],
    ),
    Item(
        "out-of-office",
        "4: the assignee's out-of-office without headers",
        '"Saya sedang cuti sampai dengan tanggal 4 Januari 2027 …" from the assignee, '
        "as a reply to the Surat Tugas",
        run_out_of_office,
        lambda m, e: e.mails(to=APPLICANT) == 0 and e.states == {"assigned": 1},
        "test_replies.py",
        lambda m, e: f"{describe(e)}; nothing to the applicant, the ticket stays assigned",
    ),
    Item(
        "autoresponder",
        "5: an auto-responder opening a new thread each time",
        "50 mails from one helpdesk address, each a new thread, no automatic-mail header",
        run_autoresponder,
        lambda m, e: e.tickets == 20 and e.statuses()["held"] == 30 and e.mails(to=HELPDESK) == 20,
        "test_replies.py",
    ),
    Item(
        "cdata",
        "6: `<![foo[` in HTML",
        "an HTML-only request containing `<![foo[`",
        run_cdata,
        lambda m, e: e.statuses() == {"processed": 1} and e.mails("ack", APPLICANT) == 1,
        "test_linear_time.py",
    ),
    Item(
        "deep",
        "6: MIME nested 5,000 deep",
        "a 5,000-deep multipart/mixed structure (0.3 MB)",
        run_deep,
        lambda m, e: e.statuses() == {"quarantined": 1} and e.mails("refused", APPLICANT) == 1,
        "test_hostile.py",
    ),
]


def _time(m: Measured) -> str:
    return f"{m.work:.2f} s ({m.seconds:.1f} s)"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", default="", help="comma-separated keys: " + ", ".join(i.key for i in ITEMS))
    parser.add_argument("--keep", type=Path, default=None, help="keep each item's setup under this folder")
    args = parser.parse_args()
    wanted = [i for i in ITEMS if not args.only or i.key in args.only.split(",")]
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], check=False, cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    print(
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, commit {commit}, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}, {os.cpu_count()} cores"
    )
    rows = []
    failed = []
    for item in wanted:
        base = args.keep or Path(tempfile.mkdtemp(prefix="mailbot-reliability-"))
        folder = base / item.key
        print(f"{item.key} ...", end=" ", flush=True)
        measured, eff = item.run(Setup(folder))
        ok = item.held(measured, eff) and measured.exit_code == 0
        outcome = item.outcome(measured, eff) if item.outcome else describe(eff)
        mark = "" if ok else " (NOT AS ASKED)"
        print(f"{_time(measured)}, {measured.peak_mib:.0f} MiB: {outcome}{mark}")
        if not ok:
            failed.append(item.key)
            print(measured.output[-2000:])
        rows.append((item, measured, outcome, ok))
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)
    print()
    print("| #18 item | input | time: the work (whole command) | peak memory | outcome |")
    print("|---|---|---|---|---|")
    for item, m, outcome, ok in rows:
        mark = "" if ok else " **not as asked**"
        print(f"| {item.issue} | {item.input} | {_time(m)} | {m.peak_mib:.0f} MiB | {outcome}{mark} |")
    print()
    print("Rows for the README's reliability table (injected | test | what held):")
    for item, m, outcome, _ok in rows:
        if item.key == "baseline":
            continue
        tests = f"`bench/reliability.py`{', `' + item.tests + '`' if item.tests else ''}"
        took = f"{m.work:.2f} s ({m.seconds:.1f} s with the command's start)"
        print(f"| {item.input} | {tests} | {took}, peak {m.peak_mib:.0f} MiB: {outcome} |")
    if failed:
        print(f"not as asked: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
