"""What the rules conclude, before it becomes CDS Hooks JSON (the card layer does that)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import field
from datetime import datetime
from typing import Any, Literal

from ..immutable import immutable
from ..record.model import MedicationEntry

SuggestionKind = Literal["remove-order", "order-lab", "update-order"]
ReadAs = tuple[str, str, str, str]  # (which order, route class, use, setting)


@immutable
class SuggestedAction:
    kind: SuggestionKind
    label: str
    order: MedicationEntry | None = None
    lab: str | None = None
    due: datetime | None = None
    recommended: bool = False
    resource: Mapping[str, Any] | None = None  # the whole updated resource, for update-order


@immutable
class Finding:
    """One rule's verdict about one order (or, merged, about every product of one concern).

    What a clinician reads (summary, facts, do, why) is kept apart from the audit trail (how each order
    was read, the record entries used, data gaps), which goes only to the card's explanation."""

    rule_id: str
    indicator: str
    order: MedicationEntry
    summary: str
    facts: tuple[str, ...]
    do: str
    why: str
    evidence: str
    sources: tuple[str, ...]
    suggestions: tuple[SuggestedAction, ...] = ()
    override_reasons: tuple[str, ...] = ()
    partner: MedicationEntry | None = field(default=None)
    audit: tuple[str, ...] = ()  # the explanation: never shown in summary or detail
    variant: str | None = None  # the rule's variant that said it (same rule id), for the explanation
    summary_template: str = ""  # kept so a card merged across products can name them all
    fields: Mapping[str, Any] = field(default_factory=dict, compare=False)
    also: tuple[MedicationEntry, ...] = ()  # other products this card speaks about (one card per concern)
    read_as: tuple[ReadAs, ...] = ()  # how each of its orders was read, for the record of cards

    merge_key: str = ""  # what else, besides rule and order, makes this card distinct (e.g. the partner drug)

    @property
    def key(self) -> tuple[str, str, str]:
        """One card per (rule, order pair), merged across duplicates."""
        return self.rule_id, self.order.reference, self.merge_key

    @property
    def orders(self) -> tuple[MedicationEntry, ...]:
        """Every product the card speaks about, the first one first."""
        return (self.order, *self.also)
