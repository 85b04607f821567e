"""Low or high serum magnesium is decided in one place (clinical/magnesium_level.py) and read by every rule."""

from __future__ import annotations

from datetime import timedelta

import pytest

from cds_service.clinical.magnesium_level import read_magnesium_level
from cds_service.knowledge import load_knowledge
from cds_service.record.model import LabValue

from .records import NOW, patient_record

KNOWLEDGE = load_knowledge()


def mg(value: float | None, days_ago: float = 1, comparator: str | None = None, low: float | None = None) -> LabValue:
    return LabValue(
        "magnesium", "19123-9", "Observation/m", NOW - timedelta(days=days_ago), value, "mg/dL",
        value or 0.0, "mg/dL", comparator, low, None,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("lab", "low", "high", "plausible"),
    [
        (mg(1.5), True, False, True),  # below the mg-low default, 1.8 mg/dL
        (mg(1.5, low=1.4), False, False, True),  # the lab's own range wins over the default
        (mg(1.5, comparator=">"), False, False, True),  # '> 1.5' is no low value
        (mg(3.1), False, True, True),
        (mg(0.0), True, False, False),  # below any limit, but 0 is a lab error: no hypomagnesaemia card
        (mg(None), False, False, False),  # unit not recognised: not used
    ],
)
def test_low_and_high_are_decided_once(lab, low, high, plausible):
    level = read_magnesium_level(patient_record(labs={"magnesium": (lab,)}), KNOWLEDGE)
    assert (level.low, level.high, level.plausible) == (low, high, plausible)


def test_each_rule_asks_the_level_within_its_own_lookback():
    level = read_magnesium_level(patient_record(labs={"magnesium": (mg(1.5, days_ago=120),)}), KNOWLEDGE)
    assert level.low and level.current(180) is level.latest and level.current(90) is None
    assert read_magnesium_level(patient_record(), KNOWLEDGE).current(365) is None
