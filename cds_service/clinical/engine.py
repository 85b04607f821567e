"""Run every enabled rule family over a record: pure, no I/O.

Each order is read once (route class, use, setting: order_context.py); the gating table then decides
which rules may speak about it, and every card says how its orders were read.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import replace

from ..knowledge.model import Knowledge
from ..record.model import MedicationEntry, PatientRecord
from .concerns import one_card_per_concern
from .context import MagnesiumProduct, PartnerDrug, RuleContext, short_name
from .dose import daily_elemental_mg
from .drugs import DrugHit, DrugMatcher
from .findings import Finding
from .matching import MagnesiumMatcher, ProductMatch
from .order_context import OrderContext, Setting, encounter_setting, read_order
from .renal_function import assess_renal_function
from .rules import conditions, depletion, dosing, interactions, labs, monitoring, renal, risk
from .treatment import read_treatment

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
        self.vocabulary = knowledge.order_vocabulary
        # Route classes some enabled rule judges, per side: a product read otherwise (a bath, an eye
        # drop, an inhaled antibiotic) is no magnesium product or partner drug for this request at all.
        self.judged_routes = {
            side: frozenset(
                route
                for gate in knowledge.gates.values()
                if knowledge.enabled(gate.rule_id) and getattr(gate, side) is not None
                for route in getattr(gate, side).routes
            )
            for side in ("magnesium", "partner")
        }

    def speaks_about(self, entry: MedicationEntry) -> bool:
        """Whether some enabled rule could speak about this order: a magnesium product or a partner drug
        by a route a rule judges. Matching only, no patient data: cheap enough to decide first."""
        read = self._judged_sides(entry, "unknown")
        if read is None:
            return False
        # A partner counts only through an enabled rule of its class (a statin while depletion-statin is off: no).
        return read[0] is not None or any(self.knowledge.enabled(hit.drug_class.rule) for hit in read[1])

    def _judged_sides(
        self, entry: MedicationEntry, encounter: Setting
    ) -> tuple[ProductMatch | None, list[DrugHit], OrderContext] | None:
        """The order as a magnesium product and as partner drugs, each kept only when read by a route
        some rule judges; None when it is neither. A combination (omeprazole with magnesium hydroxide)
        is both."""
        match = self.magnesium.match(entry)
        hits = self.drugs.match_all(entry)
        if match is None and not hits:
            return None
        reading = read_order(entry, self.vocabulary, encounter, match.product_name if match else "")
        if match is not None and reading.route not in self.judged_routes["magnesium"]:
            match = None
        if hits and reading.route not in self.judged_routes["partner"]:
            hits = []
        return match, hits, reading

    def evaluate(self, record: PatientRecord, gated: Counter | None = None) -> list[Finding]:
        """The findings for a record; `gated`, when given, counts per rule the findings the gating table
        held back (what `cds-service simulate` reports)."""
        magnesium: list[MagnesiumProduct] = []
        partners: list[PartnerDrug] = []
        readings: dict[str, tuple[str, OrderContext]] = {}
        encounter = encounter_setting(record.encounter_class, self.vocabulary)
        entries = [(e, True) for e in record.orders_in_scope]
        entries += [(e, False) for e in (*record.other_drafts, *record.active_medications)]
        for entry, in_scope in entries:
            read = self._judged_sides(entry, encounter)
            if read is None:
                continue
            match, hits, reading = read
            if match is not None:
                readings[entry.reference] = ("magnesium", reading)
                dose = daily_elemental_mg(entry, match, self.knowledge.magnesium)
                magnesium.append(MagnesiumProduct(entry, match, in_scope, reading, dose))
            if hits:
                readings.setdefault(entry.reference, ("partner", reading))
                partners.extend(PartnerDrug(entry, hit, in_scope, reading) for hit in hits)
        if not any(p.in_scope for p in (*magnesium, *partners)):
            return []  # nothing this service speaks about among the orders in scope
        if record.hook == "patient-view" and not magnesium:
            return []  # the review speaks only about patients on a magnesium product
        ctx = RuleContext(
            record=record,
            knowledge=self.knowledge,
            magnesium=tuple(magnesium),
            partners=tuple(partners),
            renal=assess_renal_function(record, self.knowledge),
            treatment=read_treatment(record, self.knowledge),
        )
        trace = self._trace_products(ctx)
        findings: dict[tuple[str, str, str], Finding] = {}
        for family in FAMILIES:
            for finding in family(ctx):
                if self._judged(finding, readings, trace):
                    if finding.order.reference in trace:
                        finding = replace(finding, audit=(*finding.audit, trace[finding.order.reference]))
                    findings.setdefault(finding.key, _stamped(finding, readings, record.hook == "patient-view"))
                elif gated is not None:
                    gated[finding.rule_id] += 1
        out = _each_lab_once(one_card_per_concern(self._without_repeats(list(findings.values()))))
        if record.hook == "patient-view":  # no edits of orders that are not in front of the clinician
            out = [replace(f, suggestions=tuple(s for s in f.suggestions if s.kind == "order-lab")) for f in out]
        return out

    def _judged(self, finding: Finding, readings: dict[str, tuple[str, OrderContext]], trace: dict[str, str]) -> bool:
        """Enabled, admitted by the gating row, and not about a trace-magnesium combination (unless chelation)."""
        if not self.knowledge.enabled(finding.rule_id) or not self._gated_in(finding, readings):
            return False
        about = {e.reference for e in (finding.order, finding.partner) if e is not None}
        return finding.rule_id in self.knowledge.trace_rules or not (about & trace.keys())

    def _trace_products(self, ctx: RuleContext) -> dict[str, str]:
        """Combination products giving less magnesium a day than the gating table's threshold, and why."""
        limit = self.knowledge.trace_below_mg_per_day
        out = {}
        for product in ctx.magnesium:
            dose = product.dose
            combination = any(not i.magnesium for i in product.match.ingredients)
            if limit and combination and dose.known and dose.mg_per_day < limit:
                out[product.entry.reference] = (
                    f"Combination product with {dose.mg_per_day:.0f} mg elemental Mg/day (< {limit:g}): "
                    "judged for chelation only"
                )
        return out

    def _without_repeats(self, findings: list[Finding]) -> list[Finding]:
        """Drop a card whose rule yields to another card on the same order (it would say the same thing)."""
        fired = {(f.rule_id, f.order.reference) for f in findings}
        return [
            f
            for f in findings
            if not any((other, f.order.reference) in fired for other in self.knowledge.rule(f.rule_id).yields_to)
        ]

    def _gated_in(self, finding: Finding, readings: dict[str, tuple[str, OrderContext]]) -> bool:
        """The rule's gating row admits how each of the card's orders was read."""
        gate = self.knowledge.gates.get(finding.rule_id)
        if gate is None:
            return True
        for entry in (finding.order, finding.partner):
            if entry is None or entry.reference not in readings:
                continue
            side, reading = readings[entry.reference]
            allowed = getattr(gate, side)
            if allowed is not None and not allowed.admits(reading.route, reading.use):
                return False
        return True


def _stamped(finding: Finding, readings: dict[str, tuple[str, OrderContext]], review: bool = False) -> Finding:
    """The card says how its orders were read, so a misreading is visible to the clinician (at
    patient-view, `review`, they are medications already running, not orders)."""
    lines, read_as = [], []
    labels = ("This medication", "Other medication") if review else ("This order", "Other order")
    for label, entry in zip(labels, (finding.order, finding.partner), strict=True):
        if entry is not None and entry.reference in readings:
            reading = readings[entry.reference][1]
            lines.append(f"{label} ({short_name(reading.name or entry.reference, 40)}) read as: {reading.shown()}")
            read_as.append((label.lower(), reading.route, reading.use, reading.setting))
    return replace(finding, audit=(*finding.audit, *lines), read_as=tuple(read_as))


SEVERITY = {"critical": 0, "warning": 1, "info": 2}


def _each_lab_once(findings: list[Finding]) -> list[Finding]:
    """The same lab is suggested once per response: the most urgent ask (most severe card, then the
    earliest due date) keeps it; the other cards still say why, without a second order button."""
    best: dict[str, tuple] = {}
    for i, finding in enumerate(findings):
        for j, suggestion in enumerate(finding.suggestions):
            if suggestion.lab is not None:
                rank = (SEVERITY.get(finding.indicator, 3), suggestion.due, i, j)
                best[suggestion.lab] = min(best.get(suggestion.lab, rank), rank)
    kept_at = {(rank[2], rank[3]) for rank in best.values()}
    out = []
    for i, finding in enumerate(findings):
        kept = tuple(s for j, s in enumerate(finding.suggestions) if s.lab is None or (i, j) in kept_at)
        out.append(finding if kept == finding.suggestions else replace(finding, suggestions=kept))
    return out
