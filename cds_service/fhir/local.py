"""Answer prefetch queries from a FHIR Bundle on disk: what an EHR would have prefetched.

Used by `cds-service evaluate` and the fixtures. It understands exactly the search parameters our
templates use (patient, status, clinical-status, code, _sort=-date, _count).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..record.dates import parse_datetime
from .templates import Query, parse_query

SEARCHSET = "searchset"


def run_query(query_text: str, resources: Iterable[Mapping[str, Any]], patient_refs: set[str]) -> Any:
    query = parse_query(query_text)
    resources = list(resources)
    pool = [r for r in resources if r.get("resourceType") == query.resource_type]
    if query.resource_id:
        return next((r for r in pool if r.get("id") == query.resource_id), None)
    matched = [r for r in pool if _matches(r, query, patient_refs)]
    if query.param("_sort") == "-date":
        matched.sort(key=_effective, reverse=True)
    count = query.param("_count")
    if count and count.isdigit():
        matched = matched[: int(count)]
    entries: list[dict[str, Any]] = [{"resource": r, "search": {"mode": "match"}} for r in matched]
    if (query.param("_include") or "").endswith(":medication"):  # the Medications the matched orders reference
        entries += [{"resource": m, "search": {"mode": "include"}} for m in _medications_of(matched, resources)]
    return {"resourceType": "Bundle", "type": SEARCHSET, "total": len(matched), "entry": entries}


def _medications_of(orders: list[Mapping[str, Any]], resources: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    wanted = {
        o["medicationReference"]["reference"].rsplit("/", 1)[-1]
        for o in orders
        if isinstance(o.get("medicationReference"), Mapping)
        and isinstance(o["medicationReference"].get("reference"), str)
    }
    return [r for r in resources if r.get("resourceType") == "Medication" and r.get("id") in wanted]


def _matches(resource: Mapping[str, Any], query: Query, patient_refs: set[str]) -> bool:
    subject = resource.get("subject") or resource.get("patient") or {}
    if query.param("patient") and isinstance(subject, Mapping) and subject.get("reference") not in patient_refs:
        return False
    status = query.param("status")
    if status and resource.get("status") not in status.split(","):
        return False
    clinical = query.param("clinical-status")
    if clinical:
        codes = {c.get("code") for c in (resource.get("clinicalStatus") or {}).get("coding") or ()}
        if not codes & set(clinical.split(",")):
            return False
    code = query.param("code")
    if code:
        wanted = set(code.split(","))
        have = {f"{c.get('system')}|{c.get('code')}" for c in (resource.get("code") or {}).get("coding") or ()}
        if not wanted & have:
            return False
    return True


def _effective(resource: Mapping[str, Any]) -> str:
    when = (
        parse_datetime(resource.get("effectiveDateTime"))
        or parse_datetime((resource.get("effectivePeriod") or {}).get("start"))
        or parse_datetime(resource.get("issued"))
    )
    return when.isoformat() if when else ""
