"""A service user who may not read the data folder (it was made by root with `mailbot init`):
every command says so as a configuration problem, with the folder's owner, and no traceback."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT

SETPRIV = shutil.which("setpriv")
AS_NOBODY = [SETPRIV or "setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]


def _mailbot(*args: str, as_nobody: bool = False) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "mailbot", *args]
    return subprocess.run(
        [*AS_NOBODY, *command] if as_nobody else command,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def office() -> Iterator[Path]:
    """An office's folder nobody may enter but not its data folder (pytest's tmp_path is
    private to root, so it is made here)."""
    if SETPRIV is None:
        pytest.skip("setpriv (util-linux) is not installed: cannot run a command as another user")
    if _mailbot("--help", as_nobody=True).returncode != 0:
        pytest.skip("the user nobody cannot run this checkout's python")
    folder = Path(tempfile.mkdtemp(prefix="mailbot-office-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        (folder / "var").chmod(0o700)
        shutil.rmtree(folder)


def test_a_data_folder_the_user_may_not_enter_is_a_problem_not_a_traceback(office: Path) -> None:
    assert _mailbot("init", str(office)).returncode == 0
    config = str(office / "mailbot.toml")
    (office / "mailbot.toml").chmod(0o644)
    assert _mailbot("--config", config, "tickets", "list").returncode == 0  # it creates the database
    (office / "var").chmod(0o000)

    check = _mailbot("--config", config, "check-config", "--offline", as_nobody=True)
    assert check.returncode == 1 and "Traceback" not in check.stderr, check.stderr
    for key, name in (("security.secret_file", "secret.key"), ("database.url", "mailbot.db")):
        assert f"{key}: cannot read {office / 'var' / name}: permission denied" in check.stderr
    assert "owner root" in check.stderr and "chown the data folder" in check.stderr
    assert "mailbox.url: cannot read" in check.stderr  # and it went on to the rest

    for command in (["run", "--once"], ["tickets", "list"], ["status"]):
        done = _mailbot("--config", config, *command, as_nobody=True)
        assert done.returncode == 1, (command, done.stderr)
        assert "Traceback" not in done.stderr, (command, done.stderr)
        assert "permission denied" in done.stderr and "owner root" in done.stderr, (command, done.stderr)


def test_a_secret_file_only_root_may_read(office: Path) -> None:
    assert _mailbot("init", str(office)).returncode == 0
    (office / "mailbot.toml").chmod(0o644)
    (office / "var").chmod(0o755)  # the folder may be entered; the secret stays 0600 root's
    check = _mailbot("--config", str(office / "mailbot.toml"), "check-config", "--offline", as_nobody=True)
    assert check.returncode == 1 and "Traceback" not in check.stderr, check.stderr
    secret = office / "var" / "secret.key"
    assert f"security.secret_file: cannot read {secret}: permission denied (owner root)" in check.stderr


def test_a_secret_the_user_may_not_create(office: Path) -> None:
    assert _mailbot("init", str(office)).returncode == 0
    (office / "mailbot.toml").chmod(0o644)
    (office / "var").chmod(0o755)  # readable, but root's: the first run cannot write the secret
    secret = office / "var" / "secret.key"
    secret.unlink()
    done = _mailbot("--config", str(office / "mailbot.toml"), "run", "--once", as_nobody=True)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    said = f"cannot create {secret}: permission denied ({office / 'var'} is not writable, owner root)"
    assert said in done.stderr
