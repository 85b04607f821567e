"""Prefetch templates for a CDS Hooks 3.0 client (ballot: FHIRPath in prefetch tokens), offered to the
clients whose profile says so (`clients.<iss>.prefetch: "3.0"`); every other client gets the 2.0 ones.

Two differences, each saving the client queries:
- order hooks add `draftMedications`: the Medications the draft orders reference, resolved by the
  client (`...medication.resolve().id`), where a 2.0 client leaves the service to fetch each one;
- every Observation template asks only for results within the longest lookback a rule reads
  (`date=ge{{today() - N days}}`), not the patient's whole history.
The keys stay those of the 2.0 templates, so the service reads the answers the same way.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from .services import HOOKS

DRAFT_MEDICATIONS = "draftMedications"
DRAFT_MEDICATIONS_TEMPLATE = (
    "Medication?_id={{context.draftOrders.entry.resource.ofType(MedicationRequest).medication.resolve().id}}"
)


def for_cds_hooks_3(discovery: Mapping[str, Any], lookback_days: float) -> dict[str, Any]:
    """The discovery document with 3.0 prefetch templates; `lookback_days` bounds the lab queries."""
    out = copy.deepcopy(dict(discovery))
    window = f"&date=ge{{{{today() - {lookback_days:.0f} days}}}}"
    for service in out["services"]:
        prefetch = service.get("prefetch") or {}
        for key, template in prefetch.items():
            if template.startswith("Observation?") and "date=" not in template:
                prefetch[key] = template + window
        if HOOKS[service["hook"]].orders_drafted:
            prefetch[DRAFT_MEDICATIONS] = DRAFT_MEDICATIONS_TEMPLATE
    return out
