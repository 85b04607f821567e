"""Run the rule families over a record: pure, no I/O.

Each order is read once (route class, use, setting: record/order_reading.py). Before any family runs, the
site's switches and the gating table decide which rules may speak at all (a rule that is off, or that
admits none of the orders in scope, costs nothing); the gating row then judges each card's pair of
orders, and every card says how its orders were read.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime

from ..immutable import immutable
from ..knowledge.anatomy import MAX_FACTS
from ..knowledge.loader import KnowledgeError
from ..knowledge.model import Gate, GateSide, Knowledge
from ..memo import Memo
from ..record.model import MedicationEntry, PatientRecord
from ..record.order_reading import OrderReading, Setting, encounter_setting, read_order
from .concerns import one_card_per_concern
from .context import MagnesiumProduct, PartnerDrug, Restriction, RuleContext, gap_lines
from .dose import DailyDose, daily_elemental_mg
from .drugs import DrugHit, DrugMatcher
from .findings import Finding, SuggestedAction
from .magnesium_level import read_magnesium_level
from .matching import MagnesiumMatcher, ProductMatch, magnesium_kind
from .problems import Problems
from .renal_function import assess_renal_function
from .rules import FAMILIES
from .rules.family import declarations
from .texts import TextPlans
from .treatment import read_treatment


class RuleEngine:
    """Built once per knowledge version; `evaluate` is then called per request."""

    def __init__(self, knowledge: Knowledge) -> None:
        self.knowledge = knowledge
        self.magnesium = MagnesiumMatcher(knowledge.magnesium)
        self.drugs = DrugMatcher(knowledge)
        if knowledge.order_reading is None:
            raise KnowledgeError("knowledge without order_reading.yaml: orders cannot be read")
        self.reading_table = knowledge.order_reading
        # What each family says it does, checked against rules.yaml (KnowledgeError at start otherwise).
        self.declared = declarations(FAMILIES, knowledge, RuleContext.STANDARD_FACTS)
        self.texts = TextPlans(knowledge)
        self.families = tuple((f, frozenset(f.speaks_for(knowledge))) for f in FAMILIES)
        self.enabled = frozenset(r for r in knowledge.rules if knowledge.enabled(r))
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
        # How an order of a given content is matched and read, and its elemental Mg a day: the same for
        # every patient it is written for (MedicationEntry.content), so worked out once per content.
        self._sides: Memo[tuple[bytes, Setting], Sides | None] = Memo(MAX_CONTENTS)
        self._doses: Memo[bytes, DailyDose] = Memo(MAX_CONTENTS)
        self._admitted: Memo[tuple[str, str, tuple[bytes, Setting]], bool] = Memo(8 * MAX_CONTENTS)
        self._runnables: Memo[tuple[object, ...], frozenset[str]] = Memo(MAX_CONTENTS)

    def speaks_about(self, entry: MedicationEntry) -> bool:
        """Whether some enabled rule could speak about this order: a magnesium product or a partner drug
        by a route a rule judges. Matching only, no patient data: cheap enough to decide first."""
        read = self._judged_sides(entry, "unknown")
        if read is None:
            return False
        # A partner counts only through an enabled rule of its class (a statin while depletion-statin is off: no).
        return read[0] is not None or any(self.knowledge.enabled(hit.drug_class.rule) for hit in read[1])

    def _judged_sides(self, entry: MedicationEntry, encounter: Setting) -> Sides | None:
        """The order as a magnesium product and as partner drugs, each kept only when read by a route
        some rule judges; None when it is neither. A combination (omeprazole with magnesium hydroxide)
        is both."""
        key = _key(entry, encounter)
        if key is None:
            return self._read_sides(entry, encounter)
        return self._sides.get(key, lambda: self._read_sides(entry, encounter))

    def _daily_dose(self, entry: MedicationEntry, match: ProductMatch) -> DailyDose:
        if not entry.content:
            return daily_elemental_mg(entry, match, self.knowledge.magnesium)
        return self._doses.get(entry.content, lambda: daily_elemental_mg(entry, match, self.knowledge.magnesium))

    def _read_sides(self, entry: MedicationEntry, encounter: Setting) -> Sides | None:
        match = self.magnesium.match(entry)
        hits = self.drugs.match_all(entry)
        if match is None and not hits:
            return None
        reading = read_order(entry, self.reading_table, encounter, match.product_name if match else "")
        if match is not None and reading.route not in self.judged_routes["magnesium"]:
            match = None
        if hits and reading.route not in self.judged_routes["partner"]:
            hits = []
        return match, tuple(hits), reading

    def evaluate(self, record: PatientRecord, gated: Counter[str] | None = None) -> list[Finding]:
        """The findings for a record; `gated`, when given, counts per rule the findings the gating table
        held back (what `cds-service simulate` reports: then every enabled rule runs, to be counted)."""
        magnesium: list[MagnesiumProduct] = []
        partners: list[PartnerDrug] = []
        judged: dict[str, JudgedOrder] = {}
        encounter = encounter_setting(record.encounter_class, self.reading_table)
        entries = [(e, True) for e in record.orders_in_scope]
        entries += [(e, False) for e in (*record.other_drafts, *record.active_medications)]
        for entry, in_scope in entries:
            read = self._judged_sides(entry, encounter)
            if read is None:
                continue
            match, hits, reading = read
            if match is not None:
                judged[entry.reference] = JudgedOrder("magnesium", reading, entry, hits, _key(entry, encounter))
                dose = self._daily_dose(entry, match)
                magnesium.append(MagnesiumProduct(entry, match, in_scope, reading, dose))
            if hits:
                judged.setdefault(entry.reference, JudgedOrder("partner", reading, entry, hits, _key(entry, encounter)))
                partners.extend(PartnerDrug(entry, hit, in_scope, reading) for hit in hits)
        if not any(p.in_scope for p in magnesium) and not any(p.in_scope for p in partners):
            return []  # nothing this service speaks about among the orders in scope
        if record.reviewing and not magnesium:
            return []  # the review speaks only about patients on a magnesium product
        runnable = self.enabled if gated is not None else self._runnable(judged, record)
        if not any(not rules.isdisjoint(runnable) for _, rules in self.families):
            return []
        mg_level = read_magnesium_level(record, self.knowledge)
        problems = Problems(record, self.knowledge)
        restricted = self._restricted_products(magnesium)
        ctx = RuleContext(
            record=record,
            knowledge=self.knowledge,
            magnesium=tuple(magnesium),
            partners=tuple(partners),
            renal=assess_renal_function(record, self.knowledge, problems),
            treatment=read_treatment(self.knowledge, mg_level, problems),
            mg_level=mg_level,
            problems=problems,
            runnable=runnable,
            restricted=restricted,
            readings={ref: order.reading for ref, order in judged.items()},
            texts=self.texts,
            gap_lines=gap_lines(record),
        )
        findings: dict[tuple[str, str, str], Finding] = {}
        for family, rules in self.families:
            if rules.isdisjoint(runnable):
                continue  # every rule of the family is off or admits no order in scope
            for finding in family.evaluate(ctx):
                if self._judged(finding, judged, restricted):
                    findings.setdefault(finding.key, finding)
                elif gated is not None and finding.rule_id in self.enabled:  # a rule switched off is not "held back"
                    gated[finding.rule_id] += 1
        kept = keeping_what_yielders_knew(list(findings.values()), self.knowledge)
        out = _each_lab_once(one_card_per_concern(kept))
        if record.reviewing:  # no edits of orders that are not in front of the clinician
            out = [_only_lab_orders(f) for f in out]
        return out

    def _runnable(self, judged: dict[str, JudgedOrder], record: PatientRecord) -> frozenset[str]:
        """The enabled rules whose gating row admits at least one order in scope, as it is read: every card
        is about an order in scope, and `_gated_in` asks that row to admit it (or two magnesium drafts to
        be drafted together)."""
        in_scope = {e.reference for e in record.orders_in_scope}
        # What the answer follows from: each order's side, content (its reading), origin and whether it is
        # in scope; the same for every patient given the same orders.
        if any(j.content is None for j in judged.values()):
            return self._work_out_runnable(judged, in_scope)
        key = tuple((j.side, j.content, j.entry.origin, ref in in_scope) for ref, j in judged.items())
        return self._runnables.get(key, lambda: self._work_out_runnable(judged, in_scope))

    def _work_out_runnable(self, judged: dict[str, JudgedOrder], in_scope: set[str]) -> frozenset[str]:
        orders = [r for ref, r in judged.items() if ref in in_scope]
        out = set()
        for rule_id in self.enabled:
            gate = self.knowledge.gates.get(rule_id)
            if gate is None or any(self._admits(gate, r, rule_id) for r in orders):
                out.add(rule_id)
            elif gate.drafted_together is not None:
                together = gate.drafted_together
                if sum(_drafted(r, together) for r in judged.values()) >= 2:
                    out.add(rule_id)
        return frozenset(out)

    def _judged(self, finding: Finding, judged: dict[str, JudgedOrder], restricted: dict[str, Restriction]) -> bool:
        """Enabled, admitted by the gating row, and, about a product judged by some rules only (a trace-magnesium
        combination, a drug's magnesium salt, an excipient), one of those rules."""
        if finding.rule_id not in self.enabled or not self._gated_in(finding, judged):
            return False
        if not restricted:  # most calls: no product only some rules judge
            return True
        about = {e.reference for e in (finding.order, finding.partner) if e is not None}
        return all(finding.rule_id in restricted[ref][1] for ref in about & restricted.keys())

    def _restricted_products(self, magnesium: list[MagnesiumProduct]) -> dict[str, Restriction]:
        """Magnesium products only some rules judge, with the line the card says about it: combination products
        giving less magnesium a day than the gating table's threshold, and magnesium that is no supplement."""
        limit = self.knowledge.trace_below_mg_per_day
        kinds = self.knowledge.not_a_supplement
        out: dict[str, Restriction] = {}
        for product in magnesium:
            dose, match = product.dose, product.match
            kind = magnesium_kind(match, self.knowledge.magnesium)
            if kind in kinds:
                rules, reason = kinds[kind]
                what = f"excipient of {match.excipient_of}" if match.excipient_of else "the magnesium salt of a drug"
                out[product.entry.reference] = (f"Not a supplement ({what}): {reason}", rules)
                continue
            combination = any(not i.magnesium for i in match.ingredients)
            per_day = dose.mg_per_day
            if limit and combination and per_day is not None and per_day < limit:
                out[product.entry.reference] = (
                    f"Combination product with {per_day:.0f} mg elemental Mg/day (< {limit:g}): "
                    "judged for chelation only",
                    self.knowledge.trace_rules,
                )
        return out

    def _gated_in(self, finding: Finding, judged: dict[str, JudgedOrder]) -> bool:
        """The rule's gating row admits how each of the card's orders was read (a partner drug with a row of
        its own, cisplatin, by that row; magnesium drafted twice in one signing by `drafted_together`)."""
        gate = self.knowledge.gates.get(finding.rule_id)
        if gate is None:
            return True
        read = [
            judged[e.reference] for e in (finding.order, finding.partner) if e is not None and e.reference in judged
        ]
        together = gate.drafted_together
        if together is not None and len(read) == 2 and all(_drafted(r, together) for r in read):
            return True
        return all(self._admits(gate, r, finding.rule_id) for r in read)

    def _admits(self, gate: Gate, judged: JudgedOrder, rule_id: str) -> bool:
        """`_admitted`, remembered per rule and order content: a rule's gating row judges the order as it
        was read, and the reading is the same for every patient the order is written for."""
        if judged.content is None:
            return _admitted(gate, judged, rule_id)
        return self._admitted.get((rule_id, judged.side, judged.content), lambda: _admitted(gate, judged, rule_id))


Sides = tuple[ProductMatch | None, tuple[DrugHit, ...], OrderReading]  # as a magnesium product, as partner drugs
MAX_CONTENTS = 4096  # order contents remembered (a formulary's worth); a full memory starts again


@immutable
class JudgedOrder:
    """One order as the engine judges it: which side it is on (magnesium product or partner drug), how it
    was read, and its partner hits."""

    side: str
    reading: OrderReading
    entry: MedicationEntry
    hits: tuple[DrugHit, ...] = ()
    content: tuple[bytes, Setting] | None = None  # what its reading follows from (`_judged_sides`); None: unknown


def _key(entry: MedicationEntry, encounter: Setting) -> tuple[bytes, Setting] | None:
    return (entry.content, encounter) if entry.content else None


def _admitted(gate: Gate, judged: JudgedOrder, rule_id: str) -> bool:
    """The gating row admits this order as it was read: its side's routes and uses (a partner drug with a
    row of its own, cisplatin, by that row), and a partner's course long enough for the rule."""
    allowed = getattr(gate, judged.side)
    if judged.side == "partner":
        own = [gate.drugs[h.drug.name] for h in judged.hits if h.drug.name in gate.drugs]
        allowed = own[0] if own else allowed
        if not _long_enough(judged, rule_id):
            return False
    return allowed is None or bool(allowed.admits(judged.reading.route, judged.reading.use))


def _drafted(judged: JudgedOrder, together: GateSide) -> bool:
    """A magnesium order drafted in this signing, read as the gating row's drafted_together admits."""
    read = judged.reading
    return judged.side == "magnesium" and judged.entry.origin == "draft" and together.admits(read.route, read.use)


def _long_enough(judged: JudgedOrder, rule_id: str) -> bool:
    """A bounded course shorter than a drug's own long-term threshold (PPIs: months) is not long-term use for
    the rule of that drug's class."""
    days = judged.reading.days
    limits = [
        h.drug.long_term_days for h in judged.hits if h.drug.long_term_days is not None and h.drug_class.rule == rule_id
    ]
    return days is None or not limits or days >= min(limits)


def keeping_what_yielders_knew(findings: list[Finding], knowledge: Knowledge) -> list[Finding]:
    """Drop a card whose rule yields to another card on the same order (it would say the same thing), and give
    the card that stays what the dropped one knew: its facts, its lab asks where they are due sooner
    (monitoring-overdue's "serum Mg now, last one 8 months ago" beside a renal card's 14-day recheck) and, on a
    card that does not say "remove", the labs it did not ask for (renal-unknown also carries the Mg recheck)."""
    fired = {(f.rule_id, f.order.reference): f for f in findings}
    kept: list[tuple[Finding, list[Finding]]] = []
    dropped: list[tuple[Finding, list[Finding]]] = []
    for f in findings:
        keepers = [
            fired[(other, f.order.reference)]
            for other in knowledge.rule(f.rule_id).yields_to
            if (other, f.order.reference) in fired
        ]
        (dropped if keepers else kept).append((f, keepers[:1]))
    out = {id(f): f for f, _ in kept}
    for yielder, (keeper,) in dropped:
        if id(keeper) not in out:
            continue
        current = out[id(keeper)]
        audit = (*current.audit, *(line for line in yielder.audit if line not in current.audit))
        # What the yielder knew that the keeper does not say (the last serum Mg and its date); its
        # "At risk: renal function ..." only repeats the keeper's own finding.
        news = (fact for fact in yielder.facts if not fact.startswith("At risk:"))
        facts = tuple(dict.fromkeys((*current.facts, *news)))[:MAX_FACTS]
        asks = {s.lab: s for s in yielder.suggestions if s.lab is not None}
        suggestions = tuple(
            asks[s.lab] if s.lab in asks and _due(asks[s.lab]) < _due(s) else s for s in current.suggestions
        )
        if not any(s.kind == "remove-order" for s in suggestions):  # no follow-up lab beside "do not start"
            has = {s.lab for s in suggestions}
            suggestions += tuple(s for lab, s in asks.items() if lab not in has)  # a lab the keeper did not ask for
        sooner = any(s not in current.suggestions for s in suggestions)
        do = f"{current.do} {yielder.do}" if sooner and yielder.do not in current.do else current.do
        out[id(keeper)] = replace(current, audit=audit, facts=facts, do=do, suggestions=suggestions)
    return [out[id(f)] for f, _ in kept]


def _only_lab_orders(finding: Finding) -> Finding:
    """When the chart opens, no edits of orders that are not in front of the clinician: lab orders only."""
    kept = tuple(s for s in finding.suggestions if s.kind == "order-lab")
    return finding if kept == finding.suggestions else replace(finding, suggestions=kept)


SEVERITY = {"critical": 0, "warning": 1, "info": 2}
NEVER = datetime.max.replace(tzinfo=UTC)


def _due(suggestion: SuggestedAction) -> datetime:
    """When a suggestion is due; one without a date (no lab order has none) sorts last."""
    return suggestion.due or NEVER


def _each_lab_once(findings: list[Finding]) -> list[Finding]:
    """The same lab is suggested once per response: the most urgent ask (most severe card, then the
    earliest due date) keeps it; the other cards still say why, without a second order button."""
    best: dict[str, tuple[int, datetime, int, int]] = {}
    for i, finding in enumerate(findings):
        for j, suggestion in enumerate(finding.suggestions):
            if suggestion.lab is not None:
                rank = (SEVERITY.get(finding.indicator, 3), _due(suggestion), i, j)
                best[suggestion.lab] = min(best.get(suggestion.lab, rank), rank)
    kept_at = {(rank[2], rank[3]) for rank in best.values()}
    out = []
    for i, finding in enumerate(findings):
        kept = tuple(s for j, s in enumerate(finding.suggestions) if s.lab is None or (i, j) in kept_at)
        out.append(finding if kept == finding.suggestions else replace(finding, suggestions=kept))
    return out
