#!/usr/bin/env bash
# Set up a virtualenv with the service and its test tools, then run the linter and the whole suite
# (unit, contract, API, real FHIR server, real PostgreSQL, gunicorn, headless Chromium). Used as-is by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-debian-packages.sh
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[test]"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/python -m pytest "$@"
