"""What the rules conclude, before it becomes CDS Hooks JSON (the card layer does that)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from ..record.model import MedicationEntry

SuggestionKind = Literal["remove-order", "order-lab", "update-order"]


@dataclass(frozen=True, slots=True)
class SuggestedAction:
    kind: SuggestionKind
    label: str
    order: MedicationEntry | None = None
    lab: str | None = None
    due: datetime | None = None
    recommended: bool = False
    resource: Mapping[str, Any] | None = None  # the whole updated resource, for update-order


@dataclass(frozen=True, slots=True)
class Finding:
    rule_id: str
    indicator: str
    order: MedicationEntry
    summary: str
    found: tuple[str, ...]
    why: str
    action: str
    evidence: str
    sources: tuple[str, ...]
    suggestions: tuple[SuggestedAction, ...] = ()
    override_reasons: tuple[str, ...] = ()
    partner: MedicationEntry | None = field(default=None)

    merge_key: str = ""  # what else, besides rule and order, makes this card distinct (e.g. the partner drug)

    @property
    def key(self) -> tuple[str, str, str]:
        """One card per (rule, order pair), merged across duplicates."""
        return self.rule_id, self.order.reference, self.merge_key
