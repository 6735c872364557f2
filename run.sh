#!/usr/bin/env bash
# Set up and run mailbot on the embedded default: SQLite, a local Maildir
# mailbox and outgoing mail written to var/outbox. On the first run it drops
# sample requests into the mailbox and says where to look. Ctrl-C stops it.
# Later starts skip the set-up unless pyproject.toml changed.
set -euo pipefail
cd "$(dirname "$0")"
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
PYTHON=${PYTHON:-python3}
STAMP=.venv/.mailbot-installed
if [ ! -f "$STAMP" ] || [ pyproject.toml -nt "$STAMP" ]; then
  # WeasyPrint (the documents' PDF) needs Pango and fonts from Debian's packages.
  missing=""
  for pkg in libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-liberation2 fonts-dejavu-core; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing="$missing $pkg"
  done
  if [ -n "$missing" ]; then
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends $missing >/dev/null
  fi
  if [ ! -x .venv/bin/python ] && ! "$PYTHON" -m venv .venv 2>/dev/null; then
    rm -rf .venv
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
    "$PYTHON" -m venv .venv
  fi
  .venv/bin/python -m pip install -q --disable-pip-version-check -e .
  touch "$STAMP"
fi
exec .venv/bin/mailbot "${@:-run}"
