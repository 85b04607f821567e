"""The facts a card's "Found:" line shows, in a clinician's words: each value with its unit and date.

One place phrases a lab, a renal estimate or a missing result, so that every card says them alike.
Resource ids, codes and how the service parsed an order never appear here; they go to the card's
explanation (cards/explain.py).
"""

from __future__ import annotations

from datetime import timedelta

from ..record.dates import day
from ..record.model import LabValue
from .magnesium_level import MagnesiumLevel
from .renal_function import RenalAssessment


def number(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"


def lab(label: str, value: LabValue) -> str:
    """'Serum Mg 0.62 mmol/L (1.51 mg/dL) on 3 Dec 2026': as reported, and in the unit the rules use."""
    converted = value.value is not None and value.unit and value.original_unit != value.unit
    also = f" ({number(value.value)} {value.unit})" if converted and value.value is not None else ""
    return f"{label} {value.reported()}{also} on {day(value.when)}"


def magnesium(level: MagnesiumLevel, within_days: float) -> str:
    """The latest serum magnesium, or that none is current (with the last one, if any): never 'normal'."""
    latest = level.latest
    if latest is None:
        return f"No serum Mg on record in the last {within_days:.0f} days"
    if latest.when < level.now - timedelta(days=within_days):
        return f"No serum Mg in the last {within_days:.0f} days (last: {latest.stated()})"
    if not latest.usable:
        return f"Serum Mg {latest.stated()}: unit not recognised, not used"
    text = lab("Serum Mg", latest)
    if level.high:
        return f"{text} (upper limit {level.high_limit:g} mg/dL)"
    if level.low:
        return f"{text} (lower limit {level.low_limit:g} mg/dL)"
    return text


def renal(assessment: RenalAssessment) -> str:
    return assessment.fact or assessment.line


def renal_missing(assessment: RenalAssessment) -> str:
    reason = assessment.unknown_reasons[0] if assessment.unknown_reasons else "no usable creatinine or eGFR"
    return reason[:1].upper() + reason[1:]
