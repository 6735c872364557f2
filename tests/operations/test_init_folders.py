"""`mailbot init DIR` (cli/init.py) with hostile folders: a planted symlink, names with
URL and TOML metacharacters, line breaks and bytes outside UTF-8; the permissions it leaves."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from mailbot.config import load_config
from tests.conftest import ROOT


def _init(directory: Path | bytes, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mailbot", "init", *args, directory],
        cwd=ROOT,
        capture_output=True,
        text=True,
        errors="surrogateescape",
        timeout=120,
        env={**os.environ, "MAILBOT_SECRET": ""},
    )


def _where(config_path: Path) -> tuple[Path, Path, Path]:
    """Where the loaded configuration puts the database, the Maildir and the outbox."""
    config = load_config(config_path)
    database = make_url(config.database_url).database
    assert database is not None
    return Path(database), Path(config.mailbox.path), Path(config.smtp.path)


def test_a_symlink_planted_as_the_draft_does_not_make_init_write_through_it(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    directory = tmp_path / "shared"
    directory.mkdir()
    (directory / ".mailbot.toml.new").symlink_to(victim)

    out = _init(directory)

    assert out.returncode == 0, out.stderr
    assert victim.read_text() == "precious\n"
    config = directory / "mailbot.toml"
    assert config.is_file() and not config.is_symlink()
    assert _where(config)[0] == directory / "var" / "mailbot.db"


@pytest.mark.parametrize("name", ["w e#i?r%41d\x7f", "q'uo\"te ünï"])
def test_a_folder_named_config_with_url_characters_keeps_its_data_in_it(tmp_path: Path, name: str) -> None:
    directory = tmp_path / name / "config"  # a folder named config: the paths are written absolute

    out = _init(directory)

    assert out.returncode == 0, out.stderr
    var = directory / "var"
    assert _where(directory / "mailbot.toml") == (var / "mailbot.db", var / "mailbox", var / "outbox")


def test_data_elsewhere_under_a_name_with_a_hash_stays_there(tmp_path: Path) -> None:
    data = tmp_path / "lib#1" / "mailbot?x"
    out = _init(tmp_path / "etc", "--data-dir", str(data))
    assert out.returncode == 0, out.stderr
    assert _where(tmp_path / "etc" / "mailbot.toml") == (
        data / "mailbot.db",
        data / "mailbox",
        data / "outbox",
    )


def test_a_line_break_in_the_folder_name_cannot_write_settings(tmp_path: Path) -> None:
    directory = tmp_path / 'x\nprofiles_dir = "/nonexistent"\n#'
    out = _init(directory)
    assert out.returncode == 0, out.stderr
    config = load_config(directory / "mailbot.toml")
    assert config.settings.profiles_dir is None
    assert _where(directory / "mailbot.toml")[0] == directory / "var" / "mailbot.db"


def test_a_folder_name_outside_utf8_is_written_or_refused_without_a_traceback(tmp_path: Path) -> None:
    plain = os.fsencode(tmp_path) + b"/bad\xffname"
    out = _init(plain)
    assert out.returncode == 0, out.stderr  # the data are written relative: "var"
    assert "Traceback" not in out.stderr
    in_config = os.fsencode(tmp_path) + b"/bad\xffname2/config"  # absolute paths: TOML is UTF-8
    out = _init(in_config)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "UTF-8" in out.stderr
    assert not Path(os.fsdecode(in_config)).exists()  # refused before anything is written


def test_the_data_folder_is_the_services_own_and_the_file_is_readable(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        out = _init(tmp_path / "d")
    finally:
        os.umask(old)
    assert out.returncode == 0, out.stderr
    var = tmp_path / "d" / "var"
    # The database and the outbox hold NIK, NIP and phone numbers (UU 27/2022): no other user reads them.
    assert var.stat().st_mode & 0o777 == 0o700
    assert (var / "secret.key").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "d" / "mailbot.toml").stat().st_mode & 0o777 == 0o644
    assert [p.name for p in (tmp_path / "d").iterdir() if p.name.startswith(".")] == []


def test_a_folder_that_is_a_file_or_a_config_that_is_a_folder_is_said_not_a_traceback(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    out = _init(tmp_path / "file")
    assert out.returncode == 1 and "Traceback" not in out.stderr and str(tmp_path / "file") in out.stderr
    (tmp_path / "d" / "mailbot.toml").mkdir(parents=True)
    out = _init(tmp_path / "d", "--force")
    assert out.returncode == 1 and "Traceback" not in out.stderr and "is a folder" in out.stderr
    assert [p.name for p in (tmp_path / "d").iterdir()] == ["mailbot.toml"]


def test_what_a_run_creates_is_not_readable_by_other_users(tmp_path: Path) -> None:
    """A checkout's `./run.sh` under a login's umask 022: the database, the outbox's mail, the
    folders mailbot makes for them and the archive hold personal data; other users read none."""
    import mailbox as stdlib_mailbox

    from tests.conftest import request_mail, write_config

    path = write_config(
        tmp_path,
        database_url=f"sqlite:///{tmp_path / 'data' / 'mailbot.db'}",
        mailbox_url=f"maildir://{tmp_path / 'md'}",
        smtp_url=f"file://{tmp_path / 'outbox'}",
        daily_digest=False,
    )
    stdlib_mailbox.Maildir(tmp_path / "md", create=True).add(request_mail())
    done = subprocess.run(
        [sys.executable, "-m", "mailbot", "--config", str(path), "run", "--once"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        umask=0o022,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    made = [
        tmp_path / "data",
        *(tmp_path / "data").iterdir(),
        tmp_path / "outbox",
        *(tmp_path / "outbox").iterdir(),
    ]
    assert len([p for p in made if p.suffix == ".eml"]) == 2  # the acknowledgment, the disposition
    assert (tmp_path / "data" / "mailbot.db").exists()
    assert {p.name: oct(p.stat().st_mode & 0o007) for p in made if p.stat().st_mode & 0o007} == {}


def test_init_force_keeps_the_edited_configuration_as_a_backup(tmp_path: Path) -> None:
    """An office's edited mailbot.toml is not lost to `init --force`: it stays beside the new one,
    each backup under a name of its own."""
    assert _init(tmp_path / "d").returncode == 0
    config = tmp_path / "d" / "mailbot.toml"
    config.write_text(config.read_text() + "\n# edited by the office\n")
    edited = config.read_text()
    out = _init(tmp_path / "d")
    assert out.returncode == 1 and "--force" in out.stderr and config.read_text() == edited
    first = _init(tmp_path / "d", "--force")
    assert first.returncode == 0, first.stderr
    (backup,) = (tmp_path / "d").glob("mailbot.toml.*.bak")
    assert backup.read_text() == edited and str(backup) in first.stdout
    assert "# edited by the office" not in config.read_text()
    # Edited again: a second backup beside the first, which stays as it was.
    config.write_text(config.read_text() + "\n# edited again\n")
    second = _init(tmp_path / "d", "--force")
    assert second.returncode == 0, second.stderr
    backups = sorted((tmp_path / "d").glob("mailbot.toml.*.bak"))
    assert len(backups) == 2 and edited in [b.read_text() for b in backups]
    # Nothing changed since: nothing to keep, no third copy.
    third = _init(tmp_path / "d", "--force")
    assert third.returncode == 0 and "kept as" not in third.stdout
    assert len(list((tmp_path / "d").glob("mailbot.toml.*.bak"))) == 2


def test_the_backup_is_a_private_copy_even_of_a_symlinked_configuration(tmp_path: Path) -> None:
    """The backup keeps the old file's permissions (it may hold passwords) and its content, also
    where mailbot.toml is a symlink to a file kept elsewhere (the backup is not a second link)."""
    assert _init(tmp_path / "d").returncode == 0
    config = tmp_path / "d" / "mailbot.toml"
    managed = tmp_path / "managed.toml"
    managed.write_text(config.read_text() + "\n# password = 'rahasia'\n")
    managed.chmod(0o600)
    config.unlink()
    config.symlink_to(managed)
    old = managed.read_text()
    out = _init(tmp_path / "d", "--force")
    assert out.returncode == 0, out.stderr
    (backup,) = (tmp_path / "d").glob("mailbot.toml.*.bak")
    assert not backup.is_symlink() and backup.read_text() == old
    assert backup.stat().st_mode & 0o777 == 0o600
