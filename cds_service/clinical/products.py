"""A product name read as a list of ingredients, each with its own substance, salt and strength.

"Calcium Carbonate 333 MG / Magnesium Oxide 167 MG Oral Tablet" is two ingredients; its magnesium is
the oxide, 167 mg, and "carbonate" belongs to the calcium. Magnesium counts only as an ingredient of
its own: "Esomeprazole Magnesium" is esomeprazole, "Magnesium Salicylate" a salicylate, "magnesium
stearate" an excipient. The same reader serves the RxNorm table script and free-text orders.
"""

from __future__ import annotations

import re

from ..knowledge.model import Ingredient, MagnesiumTables
from ..knowledge.words import words_of

BRAND = re.compile(r"\s*\[[^\]]*\]")
COMPONENT_SPLIT = re.compile(r"\s+/\s+|\s+\+\s+|\s+with\s+(?=magnesium|calcium|zinc|vitamin)", re.IGNORECASE)
# "400 MG", "1.745 G/30 ML", "200 mg/5 mL", "4 MEQ", "500 MG/ML"
STRENGTH = re.compile(
    r"(?<![\w.])(\d+(?:[.,]\d+)?)\s*(mg|g|mcg|meq|mmol|unt)\b(?:\s*/\s*(\d+(?:[.,]\d+)?)?\s*(ml|l)\b)?",
    re.IGNORECASE,
)
ELEMENTAL = re.compile(r"\belemental\b|\(as\s+magnesium|\bas\s+magnesium\s+\w+", re.IGNORECASE)
READ_CACHE_SIZE = 8192


def split_components(name: str) -> list[str]:
    """'A 1 MG / B 2 MG Oral Tablet [Brand]' -> ['A 1 MG', 'B 2 MG Oral Tablet']."""
    text = " ".join(BRAND.sub("", name).split())
    return [part.strip() for part in COMPONENT_SPLIT.split(text) if part.strip()]


def read_ingredients(name: str, tables: MagnesiumTables) -> tuple[Ingredient, ...]:
    """Every ingredient the name lists, in order. 'A / B 200 mg-200 mg/5 mL' gives A and B one strength each."""
    known = tables.ingredients_read.get(name)
    if known is None:
        if len(tables.ingredients_read) >= READ_CACHE_SIZE:
            tables.ingredients_read.clear()  # rare: a formulary is a few thousand names
        known = tables.ingredients_read[name] = _read_ingredients(name, tables)
    return known


def _read_ingredients(name: str, tables: MagnesiumTables) -> tuple[Ingredient, ...]:
    components = split_components(name)
    strengths = [STRENGTH.search(c) for c in components]
    listed = list(STRENGTH.finditer(components[-1])) if components else []
    shared = len(components) > 1 and len(listed) == len(components) and not any(strengths[:-1])
    out = []
    for i, component in enumerate(components):
        strength = listed[i] if shared else strengths[i]
        if shared and i < len(components) - 1:
            component = f"{component} {components[-1][listed[i].start() :]}"  # carries the shared "/5 mL"
        own = STRENGTH.search(component)
        substance = component[: own.start()].strip(" ,-") if own else _without_form(component)
        amount = unit = per_ml = None
        if strength:
            amount = float(strength.group(1).replace(",", "."))
            unit = strength.group(2).lower()
            volume = strength if strength.group(4) else (listed[-1] if shared and listed[-1].group(4) else None)
            if volume is not None:
                per_ml = float(volume.group(3).replace(",", ".")) if volume.group(3) else 1.0
                per_ml *= 1000.0 if volume.group(4).lower() == "l" else 1.0
        is_mg, salt = magnesium_of(substance or component, tables)
        elemental = bool(ELEMENTAL.search(component))
        out.append(Ingredient(substance or component, is_mg, salt, amount, unit, per_ml, elemental))
    return tuple(out)


def magnesium_of(substance: str, tables: MagnesiumTables) -> tuple[bool, str | None]:
    """Is this ingredient magnesium in its own right, and which salt? Magnesium after the name of a drug
    the knowledge lists (esomeprazole), or before a counter-ion word (salicylate, stearate), is not."""
    words = [w for w in words_of(substance) if "-" not in w or w in tables.brands]  # "magnesium-oxide": its parts
    if not words:
        return False, None
    lowered = " ".join(words)
    for salt in tables.salts:  # a salt named in full ("aluminum magnesium silicate")
        if lowered == salt.name.lower() or lowered.startswith(salt.name.lower() + " "):
            return True, salt.name
    at = next(
        (i for i, w in enumerate(words) if w in tables.words or w in tables.brands or w == tables.abbreviation), None
    )
    if at is None or any(w in tables.drug_words for w in words[:at]):
        return False, None  # no magnesium word, or it follows another drug's name ("esomeprazole magnesium")
    first, rest = words[at], words[at + 1 :]
    if first == tables.abbreviation and (not rest or (at > 0 and _is_number(words[at - 1]))):
        return False, None  # "500 mg citrate": a unit, not magnesium
    if any(word in tables.counter_ion_words for word in rest[:1]):
        return False, None
    for word in rest[:2]:  # "magnesium oxide", "magnesium (as citrate)"
        if word in tables.salt_of_word:
            return True, tables.salt_of_word[word]
    if first == tables.abbreviation:
        return False, None  # "mg" only counts directly before a salt word
    return True, None


def _is_number(word: str) -> bool:
    return bool(re.fullmatch(r"\d+(?:[.,]\d+)?", word))


def _without_form(component: str) -> str:
    """'Calcium Carbonate / Magnesium Oxide Pill': the last component carries the dose-form group word."""
    return re.sub(r"\s+pill$", "", component, flags=re.IGNORECASE).strip()
