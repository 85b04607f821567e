#!/usr/bin/env bash
# Set up a virtualenv with the service and its test tools (the versions in requirements.lock), then
# run the linter, the import contract, the type check and the suite on every core (unit, contract,
# API, real FHIR server, real PostgreSQL, gunicorn, headless Chromium). Used as-is by .ci/run.
# Arguments go to pytest:
#   bash scripts/test.sh -m unit              the quick loop (CONTRIBUTING.md, "Fast tests")
#   bash scripts/test.sh tests/test_api.py    one file
# The install is skipped when pyproject.toml and requirements.lock have not changed since the last
# one (a stamp in .venv); CDS_TEST_WORKERS=0 runs the tests in this one process (default: auto).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-debian-packages.sh
stamp=.venv/.installed-from
wanted="$(cat pyproject.toml requirements.lock | sha256sum | cut -d' ' -f1)"
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
  python3 -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -c requirements.lock -e ".[test]"
  echo "$wanted" > "$stamp"
else
  echo "test.sh: pyproject.toml and requirements.lock unchanged since the last install: not reinstalling" >&2
fi
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/lint-imports  # the import contract ([tool.importlinter] in pyproject.toml): imports go downward only
.venv/bin/mypy  # mypy --strict on the [tool.mypy] files of pyproject.toml
.venv/bin/python -m pytest -n "${CDS_TEST_WORKERS:-auto}" "$@"
