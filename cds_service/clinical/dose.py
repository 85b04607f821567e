"""Daily dose arithmetic from a FHIR dosage and the product strength, said out loud.

Per dose (doseQuantity, or the top of doseRange) x doses per day (timing.repeat frequency/period,
`when`, or a BID/TID code) x strength per unit (Medication.ingredient.strength, else the first
"N mg" in the name) x the salt's elemental fraction, unless the product says the amount is elemental.
Whatever cannot be computed is returned as a reason, never guessed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..jsonutil import items
from ..knowledge.model import MagnesiumTables
from ..record.model import MedicationEntry
from .matching import ProductMatch

MASS_MG = {"mg": 1.0, "g": 1000.0, "mcg": 0.001, "ug": 0.001, "µg": 0.001}
COUNT_UNITS = frozenset(
    {
        "tablet",
        "tablets",
        "tab",
        "tabs",
        "{tbl}",
        "{tablet}",
        "capsule",
        "capsules",
        "cap",
        "caps",
        "{capsule}",
        "{cap}",
        "softgel",
        "softgels",
        "gummy",
        "gummies",
        "each",
        "ea",
        "1",
        "{each}",
        "chewable",
        "lozenge",
        "packet",
        "sachet",
        "scoop",
        "dose",
        "{dose}",
    }
)
PERIOD_PER_DAY = {"h": 24.0, "d": 1.0, "wk": 1 / 7, "mo": 1 / 30, "min": 1440.0}
TIMING_CODES = {"QD": 1, "BID": 2, "TID": 3, "QID": 4, "AM": 1, "PM": 1, "QOD": 0.5}
STRENGTH = re.compile(r"(\d+(?:[.,]\d+)?)\s*(mg|g|mcg)\b(?!\s*/)", re.IGNORECASE)
CONCENTRATION = re.compile(r"(\d+(?:[.,]\d+)?)\s*mg\s*/\s*(\d+(?:[.,]\d+)?)?\s*ml\b", re.IGNORECASE)
ELEMENTAL = re.compile(r"\belemental\b|\(as\s+magnesium|\bas\s+magnesium\s+\w+", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class DailyDose:
    mg_per_day: float | None
    how: str
    as_needed: bool = False

    @property
    def known(self) -> bool:
        return self.mg_per_day is not None


def daily_mg(med: MedicationEntry) -> DailyDose:
    """Milligrams of the product (as labelled) per day."""
    dosage = med.dosage
    if dosage is None:
        return DailyDose(None, "no dosage instruction")
    per_day, frequency_text, as_needed = _doses_per_day(dosage)
    amount, amount_text = _amount_per_dose(dosage, med)
    if per_day is None or amount is None:
        missing = [text for value, text in ((amount, amount_text), (per_day, frequency_text)) if value is None]
        return DailyDose(None, "; ".join(missing), as_needed)
    total = amount * per_day
    return DailyDose(total, f"{amount_text} × {frequency_text} = {_num(total)} mg/day", as_needed)


def daily_elemental_mg(med: MedicationEntry, match: ProductMatch, tables: MagnesiumTables) -> DailyDose:
    """Elemental magnesium per day: labelled elemental amounts as is, salt masses x elemental fraction."""
    dose = daily_mg(med)
    if not dose.known:
        return dose
    label = " ".join([med.name, *med.ingredient_names])
    if ELEMENTAL.search(label):
        return DailyDose(dose.mg_per_day, f"{dose.how} (labelled as elemental magnesium)", dose.as_needed)
    fractions = {s.name: s.elemental_fraction for s in tables.salts}
    if len(match.salts) != 1 or fractions.get(match.salts[0]) is None:
        why = "salt not stated" if not match.salts else f"no single elemental fraction for {match.salt_label}"
        return DailyDose(None, f"{dose.how} of product, but elemental amount unknown: {why}", dose.as_needed)
    fraction = fractions[match.salts[0]]
    elemental = dose.mg_per_day * fraction
    return DailyDose(
        elemental,
        f"{dose.how} of {match.salts[0]} × {fraction:.1%} elemental = {_num(elemental)} mg elemental Mg/day",
        dose.as_needed,
    )


def _doses_per_day(dosage: Mapping[str, Any]) -> tuple[float | None, str, bool]:
    as_needed = bool(dosage.get("asNeededBoolean")) or isinstance(dosage.get("asNeededCodeableConcept"), Mapping)
    timing = dosage.get("timing") if isinstance(dosage.get("timing"), Mapping) else {}
    repeat = timing.get("repeat") if isinstance(timing.get("repeat"), Mapping) else {}
    frequency = (
        repeat.get("frequencyMax") if as_needed and is_num(repeat.get("frequencyMax")) else repeat.get("frequency")
    )
    if is_num(frequency) or is_num(repeat.get("period")):
        frequency = float(frequency) if is_num(frequency) else 1.0
        period = float(repeat["period"]) if is_num(repeat.get("period")) and repeat["period"] > 0 else 1.0
        unit = repeat.get("periodUnit", "d")
        if type(unit) is not str or unit not in PERIOD_PER_DAY:
            return None, f"timing period unit '{unit}' not understood", as_needed
        per_day = frequency * PERIOD_PER_DAY[unit] / period
        return per_day, f"{_num(per_day)} doses/day" + (" (as needed, at most)" if as_needed else ""), as_needed
    if isinstance(repeat.get("when"), list) and repeat["when"]:
        return float(len(repeat["when"])), f"{len(repeat['when'])} doses/day", as_needed
    code = timing.get("code") if isinstance(timing.get("code"), Mapping) else {}
    for coding in items(code.get("coding")):
        if isinstance(coding, Mapping) and str(coding.get("code", "")).upper() in TIMING_CODES:
            per_day = float(TIMING_CODES[str(coding["code"]).upper()])
            return per_day, f"{_num(per_day)} doses/day ({coding['code']})", as_needed
    return None, "frequency not stated in the dosage", as_needed


def _amount_per_dose(dosage: Mapping[str, Any], med: MedicationEntry) -> tuple[float | None, str]:
    rates = dosage.get("doseAndRate") if isinstance(dosage.get("doseAndRate"), list) else []
    first = rates[0] if rates and isinstance(rates[0], Mapping) else {}
    quantity = first.get("doseQuantity")
    if not isinstance(quantity, Mapping) and isinstance(first.get("doseRange"), Mapping):
        quantity = first["doseRange"].get("high")
    if not isinstance(quantity, Mapping) or not is_num(quantity.get("value")):
        return None, "dose amount not stated in the dosage"
    value = float(quantity["value"])
    unit = str(quantity.get("code") or quantity.get("unit") or "1").strip().lower()
    if unit in MASS_MG:
        return value * MASS_MG[unit], f"{_num(value)} {unit}"
    if unit == "ml":
        concentration = CONCENTRATION.search(med.name)
        if not concentration:
            return None, "dose in mL but the concentration is not stated"
        per_ml = _float(concentration.group(1)) / (_float(concentration.group(2)) if concentration.group(2) else 1.0)
        return value * per_ml, f"{_num(value)} mL × {_num(per_ml)} mg/mL"
    if unit in COUNT_UNITS:
        strength = _strength_per_unit(med)
        if strength is None:
            return None, "product strength not stated"
        return value * strength, f"{_num(value)} × {_num(strength)} mg"
    return None, f"dose unit '{unit}' not understood"


def _strength_per_unit(med: MedicationEntry) -> float | None:
    for _name, amount, unit in med.strengths:
        if unit.lower() in MASS_MG:
            return amount * MASS_MG[unit.lower()]
    for text in (med.name, *(c.display for c in med.codings if c.display)):
        found = STRENGTH.search(text)
        if found:
            return _float(found.group(1)) * MASS_MG[found.group(2).lower()]
    return None


def is_num(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _float(text: str) -> float:
    return float(text.replace(",", "."))


def _num(value: float) -> str:
    return f"{value:.0f}" if value >= 10 else f"{value:.3g}"
