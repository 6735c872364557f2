"""A PostgreSQL URL on a machine without psycopg (mailbot installed without its `postgres`
extra): every command says which driver is missing and how to install it, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import ROOT, write_config

URL = "postgresql+psycopg://mailbot@127.0.0.1:5432/mailbot"
SAID = "database.url: no driver for postgresql+psycopg: the module psycopg is not installed"


def test_without_psycopg_each_command_names_the_missing_driver(tmp_path) -> None:
    config = write_config(
        tmp_path,
        database_url=URL,
        mailbox_url=f"maildir://{tmp_path / 'md'}",
        smtp_url=f"file://{tmp_path / 'out'}",
    )
    hide = tmp_path / "no-psycopg"
    hide.mkdir()
    # What Python does when a module is not installed: its import raises ModuleNotFoundError.
    (hide / "psycopg.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'psycopg'\", name='psycopg')\n"
    )
    env = {**os.environ, "PYTHONPATH": f"{hide}{os.pathsep}{ROOT}"}
    for command in (
        ["tickets", "list"],
        ["tickets", "show", "KONS-2026-000001"],
        ["status"],
        ["check-config"],
    ):
        done = subprocess.run(
            [sys.executable, "-m", "mailbot", "--config", str(config), *command],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 1, (command, done.stderr)
        assert "Traceback" not in done.stderr, (command, done.stderr)
        assert SAID in done.stderr and "mailbot[postgres]" in done.stderr, (command, done.stderr)
