"""FHIR resources carried by suggestions, checked against R4B with fhir.resources before they leave."""

from __future__ import annotations

import re
from datetime import datetime
from functools import lru_cache
from typing import Any, get_args, get_origin

import orjson
from fhir.resources.R4B.medicationrequest import MedicationRequest
from fhir.resources.R4B.servicerequest import ServiceRequest
from pydantic import TypeAdapter, ValidationError

from ..knowledge.model import LOINC
from ..record.model import PatientRecord

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


# Elements that differ from one patient, visit or prescriber to the next while the order itself
# (drug, dose, route, timing) repeats: the cache key holds a fixed valid stand-in for each one present.
PER_PATIENT: dict[str, Any] = {
    "id": "x",
    "subject": {"reference": "Patient/x"},
    "encounter": {"reference": "Encounter/x"},
    "requester": {"reference": "Practitioner/x"},
    "authoredOn": "2000-01-01",
}


# Each per-patient or patient-linked element checked as MedicationRequest checks it: its field's type,
# under the model's configuration (extra fields forbidden), with nothing around it to build.
def _element_check(name: str) -> TypeAdapter[Any]:
    annotation = MedicationRequest.model_fields[name].annotation
    assert annotation is not None, name  # every FHIR element has a type
    return TypeAdapter(annotation, config=MedicationRequest.model_config)


# Optional elements that can name the patient or say something about them (their reasons, notes,
# identifiers, the orders and reports around this one, the narrative, the record's metadata), none
# required, in a choice group or with an extension sibling (tests/test_r4_cache.py checks that against
# the model): left out of the remembered verdict's key altogether, each checked by its field's type.
LINKED = (
    "identifier", "groupIdentifier", "note", "reasonCode", "reasonReference", "basedOn", "priorPrescription",
    "supportingInformation", "insurance", "detectedIssue", "eventHistory", "performer", "recorder", "text",
    "meta",
)  # fmt: skip
_ELEMENT_CHECKS = {name: _element_check(name) for name in (*PER_PATIENT, *LINKED)}


def _is_list(name: str) -> bool:
    annotation = MedicationRequest.model_fields[name].annotation
    return get_origin(annotation) is list or any(get_origin(arg) is list for arg in get_args(annotation))


# The elements that are lists of complex types: the model refuses a null inside one (fhir_core's
# reject_null_complex_elements, a rule of the whole resource that the element's own type does not apply).
_LISTS = frozenset(name for name in _ELEMENT_CHECKS if _is_list(name))
REFERENCES = frozenset({"subject", "encounter", "requester", "priorPrescription", "performer", "recorder"})


def valid_medication_request(resource: dict[str, Any], checked: dict[tuple[str, bytes], bool] | None = None) -> bool:
    """Is this (EHR-supplied, then updated) MedicationRequest valid R4, so an EHR can apply it?

    Validation costs ~0.3 ms per order and the same drafts come back for every patient who gets
    them, so it is split in two: the order with its per-patient elements (PER_PATIENT) replaced by
    valid stand-ins and its patient-linked ones (LINKED) left out, its verdict remembered per content
    (none of those elements in the key); and those elements themselves, each checked by its field's
    type (~25 us for the five per-patient ones; checked inside a whole MedicationRequest it was ~65,
    and remembering that verdict kept patient ids in memory). The two verdicts together are the
    verdict on the whole order, because fhir.resources' MedicationRequest has no rule that joins
    these elements to others: it has no field validators of its own, and its only resource-level
    rules (fhir_core's FHIRAbstractModel) are the required primitives (status, intent), the choice
    groups (medication[x], reported[x]) and no null inside a list of complex elements (which the
    element's own type does not refuse: `_check_element` applies it), none of which reads one of
    these elements to judge another.
    `tests/test_r4_cache.py` holds this against the whole-order check, for listed and generated
    elements. What the key can still hold is the order's meaning (drug, dose, route, timing, free text
    in them included, a dispenseRequest's performer), its contained resources (its Medication among
    them), reportedReference (a choice with reportedBoolean) and extensions. `checked`: the verdicts on
    elements already checked in this request (a patient's orders share their subject, encounter and
    prescriber)."""
    own = {key: resource[key] for key in PER_PATIENT if key in resource}
    linked = {key: resource[key] for key in LINKED if key in resource}
    if not own and not linked:
        return _valid_whole(resource)
    stand_in = {key: value for key, value in resource.items() if key not in linked}
    stand_in.update({key: PER_PATIENT[key] for key in own})
    return _valid_whole(stand_in) and all(
        _valid_element(key, value, checked) for part in (own, linked) for key, value in part.items()
    )


def _valid_element(name: str, value: Any, checked: dict[tuple[str, bytes], bool] | None) -> bool:
    if checked is None:
        return _check_element(name, value)
    try:
        key = (name, orjson.dumps(value, option=orjson.OPT_SORT_KEYS))
    except (orjson.JSONEncodeError, TypeError):
        return _check_element(name, value)
    if key not in checked:
        checked[key] = _check_element(name, value)
    return checked[key]


# A Reference as EHRs send it, {"reference": "Patient/123"}, with printable ASCII and no space: valid R4
# by construction (Reference.reference is a FHIR string, any text with a non-blank character; the
# Reference has no other required element and no rule across its elements), so not built as a model
# (~8 us each). tests/test_r4_cache.py holds this against the model for generated references.
PLAIN_REFERENCE = re.compile(r"[!-~]{1,256}")


# How the models refuse what an EHR sent; KeyError too: fhir_core looks a contained resource's type up
# by name and raises it for a type R4B does not have ("resourceType": "Nope"), where a 500 came out.
_REFUSALS = (ValidationError, ValueError, TypeError, KeyError)


def _check_element(name: str, value: Any) -> bool:
    if (
        name in REFERENCES
        and type(value) is dict
        and len(value) == 1
        and type(value.get("reference")) is str
        and PLAIN_REFERENCE.fullmatch(value["reference"])
    ):
        return True
    if name in _LISTS and isinstance(value, list) and any(item is None for item in value):
        return False
    try:
        _ELEMENT_CHECKS[name].validate_python(value)
    except _REFUSALS:
        return False
    return True


def _valid_whole(resource: dict[str, Any]) -> bool:
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
    except _REFUSALS:
        return False
    return True
