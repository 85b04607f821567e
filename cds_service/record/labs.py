"""Observations -> LabValue series: filtered by code first (cheap), then status, value, date and unit."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime, time, timedelta
from operator import itemgetter
from typing import Any

import msgspec

from ..knowledge.model import LOINC, Analyte, Knowledge
from ..memo import Memo
from . import fhir_types
from .dates import parse_datetime, parse_datetime_text
from .fhir_types import Observation, Quantity, as_json
from .model import LabValue
from .units import to_canonical, ucum_unit, ucum_unit_of

USABLE_STATUSES = frozenset({"final", "amended", "corrected"})
COMPARATORS = frozenset({"<", "<=", ">=", ">"})
FUTURE_TOLERANCE = timedelta(hours=12)
# Analytes some rule reads as a series (clinical/renal_function.py); every other is read by `latest()`.
SERIES_ANALYTES = frozenset({"creatinine", "egfr"})
ObservationInput = Mapping[str, Any] | Observation  # parsed JSON, or decoded typed (fhir_types)
Candidate = tuple[datetime, str, ObservationInput]  # (when, LOINC code, the Observation)


def lab_series(
    observations: Iterable[ObservationInput],
    knowledge: Knowledge,
    now: datetime,
    unreadable: list[str] | None = None,
) -> dict[str, tuple[LabValue, ...]]:
    """Per analyte, the usable results newest first. Results dated after `now` are not yet known.

    Only what a rule can read is fully parsed (and only that can be reported unreadable): for the
    analytes read as a series (SERIES_ANALYTES) the results inside the longest lookback, and of
    those only as far back as their rule reads (creatinine: the rise's window before the newest
    usable result; eGFR: the newest usable result's day; see `_series_start`); for every other
    analyte only the newest result that has a value, since the rules read it by `latest()` alone;
    and for each analyte the newest one, so that a card can say how old it is.
    """
    horizon = now - timedelta(days=knowledge.lab_retention_days)
    latest_allowed = now + FUTURE_TOLERANCE
    candidates: dict[str, list[Candidate]] = {}
    to_analyte = knowledge.loinc_to_analyte
    codes: dict[bytes, tuple[str, str | None]] = {}  # a typed code's JSON text -> (LOINC code, analyte)
    # Runs once per Observation (10,000 in a long chart): typed ones (fhir_types) are read by attribute;
    # dicts (a bundle that did not fit the typed shape, or a caller's own) as before.
    for obs in observations:
        if isinstance(obs, Observation):  # a C type check, as cheap as `type(obs) is`
            if obs.status not in USABLE_STATUSES:
                continue
            code_text = bytes(obs.code)  # a copy: no memo may keep the request's body alive
            known = codes.get(code_text)
            if known is None:
                known = codes[code_text] = _typed_analyte_code(code_text, to_analyte)
            code, analyte_name = known
            if analyte_name is None:
                continue
            text = obs.effectiveDateTime  # a str or None already
            when = (parse_datetime_text(text) if text is not None else None) or _typed_effective_time(obs)
        else:
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
    creatinine_days = timedelta(days=creatinine_window_days(knowledge))
    for analyte_name, found in candidates.items():
        labs: dict[str, LabValue] = {}
        whole_series = analyte_name in SERIES_ANALYTES
        anchor: LabValue | None = None  # the newest usable result of a series analyte
        for i, (when, code, obs) in enumerate(_newest_first(found, whole_series)):
            if (i > 0 and when < horizon) or (labs and not whole_series):
                break
            if anchor is not None and when < _series_start(analyte_name, anchor, creatinine_days):
                break
            try:
                lab = _lab_value(obs, code, analyte_name, when, knowledge)
            except (TypeError, ValueError, AttributeError, KeyError):  # not FHIR: reported, not fatal
                lab = None
                if unreadable is not None:
                    unreadable.append("Observation")
            if lab is not None:
                labs.setdefault(lab.reference, lab)  # the same Observation twice counts once
                if anchor is None and whole_series and lab.value is not None and _anchors(analyte_name, lab.value):
                    anchor = lab
        series[analyte_name] = tuple(labs.values())
    return {name: labs for name, labs in series.items() if labs}


def creatinine_window_days(knowledge: Knowledge) -> float:
    """How far before the newest creatinine the creatinine-rise rule looks (renal-unstable's akd_days,
    90 in rules.yaml; 7, the AKI week, if a site's table has none): older results are read by no rule.
    The rule reads its window here too (clinical/renal_function.py), so the two cannot part."""
    spec = knowledge.rules.get("renal-unstable")
    return spec.value("akd_days") if spec is not None and "akd_days" in spec.parameters else 7


def _series_start(analyte_name: str, anchor: LabValue, creatinine_days: timedelta) -> datetime:
    """The oldest time a series rule reads, given the newest usable result (`anchor`): the creatinine
    rise compares the newest with results up to its window before it; the reported eGFR is chosen
    among the results of its newest day (clinical/renal_function.py). Older ones are not parsed."""
    if analyte_name == "creatinine":
        return anchor.when - creatinine_days
    # A day before the start of its day: each result's day is read in its own time zone.
    return datetime.combine(anchor.when.date(), time.min, anchor.when.tzinfo) - timedelta(days=1)


def _anchors(analyte_name: str, value: float) -> bool:
    """Whether a usable result is the one a series rule starts from (the creatinine rise skips zeros)."""
    return value > 0 if analyte_name == "creatinine" else True


def _newest_first(found: list[Candidate], whole_series: bool) -> Iterator[Candidate]:
    """The candidates newest first, as a stable sort gives them. An analyte read by `latest()` most
    often needs only the newest: it is found without sorting, and the rest sorted only if it has
    no value."""
    if whole_series or len(found) == 1:
        found.sort(key=_WHEN, reverse=True)
        yield from found
        return
    times = [candidate[0] for candidate in found]
    newest = times.index(max(times))  # the first of equal times, as the stable sort keeps it
    yield found[newest]
    rest = found[:newest] + found[newest + 1 :]
    rest.sort(key=_WHEN, reverse=True)
    yield from rest


_WHEN = itemgetter(0)  # a candidate's time


def _analyte_code(obs: Mapping[str, Any], to_analyte: Mapping[str, str]) -> tuple[str, str | None]:
    """The LOINC code of the Observation that names an analyte a rule reads (the code looked up first:
    most Observations are of analytes no rule reads)."""
    return _analyte_of(_coded(obs.get("code")), to_analyte)


def _typed_analyte_code(text: bytes, to_analyte: Mapping[str, str]) -> tuple[str, str | None]:
    """`_analyte_code` for a typed Observation, whose code is still its JSON text: read once per text."""
    if not text:
        return "", None
    return _analyte_of(_CODINGS.get(text, lambda: _codings(text)), to_analyte)


def _analyte_of(codings: tuple[tuple[str | None, str], ...], to_analyte: Mapping[str, str]) -> tuple[str, str | None]:
    for system, code in codings:
        analyte = to_analyte.get(code)
        if analyte and system == LOINC:
            return code, analyte
    return "", None


def _coded(concept: Any) -> tuple[tuple[str | None, str], ...]:
    """(system, code) of each coding with a code, in a CodeableConcept as parsed JSON."""
    codings = concept.get("coding") if type(concept) is dict else None
    if type(codings) is not list:
        return ()
    out = []
    for coding in codings:
        if type(coding) is dict and type(coding.get("code")) is str:
            system = coding.get("system")
            out.append((system if type(system) is str else None, coding["code"]))
    return tuple(out)


# A chart's Observation codes repeat (every magnesium result has the same one): each code's JSON text is
# read once. The text is a CodeableConcept: codes and their displays (a free-text `text` at most).
_CODINGS: Memo[bytes, tuple[tuple[str | None, str], ...]] = Memo(4096)


def _codings(text: bytes) -> tuple[tuple[str | None, str], ...]:
    """`_coded` of a typed Observation's code text; () for one that is not JSON a CodeableConcept can be
    (a number out of range)."""
    try:
        return _coded(as_json(msgspec.Raw(text)))
    except ValueError:
        return ()


def _typed_effective_time(obs: Observation) -> datetime | None:
    """`effective_time` for a typed Observation."""
    when = parse_datetime(obs.effectiveDateTime)
    if when is None and obs.effectivePeriod is not None:
        when = parse_datetime(obs.effectivePeriod.start)
    return when or parse_datetime(obs.issued)


def effective_time(obs: Mapping[str, Any]) -> datetime | None:
    """When an Observation was taken: effectiveDateTime, else effectivePeriod.start, else issued."""
    when = parse_datetime(obs.get("effectiveDateTime"))
    if when is None and type(obs.get("effectivePeriod")) is dict:
        when = parse_datetime(obs["effectivePeriod"].get("start"))
    return when or parse_datetime(obs.get("issued"))


def _lab_value(
    obs: ObservationInput, code: str, analyte_name: str, when: datetime, knowledge: Knowledge
) -> LabValue | None:
    if isinstance(obs, Observation):
        return _typed_lab_value(obs, code, analyte_name, when, knowledge)
    quantity = obs.get("valueQuantity")
    if type(quantity) is not dict:
        return None
    raw = quantity.get("value")
    if type(raw) is not int and type(raw) is not float:
        return None
    analyte = knowledge.analytes[analyte_name]
    unit = ucum_unit(quantity, knowledge.unit_aliases)
    comparator = quantity.get("comparator") if quantity.get("comparator") in COMPARATORS else None
    low, high = _reference_range(obs, analyte, knowledge)
    shown_unit = quantity.get("unit") or quantity.get("code") or "(no unit)"
    return _lab(analyte, code, obs.get("id"), when, float(raw), unit, str(shown_unit), comparator, low, high)


def _typed_lab_value(
    obs: Observation, code: str, analyte_name: str, when: datetime, knowledge: Knowledge
) -> LabValue | None:
    """`_lab_value` for a typed Observation: its value and range decoded now, typed; one that does not
    fit (a string where the value belongs) is read as dicts, as the dict path reads it."""
    try:
        quantity = fhir_types.quantity(obs.valueQuantity)
        ranges = fhir_types.reference_ranges(obs.referenceRange) if quantity is not None else []
    except msgspec.ValidationError:
        as_dict = {
            "id": obs.id,
            "valueQuantity": as_json(obs.valueQuantity),
            "referenceRange": as_json(obs.referenceRange),
        }
        return _lab_value(as_dict, code, analyte_name, when, knowledge)
    if quantity is None or quantity.value is None:
        return None
    analyte = knowledge.analytes[analyte_name]
    unit = ucum_unit_of(quantity.system, quantity.code, quantity.unit, knowledge.unit_aliases)
    comparator = quantity.comparator if quantity.comparator in COMPARATORS else None
    low = high = None
    if ranges:
        low = _typed_bound(ranges[0].low, analyte, knowledge)
        high = _typed_bound(ranges[0].high, analyte, knowledge)
    shown_unit = quantity.unit or quantity.code or "(no unit)"
    return _lab(analyte, code, obs.id, when, quantity.value, unit, shown_unit, comparator, low, high)


def _typed_bound(quantity: Quantity | None, analyte: Analyte, knowledge: Knowledge) -> float | None:
    if quantity is None or quantity.value is None:
        return None
    unit = ucum_unit_of(quantity.system, quantity.code, quantity.unit, knowledge.unit_aliases)
    return to_canonical(quantity.value, unit, analyte)


def _lab(
    analyte: Analyte,
    code: str,
    obs_id: object,
    when: datetime,
    original: float,
    unit: str | None,
    shown_unit: str,
    comparator: str | None,
    low: float | None,
    high: float | None,
) -> LabValue:
    value = to_canonical(original, unit, analyte)
    return LabValue(
        analyte=analyte.name,
        code=code,
        reference=f"Observation/{obs_id or '(no id)'}",
        when=when,
        value=value,
        unit=analyte.canonical_unit if value is not None else shown_unit,
        original_value=original,
        original_unit=shown_unit[:40],
        comparator=comparator,
        ref_low=low,
        ref_high=high,
    )


def _reference_range(
    obs: Mapping[str, Any], analyte: Analyte, knowledge: Knowledge
) -> tuple[float | None, float | None]:
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
