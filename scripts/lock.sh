#!/usr/bin/env bash
# Regenerate requirements.lock: the exact versions of the runtime and test dependencies that CI
# (scripts/test.sh) and the image (deploy/Dockerfile) install, as pip constraints. Run it after
# changing a dependency in pyproject.toml, then run the tests and commit both files.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="$(mktemp -d)/venv"
trap 'rm -rf "$(dirname "$venv")"' EXIT
python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q ".[test]"
{
  echo "# Exact versions of the runtime and test dependencies (pip constraints), for Python $("$venv/bin/python" -c 'import sys; print(*sys.version_info[:2], sep=".")') on Linux."
  echo "# Written by scripts/lock.sh from pyproject.toml; used by scripts/test.sh (CI) and deploy/Dockerfile."
  "$venv/bin/python" -m pip freeze --exclude-editable | grep -v '^magnesium-cds[ =@]'
} > requirements.lock
echo "requirements.lock: $(grep -vc '^#' requirements.lock) packages"
