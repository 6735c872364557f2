"""mailbot's benchmark: the raw limits of this machine beside mailbot's own rates, in one run.

Measured with a real Dovecot (IMAP) and a real aiosmtpd (SMTP) on loopback:
  - raw IMAP fetch rate (BODY.PEEK[] in batches of 200), raw parse rate (mail-parser),
    raw SMTP send rate (aiosmtplib, one reused connection, from a process of its own, one of the
    acknowledgments mailbot sent as the mail);
  - mailbot end to end: mail in the mailbox → ticket committed → acknowledgment accepted by the
    SMTP server, with `mailbot run` as a real process;
  - the latency of one new mail from arrival to acknowledgment with IDLE (median of 20);
  - peak memory (VmHWM) of the daemon and its child processes, for each backlog size;
  - CPU time per request of the daemon (intake), its parse worker and its sending child, of the
    SMTP server and of Dovecot, and how many of the machine's cores were busy during the run;
  - the mbox export rate.
Usage: bench/run [--sizes 1000,10000,50000] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from email.message import EmailMessage
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiosmtplib  # noqa: E402
import mailparser  # noqa: E402

from tests.conftest import write_config  # noqa: E402
from tests.servers import Dovecot, ImapAccount, children, start_smtp  # noqa: E402

SERVICE = "konsultasi@bpsdm.example.go.id"


def realistic_request(i: int) -> bytes:
    """A request as people send them: fields, an HTML part, an attachment for one in five."""
    msg = EmailMessage()
    msg["From"] = f"Pemohon {i} <pemohon{i}@instansi{i % 50}.example.go.id>"
    msg["To"] = SERVICE
    msg["Subject"] = f"Konsultasi penyusunan anggaran nomor {i}"
    msg["Message-ID"] = f"<bench-{i}-{secrets.token_hex(4)}@example.go.id>"
    text = (
        "Yth. Tim Sekretariat,\n\nNama Lengkap : Rina Kartika\nNIP : 19860926 201505 2 001\n"
        "Unit Kerja : Biro Perencanaan\nJabatan : Analis Kebijakan\nNo. HP : 0812-3456-7890\n\n"
        f"Permasalahan:\nBagaimana penyusunan ABK untuk unit baru (permohonan {i})? " + "Mohon arahan. " * 20
    )
    msg.set_content(text)
    html = (
        "<html><body><table>"
        + "".join(
            f"<tr><td><b>{k}</b></td><td>{v}</td></tr>"
            for k, v in (
                ("Nama", "Rina Kartika"),
                ("NIP", "19860926 201505 2 001"),
                ("Unit Kerja", "Biro Perencanaan"),
            )
        )
        + f"</table><p>Permasalahan {i}</p></body></html>"
    )
    msg.add_alternative(html, subtype="html")
    if i % 5 == 0:
        msg.add_attachment(
            os.urandom(20_000), maintype="application", subtype="pdf", filename=f"lampiran-{i}.pdf"
        )
    return msg.as_bytes()


def deliver(account: ImapAccount, mails: list[bytes]) -> None:
    """New mail as it arrives: IMAP APPEND (Dovecot tells an IDLE client at once)."""
    client = account.client()
    try:
        for raw in mails:
            client.append("INBOX", raw)
    finally:
        client.logout()


def load_backlog(dovecot: Dovecot, account: ImapAccount, mails: list[bytes]) -> None:
    """A backlog put into the account's INBOX as a delivery agent puts mail: a file each in its
    Maildir's new/, which Dovecot takes in at its next sync. IMAP APPEND one by one costs Dovecot
    quadratic time (it rewrites its UID list, megabytes by then, at every APPEND): 25 minutes for
    50,000 mails on the project's machine, before anything was measured."""
    client = account.client()
    try:
        client.select_folder("INBOX")  # Dovecot makes the Maildir
    finally:
        client.logout()
    maildir = dovecot.root / "mail" / account.user
    owner = maildir.stat()
    for sub in ("tmp", "new"):
        (maildir / sub).mkdir(exist_ok=True)
        os.chown(maildir / sub, owner.st_uid, owner.st_gid)
    stamp, host = int(time.time()), platform.node() or "bench"
    for i, raw in enumerate(mails):
        name = f"{stamp}.M{i}P{os.getpid()}.{host}"
        staged = maildir / "tmp" / name
        staged.write_bytes(raw)
        os.chown(staged, owner.st_uid, owner.st_gid)
        staged.rename(maildir / "new" / name)


def raw_fetch_rate(account: ImapAccount) -> float:
    client = account.client()
    try:
        client.select_folder("INBOX", readonly=True)
        uids = client.search(["ALL"])
        start = time.perf_counter()
        n = 0
        for i in range(0, len(uids), 200):
            data = client.fetch(uids[i : i + 200], ["BODY.PEEK[]"])
            n += len(data)
        return n / (time.perf_counter() - start)
    finally:
        client.logout()


def raw_parse_rate(mails: list[bytes]) -> float:
    """mail-parser itself: the library's limit, not mailbot's parsing on top of it."""
    start = time.perf_counter()
    for raw in mails:
        mailparser.parse_from_bytes(raw)
    return len(mails) / (time.perf_counter() - start)


def raw_send_rate(port: int, n: int, body: bytes) -> float:
    """Mails/s that aiosmtplib sends over one reused connection, from a process of its own (as
    mailbot's sending child is: a client in this process would share the GIL with the server),
    on the event loop mailbot runs, with `body`: one of the acknowledgments mailbot sent."""
    code = "import bench.bench as b, sys; b.send_client(*sys.argv[1:])"
    with tempfile.NamedTemporaryFile(prefix="mailbot-bench-body-") as f:
        f.write(body)
        f.flush()
        done = subprocess.run(
            [sys.executable, "-c", code, str(port), str(n), f.name],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
    return float(done.stdout.strip())


def send_client(port: str, n: str, body_file: str) -> None:
    """The client of `raw_send_rate`: prints mails/s."""
    from mailbot.shell import aio

    body = Path(body_file).read_bytes()

    async def run() -> float:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=int(port))
        await client.connect()
        start = time.perf_counter()
        for _ in range(int(n)):
            await client.sendmail(SERVICE, ["x@example.go.id"], body)
        elapsed = time.perf_counter() - start
        await client.quit()
        return int(n) / elapsed

    print(aio.run(run()))


class AckCounter:
    """Acknowledgments accepted so far, counted incrementally (the server runs in this process:
    rescanning everything it received every 50 ms would steal its CPU)."""

    def __init__(self, smtp: Any) -> None:
        self.received = smtp.handler.received
        self.seen = 0
        self.acks = 0

    def count(self) -> int:
        end = len(self.received)
        self.acks += sum(1 for r in self.received[self.seen : end] if r.rcpt_tos[0].startswith("pemohon"))
        self.seen = end
        return self.acks


def is_sender(pid: int) -> bool:
    try:
        return b"--sender-only" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_cpu() -> tuple[int, int]:
    """Jiffies of all CPUs since boot: (busy, total), from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    total = sum(fields[:8])  # user nice system idle iowait irq softirq steal
    return total - idle, total


def dovecot_cpu_seconds() -> float:
    """CPU time of the running Dovecot IMAP session processes (the daemon's connections)."""
    used = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        if text[text.index("(") + 1 : text.rindex(")")] == "imap":
            fields = text.rsplit(")", 1)[1].split()
            used += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return used


def peak_rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def end_to_end(dovecot: Dovecot, size: int, work: Path) -> dict[str, Any]:
    """`mailbot run` on a backlog of `size` requests: rate until every acknowledgment is accepted."""
    account = dovecot.new_account()
    smtp = start_smtp()
    mails = [realistic_request(i) for i in range(size)]
    load_backlog(dovecot, account, mails)
    result: dict[str, Any] = {"size": size}
    result["raw_fetch_per_s"] = round(raw_fetch_rate(account))
    result["raw_parse_per_s"] = round(raw_parse_rate(mails[: min(size, 2000)]))
    run_dir = work / f"run-{size}"
    run_dir.mkdir()
    config = write_config(
        run_dir,
        database_url=f"sqlite:///{run_dir / 'mailbot.db'}",
        mailbox_url=account.url(),
        smtp_url=smtp.url,
        smtp_extra=os.environ.get("BENCH_SMTP_EXTRA", ""),
        mailbox_extra=os.environ.get("BENCH_MAILBOX_EXTRA", ""),
        daily_digest=False,
    )
    log = (run_dir / "daemon.log").open("w")
    machine_before, sink_before, dovecot_before = machine_cpu(), time.process_time(), dovecot_cpu_seconds()
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mailbot", "--config", str(config), "run"],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    acks = AckCounter(smtp)
    peak = 0
    while acks.count() < size:
        time.sleep(0.05)
        peak = max(peak, peak_rss_kib(proc.pid) + sum(peak_rss_kib(c) for c in children(proc.pid)))
        if proc.poll() is not None:
            raise RuntimeError(f"mailbot stopped early; see {run_dir / 'daemon.log'}")
    elapsed = time.perf_counter() - start
    # Where the CPU went: the daemon (fetch, parse, database, compose) and its sending child; the
    # SMTP server receiving the mail (this process: aiosmtpd's thread) and Dovecot's IMAP
    # sessions; how many of the machine's cores were busy (all processes, kernel included).
    busy, total = (after - before for after, before in zip(machine_cpu(), machine_before, strict=True))
    result["cores_busy"] = round(busy / total * (os.cpu_count() or 1), 2) if total else 0.0
    result["cpu_ms_per_request_smtp_server"] = round((time.process_time() - sink_before) / size * 1000, 2)
    result["cpu_ms_per_request_dovecot"] = round((dovecot_cpu_seconds() - dovecot_before) / size * 1000, 2)
    kids = children(proc.pid)
    result["cpu_ms_per_request_intake"] = round(cpu_seconds(proc.pid) / size * 1000, 2)
    result["cpu_ms_per_request_parse_worker"] = round(
        sum(cpu_seconds(c) for c in kids if not is_sender(c)) / size * 1000, 2
    )
    result["cpu_ms_per_request_sending"] = round(
        sum(cpu_seconds(c) for c in kids if is_sender(c)) / size * 1000, 2
    )
    result["end_to_end_per_s"] = round(size / elapsed, 1)
    result["end_to_end_seconds"] = round(elapsed, 1)
    # All processes: the daemon (intake), its sending child and its parse worker, each at its peak.
    result["peak_rss_mib"] = round(peak / 1024, 1)
    # Latency of single new mails with IDLE, the backlog done.
    latencies = []
    for i in range(20):
        before = len(smtp.handler.received)
        t0 = time.perf_counter()
        deliver(account, [realistic_request(size + i)])
        while len(smtp.handler.received) < before + 2:
            time.sleep(0.002)
        latencies.append(time.perf_counter() - t0)
    result["idle_latency_median_s"] = round(statistics.median(latencies), 3)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    log.close()
    # The mbox export of what was just archived.
    out = run_dir / "arsip.mbox"
    t0 = time.perf_counter()
    exported = subprocess.run(
        [sys.executable, "-m", "mailbot", "--config", str(config), "export", "mbox", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    n_messages = int(exported.stdout.split()[0])
    result["mbox_export_per_s"] = round(n_messages / (time.perf_counter() - t0))
    ack = next(r.data for r in smtp.handler.received if r.rcpt_tos[0].startswith("pemohon"))
    result["raw_smtp_send_per_s"] = round(raw_send_rate(smtp.port, min(size, 2000), ack))
    smtp.controller.stop()
    result["share_of_raw_limit"] = round(
        result["end_to_end_per_s"]
        / min(result["raw_fetch_per_s"], result["raw_parse_per_s"], result["raw_smtp_send_per_s"] / 2),
        3,
    )
    return result


def scale_out(dovecot: Dovecot, size: int, database_url: str, processes: int, work: Path) -> dict[str, Any]:
    """`processes` daemons on one PostgreSQL database and one mailbox: requests per second until
    every acknowledgment is accepted (one reads, all send)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    account = dovecot.new_account()
    smtp = start_smtp()
    load_backlog(dovecot, account, [realistic_request(i) for i in range(size)])
    admin = make_url(database_url)
    name = f"mailbot_bench_{secrets.token_hex(4)}"
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    run_dir = work / f"pg-{processes}-{size}"
    run_dir.mkdir()
    config = write_config(
        run_dir,
        database_url=admin.set(database=name).render_as_string(hide_password=False),
        mailbox_url=account.url(),
        smtp_url=smtp.url,
        daily_digest=False,
    )
    start = time.perf_counter()
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "mailbot", "--config", str(config), "run"],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(processes)
    ]
    try:
        acks = AckCounter(smtp)
        while acks.count() < size:
            time.sleep(0.05)
        elapsed = time.perf_counter() - start
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait(timeout=60)
        smtp.controller.stop()
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()
    return {
        "size": size,
        "processes": processes,
        "database": "postgresql",
        "end_to_end_per_s": round(size / elapsed, 1),
        "mails_sent_per_s": round(2 * size / elapsed, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="1000,10000,50000")
    parser.add_argument("--json", help="write the figures to this file")
    parser.add_argument("--postgres", help="a PostgreSQL URL: also measure one and two processes on it")
    parser.add_argument("--scale-size", type=int, default=5000, help="backlog of the scale-out runs")
    args = parser.parse_args()
    sizes = [int(x) for x in args.sizes.split(",") if x.strip()]
    work = Path(tempfile.mkdtemp(prefix="mailbot-bench-"))
    root = Path(f"/tmp/mailbot-bench-dovecot-{secrets.token_hex(3)}")
    root.mkdir()
    dovecot = Dovecot(root)
    dovecot.start()
    results = []
    try:
        for size in sizes:
            print(f"== {size} requests", flush=True)
            r = end_to_end(dovecot, size, work)
            results.append(r)
            print(json.dumps(r), flush=True)
        scale = []
        if args.postgres:
            for processes in (1, 2):
                print(f"== PostgreSQL, {processes} process(es), {args.scale_size} requests", flush=True)
                scale.append(scale_out(dovecot, args.scale_size, args.postgres, processes, work))
                print(json.dumps(scale[-1]), flush=True)
    finally:
        dovecot.stop()
        shutil.rmtree(root, ignore_errors=True)
    machine = {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}
    print("\nmachine:", json.dumps(machine))
    header = (
        "size",
        "raw_fetch_per_s",
        "raw_parse_per_s",
        "raw_smtp_send_per_s",
        "end_to_end_per_s",
        "share_of_raw_limit",
        "idle_latency_median_s",
        "peak_rss_mib",
        "mbox_export_per_s",
        "cpu_ms_per_request_intake",
        "cpu_ms_per_request_parse_worker",
        "cpu_ms_per_request_sending",
        "cpu_ms_per_request_smtp_server",
        "cpu_ms_per_request_dovecot",
        "cores_busy",
    )
    print(" | ".join(header))
    for r in results:
        print(" | ".join(str(r[h]) for h in header))
    for r in scale:
        print(
            f"postgresql, {r['processes']} process(es): {r['end_to_end_per_s']} requests/s, "
            f"{r['mails_sent_per_s']} mails/s"
        )
    if args.json:
        Path(args.json).write_text(
            json.dumps({"machine": machine, "results": results, "scale_out": scale}, indent=2)
        )
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
