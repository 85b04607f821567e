"""FHIR resources carried by suggestions, checked against R4B with fhir.resources before they leave."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Any

import orjson
from fhir.resources.R4B.medicationrequest import MedicationRequest
from fhir.resources.R4B.servicerequest import ServiceRequest
from pydantic import ValidationError

from ..record.model import PatientRecord

LOINC = "http://loinc.org"
_CHECKED_SHAPES: set[tuple[str, bool, bool]] = set()
# The lab each suggestion orders (LOINC codes from shared/reference/terminology.md, VERIFIED).
LAB_ORDER_CODES = {
    "magnesium": ("19123-9", "Magnesium [Mass/volume] in Serum or Plasma"),
    "creatinine": ("2160-0", "Creatinine [Mass/volume] in Serum or Plasma"),
    "potassium": ("2823-3", "Potassium [Moles/volume] in Serum or Plasma"),
    "calcium": ("17861-6", "Calcium [Mass/volume] in Serum or Plasma"),
}


def lab_service_request(analyte: str, due: datetime, record: PatientRecord, reason: str) -> dict[str, Any]:
    code, display = LAB_ORDER_CODES[analyte]
    resource: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "status": "draft",
        "intent": "order",
        "code": {"coding": [{"system": LOINC, "code": code, "display": display}], "text": display},
        "subject": {"reference": f"Patient/{record.patient_id}"},
        "occurrenceDateTime": due.isoformat(timespec="seconds"),
        "authoredOn": record.now.isoformat(timespec="seconds"),
        "reasonCode": [{"text": reason[:200]}],
    }
    if record.encounter_id:
        resource["encounter"] = {"reference": f"Encounter/{record.encounter_id}"}
    if record.user_id and record.user_id.split("/", 1)[0] in ("Practitioner", "PractitionerRole"):
        resource["requester"] = {"reference": record.user_id}
    shape = (analyte, "encounter" in resource, "requester" in resource)
    if shape not in _CHECKED_SHAPES:  # every shape we build is checked against R4B once per process
        ServiceRequest.model_validate(resource)
        _CHECKED_SHAPES.add(shape)
    return resource


def valid_medication_request(resource: dict[str, Any]) -> bool:
    """Is this (EHR-supplied, then updated) MedicationRequest valid R4, so an EHR can apply it?

    Validation costs ~0.3 ms per order; the same draft comes back at order-select, again at
    order-sign and on every re-sign, so the answer is remembered per exact content."""
    try:
        content = orjson.dumps(resource, option=orjson.OPT_SORT_KEYS)
    except (orjson.JSONEncodeError, TypeError):
        return _valid_r4(resource)
    return _valid_by_content(content)


@lru_cache(maxsize=2048)
def _valid_by_content(content: bytes) -> bool:
    return _valid_r4(orjson.loads(content))


def _valid_r4(resource: Any) -> bool:
    try:
        MedicationRequest.model_validate(resource)
    except (ValidationError, ValueError, TypeError):
        return False
    return True
