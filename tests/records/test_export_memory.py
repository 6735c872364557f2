"""`export mbox` holds a bounded amount of mail in memory, whatever the messages' sizes (#18 item 3):
the raw mail is read in chunks of RAW_CHUNK_BYTES, not in batches of rows."""

from __future__ import annotations

import os
import subprocess
import sys
from email.message import EmailMessage

from mailbot.app import create_app
from mailbot.config import load_config
from mailbot.pipeline.intake import Source
from tests.conftest import ROOT, SERVICE_ADDRESS, write_config

MIB = 1024 * 1024


def _request_with_file(i: int, size: int) -> bytes:
    msg = EmailMessage()
    msg["From"] = f"Pemohon {i} <p{i}@example.go.id>"
    msg["To"] = SERVICE_ADDRESS
    msg["Subject"] = f"Konsultasi dengan lampiran besar {i}"
    msg["Message-ID"] = f"<big-{i}@example.go.id>"
    msg.set_content("Nama: Pemohon\nPertanyaan: lihat lampiran.\n")
    msg.add_attachment(os.urandom(size), maintype="application", subtype="pdf", filename=f"scan-{i}.pdf")
    return msg.as_bytes()


def test_export_memory_stays_flat_with_large_mail(tmp_path) -> None:
    config = write_config(
        tmp_path,
        database_url=f"sqlite:///{tmp_path / 'm.db'}",
        mailbox_url=f"maildir://{tmp_path / 'md'}",
        smtp_url=f"file://{tmp_path / 'out'}",
    )
    app = create_app(load_config(config))
    try:
        for i in range(16):
            app.process_raw(Source("t", 1, str(i)), _request_with_file(i, 6 * MIB))  # 8 MiB as base64
    finally:
        app.close()
    # The export in a process of its own, which reports its own peak (VmHWM, which starts afresh
    # with the new program; getrusage's maximum would carry the forking test process's) as it exits.
    probe = (
        "import runpy, sys\n"
        "sys.argv = ['mailbot', '--config', sys.argv[1], 'export', 'mbox', sys.argv[2]]\n"
        "try:\n"
        "    runpy.run_module('mailbot', run_name='__main__')\n"
        "finally:\n"
        "    hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')][0].split()[1]\n"
        "    print('PEAK', hwm, file=sys.stderr)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe, str(config), str(tmp_path / "a.mbox")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "PEAK" in out.stderr, out.stderr
    peak_mib = int(out.stderr.rsplit("PEAK", 1)[1].split()[0]) / 1024
    assert (tmp_path / "a.mbox").stat().st_size > 16 * 8 * MIB
    # 128 MiB of mail: holding it all (rows of 500) costs several times that; a chunk of 8 MiB
    # and the message being written cost a few tens of MiB above the interpreter's own.
    assert peak_mib < 200, f"peak {peak_mib:.0f} MiB"
