"""Labs are parsed only as far as a rule reads them: a whole series only for the analytes some rule
reads as one; for the rest, the newest result. A rule reading another analyte's series would get
one result and go wrong silently: this test keeps the list honest."""

from __future__ import annotations

import re

from cds_service.record.labs import SERIES_ANALYTES

from .conftest import ROOT


def test_only_the_series_analytes_are_read_as_series():
    read = set()
    for path in (ROOT / "cds_service").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        read |= set(re.findall(r"\.series\(\"([a-z_]+)\"\)", text))
        if path.name != "model.py":  # PatientRecord.latest() reads the newest of a series: allowed
            assert not re.search(r"\.series\((?!\")", text), f"{path}: a series read by a computed name"
            assert ".labs[" not in text and ".labs.get(" not in text, f"{path}: read labs through series()/latest()"
    assert read == SERIES_ANALYTES
