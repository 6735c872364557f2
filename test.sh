#!/usr/bin/env bash
# The whole test suite on a fresh Debian machine: installs what the tests need
# (Dovecot from Debian's packages, a virtual environment with the declared
# packages), then runs the one check command: ruff, mypy, pytest.
set -euo pipefail
cd "$(dirname "$0")"

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v dovecot >/dev/null 2>&1 && [ ! -x /usr/sbin/dovecot ]; then
  echo "== installing Dovecot (dovecot-imapd) from Debian's packages"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends dovecot-imapd >/dev/null
fi
# pdftotext reads the PDFs mailbot writes; mailutils is a real mail program that reads its mbox.
# WeasyPrint (the documents' PDF) lays text out with Pango and subsets fonts with HarfBuzz;
# Liberation Sans has Arial's metrics (tata naskah dinas), DejaVu is the fallback.
missing=""
command -v pdftotext >/dev/null 2>&1 || missing="$missing poppler-utils"
command -v messages >/dev/null 2>&1 || missing="$missing mailutils"
for pkg in libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-liberation2 fonts-dejavu-core; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing="$missing $pkg"
done
if [ -n "$missing" ]; then
  echo "== installing$missing from Debian's packages"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv"
  if ! "$PYTHON" -m venv .venv 2>/dev/null; then
    rm -rf .venv
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
    "$PYTHON" -m venv .venv
  fi
fi
echo "== installing mailbot and its test dependencies"
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]'

# PostgreSQL runs too when a server answers (DOMAIN: the production database).
if [ -z "${MAILBOT_TEST_DATABASE_URL:-}" ] && command -v pg_isready >/dev/null 2>&1 \
   && pg_isready -q -h 127.0.0.1 -p 5432; then
  export MAILBOT_TEST_DATABASE_URL="postgresql+psycopg://postgres@127.0.0.1:5432/test"
fi
echo "== PostgreSQL tests: ${MAILBOT_TEST_DATABASE_URL:-skipped (no server answered)}"

exec ./check "$@"
