"""Daily dose arithmetic from a FHIR dosage and the product's ingredients, said out loud.

Per dose (doseQuantity, or the top of doseRange) x doses per day (timing.repeat frequency/period,
`when`, a BID/TID code; a `count` that ends the course within the day caps it) x the magnesium
ingredient's own strength (Medication.ingredient.strength, the RxNorm table, the name) x its salt's
elemental fraction, unless the amount is labelled elemental. A dose in mmol or mEq is magnesium
itself. Whatever cannot be computed is returned as a reason, never guessed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..jsonutil import items
from ..knowledge.model import Ingredient, MagnesiumTables
from ..record.model import MedicationEntry
from .matching import ProductMatch
from .products import magnesium_of, read_ingredients

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
        "pill",
        "pills",
        "tbl",
        "unit",
        "chewable tablet",
    }
)
PERIOD_PER_DAY = {"h": 24.0, "d": 1.0, "wk": 1 / 7, "mo": 1 / 30, "min": 1440.0}
TIMING_CODES = {"QD": 1, "BID": 2, "TID": 3, "QID": 4, "AM": 1, "PM": 1, "QOD": 0.5}
STRENGTH = re.compile(r"(\d+(?:[.,]\d+)?)\s*(mg|g|mcg)\b(?!\s*/)", re.IGNORECASE)
CONCENTRATION = re.compile(r"(\d+(?:[.,]\d+)?)\s*mg\s*/\s*(\d+(?:[.,]\d+)?)?\s*ml\b", re.IGNORECASE)


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
    """Elemental magnesium per day, from the magnesium ingredients only (never a co-ingredient's strength)."""
    dosage = med.dosage
    if dosage is None:
        return DailyDose(None, "no dosage instruction")
    per_day, frequency_text, as_needed = _doses_per_day(dosage)
    per_dose, dose_text = _elemental_per_dose(dosage, med, match, tables)
    if per_day is None or per_dose is None:
        missing = [text for value, text in ((per_dose, dose_text), (per_day, frequency_text)) if value is None]
        return DailyDose(None, "; ".join(missing), as_needed)
    total = per_dose * per_day
    how = f"{dose_text} × {frequency_text} = {_num(total)} mg elemental Mg/day"
    course = _course_total(dosage, per_dose, per_day)
    return DailyDose(total, how + (f"; {course}" if course else ""), as_needed)


def _elemental_per_dose(
    dosage: Mapping[str, Any], med: MedicationEntry, match: ProductMatch, tables: MagnesiumTables
) -> tuple[float | None, str]:
    quantity = _dose_quantity(dosage)
    if quantity is None:
        return None, "dose amount not stated in the dosage"
    value, unit = quantity
    if unit in tables.elemental_mg_per:  # mmol, mEq: magnesium itself
        factor = tables.elemental_mg_per[unit]
        return value * factor, f"{_num(value)} {unit} × {factor:g} mg"
    magnesium = _magnesium_ingredients(med, match, tables)
    if not magnesium:
        return None, "no magnesium ingredient with a strength"
    if unit in MASS_MG:
        if len(_ingredients(med, match, tables)) > 1:
            return None, f"dose of {_num(value)} {unit} of a combination product: which ingredient is not stated"
        return _elemental(magnesium[0], value * MASS_MG[unit], f"{_num(value)} {unit}", tables)
    if unit == "ml":
        liquid = [i for i in magnesium if i.per_ml and i.amount is not None]
        if not liquid:
            return None, "dose in mL but the concentration is not stated"
        parts = [
            _elemental(i, value * i.amount / i.per_ml * MASS_MG.get(i.unit or "", 0), _per_ml(value, i), tables)
            if i.unit in MASS_MG
            else _by_unit(i, value / i.per_ml, tables)
            for i in liquid
        ]
        return _sum(parts)
    if unit in COUNT_UNITS:
        parts = [_by_unit(i, value, tables) for i in magnesium]
        return _sum(parts)
    return None, f"dose unit '{unit}' not understood"


def _by_unit(ingredient: Ingredient, units: float, tables: MagnesiumTables) -> tuple[float | None, str]:
    """`units` tablets (or mL fractions) of one magnesium ingredient, elemental."""
    if ingredient.amount is None or ingredient.unit is None:
        return None, f"product strength not stated ({ingredient.name})"
    if ingredient.unit in tables.elemental_mg_per:
        factor = tables.elemental_mg_per[ingredient.unit]
        mg = units * ingredient.amount * factor
        return mg, f"{_num(units)} × {_num(ingredient.amount)} {ingredient.unit} × {factor:g} mg"
    if ingredient.unit not in MASS_MG:
        return None, f"strength unit '{ingredient.unit}' of {ingredient.name} not understood"
    salt_mg = units * ingredient.amount * MASS_MG[ingredient.unit]
    return _elemental(ingredient, salt_mg, f"{_num(units)} × {_num(ingredient.amount)} {ingredient.unit}", tables)


def _elemental(ingredient: Ingredient, salt_mg: float, shown: str, tables: MagnesiumTables) -> tuple[float | None, str]:
    if ingredient.elemental:
        return salt_mg, f"{shown} (labelled as elemental magnesium)"
    fraction = tables.fraction_of_salt.get(ingredient.salt or "")
    if fraction is None:
        why = "salt not stated" if not ingredient.salt else f"no elemental fraction for {ingredient.salt}"
        return None, f"{shown} of product, but elemental amount unknown: {why}"
    return salt_mg * fraction, f"{shown} {ingredient.salt} × {fraction:.1%} elemental"


def _sum(parts: list[tuple[float | None, str]]) -> tuple[float | None, str]:
    unknown = [text for value, text in parts if value is None]
    if unknown:
        return None, "; ".join(unknown)
    total = sum(value for value, _ in parts if value is not None)
    return total, " + ".join(text for _, text in parts) if len(parts) > 1 else parts[0][1]


def _per_ml(volume: float, ingredient: Ingredient) -> str:
    return f"{_num(volume)} mL × {_num(ingredient.amount)} {ingredient.unit}/{_num(ingredient.per_ml)} mL"


def _ingredients(med: MedicationEntry, match: ProductMatch, tables: MagnesiumTables) -> tuple[Ingredient, ...]:
    """The product's ingredients: Medication.ingredient with its coded strengths, else the match's reading."""
    if med.strengths:
        out = []
        for name, amount, unit in med.strengths:
            is_mg, salt = magnesium_of(name, tables)
            read = read_ingredients(name, tables)
            elemental = bool(read and read[0].elemental)
            unit = unit.lower().strip("{}")
            per_ml = 1.0 if unit.endswith("/ml") else None
            out.append(Ingredient(name, is_mg, salt, amount, unit.removesuffix("/ml"), per_ml, elemental))
        return tuple(out)
    if match.ingredients:
        return match.ingredients
    return read_ingredients(med.name, tables) if med.name else ()


def _magnesium_ingredients(med: MedicationEntry, match: ProductMatch, tables: MagnesiumTables) -> list[Ingredient]:
    return [i for i in _ingredients(med, match, tables) if i.magnesium]


def _dose_quantity(dosage: Mapping[str, Any]) -> tuple[float, str] | None:
    rates = dosage.get("doseAndRate") if isinstance(dosage.get("doseAndRate"), list) else []
    first = rates[0] if rates and isinstance(rates[0], dict) else {}
    quantity = first.get("doseQuantity")
    if not isinstance(quantity, dict) and isinstance(first.get("doseRange"), dict):
        quantity = first["doseRange"].get("high")
    if not isinstance(quantity, dict) or not is_num(quantity.get("value")):
        return None
    return float(quantity["value"]), unit_of(quantity)


def unit_of(quantity: Mapping[str, Any]) -> str:
    """'{pill}' -> 'pill', 'mEq' -> 'meq', 'Tablet' -> 'tablet'."""
    unit = str(quantity.get("code") or quantity.get("unit") or "1").strip().lower()
    return unit[1:-1] if unit.startswith("{") and unit.endswith("}") else unit


def _course_total(dosage: Mapping[str, Any], per_dose: float, per_day: float) -> str:
    """For a bounded course, the total it gives."""
    timing = dosage.get("timing") if isinstance(dosage.get("timing"), dict) else {}
    repeat = timing.get("repeat") if isinstance(timing.get("repeat"), dict) else {}
    count = repeat.get("count")
    if is_num(count) and count > 0:
        return f"course of {_num(count)} doses: {_num(per_dose * count)} mg elemental Mg in total"
    duration = repeat.get("boundsDuration")
    if isinstance(duration, dict) and is_num(duration.get("value")):
        days = {"d": 1.0, "wk": 7.0, "h": 1 / 24}.get(str(duration.get("code") or duration.get("unit")))
        if days:
            total = per_dose * per_day * duration["value"] * days
            return f"course of {_num(duration['value'] * days)} days: {_num(total)} mg elemental Mg in total"
    return ""


def _doses_per_day(dosage: Mapping[str, Any]) -> tuple[float | None, str, bool]:
    as_needed = bool(dosage.get("asNeededBoolean")) or isinstance(dosage.get("asNeededCodeableConcept"), dict)
    timing = dosage.get("timing") if isinstance(dosage.get("timing"), dict) else {}
    repeat = timing.get("repeat") if isinstance(timing.get("repeat"), dict) else {}
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
        count = repeat.get("count")
        if is_num(count) and 0 < count < per_day:  # q1h x 4: the course ends within the day
            return float(count), f"{_num(count)} doses (count; the course ends within a day)", as_needed
        return per_day, f"{_num(per_day)} doses/day" + (" (as needed, at most)" if as_needed else ""), as_needed
    if isinstance(repeat.get("when"), list) and repeat["when"]:
        return float(len(repeat["when"])), f"{len(repeat['when'])} doses/day", as_needed
    code = timing.get("code") if isinstance(timing.get("code"), dict) else {}
    for coding in items(code.get("coding")):
        if isinstance(coding, dict) and str(coding.get("code", "")).upper() in TIMING_CODES:
            per_day = float(TIMING_CODES[str(coding["code"]).upper()])
            return per_day, f"{_num(per_day)} doses/day ({coding['code']})", as_needed
    return None, "frequency not stated in the dosage", as_needed


def _amount_per_dose(dosage: Mapping[str, Any], med: MedicationEntry) -> tuple[float | None, str]:
    """Milligrams of the product per dose (a statin's daily dose): the product's own strength."""
    quantity = _dose_quantity(dosage)
    if quantity is None:
        return None, "dose amount not stated in the dosage"
    value, unit = quantity
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
