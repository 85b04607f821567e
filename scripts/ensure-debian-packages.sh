#!/usr/bin/env bash
# The test suite needs programs from Debian that pip cannot give: PostgreSQL's server binaries
# (the store tests start a throwaway cluster on a loopback port, see tests/postgres.py), Chromium
# (the rule-page browser test drives it through Playwright by its path; no browser is downloaded)
# and nginx (the shipped buffering front, deploy/nginx/nginx.conf, under slow clients).
# Install whichever is missing, in one apt-get run, when we may.
set -euo pipefail
missing=()
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then
  missing+=(postgresql)
fi
if ! command -v chromium >/dev/null 2>&1; then
  missing+=(chromium)
fi
if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
  missing+=(nginx-light)
fi
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
why="install them yourself (or set CDS_TEST_POSTGRES_URL / CDS_TEST_CHROMIUM)"
if ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure-debian-packages: no apt-get here and ${missing[*]} missing: $why" >&2
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
    echo "ensure-debian-packages: not root, no passwordless sudo, ${missing[*]} missing: $why; their tests skip (fail with CI=true)" >&2
    exit 0
  fi
fi
echo "ensure-debian-packages: installing Debian's ${missing[*]} for the tests" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
