"""mailbot as an installed package: the wheel holds everything it reads, `mailbot init` writes a
ready configuration, and an office's own templates replace the shipped ones of the same name."""

from __future__ import annotations

import email
import email.policy
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from email.message import EmailMessage
from pathlib import Path

import pytest

from tests.conftest import ROOT

APPLICANT = "rina.kartika@kemendesa.example.go.id"
INCOMPLETE = "yohanes.wenda@example.com"


def _env() -> dict[str, str]:
    """The caller's environment without mailbot's own variables and without PYTHONPATH: only the
    configuration named on the command line counts, and nothing points back at the checkout."""
    return {k: v for k, v in os.environ.items() if not k.startswith("MAILBOT_") and k != "PYTHONPATH"}


def _run(argv: list[str | Path], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in argv], cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout
    )


def _outbox(folder: Path) -> dict[str, list[EmailMessage]]:
    """The mails written to a file outbox, by recipient."""
    mails: dict[str, list[EmailMessage]] = {}
    for path in sorted(folder.glob("*.eml")):
        msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        mails.setdefault(str(msg["To"].addresses[0].addr_spec), []).append(msg)
    return mails


def _text(msg: EmailMessage, subtype: str = "plain") -> str:
    part = msg.get_body(preferencelist=(subtype,))
    assert isinstance(part, EmailMessage)
    return str(part.get_content())


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built offline from a copy of the working tree (the checkout gets no build/)."""
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(ROOT / "mailbot", src / "mailbot", ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("wheels")
    built = _run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index",
         "-w", out, src],
        cwd=src,
        timeout=300,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    (path,) = out.glob("mailbot-*.whl")
    return path


def test_the_wheel_holds_what_mailbot_reads(wheel: Path):
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in (
        "mailbot/py.typed",
        "mailbot/templates/id/ack.txt.j2",
        "mailbot/templates/en/ack.html.j2",
        "mailbot/templates/documents/_layout.html.j2",
        "mailbot/templates/documents/id/surat_tugas.html.j2",
        "mailbot/profiles/sop-000.toml",
        "mailbot/profiles/sop-004.toml",
        "mailbot/profiles/roster-ehrm.example.csv",
        "mailbot/samples/01-lengkap.eml",
        "mailbot/samples/mailbot.toml.in",
        "mailbot/migrations/script.py.mako",
        "mailbot/migrations/env.py",
    ):
        assert name in names, name
    shipped = {p.relative_to(ROOT).as_posix() for p in (ROOT / "mailbot" / "templates").rglob("*.j2")}
    assert shipped <= names
    assert any(n.startswith("mailbot/migrations/versions/0") for n in names)


@pytest.mark.slow
def test_installed_wheel_outside_the_checkout_inits_and_processes_the_samples(wheel: Path, tmp_path: Path):
    """The issue's test: the wheel in a fresh venv outside the checkout, `mailbot init DIR`,
    `check-config`, `run --once` (the samples become tickets, the acknowledgements files in the
    outbox), `tickets list`."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True, timeout=120)
    python = venv / "bin" / "python"
    installed = _run(
        [sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps", "--no-index", wheel],
        cwd=tmp_path,
        timeout=300,
    )
    assert installed.returncode == 0, installed.stderr
    # mailbot's dependencies come from the project's environment: its site-packages as a plain
    # path entry. A .pth file in a path entry is not run, so the checkout's editable install of
    # mailbot (a finder installed by its own .pth) stays out, and the wheel's mailbot is found.
    site = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp_path)
                .stdout.strip())  # fmt: skip
    deps = dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib"))
    (site / "project-dependencies.pth").write_text("".join(f"{d}\n" for d in deps))
    where = _run([python, "-c", "import mailbot; print(mailbot.__file__)"], tmp_path)
    assert Path(where.stdout.strip()).is_relative_to(venv), where.stdout + where.stderr
    mailbot = venv / "bin" / "mailbot"
    work = tmp_path / "office"
    work.mkdir()

    # Installed, mailbot has no configuration of its own and says how to get one.
    bare = _run([mailbot, "tickets", "list"], work)
    assert bare.returncode == 1
    assert "mailbot init DIR" in bare.stderr and "--config" in bare.stderr and "Traceback" not in bare.stderr

    init = _run([mailbot, "init", "etc"], work)
    assert init.returncode == 0, init.stderr
    config = work / "etc" / "mailbot.toml"
    assert config.is_file()
    assert f"mailbot --config {config} run --once" in init.stdout
    assert f"the database {work / 'etc' / 'var' / 'mailbot.db'}," in init.stdout
    again = _run([mailbot, "init", "etc"], work)
    assert again.returncode == 1 and "--force" in again.stderr

    check = _run([mailbot, "--config", config, "check-config"], work)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "profiles: sop-000, sop-001, sop-002, sop-003, sop-004; active: sop-002" in check.stdout

    run = _run([mailbot, "--config", config, "run", "--once"], work)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Dropped 3 sample requests" in run.stdout
    assert "3 fetched, 3 processed" in run.stdout and "0 quarantined" in run.stdout
    mails = _outbox(work / "etc" / "var" / "outbox")
    (ack,) = mails[APPLICANT]
    assert "telah kami terima" in str(ack["Subject"]) and "<html" in _text(ack, "html").lower()
    (ask,) = mails[INCOMPLETE]
    assert "belum lengkap" in str(ask["Subject"])
    head = mails["kabag.umum@bpsdm.example.go.id"]
    assert "Permohonan disposisi" in " ".join(str(m["Subject"]) for m in head)

    listing = _run([mailbot, "--config", config, "tickets", "list", "--json"], work)
    assert listing.returncode == 0, listing.stderr
    tickets = json.loads(listing.stdout)
    assert sorted(t["state"] for t in tickets) == ["awaiting_info", "new", "new"]
    assert {t["applicant_email"] for t in tickets} >= {APPLICANT, INCOMPLETE}


def _init(tmp_path: Path, *extra: str) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    out = _run([sys.executable, "-m", "mailbot", "init", tmp_path / "office", *extra], tmp_path)
    assert out.returncode == 0, out.stderr
    return tmp_path / "office" / "mailbot.toml"


OFFICE_ACK = """\
{% block subject %}[{{ ticket.number }}] Diterima oleh Inspektorat Contoh{% endblock %}
{% block body %}
{% import "id/_macros.j2" as m %}
{{ m.salutation(ticket.applicant_name) }}

Permohonan Bapak/Ibu tercatat dengan nomor {{ ticket.number }} (templat kantor sendiri).
{% endblock %}
"""

OFFICE_DISPOSITION = """\
{% extends "documents/id/_base.html.j2" %}
{% block title %}Lembar Disposisi {{ number }}{% endblock %}
{% block content %}<h1>LEMBAR DISPOSISI INSPEKTORAT CONTOH</h1><p>{{ ticket.number }}</p>{% endblock %}
"""


def test_an_office_template_replaces_the_shipped_one_of_its_name(tmp_path: Path):
    config = _init(tmp_path)
    office = config.parent / "templates"
    (office / "id").mkdir(parents=True)
    (office / "id" / "ack.txt.j2").write_text(OFFICE_ACK)
    (office / "documents" / "id").mkdir(parents=True)
    (office / "documents" / "id" / "lembar_disposisi.html.j2").write_text(OFFICE_DISPOSITION)
    text = config.read_text()
    assert '# templates_dir = "templates"' in text
    config.write_text(text.replace('# templates_dir = "templates"', 'templates_dir = "templates"'))

    run = _run([sys.executable, "-m", "mailbot", "--config", config, "run", "--once"], tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    mails = _outbox(config.parent / "var" / "outbox")
    (ack,) = mails[APPLICANT]
    assert "Diterima oleh Inspektorat Contoh" in str(ack["Subject"])
    assert "(templat kantor sendiri)" in _text(ack)
    # The rest is mailbot's own: the acknowledgment's HTML part, the other mails, the macros.
    assert "telah kami terima" in _text(ack, "html")
    (ask,) = mails[INCOMPLETE]
    assert "belum lengkap" in str(ask["Subject"]) and "templat kantor" not in _text(ask)
    assert _text(ack).startswith("Yth.")

    listing = _run(
        [sys.executable, "-m", "mailbot", "--config", config, "tickets", "list", "--json"], tmp_path
    )
    number = next(t["number"] for t in json.loads(listing.stdout) if t["applicant_email"] == APPLICANT)
    doc = _run(
        [sys.executable, "-m", "mailbot", "--config", config, "document", number, "--kind", "disposisi"],
        tmp_path,
    )
    assert doc.returncode == 0, doc.stderr
    assert "LEMBAR DISPOSISI INSPEKTORAT CONTOH" in doc.stdout
    assert "Dokumen ini dibuat oleh sistem" in doc.stdout  # the shipped base around the office's content


def test_a_missing_office_template_folder_is_a_problem_of_its_key(tmp_path: Path):
    config = _init(tmp_path)
    config.write_text(config.read_text().replace('# templates_dir = "templates"', 'templates_dir = "kop"'))
    check = _run([sys.executable, "-m", "mailbot", "--config", config, "check-config", "--offline"], tmp_path)
    assert check.returncode == 1
    assert f"service.templates_dir: {config.parent / 'kop'} is not a folder" in check.stderr


def test_init_keeps_paths_unambiguous(tmp_path: Path):
    # DIR/var, written relative: the file's own folder is the base.
    plain = _init(tmp_path)
    assert 'data_dir = "var"' in plain.read_text()
    assert 'url = "maildir://var/mailbox"' in plain.read_text()
    # A folder named `config` would be read relative to the folder above: absolute paths.
    config_dir = tmp_path / "config"
    out = _run([sys.executable, "-m", "mailbot", "init", config_dir], tmp_path)
    assert out.returncode == 0, out.stderr
    text = (config_dir / "mailbot.toml").read_text()
    assert f'data_dir = "{config_dir / "var"}"' in text
    assert f'url = "sqlite:///{config_dir / "var" / "mailbot.db"}"' in text
    assert (config_dir / "var" / "secret.key").is_file()
    # Data elsewhere (/etc/mailbot with /var/lib/mailbot): absolute.
    data = tmp_path / "lib" / "mailbot"
    etc = _init(tmp_path / "etc", "--data-dir", str(data))
    assert f'url = "file://{data / "outbox"}"' in etc.read_text()
    assert (data / "secret.key").stat().st_mode & 0o777 == 0o600
    # --force writes the file again and keeps the secret (mails already sent keep their tokens).
    secret = (data / "secret.key").read_bytes()
    forced = _run(
        [sys.executable, "-m", "mailbot", "init", "--force", "--data-dir", data, etc.parent], tmp_path
    )
    assert forced.returncode == 0, forced.stderr
    assert (data / "secret.key").read_bytes() == secret
