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
# Analytes some rule reads as a series (clinical/renal_function.py); every other is read by `latest()`.
SERIES_ANALYTES = frozenset({"creatinine", "egfr"})


def lab_series(
    observations: Iterable[Mapping[str, Any]], knowledge: Knowledge, now: datetime, unreadable: list[str] | None = None
) -> dict[str, tuple[LabValue, ...]]:
    """Per analyte, the usable results newest first. Results dated after `now` are not yet known.

    Only what a rule can read is fully parsed (and only that can be reported unreadable): for the
    analytes read as a series (SERIES_ANALYTES: the creatinine rise, the reported eGFR of the same
    day as the creatinine) the results inside the longest lookback plus the AKI window; for every
    other analyte only the newest result that has a value, since the rules read it by `latest()`
    alone; and for each analyte the newest one, so that a card can say how old it is.
    """
    horizon = now - timedelta(days=knowledge.lab_retention_days)
    latest_allowed = now + FUTURE_TOLERANCE
    candidates: dict[str, list[tuple[datetime, str, dict]]] = {}
    to_analyte = knowledge.loinc_to_analyte
    # Runs once per Observation (10,000 in a long chart): the common time, effectiveDateTime, is read inline.
    for obs in observations:
        status = obs.get("status")
        if type(status) is not str or status not in USABLE_STATUSES:
            continue
        code, analyte_name = _analyte_code(obs, to_analyte)
        if analyte_name is None:
            continue
        when = parse_datetime(obs.get("effectiveDateTime")) or effective_time(obs)
        if when is None or when > latest_allowed:
            continue
        found = candidates.get(analyte_name)
        if found is None:
            candidates[analyte_name] = [(when, code, obs)]
        else:
            found.append((when, code, obs))
    series: dict[str, tuple[LabValue, ...]] = {}
    for analyte_name, found in candidates.items():
        found.sort(key=lambda item: item[0], reverse=True)
        labs: dict[str, LabValue] = {}
        whole_series = analyte_name in SERIES_ANALYTES
        for i, (when, code, obs) in enumerate(found):
            if (i > 0 and when < horizon) or (labs and not whole_series):
                break
            try:
                lab = _lab_value(obs, code, analyte_name, when, knowledge)
            except (TypeError, ValueError, AttributeError, KeyError):  # not FHIR: reported, not fatal
                lab = None
                if unreadable is not None:
                    unreadable.append("Observation")
            if lab is not None:
                labs.setdefault(lab.reference, lab)  # the same Observation twice counts once
        series[analyte_name] = tuple(labs.values())
    return {name: labs for name, labs in series.items() if labs}


def _analyte_code(obs: Mapping[str, Any], to_analyte: Mapping[str, str]) -> tuple[str, str | None]:
    """The LOINC code of the Observation that names an analyte a rule reads (the code looked up first:
    most Observations are of analytes no rule reads)."""
    code_block = obs.get("code")
    codings = code_block.get("coding") if type(code_block) is dict else None
    if type(codings) is not list:
        return "", None
    for coding in codings:
        if type(coding) is dict:
            code = coding.get("code")
            analyte = to_analyte.get(code) if type(code) is str else None
            if analyte and coding.get("system") == LOINC:
                return code, analyte
    return "", None


def effective_time(obs: Mapping[str, Any]) -> datetime | None:
    """When an Observation was taken: effectiveDateTime, else effectivePeriod.start, else issued."""
    when = parse_datetime(obs.get("effectiveDateTime"))
    if when is None and type(obs.get("effectivePeriod")) is dict:
        when = parse_datetime(obs["effectivePeriod"].get("start"))
    return when or parse_datetime(obs.get("issued"))


def _lab_value(
    obs: Mapping[str, Any], code: str, analyte_name: str, when: datetime, knowledge: Knowledge
) -> LabValue | None:
    quantity = obs.get("valueQuantity")
    if type(quantity) is not dict:
        return None
    raw = quantity.get("value")
    if type(raw) not in (int, float):
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
    if not isinstance(ranges, list) or not ranges or not isinstance(ranges[0], dict):
        return None, None

    def bound(key: str) -> float | None:
        q = ranges[0].get(key)
        if not isinstance(q, dict) or isinstance(q.get("value"), bool) or not isinstance(q.get("value"), int | float):
            return None
        return to_canonical(float(q["value"]), ucum_unit(q, knowledge.unit_aliases), analyte)

    return bound("low"), bound("high")


def every_lab_value(observations: Iterable[Mapping[str, Any]], knowledge: Knowledge) -> dict[str, list[LabValue]]:
    """Per analyte, every usable result oldest first, whatever its age: what a history replay reads to
    see what followed an order (`cds-service simulate` outcomes). Unreadable ones are left out."""
    out: dict[str, list[LabValue]] = {}
    for obs in observations:
        status = obs.get("status")
        if type(status) is not str or status not in USABLE_STATUSES:
            continue
        code, analyte_name = _analyte_code(obs, knowledge.loinc_to_analyte)
        when = effective_time(obs) if analyte_name else None
        if analyte_name is None or when is None:
            continue
        try:
            lab = _lab_value(obs, code, analyte_name, when, knowledge)
        except (TypeError, ValueError, AttributeError, KeyError):
            lab = None
        if lab is not None:
            out.setdefault(analyte_name, []).append(lab)
    for labs in out.values():
        labs.sort(key=lambda lab: lab.when)
    return out
