"""The card's audit trail, as a structured extension (`mg-cds.explanation`), never as card text.

How each order was read, the record entries and estimates the verdict rests on, the variant that
said it and the data gaps: what a pharmacist or an EHR analyst checks when a card looks wrong, kept
out of the five seconds a prescriber gives the card. `cds-service evaluate --explain` prints it and
the card record keeps the part of it that says nothing about the patient (`for_the_record`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

import orjson

from ..clinical.findings import Finding
from ..record.model import PatientRecord
from .model import Card, Indicator, IssuedCard

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


def record_part(card: Card) -> tuple[Any, Any, Any] | None:
    """The parts of a card's explanation the store keeps (variant, read_as, data_gaps), as they are."""
    explained = (card.extension or {}).get(EXTENSION)
    if not explained:
        return None
    return explained.get("variant"), explained.get("read_as", []), explained.get("data_gaps", ())


def for_the_record(part: tuple[Any, Any, Any] | None) -> str | None:
    """What the store keeps of a card's explanation (its `record_part`): how its orders were read
    (route class, use, setting), the variant that worded it and which data were missing. No record
    ids, values, names or free text: the store holds nothing about the patient."""
    if part is None:
        return None
    variant, read_as, gaps = part
    kept = {"variant": variant, "read_as": read_as, "data_gaps": sorted({g["topic"] for g in gaps})}
    return orjson.dumps(kept, option=orjson.OPT_SORT_KEYS).decode()  # compact, sorted: as json.dumps was


class CardRow(NamedTuple):
    """The row kept for a card issued (or held back, and why): ids and codes only, nothing about the
    patient. The hook call takes what the row needs (a tuple: cheap); `row()` builds it, on the card
    recorder's thread when it writes, so the call does not wait for it."""

    card_uuid: str
    service_id: str
    hook: str
    hook_instance: str  # as the EHR sent it: the row keeps its first 100 characters
    rule_id: str
    indicator: Indicator
    issued_at: datetime
    held_back: str | None
    explanation: tuple[Any, Any, Any] | None  # its record_part, made JSON by for_the_record

    def row(self) -> dict[str, Any]:
        """The `cards_issued` row: these fields, the explanation as the JSON the store keeps."""
        row = self._asdict()
        row["hook_instance"] = self.hook_instance[:100]
        row["indicator"] = self.indicator.value
        row["explanation"] = for_the_record(self.explanation)
        return row


def card_row(
    issued: IssuedCard,
    service_id: str,
    hook: str,
    hook_instance: str,
    issued_at: datetime,
    held_back: str | None = None,
) -> CardRow:
    """The row for a card issued (or held back) in a call answered at `issued_at`."""
    card = issued.card
    return CardRow(
        card.uuid,
        service_id,
        hook,
        hook_instance,
        issued.finding.rule_id,
        card.indicator,
        issued_at,
        held_back,
        record_part(card),
    )
