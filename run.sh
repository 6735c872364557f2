#!/usr/bin/env bash
# Set up and run mailbot on the embedded default: SQLite, a local Maildir
# mailbox and outgoing mail written to var/outbox. On the first run it drops
# sample requests into the mailbox and says where to look. Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")"
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  if ! "$PYTHON" -m venv .venv 2>/dev/null; then
    rm -rf .venv
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq python3-venv >/dev/null
    "$PYTHON" -m venv .venv
  fi
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e .
exec .venv/bin/mailbot "${@:-run}"
