"""Daily dose arithmetic from the order's typed dosage and the product's ingredients, said out loud.

Per dose (doseQuantity, or the top of doseRange) x doses per day (record/dosage.py: timing.repeat
frequency/period, `when`, a BID/TID code; a `count` that ends the course within the day caps it) x the magnesium
ingredient's own strength (Medication.ingredient.strength, the RxNorm table, the name) x its salt's
elemental fraction, unless the amount is labelled elemental. A dose in mmol or mEq is magnesium
itself. Whatever cannot be computed is returned as a reason, never guessed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..knowledge.model import Ingredient, MagnesiumTables
from ..record.dosage import Dosage
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
    per_day, frequency_text = dosage.doses_per_day()
    amount, amount_text = _amount_per_dose(dosage, med)
    if per_day is None or amount is None:
        missing = [text for value, text in ((amount, amount_text), (per_day, frequency_text)) if value is None]
        return DailyDose(None, "; ".join(missing), dosage.as_needed)
    total = amount * per_day
    return DailyDose(total, f"{amount_text} × {frequency_text} = {_num(total)} mg/day", dosage.as_needed)


def daily_elemental_mg(med: MedicationEntry, match: ProductMatch, tables: MagnesiumTables) -> DailyDose:
    """Elemental magnesium per day, from the magnesium ingredients only (never a co-ingredient's strength)."""
    dosage = med.dosage
    if dosage is None:
        return DailyDose(None, "no dosage instruction")
    per_day, frequency_text = dosage.doses_per_day()
    per_dose, dose_text = _elemental_per_dose(dosage, med, match, tables)
    if per_day is None or per_dose is None:
        missing = [text for value, text in ((per_dose, dose_text), (per_day, frequency_text)) if value is None]
        return DailyDose(None, "; ".join(missing), dosage.as_needed)
    total = per_dose * per_day
    how = f"{dose_text} × {frequency_text} = {_num(total)} mg elemental Mg/day"
    course = dosage.course_total(per_dose, per_day, "mg elemental Mg")
    return DailyDose(total, how + (f"; {course}" if course else ""), dosage.as_needed)


def _elemental_per_dose(
    dosage: Dosage, med: MedicationEntry, match: ProductMatch, tables: MagnesiumTables
) -> tuple[float | None, str]:
    if dosage.dose is None:
        return None, "dose amount not stated in the dosage"
    value, unit = dosage.dose.value, dosage.dose.unit
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
        liquid = [(i, i.amount, i.per_ml) for i in magnesium if i.per_ml and i.amount is not None]
        if not liquid:
            return None, "dose in mL but the concentration is not stated"
        parts = [
            _elemental(i, value * amount / per_ml * MASS_MG.get(i.unit or "", 0), _per_ml(value, i), tables)
            if i.unit in MASS_MG
            else _by_unit(i, value / per_ml, tables)
            for i, amount, per_ml in liquid
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
    amount, per_ml = ingredient.amount or 0.0, ingredient.per_ml or 1.0  # both known: only liquids are shown
    return f"{_num(volume)} mL × {_num(amount)} {ingredient.unit}/{_num(per_ml)} mL"


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


def _amount_per_dose(dosage: Dosage, med: MedicationEntry) -> tuple[float | None, str]:
    """Milligrams of the product per dose (a statin's daily dose): the product's own strength."""
    if dosage.dose is None:
        return None, "dose amount not stated in the dosage"
    value, unit = dosage.dose.value, dosage.dose.unit
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


def _float(text: str) -> float:
    return float(text.replace(",", "."))


def _num(value: float) -> str:
    return f"{value:.0f}" if value >= 10 else f"{value:.3g}"
