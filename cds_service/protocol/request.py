"""The CDS Hooks request as a typed object, built from a body that already passed its JSON Schema."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import field
from typing import Any

from ..immutable import immutable
from .errors import ProtocolError
from .services import HOOKS, ORDER_HOOKS, Hook


@immutable
class HookRequest:
    service_id: str
    hook: str
    hook_instance: str
    patient_id: str
    user_id: str | None
    encounter_id: str | None
    fhir_server: str | None
    selections: tuple[str, ...]
    draft_orders: tuple[Mapping[str, Any], ...]
    draft_medications: Mapping[str, Mapping[str, Any]]
    prefetch: Mapping[str, Any]
    access_token: str | None = field(default=None, repr=False)

    @property
    def spec(self) -> Hook:
        """What the hook means (protocol/services.py): code asks it, not the hook's name."""
        return HOOKS[self.hook]

    @property
    def orders_drafted(self) -> bool:
        return self.spec.orders_drafted

    def in_scope(self, resource: Mapping[str, Any]) -> bool:
        """order-select speaks about the selected orders only; order-sign about every draft order."""
        if not self.spec.selected_only:
            return True
        return f"{resource.get('resourceType')}/{resource.get('id')}" in self.selections


def parse_request(body: Mapping[str, Any], service_id: str, answers: Iterable[Hook | str] = ORDER_HOOKS) -> HookRequest:
    """Typed request; raises ProtocolError (400) for what the schema cannot express (a hook the
    service does not answer, a selection not among the drafts)."""
    hook = body["hook"]
    names = tuple(a if isinstance(a, str) else a.name for a in answers)
    if hook not in names:
        raise ProtocolError(400, "hook", f"service '{service_id}' answers {' and '.join(names)}, not '{hook}'")
    context = body["context"]
    drafts: list[Mapping[str, Any]] = []
    medications: dict[str, Mapping[str, Any]] = {}
    for entry in (context.get("draftOrders") or {}).get("entry") or ():
        resource = entry.get("resource")
        if not isinstance(resource, Mapping):
            continue  # tolerated: an entry without a resource carries nothing to check
        if resource.get("resourceType") == "Medication" and resource.get("id"):
            medications[f"Medication/{resource['id']}"] = resource
            if isinstance(entry.get("fullUrl"), str):
                medications[entry["fullUrl"]] = resource
            continue
        drafts.append(resource)
    selections = tuple(context.get("selections") or ())
    if HOOKS[hook].selected_only:
        present = {f"{r.get('resourceType')}/{r.get('id')}" for r in drafts}
        for i, selection in enumerate(selections):
            if selection not in present:
                raise ProtocolError(400, f"context.selections[{i}]", f"'{selection}' is not in context.draftOrders")
    auth = body.get("fhirAuthorization") or {}
    return HookRequest(
        service_id=service_id,
        hook=hook,
        hook_instance=body["hookInstance"],
        patient_id=context["patientId"],
        user_id=context.get("userId"),
        encounter_id=context.get("encounterId"),
        fhir_server=body.get("fhirServer"),
        selections=selections,
        draft_orders=tuple(drafts),
        draft_medications=medications,
        prefetch=body.get("prefetch") or {},
        access_token=auth.get("access_token"),
    )
