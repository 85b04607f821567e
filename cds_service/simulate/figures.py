"""What a replay counts. Only sums of integers, so shards merge exactly (`Figures.merge`); shares,
rates and top lists are computed from them when the report is written."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, fields
from typing import Any

COUNTS = ("orders_replayed", "orders_without_date", "orders_unreadable", "orders_read", "orders_not_signed",
          "patients", "orders_with_card", "orders_with_critical", "cards")  # fmt: skip


@dataclass
class Figures:
    orders_replayed: int = 0  # orders some rule speaks about, replayed as order-sign at their time
    orders_without_date: int = 0  # reported and skipped
    orders_unreadable: int = 0  # not FHIR enough to replay (reported and skipped, never a crash)
    orders_read: int = 0  # every MedicationRequest and MedicationStatement start in the window
    orders_not_signed: int = 0  # status draft, intent proposal or plan: never signed as an order, not replayed
    patients: int = 0
    orders_with_card: int = 0
    orders_with_critical: int = 0
    cards: int = 0
    cards_by_rule: Counter[str] = field(default_factory=Counter[str])
    cards_by_rule_indicator: Counter[str] = field(default_factory=Counter[str])  # "rule|indicator"
    cards_per_order: Counter[str] = field(default_factory=Counter[str])  # "0", "1", ... (as text: JSON keys)
    gated_by_rule: Counter[str] = field(default_factory=Counter[str])  # held back by the gating table
    silent_by_rule: Counter[str] = field(default_factory=Counter[str])  # raised by a silent rule: recorded, not shown
    products_by_rule: Counter[str] = field(default_factory=Counter[str])  # "rule|product the card is about"
    partners_by_rule: Counter[str] = field(default_factory=Counter[str])  # "rule|partner drug"
    orders_by_month: Counter[str] = field(default_factory=Counter[str])
    cards_by_month: Counter[str] = field(default_factory=Counter[str])
    # What an order was: "magnesium" (a magnesium product), else its partner class's kind ("chelation",
    # "depletion" for a wasting drug, "risk"), so magnesium orders and partner orders are told apart.
    orders_by_kind_month: Counter[str] = field(default_factory=Counter[str])  # "kind|YYYY-MM"
    cards_by_kind_month: Counter[str] = field(default_factory=Counter[str])  # "kind|YYYY-MM"
    cards_by_rule_kind: Counter[str] = field(default_factory=Counter[str])  # "rule|kind"
    # Outcomes (outcomes.py): per event, "event|eligible", "event|measured", "event|happened", "event|censored"
    outcomes: Counter[str] = field(default_factory=Counter[str])
    caught_by_rule: Counter[str] = field(
        default_factory=Counter[str]
    )  # "event|rule": events after an order it fired on
    labs_asked: Counter[str] = field(
        default_factory=Counter[str]
    )  # "rule|analyte": cards asking, due inside the history
    labs_drawn: Counter[str] = field(default_factory=Counter[str])  # "rule|analyte": of those, drawn by the due date
    labs_censored: Counter[str] = field(default_factory=Counter[str])  # "rule|analyte": due after the history ends

    def merge(self, other: Figures) -> Figures:
        for f in fields(self):
            value = getattr(other, f.name)
            if isinstance(value, Counter):
                getattr(self, f.name).update(value)
            else:
                setattr(self, f.name, getattr(self, f.name) + value)
        return self

    def as_dict(self) -> dict[str, Any]:
        return {
            f.name: dict(sorted(getattr(self, f.name).items())) if f.name not in COUNTS else getattr(self, f.name)
            for f in fields(self)
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Figures:
        out = cls()
        for f in fields(cls):
            if f.name in COUNTS:
                setattr(out, f.name, int(raw[f.name]))
            else:
                setattr(out, f.name, Counter({str(k): int(v) for k, v in raw[f.name].items()}))
        return out
