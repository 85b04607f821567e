"""The services this CDS Hooks endpoint offers, one descriptor each, and discovery generated from them.

A descriptor says what a hook is (whether orders are drafted, whether only the selected ones count,
what card memory does at it) so that code asks the descriptor, never the hook's name. The prefetch
templates are built from the knowledge's lab table (labs.yaml: the LOINC codes of each analyte a rule
reads), so a code added to the table is asked for without a second copy by hand.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from ..knowledge.model import LOINC

if TYPE_CHECKING:
    from ..knowledge.model import Knowledge

VERSION = "2.0.0"
LEGACY_ID = "magnesium-order-check"  # the wave-1 id: answers both order hooks, unlisted


@dataclass(frozen=True, slots=True)
class Hook:
    """What a CDS Hooks hook means to this service."""

    name: str
    orders_drafted: bool  # the EHR sends draft orders: a call about none a rule speaks of is answered at once
    selected_only: bool  # only the orders in context.selections are judged (order-select)
    remembers_shown: bool  # card memory notes what it showed, so the next hook need not repeat it
    recalls_shown: bool  # card memory holds back what the previous hook showed


ORDER_SELECT = Hook("order-select", orders_drafted=True, selected_only=True, remembers_shown=True, recalls_shown=False)
ORDER_SIGN = Hook("order-sign", orders_drafted=True, selected_only=False, remembers_shown=False, recalls_shown=True)
PATIENT_VIEW = Hook(
    "patient-view", orders_drafted=False, selected_only=False, remembers_shown=False, recalls_shown=False
)
HOOKS: Mapping[str, Hook] = MappingProxyType({h.name: h for h in (ORDER_SELECT, ORDER_SIGN, PATIENT_VIEW)})
ORDER_HOOKS = tuple(h.name for h in HOOKS.values() if h.orders_drafted)


@dataclass(frozen=True, slots=True)
class LabQuery:
    """One prefetch key asking for the latest results of some analytes of the lab table."""

    key: str
    analytes: tuple[str, ...]
    count: int


# What the rules read, in the order discovery lists it (a stable order: clients diff discovery).
LAB_QUERIES = (
    LabQuery("magnesium", ("magnesium",), 20),
    LabQuery("renal", ("creatinine", "egfr"), 50),
    LabQuery("weight", ("weight",), 5),
    LabQuery("height", ("height",), 5),
    LabQuery("electrolytes", ("potassium", "calcium"), 20),
)
ACTIVE_MEDICATIONS = "status=active&_include={kind}:medication"
ORDER_DESCRIPTION = (
    "Checks magnesium products (every salt, prescribed or OTC) at order time: renal risk by Cockcroft-Gault / "
    "eGFR, serum magnesium levels, and the data they rest on."
)
ORDER_USAGE = (
    "Send MedicationRequest draft orders; an access token with patient/*.read (or full prefetch) lets the "
    "service fetch missing data."
)
REVIEW_USAGE = "An access token with patient/*.read (or full prefetch) lets the service fetch missing data."


@dataclass(frozen=True, slots=True)
class ServiceDescriptor:
    id: str
    hook: Hook
    title: str
    description: str
    usage: str
    answers: tuple[Hook, ...] = ()  # the hooks it answers; its own when empty
    listed: bool = True  # in discovery (the legacy id is not)

    @property
    def hooks(self) -> tuple[Hook, ...]:
        return self.answers or (self.hook,)


SERVICES = (
    ServiceDescriptor(
        "magnesium-order-select",
        ORDER_SELECT,
        "Magnesium product safety (order-select)",
        ORDER_DESCRIPTION,
        ORDER_USAGE,
    ),
    ServiceDescriptor(
        "magnesium-order-sign", ORDER_SIGN, "Magnesium product safety (order-sign)", ORDER_DESCRIPTION, ORDER_USAGE
    ),
    ServiceDescriptor(
        "magnesium-patient-review",
        PATIENT_VIEW,
        "Magnesium therapy review (patient-view)",
        "When a chart opens, for a patient on a magnesium product: renal function now below a tier or unstable, "
        "a level out of range, monitoring overdue, interactions and depletion among active medications, "
        "duplicates. Silent for patients on no magnesium product.",
        REVIEW_USAGE,
    ),
    ServiceDescriptor(
        LEGACY_ID,
        ORDER_SIGN,
        "Magnesium product safety (order-select and order-sign)",
        ORDER_DESCRIPTION,
        ORDER_USAGE,
        answers=(ORDER_SELECT, ORDER_SIGN),
        listed=False,
    ),
)


class ServiceRegistry:
    """The services by id, and each listed service's prefetch templates built from the knowledge."""

    def __init__(self, knowledge: Knowledge, services: tuple[ServiceDescriptor, ...] = SERVICES) -> None:
        self.by_id: Mapping[str, ServiceDescriptor] = MappingProxyType({s.id: s for s in services})
        self.prefetch: Mapping[str, str] = MappingProxyType(prefetch_templates(knowledge))

    def __contains__(self, service_id: object) -> bool:
        return service_id in self.by_id

    def get(self, service_id: str) -> ServiceDescriptor | None:
        return self.by_id.get(service_id)

    def listed(self) -> list[ServiceDescriptor]:
        return [s for s in self.by_id.values() if s.listed]

    def for_hook(self, hook: Hook) -> ServiceDescriptor:
        """The listed service of a hook (the one `cds-service evaluate` calls for it)."""
        return next(s for s in self.listed() if s.hook == hook)

    def discovery(self) -> dict[str, Any]:
        """The discovery document (CDS Hooks 2.0), services in their stable order."""
        return {"services": [self.describe(s) for s in self.listed()]}

    def discovery_text(self) -> str:
        """As shipped in hooks/discovery.json (`python -m cds_service.protocol.services` writes it)."""
        return json.dumps(self.discovery(), indent=2, ensure_ascii=False) + "\n"

    def describe(self, service: ServiceDescriptor) -> dict[str, Any]:
        return {
            "hook": service.hook.name,
            "id": service.id,
            "version": VERSION,
            "title": service.title,
            "description": service.description,
            "prefetch": dict(self.prefetch),
            "usageRequirements": service.usage,
        }


def prefetch_templates(knowledge: Knowledge) -> dict[str, str]:
    """Every hook asks for the same data: the patient, running medications, active conditions, the
    labs the rules read (codes from the lab table) and the encounter."""
    patient = "{{context.patientId}}"
    templates = {
        "patient": f"Patient/{patient}",
        "medicationRequests": f"MedicationRequest?patient={patient}&"
        + ACTIVE_MEDICATIONS.format(kind="MedicationRequest"),
        "medicationStatements": f"MedicationStatement?patient={patient}&"
        + ACTIVE_MEDICATIONS.format(kind="MedicationStatement"),
        "conditions": f"Condition?patient={patient}&clinical-status=active",
    }
    for query in LAB_QUERIES:
        codes = ",".join(f"{LOINC}|{code}" for name in query.analytes for code in knowledge.analytes[name].codes)
        templates[query.key] = f"Observation?patient={patient}&code={codes}&_sort=-date&_count={query.count}"
    templates["encounter"] = "Encounter/{{context.encounterId}}"
    return templates


if __name__ == "__main__":  # regenerate the shipped document: ... > hooks/discovery.json
    from ..knowledge import load_knowledge

    sys.stdout.write(ServiceRegistry(load_knowledge()).discovery_text())
