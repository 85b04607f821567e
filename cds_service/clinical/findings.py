"""What the rules conclude, before it becomes CDS Hooks JSON (the card layer does that)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from ..record.model import MedicationEntry

SuggestionKind = Literal["remove-order", "order-lab"]


@dataclass(frozen=True, slots=True)
class SuggestedAction:
    kind: SuggestionKind
    label: str
    order: MedicationEntry | None = None
    lab: str | None = None
    due: datetime | None = None
    recommended: bool = False


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

    @property
    def key(self) -> tuple[str, str, str]:
        """One card per (rule, order pair)."""
        return self.rule_id, self.order.reference, self.partner.reference if self.partner else ""
