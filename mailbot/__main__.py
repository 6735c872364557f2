"""`python -m mailbot` is the `mailbot` command."""

import sys

from mailbot.cli import main

if __name__ == "__main__":  # not when a worker process (spawn) imports this module
    sys.exit(main())
