"""CONTRIBUTING.md is complete: a rule added as it says, in a throwaway copy, passes the tests with no
other test or fixture edited (tests/new_rule.py), and the guide names every file that took."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from .new_rule import EDITS, ROOT
from .timing import scaled

GUIDE = (ROOT / "CONTRIBUTING.md").read_text(encoding="utf-8")


def test_the_guide_names_every_file_a_new_rule_touches():
    for name, _after, _text in EDITS:
        short = name.removeprefix("cds_service/")
        assert short in GUIDE or Path(name).name in GUIDE, f"CONTRIBUTING.md does not say to edit {name}"


def test_a_table_only_rule_added_as_the_guide_says_passes_with_no_other_test_edited():
    run = subprocess.run(
        [sys.executable, "-m", "tests.new_rule"], cwd=ROOT, capture_output=True, text=True, timeout=scaled(600)
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert " passed" in run.stdout and " failed" not in run.stdout, run.stdout[-2000:]
