"""Build the PatientRecord from the request and the FHIR resources gathered for it."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from ..knowledge.model import LOINC, Knowledge
from .call import HookCall
from .dates import parse_date, parse_datetime
from .fhir_types import Observation
from .labs import lab_series
from .medications import codings_of, concept_text, parse_medication
from .model import Coding, ConditionEntry, DataGap, MedicationEntry, PatientRecord

INACTIVE_CONDITION = frozenset({"inactive", "resolved", "remission"})
ACTIVE_STATEMENT = frozenset({"active", "intended", "on-hold"})


def build_record(
    request: HookCall,
    resources: Iterable[Mapping[str, Any] | Observation],
    gaps: Sequence[DataGap],
    knowledge: Knowledge,
    now: datetime,
) -> PatientRecord:
    observations: list[Mapping[str, Any] | Observation] = []
    by_type: dict[str, list[Any]] = {"Observation": observations}
    for resource in resources:  # one pass, in order; a typed Observation (fhir_types) needs no look inside
        if isinstance(resource, Observation):
            observations.append(resource)
        elif type(resource) is dict and type(resource.get("resourceType")) is str:
            by_type.setdefault(resource["resourceType"], []).append(resource)
    unreadable: list[str] = []
    patient = next((p for p in by_type.get("Patient", ()) if p.get("id") == request.patient_id), None)
    medications = dict(request.draft_medications)
    for med in by_type.get("Medication", ()):
        if med.get("id"):
            medications[f"Medication/{med['id']}"] = med

    in_scope: list[MedicationEntry] = []
    other_drafts: list[MedicationEntry] = []
    for i, resource in enumerate(request.draft_orders, start=1):
        entry = _read(parse_medication, resource, unreadable, "draft", medications, f"draft order {i}")
        if entry is not None:
            (in_scope if request.in_scope(resource) else other_drafts).append(entry)
    draft_refs = {e.reference for e in (*in_scope, *other_drafts)}
    active = [e for e in _active_medications(by_type, medications, unreadable) if e.reference not in draft_refs]
    if not request.orders_drafted:  # the chart opens: the therapy already running is what is judged
        in_scope, active = active, []
    return PatientRecord(
        reviewing=not request.orders_drafted,
        now=now,
        patient_id=request.patient_id,
        patient_known=patient is not None,
        birth_date=parse_date(patient.get("birthDate")) if patient else None,
        sex=patient.get("gender")
        if patient and patient.get("gender") in ("male", "female", "other", "unknown")
        else None,
        user_id=request.user_id,
        encounter_id=request.encounter_id,
        orders_in_scope=tuple(in_scope),
        other_drafts=tuple(other_drafts),
        active_medications=tuple(active),
        labs=lab_series(observations, knowledge, now, unreadable),
        conditions=tuple(_conditions(by_type.get("Condition", ()), unreadable)),
        gaps=(*gaps, *_unreadable_gaps(unreadable)),
        draft_lab_orders=_draft_lab_orders(request.draft_orders, knowledge),
        encounter_class=_encounter_class(by_type.get("Encounter", ()), request.encounter_id),
    )


def _encounter_class(encounters: Iterable[Mapping[str, Any]], encounter_id: str | None) -> Coding | None:
    """The class (R4: one Coding) of the encounter the hook names; other encounters say nothing."""
    for encounter in encounters:
        if encounter_id and encounter.get("id") == encounter_id and isinstance(encounter.get("class"), dict):
            coding = encounter["class"]
            if isinstance(coding.get("code"), str):
                return Coding(coding.get("system") if isinstance(coding.get("system"), str) else None, coding["code"])
    return None


READ_ERRORS = (TypeError, ValueError, AttributeError, KeyError, IndexError)


def _read(parse: Callable[..., Any], resource: Mapping[str, Any], unreadable: list[str], *args: Any) -> Any:
    """Parse one resource; one that does not follow FHIR is skipped and reported, never a crash."""
    try:
        return parse(resource, *args)
    except READ_ERRORS:
        unreadable.append(str(resource.get("resourceType")))
        return None


def _unreadable_gaps(unreadable: list[str]) -> tuple[DataGap, ...]:
    if not unreadable:
        return ()
    counts = ", ".join(f"{unreadable.count(t)} {t}" for t in sorted(set(unreadable)))
    return (DataGap("unreadable resources", f"{counts} did not follow FHIR R4 and were not used"),)


def _active_medications(
    by_type: Mapping[str, list[Any]], medications: Mapping[str, Mapping[str, Any]], unreadable: list[str]
) -> Iterable[MedicationEntry]:
    seen = set()
    for rtype, statuses in (("MedicationRequest", ("active",)), ("MedicationStatement", ACTIVE_STATEMENT)):
        for i, resource in enumerate(by_type.get(rtype, ()), start=1):
            if type(resource.get("status")) is str and resource["status"] in statuses:
                entry = _read(parse_medication, resource, unreadable, "active", medications, f"active {i}")
                if entry and entry.reference not in seen:
                    seen.add(entry.reference)
                    yield entry


def _conditions(resources: Iterable[Mapping[str, Any]], unreadable: list[str]) -> Iterable[ConditionEntry]:
    for condition in resources:
        entry = _read(_condition, condition, unreadable)
        if entry is not None:
            yield entry


def _condition(condition: Mapping[str, Any]) -> ConditionEntry | None:
    if any(c.code in INACTIVE_CONDITION for c in codings_of(condition.get("clinicalStatus"))):
        return None
    if any(c.code in ("entered-in-error", "refuted") for c in codings_of(condition.get("verificationStatus"))):
        return None
    return ConditionEntry(
        reference=f"Condition/{condition.get('id') or '(no id)'}",
        codings=codings_of(condition.get("code")),
        text=concept_text(condition.get("code")),
        recorded=recorded_time(condition),
    )


def recorded_time(condition: Mapping[str, Any]) -> datetime | None:
    """When a Condition entered the record: recordedDate, else onsetDateTime."""
    return parse_datetime(condition.get("recordedDate")) or parse_datetime(condition.get("onsetDateTime"))


def _draft_lab_orders(drafts: Iterable[Mapping[str, Any]], knowledge: Knowledge) -> frozenset[str]:
    """Analytes with a lab order (ServiceRequest coded in LOINC) already among the draft orders."""
    found = set()
    for resource in drafts:
        if resource.get("resourceType") == "ServiceRequest":
            for coding in codings_of(resource.get("code")):
                analyte = knowledge.loinc_to_analyte.get(coding.code or "")
                if analyte and coding.system == LOINC:
                    found.add(analyte)
    return frozenset(found)
