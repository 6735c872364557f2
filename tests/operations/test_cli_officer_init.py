"""`mailbot init` given the file's path instead of its folder, as the README's reader types it:
refused with what to type instead, and nothing is created."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT


def _init(target: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mailbot", "init", str(target)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "MAILBOT_SECRET": ""},
    )


def test_init_given_a_toml_path_says_to_give_its_folder(tmp_path) -> None:
    office = tmp_path / "new1"
    done = _init(office / "mailbot.toml")
    assert done.returncode == 1
    assert f"did you mean `mailbot init {office}`?" in done.stderr
    assert "DIR is the folder" in done.stderr and "Traceback" not in done.stderr
    assert not office.exists()  # neither the folder nor a folder named mailbot.toml


def test_init_given_an_existing_file_leaves_it_alone(tmp_path) -> None:
    existing = tmp_path / "mailbot.toml"
    existing.write_text("# the office's own\n")
    done = _init(existing)
    assert done.returncode == 1
    assert f"did you mean `mailbot init {tmp_path}`?" in done.stderr
    assert "File exists" not in done.stderr
    assert existing.read_text() == "# the office's own\n"
    other = tmp_path / "notes.txt"  # a regular file of another name: not a folder either
    other.write_text("x")
    assert _init(other).returncode == 1 and other.read_text() == "x"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mailbot.toml", "notes.txt"]
