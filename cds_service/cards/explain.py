"""The card's audit trail, as a structured extension (`mg-cds.explanation`), never as card text.

How each order was read, the record entries and estimates the verdict rests on, the variant that
said it and the data gaps: what a pharmacist or an EHR analyst checks when a card looks wrong, kept
out of the five seconds a prescriber gives the card. `cds-service evaluate --explain` prints it and
the card record keeps it.
"""

from __future__ import annotations

from typing import Any

from ..clinical.findings import Finding
from ..record.model import PatientRecord

EXTENSION = "mg-cds.explanation"


def explanation(finding: Finding, record: PatientRecord) -> dict[str, Any]:
    out: dict[str, Any] = {
        "rule": finding.rule_id,
        "orders": [entry.reference for entry in finding.orders],
        "evidence": list(finding.audit),
        "sources": list(finding.sources),
    }
    if finding.partner is not None:
        out["partner"] = finding.partner.reference
    if finding.variant is not None:
        out["variant"] = finding.variant
    if record.gaps:
        out["data_gaps"] = [{"topic": g.topic, "reason": g.reason} for g in record.gaps]
    return out
