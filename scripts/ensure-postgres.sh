#!/usr/bin/env bash
# The store tests need PostgreSQL's server binaries (they start a throwaway cluster on a loopback
# port themselves, see tests/postgres.py). Install Debian's package when they are missing and we may.
set -euo pipefail
if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure-postgres: no apt-get here; install a PostgreSQL server or set CDS_TEST_POSTGRES_URL" >&2
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
    echo "ensure-postgres: not root and no passwordless sudo: PostgreSQL tests will be skipped" >&2
    exit 0
  fi
fi
echo "ensure-postgres: installing Debian's postgresql for the store tests" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends postgresql >/dev/null
