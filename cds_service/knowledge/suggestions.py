"""The suggestions a rule may offer, in one registry: checked when the knowledge loads, read by the rule
engine (what to build), the card layer and client profiles (what kind of action it is) and the rule
pages (what the button does). A rule row naming a suggestion not listed here stops the start."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

Action = Literal["remove-order", "order-lab", "update-order"]
ACTIONS: frozenset[str] = frozenset({"remove-order", "order-lab", "update-order"})  # what a client may apply
Due = Literal["now", "recheck", "level-check", "if-missing"]


@dataclass(frozen=True, slots=True)
class SuggestionSpec:
    key: str
    action: Action
    page_label: str  # what the rule page says the button does (cards label each one per patient)
    lab: str | None = None  # the analyte an order-lab suggestion orders
    due: Due | None = None  # when: now, the rule's recheck_after_days, the level-check interval, if none recent
    by_family: bool = False  # built by the rule family that knows the partner drug and its spacing


SUGGESTIONS: Mapping[str, SuggestionSpec] = {
    spec.key: spec
    for spec in (
        SuggestionSpec("remove-order", "remove-order", "Remove the magnesium order (a delete of the draft order)"),
        SuggestionSpec(
            "order-serum-magnesium-now", "order-lab", "Order serum magnesium now (a ServiceRequest)",
            lab="magnesium", due="now",
        ),
        SuggestionSpec(
            "order-serum-magnesium-recheck", "order-lab",
            "Order a serum magnesium recheck with a due date (a ServiceRequest)", lab="magnesium", due="recheck",
        ),
        SuggestionSpec(
            "order-serum-magnesium-level-check", "order-lab",
            "Order serum magnesium at the level-check interval (a ServiceRequest)", lab="magnesium", due="level-check",
        ),
        SuggestionSpec(
            "order-serum-creatinine", "order-lab", "Order serum creatinine now (a ServiceRequest)",
            lab="creatinine", due="now",
        ),
        SuggestionSpec(
            "order-potassium-if-missing", "order-lab",
            "Order serum potassium when none is on record in its lookback", lab="potassium", due="if-missing",
        ),
        SuggestionSpec(
            "order-calcium-if-missing", "order-lab",
            "Order serum calcium when none is on record in its lookback", lab="calcium", due="if-missing",
        ),
        SuggestionSpec(
            "update-spacing", "update-order",
            "Add the dose-spacing instruction to the order (an update; in the Do line for EHRs that take none)",
            by_family=True,
        ),
        SuggestionSpec(
            "remove-magnesium-if-no-spacing", "remove-order", "Remove the magnesium order when no spacing works",
            by_family=True,
        ),
    )
}  # fmt: skip
