"""Run every enabled rule family over a record: pure, no I/O."""

from __future__ import annotations

from collections.abc import Callable

from ..knowledge.model import Knowledge
from ..record.model import PatientRecord
from .context import RuleContext
from .findings import Finding
from .matching import MagnesiumMatcher
from .renal_function import assess_renal_function
from .rules import labs, renal

RuleFamily = Callable[[RuleContext], list[Finding]]
FAMILIES: tuple[RuleFamily, ...] = (renal.evaluate, labs.evaluate)


class RuleEngine:
    """Built once per knowledge version; `evaluate` is then called per request."""

    def __init__(self, knowledge: Knowledge) -> None:
        self.knowledge = knowledge
        self.matcher = MagnesiumMatcher(knowledge.magnesium)

    def evaluate(self, record: PatientRecord) -> list[Finding]:
        orders = tuple((o, m) for o in record.orders_in_scope if (m := self.matcher.match(o)) is not None)
        if not orders:
            return []
        renal = assess_renal_function(record, self.knowledge)
        ctx = RuleContext(record=record, knowledge=self.knowledge, magnesium_orders=orders, renal=renal)
        findings: dict[tuple[str, str, str], Finding] = {}
        for family in FAMILIES:
            for finding in family(ctx):
                if self.knowledge.enabled(finding.rule_id):
                    findings.setdefault(finding.key, finding)
        return list(findings.values())
