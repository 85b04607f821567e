"""Prefetch first; fetch each missing key from the allow-listed FHIR server; 412 when data the
rules need cannot be had at all (CDS Hooks 2.0). Null means "no data" (not fetched again);
an OperationOutcome is an error for that key."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from ..config import FhirSettings
from ..immutable import immutable
from ..protocol.errors import ProtocolError
from ..protocol.prefetch3 import DRAFT_MEDICATIONS
from ..protocol.request import HookRequest
from ..record.fhir_types import Observation, typed_resources
from ..record.model import DataGap
from ..security import TrustedIssuer
from .client import FhirFetcher
from .templates import FHIR_ID, resolve

# What each prefetch key provides, for messages on cards ("renal labs could not be retrieved").
TOPICS = {
    "magnesium": "magnesium",
    "renal": "renal",
    "weight": "weight",
    "height": "height",
    "electrolytes": "electrolytes",
    "patient": "patient",
    "conditions": "conditions",
    "encounter": "encounter",
    "medicationRequests": "medications",
    "medicationStatements": "medications",
}


# Keys a rule can do without: when the EHR leaves one out (it could not fill the template) and there is no
# server to ask, the answer comes without it (the setting is then read from the order), never a 412.
OPTIONAL_KEYS = frozenset({"encounter"})


# A resource as gathered: parsed JSON, or a typed struct decoded from the body (record/fhir_types.py).
Resource = Mapping[str, Any] | Observation


@immutable
class GatheredData:
    resources: tuple[Resource, ...]
    gaps: tuple[DataGap, ...]
    fetched_keys: tuple[str, ...]


def gather(
    request: HookRequest,
    templates: Mapping[str, str],
    fhir: FhirSettings,
    fetcher: FhirFetcher | None,
    issuer: TrustedIssuer | None = None,
) -> GatheredData:
    resources: list[Resource] = []
    gaps: list[DataGap] = []
    to_fetch: dict[str, str] = {}
    failed_in_prefetch: dict[str, str] = {}
    for key, template in templates.items():
        query = resolve(template, request)
        if query is None:
            continue
        if key not in request.prefetch:
            to_fetch[key] = query
        elif request.prefetch[key] is None:
            continue
        elif request.prefetch[key].get("resourceType") == "OperationOutcome":
            failed_in_prefetch[key] = query
        else:
            typed = typed_resources(request.prefetch[key])
            resources.extend(_resources_of(request.prefetch[key]) if typed is None else typed)
    draft_medications = request.prefetch.get(DRAFT_MEDICATIONS)  # a 3.0 client's resolved draft Medications
    if isinstance(draft_medications, Mapping) and draft_medications.get("resourceType") != "OperationOutcome":
        resources.extend(r for r in _resources_of(draft_medications) if r.get("resourceType") == "Medication")
    if failed_in_prefetch and not to_fetch and not _can_fetch(request, fhir, issuer):
        # The EHR tried and reported an error: a gap on the cards, not a reason to refuse the call.
        gaps.extend(
            DataGap(TOPICS.get(k, k), "the EHR reported an error for this prefetch") for k in failed_in_prefetch
        )
        failed_in_prefetch = {}
    to_fetch.update(failed_in_prefetch)
    if to_fetch.keys() & OPTIONAL_KEYS and not _can_fetch(request, fhir, issuer):
        to_fetch = {k: q for k, q in to_fetch.items() if k not in OPTIONAL_KEYS}
    for medication_id in _unresolved_draft_medications(request, resources):
        if to_fetch or _can_fetch(request, fhir, issuer):
            to_fetch[f"medication:{medication_id}"] = f"Medication/{medication_id}"
    if to_fetch:
        base, token = _fetch_target(request, fhir, to_fetch, issuer)
        results = fetcher.fetch_all(base, to_fetch, token) if fetcher else {}
        for key in to_fetch:
            result = results.get(key)
            if result is None or result.error:
                reason = (result.error if result else None) or "not fetched"
                gaps.append(DataGap(TOPICS.get(key, "medications" if key.startswith("medication:") else key), reason))
            else:
                resources.extend(result.resources)
    return GatheredData(tuple(resources), tuple(gaps), tuple(to_fetch))


def _unresolved_draft_medications(request: HookRequest, resources: list[Resource]) -> list[str]:
    """Ids of Medications the draft orders reference but neither the draftOrders bundle nor the prefetch
    carried (Epic may send only medicationReference): fetched from the FHIR server when there is one.
    The gathered resources are searched only when a draft names such a Medication (most name a code)."""
    targets = []
    for order in request.draft_orders:
        ref = order.get("medicationReference")
        target = ref.get("reference") if isinstance(ref, Mapping) else None
        if isinstance(target, str) and target.startswith("Medication/") and target not in request.draft_medications:
            targets.append(target)
    if not targets:
        return []
    have = {
        f"Medication/{r.get('id')}"
        for r in resources
        if not isinstance(r, Observation) and r.get("resourceType") == "Medication"
    }
    wanted: list[str] = []
    for target in targets:
        medication_id = target.split("/", 1)[1]
        if target not in have and FHIR_ID.fullmatch(medication_id) and medication_id not in wanted:
            wanted.append(medication_id)
    return wanted


def _can_fetch(request: HookRequest, fhir: FhirSettings, issuer: TrustedIssuer | None) -> bool:
    try:
        _fetch_target(request, fhir, {}, issuer)
    except ProtocolError:
        return False
    return True


def _fetch_target(
    request: HookRequest, fhir: FhirSettings, keys: Mapping[str, str], issuer: TrustedIssuer | None = None
) -> tuple[str, str | None]:
    """The allow-listed base URL and token to fetch with, or 412 saying why data cannot be had."""
    missing = ", ".join(sorted(keys))
    if not request.fhir_server:
        raise ProtocolError(412, "prefetch", f"prefetch keys missing ({missing}) and no fhirServer to fetch them from")
    access = fhir.server(request.fhir_server)
    if access is None:
        raise ProtocolError(
            412, "fhirServer", f"prefetch keys missing ({missing}); fhirServer is not on this service's allow-list"
        )
    if issuer is not None and issuer.fhir_servers and access.base_url not in issuer.fhir_servers:
        raise ProtocolError(412, "fhirServer", "fhirServer is not allow-listed for this EHR's issuer")
    if urlsplit(access.base_url).scheme != "https" and not access.allow_http:
        raise ProtocolError(412, "fhirServer", "fhirServer must use https")
    if not request.access_token and not access.allow_without_token:
        raise ProtocolError(
            412,
            "fhirAuthorization",
            f"prefetch keys missing ({missing}) and no fhirAuthorization access token to fetch them",
        )
    return access.base_url, request.access_token


def _resources_of(value: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """A search Bundle's resources. An OperationOutcome inside it ("no matches", Epic's empty search)
    is information about the search, not data and not an error: an empty result."""
    if value.get("resourceType") == "Bundle":
        entry = value.get("entry")
        entries: list[Any] = entry if isinstance(entry, list) else []
        return [  # parsed JSON: plain dicts (a type check is several times cheaper than an ABC check)
            e["resource"]
            for e in entries
            if type(e) is dict
            and type(e.get("resource")) is dict
            and e["resource"].get("resourceType") != "OperationOutcome"
        ]
    return [value]
