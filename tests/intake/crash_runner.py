"""Run intake once in a child process and SIGKILL it at a chosen point (fault injection).

Usage: crash_runner.py CONFIG after_commit
The real code path runs; the only addition is the App's documented `after_commit` hook,
which here kills the process between the commit and the flag/move in the mailbox.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from mailbot.app import create_app
from mailbot.config import load_config


def main() -> None:
    config = load_config(Path(sys.argv[1]))
    point = sys.argv[2]
    app = create_app(config)
    if point == "after_commit":
        app.after_commit = lambda outcome: os.kill(os.getpid(), signal.SIGKILL)
    app.run_intake_once()
    sys.exit(3)  # not reached when the kill happened


if __name__ == "__main__":
    main()
