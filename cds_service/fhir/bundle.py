"""Turn a FHIR Bundle on disk into the CDS Hooks request an EHR would send for it.

The named orders become `draftOrders`; everything else is what the EHR would prefetch, answered
from the bundle with the service's own prefetch templates, so offline runs see what live ones do.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..jsonutil import items
from ..protocol.request import HookRequest
from ..protocol.services import HOOKS
from .local import run_query
from .templates import FHIR_ID, resolve

ORDER_TYPES = ("MedicationRequest", "ServiceRequest", "NutritionOrder")


class BundleError(ValueError):
    """The bundle cannot be evaluated; the message says why."""


def bundle_resources(bundle: Any) -> list[tuple[str | None, Mapping[str, Any]]]:
    """(fullUrl, resource) pairs. A transaction bundle's resources often have no id (the server would
    assign one): each gets one here, on a copy, from its urn:uuid fullUrl, else from its position."""
    if not isinstance(bundle, Mapping) or bundle.get("resourceType") != "Bundle":
        raise BundleError("not a FHIR Bundle (resourceType must be 'Bundle')")
    out = []
    for i, entry in enumerate(items(bundle.get("entry"))):
        if isinstance(entry, Mapping) and isinstance(entry.get("resource"), Mapping):
            resource, url = entry["resource"], entry.get("fullUrl")
            if not isinstance(resource.get("id"), str) or not resource["id"]:
                resource = {**resource, "id": _id_from(url, i)}
            out.append((url, resource))
    return out


def _reference_of(order: Mapping[str, Any]) -> str | None:
    ref = order.get("medicationReference")
    return ref.get("reference") if isinstance(ref, Mapping) and isinstance(ref.get("reference"), str) else None


def _id_from(full_url: Any, position: int) -> str:
    """'urn:uuid:6d36...' -> '6d36...' (a valid FHIR id); 'Patient/7' -> '7'; else 'entry-<n>'."""
    if isinstance(full_url, str) and full_url:
        tail = full_url.rsplit(":", 1)[-1].rsplit("/", 1)[-1]
        if FHIR_ID.fullmatch(tail):
            return tail
    return f"entry-{position}"


def request_from_bundle(
    bundle: Any,
    hook: str,
    order_ids: Sequence[str],
    templates: Mapping[str, str],
    user_id: str = "Practitioner/cds-service-evaluate",
    hook_instance: str | None = None,
) -> dict[str, Any]:
    if hook not in HOOKS:
        raise BundleError(f"unknown hook '{hook}' (known: {', '.join(HOOKS)})")
    entries = bundle_resources(bundle)
    patients = [(url, r) for url, r in entries if r.get("resourceType") == "Patient"]
    if len(patients) != 1:
        raise BundleError(f"the bundle must hold exactly one Patient, found {len(patients)}")
    patient_url, patient = patients[0]
    if not patient.get("id"):
        raise BundleError("the Patient has no id")
    wanted = set(order_ids)
    drafts = [
        (url, r)
        for url, r in entries
        if r.get("resourceType") in ORDER_TYPES
        and (r.get("id") in wanted or url in wanted or (not wanted and r.get("status") == "draft"))
    ]
    if wanted - {r.get("id") for _, r in drafts} - {u for u, _ in drafts}:
        missing = sorted(wanted - {r.get("id") for _, r in drafts} - {u for u, _ in drafts})
        raise BundleError(f"no order with id {', '.join(missing)} in the bundle")
    spec = HOOKS[hook]
    if not spec.orders_drafted:
        drafts = []  # the chart opens: the active medications are what is judged
    elif not drafts:
        raise BundleError("no draft orders: name them with --order ID or give them status 'draft'")
    draft_ids = {id(r) for _, r in drafts}
    # Only the Medications the drafts reference travel with them; the others come by prefetch (_include).
    referenced = {_reference_of(r) for _, r in drafts}
    medications = [
        r
        for url, r in entries
        if r.get("resourceType") == "Medication" and ({f"Medication/{r.get('id')}", url} & referenced)
    ]
    context: dict[str, Any] = {"userId": user_id, "patientId": patient["id"]}
    if spec.orders_drafted:
        context["draftOrders"] = {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [{"resource": r} for _, r in drafts] + [{"resource": m} for m in medications],
        }
    encounter = _current_encounter(entries, patient["id"])
    if encounter:
        context["encounterId"] = encounter
    if spec.selected_only:
        context["selections"] = [f"{r['resourceType']}/{r.get('id')}" for _, r in drafts]
    body: dict[str, Any] = {"hook": hook, "hookInstance": hook_instance or str(uuid.uuid4()), "context": context}
    pool = [r for _, r in entries if id(r) not in draft_ids]
    refs = {f"Patient/{patient['id']}"} | ({patient_url} if patient_url else set())
    body["prefetch"] = prefetch_from(pool, templates, _placeholder_request(body), refs)
    return body


def _current_encounter(entries: Sequence[tuple[str | None, Mapping[str, Any]]], patient_id: str) -> str | None:
    """The one in-progress Encounter of the patient: the encounter an EHR would name in the hook context."""
    current = [
        r.get("id")
        for _, r in entries
        if r.get("resourceType") == "Encounter" and r.get("status") == "in-progress" and isinstance(r.get("id"), str)
    ]
    return current[0] if len(current) == 1 else None


def prefetch_from(
    resources: Iterable[Mapping[str, Any]], templates: Mapping[str, str], request: HookRequest, patient_refs: set[str]
) -> dict[str, Any]:
    pool = list(resources)
    out = {}
    for key, template in templates.items():
        query = resolve(template, request)
        if query is not None:
            out[key] = run_query(query, pool, patient_refs)
    return out


def _placeholder_request(body: Mapping[str, Any]) -> HookRequest:
    context = body["context"]
    return HookRequest(
        service_id="",
        hook=body["hook"],
        hook_instance=body["hookInstance"],
        patient_id=context["patientId"],
        user_id=context.get("userId"),
        encounter_id=context.get("encounterId"),
        fhir_server=None,
        selections=(),
        draft_orders=(),
        draft_medications={},
        prefetch={},
    )
