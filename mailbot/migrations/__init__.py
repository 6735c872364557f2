"""The database schema's migrations (Alembic scripts in versions/)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

FOLDER = Path(str(resources.files("mailbot") / "migrations"))


def head_revision() -> str:
    """The newest migration's revision. Each file is named after its revision (0007_next_check.py
    holds revision "0007"), which a test holds against Alembic's own reading of the scripts."""
    return max(p.name.split("_", 1)[0] for p in (FOLDER / "versions").glob("[0-9]*_*.py"))
