"""The card's audit trail, as a structured extension (`mg-cds.explanation`), never as card text.

How each order was read, the record entries and estimates the verdict rests on, the variant that
said it and the data gaps: what a pharmacist or an EHR analyst checks when a card looks wrong, kept
out of the five seconds a prescriber gives the card. `cds-service evaluate --explain` prints it and
the card record keeps the part of it that says nothing about the patient (`for_the_record`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from ..clinical.findings import Finding
from ..record.model import PatientRecord
from .model import Card, IssuedCard

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
    if finding.read_as:
        out["read_as"] = [
            {"order": order, "route": route, "use": use, "setting": setting}
            for order, route, use, setting in finding.read_as
        ]
    if record.gaps:
        out["data_gaps"] = [{"topic": g.topic, "reason": g.reason} for g in record.gaps]
    return out


def for_the_record(card: Card) -> str | None:
    """What the store keeps of a card's explanation: how its orders were read (route class, use,
    setting), the variant that worded it and which data were missing. No record ids, values, names
    or free text: the store holds nothing about the patient."""
    explained = (card.extension or {}).get(EXTENSION)
    if not explained:
        return None
    kept = {
        "variant": explained.get("variant"),
        "read_as": explained.get("read_as", []),
        "data_gaps": sorted({g["topic"] for g in explained.get("data_gaps", ())}),
    }
    return orjson.dumps(kept, option=orjson.OPT_SORT_KEYS).decode()  # compact, sorted: as json.dumps was


def issued_row(
    issued: IssuedCard, service_id: str, hook: str, hook_instance: str, held_back: str | None = None
) -> dict[str, Any]:
    """The row kept for a card issued (or held back, and why): ids and codes only, nothing about the patient."""
    return {
        "card_uuid": issued.card.uuid,
        "service_id": service_id,
        "hook": hook,
        "hook_instance": hook_instance[:100],
        "rule_id": issued.rule_id,
        "indicator": issued.card.indicator.value,
        "issued_at": datetime.now(UTC),
        "held_back": held_back,
        "explanation": for_the_record(issued.card),
    }
