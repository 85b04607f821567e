"""Run every enabled rule family over a record: pure, no I/O."""

from __future__ import annotations

from collections.abc import Callable

from ..knowledge.model import Knowledge
from ..record.model import PatientRecord
from .context import MagnesiumProduct, PartnerDrug, RuleContext
from .drugs import DrugMatcher
from .findings import Finding
from .matching import MagnesiumMatcher
from .renal_function import assess_renal_function
from .rules import conditions, depletion, dosing, interactions, labs, monitoring, renal, risk

RuleFamily = Callable[[RuleContext], list[Finding]]
FAMILIES: tuple[RuleFamily, ...] = (
    renal.evaluate,
    labs.evaluate,
    interactions.evaluate,
    depletion.evaluate,
    dosing.evaluate,
    monitoring.evaluate,
    conditions.evaluate,
    risk.evaluate,
)


class RuleEngine:
    """Built once per knowledge version; `evaluate` is then called per request."""

    def __init__(self, knowledge: Knowledge) -> None:
        self.knowledge = knowledge
        self.magnesium = MagnesiumMatcher(knowledge.magnesium)
        self.drugs = DrugMatcher(knowledge)

    def evaluate(self, record: PatientRecord) -> list[Finding]:
        magnesium: list[MagnesiumProduct] = []
        partners: list[PartnerDrug] = []
        entries = [(e, True) for e in record.orders_in_scope]
        entries += [(e, False) for e in (*record.other_drafts, *record.active_medications)]
        for entry, in_scope in entries:
            match = self.magnesium.match(entry)
            if match is not None:
                magnesium.append(MagnesiumProduct(entry, match, in_scope))
                continue
            hit = self.drugs.match(entry)
            if hit is not None:
                partners.append(PartnerDrug(entry, hit, in_scope))
        if not any(p.in_scope for p in (*magnesium, *partners)):
            return []  # nothing this service speaks about among the orders in scope
        ctx = RuleContext(
            record=record,
            knowledge=self.knowledge,
            magnesium=tuple(magnesium),
            partners=tuple(partners),
            renal=assess_renal_function(record, self.knowledge),
        )
        findings: dict[tuple[str, str, str], Finding] = {}
        for family in FAMILIES:
            for finding in family(ctx):
                if self.knowledge.enabled(finding.rule_id):
                    findings.setdefault(finding.key, finding)
        return list(findings.values())
