"""Prefetch templates: token substitution and the query forms the spec allows.

Only `{{context.*}}` and `{{user*Id}}` tokens (CDS Hooks 2.0); values are FHIR ids (checked by the
request schema) and are URL-quoted anyway.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote

from ..protocol.request import HookRequest

TOKEN = re.compile(r"\{\{\s*([A-Za-z.]+)\s*\}\}")
FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")  # FHIR R4 id: what may follow "Medication/" in a read


@dataclass(frozen=True, slots=True)
class Query:
    resource_type: str
    resource_id: str | None
    params: tuple[tuple[str, str], ...]

    def param(self, name: str) -> str | None:
        return next((v for k, v in self.params if k == name), None)


def token_values(request: HookRequest) -> dict[str, str]:
    values = {"context.patientId": request.patient_id}
    if request.user_id:
        values["context.userId"] = request.user_id
        kind, _, ident = request.user_id.partition("/")
        values[f"user{kind}Id"] = ident
    if request.encounter_id:
        values["context.encounterId"] = request.encounter_id
    return values


def resolve(template: str, request: HookRequest) -> str | None:
    """The query with tokens filled in, or None when a token has no value in this request."""
    values = token_values(request)
    missing = False

    def fill(match: re.Match[str]) -> str:
        nonlocal missing
        value = values.get(match.group(1))
        if value is None:
            missing = True
            return ""
        return quote(value, safe="/")

    query = TOKEN.sub(fill, template)
    return None if missing else query


def parse_query(query: str) -> Query:
    path, _, qs = query.partition("?")
    parts = path.strip("/").split("/")
    return Query(parts[0], parts[1] if len(parts) > 1 else None, tuple(parse_qsl(qs, keep_blank_values=True)))


def templates_for(discovery: Mapping[str, Any], service_id: str, hook: str) -> dict[str, str]:
    for service in discovery["services"]:
        if service["id"] == service_id and service["hook"] == hook:
            return dict(service.get("prefetch") or {})
    return {}
