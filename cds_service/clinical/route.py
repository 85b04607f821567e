"""Route of a medication: coded route, else route text, else the dose form in its name.

Chelation needs both drugs taken by mouth: IV ciprofloxacin with oral magnesium is no interaction.
"""

from __future__ import annotations

from typing import Literal

from ..record.model import MedicationEntry
from .matching import words_of

SNOMED = "http://snomed.info/sct"
ORAL_ROUTE = "26643006"  # SNOMED CT Oral route (clinical-rules.md)
Route = Literal["oral", "parenteral", "other", "unknown"]

ORAL_WORDS = frozenset(
    {
        "oral",
        "mouth",
        "po",
        "tablet",
        "tablets",
        "tab",
        "capsule",
        "capsules",
        "cap",
        "chewable",
        "gummy",
        "gummies",
        "powder",
        "syrup",
        "suspension",
        "softgel",
        "lozenge",
        "granules",
    }
)
PARENTERAL_WORDS = frozenset(
    {
        "intravenous",
        "iv",
        "injection",
        "injectable",
        "infusion",
        "intramuscular",
        "im",
        "subcutaneous",
        "parenteral",
        "vial",
        "ampule",
        "ampoule",
    }
)
OTHER_WORDS = frozenset(
    {
        "topical",
        "cream",
        "ointment",
        "ophthalmic",
        "otic",
        "inhalation",
        "spray",
        "rectal",
        "enema",
        "transdermal",
        "gel",
    }
)


def route_of(med: MedicationEntry) -> Route:
    if any(c.system == SNOMED and c.code == ORAL_ROUTE for c in med.route_codings):
        return "oral"
    route_text = " ".join([med.route_text, *(c.display or "" for c in med.route_codings)])
    for text in (route_text, med.name, *med.ingredient_names):
        words = set(words_of(text))
        if words & PARENTERAL_WORDS:
            return "parenteral"
        if words & OTHER_WORDS:
            return "other"
        if words & ORAL_WORDS:
            return "oral"
    return "unknown"
