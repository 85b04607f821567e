"""Whether a serum magnesium is low or high, decided in one place; the patient's latest level read once.

The lab's own reference range wins over the service default (the mg-low and mg-high rules' limits); a
value reported as '> x' is never low and one reported as '< x' never high. Every rule, the treatment
context, the card's "Found:" line and the replay's outcome report ask this module.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from ..immutable import immutable
from ..knowledge.model import Knowledge
from ..record.model import LabValue, PatientRecord


def limits(lab: LabValue, knowledge: Knowledge) -> tuple[float, float]:
    """(lower, upper) limit in mg/dL: the lab's referenceRange, else the mg-low and mg-high defaults."""
    low = lab.ref_low if lab.ref_low is not None else knowledge.rule("mg-low").value("lower_limit")
    high = lab.ref_high if lab.ref_high is not None else knowledge.rule("mg-high").value("upper_limit")
    return low, high


def is_low(lab: LabValue, knowledge: Knowledge) -> bool:
    return lab.value is not None and lab.value < limits(lab, knowledge)[0] and lab.comparator not in (">", ">=")


def is_high(lab: LabValue, knowledge: Knowledge) -> bool:
    return lab.value is not None and lab.value > limits(lab, knowledge)[1] and lab.comparator not in ("<", "<=")


@immutable
class MagnesiumLevel:
    """The newest serum magnesium on record and what it says; each rule asks it within its own lookback."""

    now: datetime
    latest: LabValue | None  # any age; its unit may be unknown (then it is not usable)
    low_limit: float
    high_limit: float
    low: bool = False
    high: bool = False
    plausible: bool = False  # usable and above 0: 0 or less is a lab error, not hypomagnesaemia

    def current(self, within_days: float) -> LabValue | None:
        """The latest level when it is usable and within the lookback, else None."""
        latest = self.latest
        if latest is None or not latest.usable or latest.when < self.now - timedelta(days=within_days):
            return None
        return latest


def read_magnesium_level(record: PatientRecord, knowledge: Knowledge) -> MagnesiumLevel:
    latest = record.latest("magnesium")
    if latest is None or not latest.usable:
        default = knowledge.rule("mg-low").value("lower_limit"), knowledge.rule("mg-high").value("upper_limit")
        return MagnesiumLevel(record.now, latest, *default)
    low, high = limits(latest, knowledge)
    plausible = latest.value is not None and latest.value > 0
    return MagnesiumLevel(
        record.now, latest, low, high, is_low(latest, knowledge), is_high(latest, knowledge), plausible
    )
