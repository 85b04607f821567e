"""Relevance first: does any order in scope concern a rule at all? Decided from the request alone
(the draft orders and the Medications it carries), before any prefetch is resolved or FHIR server
called. In a hospital most orders are not about magnesium; they get `{"cards": []}` at once."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..jsonutil import items
from ..record.build import READ_ERRORS
from ..record.call import HookCall
from ..record.medications import medication_unresolved, parse_medication
from .engine import RuleEngine


def may_concern_a_rule(request: HookCall, engine: RuleEngine) -> bool:
    """False only when every in-scope draft order is read and none is a magnesium product or a partner,
    wasting or risk drug by a route a rule judges. An order that cannot be read from the request alone
    (a Medication only referenced, a shape that does not parse) takes the full path, which fetches
    or reports it: relevance first never hides a card the full path would give."""
    medications = request.draft_medications
    for i, resource in enumerate(request.draft_orders, start=1):
        if not request.in_scope(resource):
            continue
        if medication_unresolved(resource, medications) and medications is request.draft_medications:
            medications = {**_prefetched_medications(request.prefetch), **medications}  # looked for once
        try:
            entry = parse_medication(resource, "draft", medications, f"draft order {i}")
        except READ_ERRORS:
            return True
        if entry is None:
            continue  # a resource type no rule reads (a lab order, a DSTU2 MedicationOrder)
        if engine.speaks_about(entry) or medication_unresolved(resource, medications):
            return True
    return False


def _prefetched_medications(prefetch: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """Medications the EHR already put in a prefetch Bundle (`_include=MedicationRequest:medication`)."""
    found: dict[str, Mapping[str, Any]] = {}
    for value in prefetch.values():
        if not isinstance(value, Mapping) or value.get("resourceType") != "Bundle":
            continue
        for entry in items(value.get("entry")):
            resource = entry.get("resource") if isinstance(entry, Mapping) else None
            if not isinstance(resource, Mapping) or resource.get("resourceType") != "Medication":
                continue
            if isinstance(resource.get("id"), str):
                found[f"Medication/{resource['id']}"] = resource
    return found
