"""Medication orders and statements -> MedicationEntry, resolving contained or referenced Medication."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, NamedTuple

import orjson

from ..jsonutil import items
from ..memo import Memo
from .dates import parse_datetime
from .dosage import Dosage, read_dosage
from .model import Coding, ConditionEntry, MedicationEntry

MEDICATION_TYPES = ("MedicationRequest", "MedicationStatement")


def codings_of(concept: Any) -> tuple[Coding, ...]:
    if type(concept) is not dict:  # parsed JSON: plain dicts (faster than an ABC check)
        return ()
    out = []
    for c in items(concept.get("coding")):
        if type(c) is dict:
            out.append(Coding(_str(c.get("system")), _str(c.get("code")), _str(c.get("display"))))
    return tuple(out)


def concept_text(concept: Any) -> str:
    """The human name of a CodeableConcept: its text, else its first coding display."""
    if type(concept) is not dict:
        return ""
    text = concept.get("text")
    if type(text) is str and text.strip():
        return text.strip()
    return next((c.display for c in codings_of(concept) if c.display), "")


def parse_medication(
    resource: Mapping[str, Any],
    origin: Literal["draft", "active"],
    medications: Mapping[str, Mapping[str, Any]],
    position: str = "",
) -> MedicationEntry | None:
    """A MedicationEntry, or None for resource types the rules do not read (e.g. DSTU2 MedicationOrder).

    A resource without an id is told apart by its `position` ("draft 2"): two id-less orders are two
    orders, never one, and never taken for each other."""
    rtype = resource.get("resourceType")
    if rtype not in MEDICATION_TYPES:
        return None
    content, meaning = _meaning_of(resource, _resolve_medication(resource, medications))
    when = resource.get("authoredOn") if rtype == "MedicationRequest" else resource.get("effectiveDateTime")
    return MedicationEntry(
        reference=f"{rtype}/{resource['id']}" if _str(resource.get("id")) else f"{rtype}/(no id: {position or '?'})",
        resource_type=rtype,
        origin=origin,
        status=_str(resource.get("status")),
        name=meaning.name,
        codings=meaning.codings,
        ingredient_codings=meaning.ingredient_codings,
        ingredient_names=meaning.ingredient_names,
        route_codings=meaning.route_codings,
        route_text=meaning.route_text,
        authored_on=parse_datetime(when),
        resource=resource,
        strengths=meaning.strengths,
        dosage=meaning.dosage,
        form_text=meaning.form_text,
        category_codings=meaning.category_codings,
        reasons=_reasons(resource.get("reasonCode")),
        prior_prescription=_str(_dict(resource.get("priorPrescription")).get("reference")),
        content=content,
    )


class Meaning(NamedTuple):
    """What an order says about its drug, dose and route: equal for equal orders, whoever they are for."""

    name: str
    codings: tuple[Coding, ...]
    ingredient_codings: tuple[Coding, ...]
    ingredient_names: tuple[str, ...]
    route_codings: tuple[Coding, ...]
    route_text: str
    strengths: tuple[tuple[str, float, str], ...]
    dosage: Dosage | None
    form_text: str
    category_codings: tuple[Coding, ...]


# The elements a meaning is read from. The rest (id, status, dates, subject, requester, the reason for
# the order) is read on every call. The dosage is kept whole, free text (patientInstruction) and bounds
# dates included: a cache entry holds no patient id, but can hold such text until it is cleared.
MEANING_ELEMENTS = (
    "resourceType", "medicationCodeableConcept", "medicationReference", "contained", "dosageInstruction",
    "dosage", "category",
)  # fmt: skip
_KEYED: Memo[bytes, tuple[bytes, Meaning]] = Memo(4096)  # a formulary's orders repeat across patients and calls


def _meaning_of(resource: Mapping[str, Any], medication: Mapping[str, Any] | None) -> tuple[bytes, Meaning]:
    """Read once per content: the same drug, dose and route ordered for the next patient is not read
    again. The content (the order's meaning elements and its resolved Medication, as JSON) is returned
    with it, the key the engine remembers its matching by; b"" when it is not plain JSON. Two threads
    reading one new content at once both read it; either reading is the same."""
    try:
        key = orjson.dumps([*map(resource.get, MEANING_ELEMENTS), medication])
    except TypeError:  # not plain JSON (a lone surrogate): read it, do not keep it
        return b"", _read_meaning(resource, medication)
    return _KEYED.get(key, lambda: (key, _read_meaning(resource, medication)))  # the key kept: one copy of its bytes


def _read_meaning(resource: Mapping[str, Any], medication: Mapping[str, Any] | None) -> Meaning:
    rtype = resource.get("resourceType")
    concept = resource.get("medicationCodeableConcept")
    codings = codings_of(concept)
    name = concept_text(concept) or _reference_display(resource, medication)
    ingredient_codings: list[Coding] = []
    ingredient_names: list[str] = []
    strengths: list[tuple[str, float, str]] = []
    if medication is not None:
        codings = codings + codings_of(medication.get("code"))
        name = name or concept_text(medication.get("code"))
        for ingredient in items(medication.get("ingredient")):
            if not isinstance(ingredient, dict):
                continue
            item = ingredient.get("itemCodeableConcept")
            ingredient_codings.extend(codings_of(item))
            if concept_text(item):
                ingredient_names.append(concept_text(item))
            strength = _strength(ingredient.get("strength"))
            if strength:
                strengths.append((concept_text(item), *strength))
    dosages = resource.get("dosageInstruction") if rtype == "MedicationRequest" else resource.get("dosage")
    dosage = _first(dosages) if isinstance(_first(dosages), dict) else None
    route = dosage.get("route") if dosage is not None else None
    return Meaning(
        name=name or (ingredient_names[0] if ingredient_names else ""),
        codings=codings,
        ingredient_codings=tuple(ingredient_codings),
        ingredient_names=tuple(ingredient_names),
        route_codings=codings_of(route),
        route_text=concept_text(route),
        strengths=tuple(strengths),
        dosage=read_dosage(dosage) if dosage is not None else None,
        form_text=_form_text(resource),
        category_codings=tuple(c for concept in _concepts(resource.get("category")) for c in codings_of(concept)),
    )


def _form_text(resource: Mapping[str, Any]) -> str:
    """Medication.form of a contained Medication (the referenced ones are named in the entry's name)."""
    for contained in items(resource.get("contained")):
        if isinstance(contained, dict) and isinstance(contained.get("form"), dict):
            form = contained["form"]
            text = form.get("text")
            if isinstance(text, str):
                return text
            return " ".join(str(c.get("display", "")) for c in items(form.get("coding")) if isinstance(c, dict))
    return ""


def _concepts(value: Any) -> list[Any]:
    """A list of CodeableConcepts, or the one object some EHRs send where R4 has a list."""
    return [value] if isinstance(value, dict) else items(value)


def _reasons(value: Any) -> tuple[ConditionEntry, ...]:
    if not value:  # most orders give none: no generator to build
        return ()
    return tuple(_reason(concept) for concept in items(value) if type(concept) is dict)


def _reason(concept: Mapping[str, Any]) -> ConditionEntry:
    text = concept.get("text")
    return ConditionEntry("reasonCode", codings_of(concept), text if isinstance(text, str) else "")


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _reference_display(resource: Mapping[str, Any], medication: Mapping[str, Any] | None) -> str:
    """What Epic sends when it omits the Medication: medicationReference.display, read as the name."""
    ref = resource.get("medicationReference")
    display = ref.get("display") if medication is None and isinstance(ref, dict) else None
    return display.strip() if isinstance(display, str) else ""


def medication_unresolved(resource: Mapping[str, Any], medications: Mapping[str, Mapping[str, Any]]) -> bool:
    """The order names its drug by a reference to a Medication that is not at hand (Epic): only the
    EHR's server can say what it is."""
    ref = resource.get("medicationReference")
    return (
        isinstance(ref, dict)
        and isinstance(ref.get("reference"), str)
        and (_resolve_medication(resource, medications) is None)
    )


def _resolve_medication(
    resource: Mapping[str, Any], medications: Mapping[str, Mapping[str, Any]]
) -> Mapping[str, Any] | None:
    ref = resource.get("medicationReference")
    if not isinstance(ref, dict) or not isinstance(ref.get("reference"), str):
        return None
    target = ref["reference"]
    if target.startswith("#"):
        for contained in items(resource.get("contained")):
            if (
                isinstance(contained, dict)
                and contained.get("resourceType") == "Medication"
                and contained.get("id") == target[1:]
            ):
                return contained
        return None
    parts = target.rstrip("/").split("/")
    relative = "/".join(parts[-2:])
    return medications.get(target) or medications.get(relative)


def _strength(ratio: Any) -> tuple[float, str] | None:
    """Amount per single unit (tablet, capsule, mL) from a Medication.ingredient.strength Ratio."""
    if not isinstance(ratio, dict) or not isinstance(ratio.get("numerator"), dict):
        return None
    numerator, denominator = ratio["numerator"], ratio.get("denominator") or {}
    value, per = numerator.get("value"), denominator.get("value", 1) if isinstance(denominator, dict) else 1
    unit = numerator.get("code") or numerator.get("unit")
    if isinstance(value, bool) or not isinstance(value, int | float) or not isinstance(per, int | float) or not per:
        return None
    per_unit = denominator.get("code") or denominator.get("unit") if isinstance(denominator, dict) else None
    liquid = isinstance(per_unit, str) and per_unit.lower() == "ml"
    return float(value) / float(per), str(unit or "") + ("/mL" if liquid else "")  # "mg/mL": per millilitre


def _first(value: Any) -> Any:
    return value[0] if isinstance(value, list) and value else {}


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
