"""A card's override reasons: this service's codes, then the CDS Hooks 3.0 standard codes they map to.

CDS Hooks 2.0 clients see the service's own reasons first, as before; the standard non-adherence
reason codes (knowledge/override_reasons.yaml) follow, once each, so a client on the 3.0 ballot can
offer and return them and overrides compare across organisations.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..knowledge import Knowledge


def override_codings(knowledge: Knowledge, codes: Iterable[str]) -> list[dict[str, Any]]:
    local = [
        {"code": code, "system": knowledge.override_reason_system, "display": knowledge.override_reasons[code]}
        for code in codes
    ]
    standard = knowledge.standard_reasons
    if standard is None:
        return local
    mapped = dict.fromkeys(standard.by_local[c["code"]] for c in local if c["code"] in standard.by_local)
    return local + [{"code": code, "system": standard.system, "display": display} for code, display in mapped]
