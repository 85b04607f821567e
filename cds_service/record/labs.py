"""Observations -> LabValue series: filtered by code first (cheap), then status, value, date and unit."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from ..knowledge.model import Knowledge
from .dates import parse_datetime
from .model import LabValue
from .units import to_canonical, ucum_unit

LOINC = "http://loinc.org"
USABLE_STATUSES = frozenset({"final", "amended", "corrected"})
COMPARATORS = frozenset({"<", "<=", ">=", ">"})
FUTURE_TOLERANCE = timedelta(hours=12)


def lab_series(
    observations: Iterable[Mapping[str, Any]], knowledge: Knowledge, now: datetime
) -> dict[str, tuple[LabValue, ...]]:
    """Per analyte, the usable results newest first. Results dated after `now` are not yet known."""
    found: dict[str, dict[str, LabValue]] = {}
    for obs in observations:
        code, analyte_name = _analyte_code(obs, knowledge)
        if analyte_name is None or obs.get("status") not in USABLE_STATUSES:
            continue
        lab = _lab_value(obs, code, analyte_name, knowledge)
        if lab is None or lab.when > now + FUTURE_TOLERANCE:
            continue
        found.setdefault(analyte_name, {})[lab.reference] = lab  # same Observation twice -> once
    return {name: tuple(sorted(labs.values(), key=lambda v: v.when, reverse=True)) for name, labs in found.items()}


def _analyte_code(obs: Mapping[str, Any], knowledge: Knowledge) -> tuple[str, str | None]:
    code_block = obs.get("code")
    if not isinstance(code_block, Mapping):
        return "", None
    for coding in code_block.get("coding") or ():
        if isinstance(coding, Mapping) and coding.get("system") == LOINC:
            analyte = knowledge.loinc_to_analyte.get(str(coding.get("code")))
            if analyte:
                return str(coding["code"]), analyte
    return "", None


def _lab_value(obs: Mapping[str, Any], code: str, analyte_name: str, knowledge: Knowledge) -> LabValue | None:
    quantity = obs.get("valueQuantity")
    if not isinstance(quantity, Mapping):
        return None
    raw = quantity.get("value")
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        return None
    when = parse_datetime(obs.get("effectiveDateTime"))
    if when is None and isinstance(obs.get("effectivePeriod"), Mapping):
        when = parse_datetime(obs["effectivePeriod"].get("start"))
    when = when or parse_datetime(obs.get("issued"))
    if when is None:
        return None
    analyte = knowledge.analytes[analyte_name]
    unit = ucum_unit(quantity, knowledge.unit_aliases)
    value = to_canonical(float(raw), unit, analyte)
    comparator = quantity.get("comparator") if quantity.get("comparator") in COMPARATORS else None
    low, high = _reference_range(obs, analyte, knowledge)
    shown_unit = quantity.get("unit") or quantity.get("code") or "(no unit)"
    return LabValue(
        analyte=analyte_name,
        code=code,
        reference=f"Observation/{obs.get('id') or '(no id)'}",
        when=when,
        value=value,
        unit=analyte.canonical_unit if value is not None else str(shown_unit),
        original_value=float(raw),
        original_unit=str(shown_unit)[:40],
        comparator=comparator,
        ref_low=low,
        ref_high=high,
    )


def _reference_range(obs: Mapping[str, Any], analyte, knowledge: Knowledge) -> tuple[float | None, float | None]:
    ranges = obs.get("referenceRange")
    if not isinstance(ranges, list) or not ranges or not isinstance(ranges[0], Mapping):
        return None, None

    def bound(key: str) -> float | None:
        q = ranges[0].get(key)
        if (
            not isinstance(q, Mapping)
            or isinstance(q.get("value"), bool)
            or not isinstance(q.get("value"), int | float)
        ):
            return None
        return to_canonical(float(q["value"]), ucum_unit(q, knowledge.unit_aliases), analyte)

    return bound("low"), bound("high")
