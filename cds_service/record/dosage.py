"""A FHIR Dosage read once into typed values: the dose, its timing, how many doses a day, how long the course.

Every question about an order's timing (doses per day, a bounded course, as needed) is answered here, with
one table of time units; the clinical layer never reads a dosage's JSON.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ..jsonutil import items
from .dates import parse_datetime

# UCUM time units (FHIR Timing.repeat.periodUnit, Duration), in seconds: the one days table.
SECONDS = {"s": 1, "min": 60, "h": 3600, "d": 86400, "wk": 604800, "mo": 2592000, "a": 31536000}
DAY_SECONDS = 86400
TIMING_CODES = {"QD": 1, "BID": 2, "TID": 3, "QID": 4, "AM": 1, "PM": 1, "QOD": 0.5}


def days_of(value: float, unit: object) -> float | None:
    """A duration in days ('2 wk' -> 14), None for a unit that is no UCUM time unit."""
    seconds = SECONDS.get(unit) if isinstance(unit, str) else None
    return value * seconds / DAY_SECONDS if seconds is not None else None


@dataclass(frozen=True, slots=True)
class Quantity:
    value: float
    unit: str  # lower case, braces stripped: '{pill}' -> 'pill', 'mEq' -> 'meq'


@dataclass(frozen=True, slots=True)
class Dosage:
    """The first dosage instruction of an order (or a statement's dosage), as typed values."""

    text: str = ""
    as_needed: bool = False
    dose: Quantity | None = None  # doseQuantity, else the top of doseRange
    frequency: float | None = None
    frequency_max: float | None = None
    period: float | None = None
    period_unit: str = "d"  # as sent (absent: per day); an unknown unit is reported, never guessed
    count: float | None = None  # timing.repeat.count: the doses the course has
    when: int = 0  # timing.repeat.when: one dose per named time of day
    timing_codes: tuple[str, ...] = ()  # timing.code codings (BID, TID, ...)
    timing_code_text: str = ""  # timing.code text and codes, for the words that make an order one-time
    bounds_duration: Quantity | None = None  # timing.repeat.boundsDuration, as sent
    bounds_start: datetime | None = None  # timing.repeat.boundsPeriod
    bounds_end: datetime | None = None

    def doses_per_day(self) -> tuple[float | None, str]:
        """Doses a day and how that was read; for an as-needed order, the most it allows (frequencyMax)."""
        frequency = self.frequency_max if self.as_needed and self.frequency_max is not None else self.frequency
        if frequency is not None or self.period is not None:
            period = self.period if self.period is not None and self.period > 0 else 1.0
            seconds = SECONDS.get(self.period_unit)
            if seconds is None:
                return None, f"timing period unit '{self.period_unit}' not understood"
            per_day = (frequency if frequency is not None else 1.0) * DAY_SECONDS / (period * seconds)
            if self.count is not None and 0 < self.count < per_day:  # q1h x 4: the course ends within the day
                return self.count, f"{_num(self.count)} doses (count; the course ends within a day)"
            return per_day, f"{_num(per_day)} doses/day" + (" (as needed, at most)" if self.as_needed else "")
        if self.when:
            return float(self.when), f"{self.when} doses/day"
        for code in self.timing_codes:
            if code.upper() in TIMING_CODES:
                per_day = float(TIMING_CODES[code.upper()])
                return per_day, f"{_num(per_day)} doses/day ({code})"
        return None, "frequency not stated in the dosage"

    @property
    def course_days(self) -> float | None:
        """Length of a bounded course in days: boundsDuration, boundsPeriod, or count / doses per day."""
        if self.bounds_duration is not None:
            days = days_of(self.bounds_duration.value, self.bounds_duration.unit)
            if days is not None:
                return days
        if self.bounds_start and self.bounds_end and self.bounds_end >= self.bounds_start:
            return (self.bounds_end - self.bounds_start) / timedelta(days=1)
        if self.count is not None and self.count > 0:
            frequency = self.frequency if self.frequency is not None else 1.0
            period = self.period if self.period is not None and self.period > 0 else 1.0
            seconds = SECONDS.get(self.period_unit)
            per_day = frequency * DAY_SECONDS / (period * seconds) if seconds is not None and frequency else 0.0
            if per_day > 0 and math.isfinite(per_day):  # a period of 1e308 years is no course: no length
                return self.count / per_day
        return None

    def course_total(self, per_dose: float, per_day: float, unit: str) -> str:
        """For a course bounded by a count or a duration, the total it gives."""
        if self.count is not None and self.count > 0:
            return f"course of {_num(self.count)} doses: {_num(per_dose * self.count)} {unit} in total"
        duration = self.bounds_duration
        days = days_of(duration.value, duration.unit) if duration is not None else None
        if days is not None:
            return f"course of {_num(days)} days: {_num(per_dose * per_day * days)} {unit} in total"
        return ""


def read_dosage(dosage: Mapping[str, Any]) -> Dosage:
    """A FHIR R4 Dosage as typed values; a part that does not follow FHIR is read as absent."""
    timing = _dict(dosage.get("timing"))
    repeat = _dict(timing.get("repeat"))
    code = _dict(timing.get("code"))
    codes = tuple(str(c.get("code", "")) for c in items(code.get("coding")) if isinstance(c, dict))
    rates = dosage.get("doseAndRate")
    first = _dict(rates[0]) if isinstance(rates, list) and rates else {}
    dose = first.get("doseQuantity")
    if not isinstance(dose, dict) and isinstance(first.get("doseRange"), dict):
        dose = first["doseRange"].get("high")
    bounds = _dict(repeat.get("boundsPeriod"))
    when = repeat.get("when")
    return Dosage(
        text=str(dosage.get("text") or ""),
        as_needed=dosage.get("asNeededBoolean") is True or isinstance(dosage.get("asNeededCodeableConcept"), dict),
        dose=_quantity(dose),
        frequency=_number(repeat.get("frequency")),
        frequency_max=_number(repeat.get("frequencyMax")),
        period=_number(repeat.get("period")),
        period_unit=str(repeat["periodUnit"]) if "periodUnit" in repeat else "d",
        count=_number(repeat.get("count")),
        when=len(when) if isinstance(when, list) else 0,
        timing_codes=codes,
        timing_code_text=" ".join((str(code.get("text") or ""), *codes)),
        bounds_duration=_duration(repeat.get("boundsDuration")),
        bounds_start=parse_datetime(bounds.get("start")),
        bounds_end=parse_datetime(bounds.get("end")),
    )


def _quantity(quantity: Any) -> Quantity | None:
    if not isinstance(quantity, dict):
        return None
    value = _number(quantity.get("value"))
    if value is None:
        return None
    unit = str(quantity.get("code") or quantity.get("unit") or "1").strip().lower()
    return Quantity(value, unit[1:-1] if unit.startswith("{") and unit.endswith("}") else unit)


def _duration(duration: Any) -> Quantity | None:
    """A Duration with its UCUM unit as sent (code, else unit)."""
    if not isinstance(duration, dict):
        return None
    value = _number(duration.get("value"))
    unit = duration.get("code") or duration.get("unit")
    return Quantity(value, unit) if value is not None and isinstance(unit, str) else None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _num(value: float) -> str:
    return f"{value:.0f}" if value >= 10 else f"{value:.3g}"
