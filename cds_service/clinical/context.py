"""What every rule family reads: the record, the knowledge, and facts computed once per request."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from ..immutable import immutable
from ..knowledge.anatomy import FIELDS, NAME_FIELDS, NAME_FLOOR, SUMMARY_LIMIT, clip, fill, placeholders, shorten
from ..knowledge.model import Knowledge, RuleSpec
from ..knowledge.suggestions import SUGGESTIONS
from ..record.dates import day
from ..record.model import MedicationEntry, PatientRecord
from ..record.order_reading import OrderReading
from . import facts
from .dose import DailyDose
from .drugs import DrugHit
from .findings import Finding, ReadAs, SuggestedAction
from .magnesium_level import MagnesiumLevel
from .matching import ProductMatch
from .problems import Problems
from .renal_function import RenalAssessment
from .texts import TextPlans
from .treatment import TreatmentContext


@immutable
class MagnesiumProduct:
    entry: MedicationEntry
    match: ProductMatch
    in_scope: bool
    reading: OrderReading
    dose: DailyDose  # elemental magnesium per day, computed once per request (dose, monitoring, trace rules)


@immutable
class PartnerDrug:
    entry: MedicationEntry
    hit: DrugHit
    in_scope: bool
    reading: OrderReading


@immutable
class RuleContext:
    record: PatientRecord
    knowledge: Knowledge
    magnesium: tuple[MagnesiumProduct, ...]  # in scope first, then drafts and active medications
    partners: tuple[PartnerDrug, ...]
    renal: RenalAssessment
    treatment: TreatmentContext
    mg_level: MagnesiumLevel  # the latest serum magnesium, low or high decided once
    problems: Problems  # the problem list, each condition set looked up once
    runnable: frozenset[str]  # the rules that may speak (on, and admitting an order in scope): the rest cost nothing
    # Magnesium products only some rules judge (a trace-magnesium combination, a drug's magnesium salt, an
    # excipient), by order reference: the line their cards say about it, and those rules (the engine's).
    restricted: Mapping[str, Restriction]
    # How each magnesium product or partner drug was read, by order reference (a combination: as magnesium).
    readings: Mapping[str, OrderReading]
    texts: TextPlans  # the rules' texts, planned once per rule, variant and summary case (the engine's)
    gap_lines: tuple[str, ...]  # "Not available: ..." for each data gap, in every card's audit trail
    # The standard facts said so far in this call, by name and lookback: each is the same for every
    # finding that names it (this call's record), so it is written once.
    said: dict[tuple[str, object], str] = field(default_factory=dict, compare=False, repr=False)
    # How each order was read, as a card's audit line and record (label, order reference): written once.
    read_lines: dict[tuple[str, str], tuple[str, ReadAs] | None] = field(
        default_factory=dict, compare=False, repr=False
    )

    def runs(self, rule_id: str) -> bool:
        return rule_id in self.runnable

    @property
    def magnesium_orders(self) -> tuple[tuple[MedicationEntry, ProductMatch], ...]:
        """The magnesium products among the orders in scope (the ones cards may speak about)."""
        return tuple((p.entry, p.match) for p in self.magnesium if p.in_scope)

    def partners_in_scope(self, kind: str) -> tuple[PartnerDrug, ...]:
        """The partner drugs of one kind (depletion, risk) among the orders in scope, whose class's rule runs."""
        return tuple(
            p
            for p in self.partners
            if p.in_scope and p.hit.drug_class.kind == kind and self.runs(p.hit.drug_class.rule)
        )

    def wasting_drugs(self) -> list[str]:
        """Names of the magnesium-wasting drugs ordered or taken. Statins (listed with a minimum daily
        dose, evidence low, rule off by default) are not called magnesium-wasting on a card."""
        drugs = {p.hit.drug for p in self.partners if p.hit.drug_class.kind == "depletion"}
        return sorted({d.name for d in drugs if d.min_daily_mg is None})

    @property
    def order_word(self) -> str:
        """What the card calls the medication it is about: an order at order time, therapy already running
        when a chart opens."""
        return "Medication" if self.record.reviewing else "Order"

    def known_name(self, order: MedicationEntry) -> str:
        """The name the order was read by (its own, else the RxNorm name of its code), else the drug's."""
        reading = self.reading_of(order)
        if reading is not None and reading.name:
            return reading.name
        return next((p.hit.drug.name for p in self.partners if p.entry is order), "")

    def reading_of(self, order: MedicationEntry) -> OrderReading | None:
        return self.readings.get(order.reference)

    def _lab_suggestion(
        self, spec: RuleSpec, order: MedicationEntry, analyte: str, due: str | None
    ) -> SuggestedAction | None:
        """A lab order: now, at the rule's recheck, at the level-check interval, or if none is recent."""
        now = self.record.now
        name = "serum magnesium" if analyte == "magnesium" else f"serum {analyte}"
        if due == "recheck":
            when = now + timedelta(days=spec.value("recheck_after_days"))
            return _lab(analyte, f"Order {name} recheck due {day(when)}", when)
        if due == "level-check":
            shown, delay = self.level_check(order)
            return _lab(analyte, f"Order {name} in {shown} ({_when(now + delay, delay)})", now + delay)
        if due == "if-missing":
            lookback = self.knowledge.lab_lookbacks[f"{analyte}_days"].value
            if self.record.latest(analyte, lookback) is not None:
                return None
            return _lab(analyte, f"Order {name} (none in the last {lookback:.0f} days)", now)
        return _lab(analyte, f"Order {name}" + (" now" if analyte == "magnesium" else ""), now)

    def level_check(self, order: MedicationEntry) -> tuple[str, timedelta]:
        """How soon to check serum magnesium after this dose: hours for parenteral, days otherwise."""
        reading = self.reading_of(order)
        checks = self.knowledge.level_checks
        if reading is not None and reading.route == "parenteral":
            hours = checks["parenteral_hours"].value
            return f"{hours:g} h", timedelta(hours=hours)
        days = checks["enteral_days"].value
        return f"{days:g} days", timedelta(days=days)

    def finding(
        self,
        rule_id: str,
        order: MedicationEntry,
        recognised: str,
        *,
        found: tuple[str, ...],
        summary_key: str = "summary",
        indicator: str | None = None,
        partner: MedicationEntry | None = None,
        extra_suggestions: tuple[SuggestedAction, ...] = (),
        merge_key: str = "",
        spec_suggestions: bool = True,
        variant: str | None = None,
        sources: tuple[str, ...] | None = None,
        **fields: Any,
    ) -> Finding:
        """A Finding with the rule's texts, sources and suggestions filled in for this order.

        `found` is the audit trail (the card's explanation); what the clinician reads comes from the
        rule's templates, filled with `fields` and the facts every rule may name (renal, mg_latest,
        treatment, ...: `standard_fact`). A variant (renal rules in a treatment context) swaps the
        indicator, texts and suggestions but keeps the rule id, so feedback, metrics and EHR override
        memory stay per rule. `sources` replaces the rule's (an interaction cites its partner drug's own)."""
        spec = self.knowledge.rule(rule_id)
        plan = self.texts.plan(rule_id, variant, summary_key)
        name = order.name or self.known_name(order) or recognised
        drug = short_name(name)
        values: dict[str, Any] = {**fields, "drug": drug}
        for needed in plan.needed:
            if needed not in values:
                values[needed] = self.standard_fact(needed, fields)
        read_lines, read_as = self._how_read(order, partner)
        return Finding(
            rule_id=rule_id,
            indicator=plan.indicator or indicator or spec.indicator,
            order=order,
            summary=fit_name(plan.summary, name, **fields),
            facts=tuple(f for f in (fill(line, values) for line in plan.found_lines) if f),
            do=fill(plan.do, values) or plan.do,
            why=plan.why,
            evidence=spec.evidence,
            sources=plan.sources if sources is None else tuple(dict.fromkeys((*sources, *plan.variant_sources))),
            suggestions=(
                *extra_suggestions,
                *(self.suggestions(spec, order, drug, plan.suggestions) if spec_suggestions else ()),
            ),
            override_reasons=spec.override_reasons,
            partner=partner,
            audit=(
                *found,
                f"{self.order_word}: {drug} ({order.reference}); {recognised}",
                *plan.said,
                *self.gap_lines,
                *read_lines,
            ),
            read_as=read_as,
            variant=plan.variant,
            summary_template=plan.summary,
            fields=fields,
            merge_key=merge_key,
        )

    def _how_read(
        self, order: MedicationEntry, partner: MedicationEntry | None
    ) -> tuple[tuple[str, ...], tuple[ReadAs, ...]]:
        """The card says how its orders were read, so a misreading is visible to the clinician (when the
        chart opens they are medications already running, not orders), and first, for a product only
        some rules judge, why; and the record of cards keeps (which order, route class, use, setting)."""
        restriction = self.restricted.get(order.reference)
        lines = [restriction[0]] if restriction is not None else []
        read_as = []
        for label, entry in zip(self._labels(), (order, partner), strict=True):
            if entry is None:
                continue
            key = (label, entry.reference)
            said = self.read_lines.get(key, _UNSAID)
            if said is _UNSAID:
                reading = self.readings.get(entry.reference)
                said = self.read_lines[key] = (
                    None
                    if reading is None
                    else (
                        f"{label} ({short_name(reading.name or entry.reference, 40)}) read as: {reading.shown()}",
                        (label.lower(), reading.route, reading.use, reading.setting),
                    )
                )
            if said is not None:
                lines.append(said[0])
                read_as.append(said[1])
        return tuple(lines), tuple(read_as)

    def _labels(self) -> tuple[str, str]:
        return ("This medication", "Other medication") if self.record.reviewing else ("This order", "Other order")

    # The facts any rule's template may name, besides the fields its family fills (family.py).
    STANDARD_FACTS = frozenset({"renal", "renal_note", "renal_missing", "treatment", "rise", "mg_latest"})

    def standard_fact(self, name: str, fields: Mapping[str, Any]) -> str:
        """A fact any rule's template may name; '' when it has nothing to say (the line is left out)."""
        key = (name, fields.get("lookback") if name == "mg_latest" else None)
        said = self.said.get(key)
        if said is None:
            said = self.said[key] = self._standard_fact(name, fields)
        return said

    def _standard_fact(self, name: str, fields: Mapping[str, Any]) -> str:
        if name == "renal":
            return facts.renal(self.renal)
        if name == "renal_note":
            return self.renal.note
        if name == "renal_missing":
            return facts.renal_missing(self.renal)
        if name == "treatment":
            return self.treatment.fact
        if name == "rise":
            rise = self.renal.rise
            return f"Creatinine {rise.earlier.stated()} → {rise.latest.stated()}" if rise else ""
        if name == "mg_latest":
            window = float(fields.get("lookback") or self.knowledge.lab_lookbacks["magnesium_days"].value)
            return facts.magnesium(self.mg_level, window)
        return ""

    def suggestions(
        self, spec: RuleSpec, order: MedicationEntry, drug: str, keys: tuple[str, ...] | None = None
    ) -> list[SuggestedAction]:
        out: list[SuggestedAction] = []
        reading = self.reading_of(order)
        for key in spec.suggestions if keys is None else keys:
            kind = SUGGESTIONS[key]  # every key was checked against the registry at load
            if kind.by_family:
                continue  # built by the interaction rule, which knows the partner and the spacing
            if kind.action == "remove-order":
                if reading is not None and reading.route == "parenteral" and self.treatment.low_magnesium:
                    continue  # never suggest removing parenteral repletion while the level is low
                out.append(
                    SuggestedAction(
                        "remove-order",
                        f"Remove the order for {drug}",
                        order=order,
                        recommended=spec.indicator == "critical",
                    )
                )
            elif kind.lab is not None:
                lab = self._lab_suggestion(spec, order, kind.lab, kind.due)
                if lab is not None:
                    out.append(lab)
        return [s for s in out if not (s.lab and s.lab in self.record.draft_lab_orders)]


_UNSAID: Any = object()  # read_lines has no entry yet (None there: the order has no reading)
Restriction = tuple[str, frozenset[str]]  # the line on the card, the rules that judge the product


def gap_lines(record: PatientRecord) -> tuple[str, ...]:
    return tuple(f"Not available: {g.topic} ({g.reason})" for g in record.gaps)


def update_with_instruction(order: MedicationEntry, instruction: str, label: str) -> SuggestedAction:
    """An `update` of the in-scope order whose dosage carries the instruction (the whole resource)."""
    resource: dict[str, Any] = repaired(order.resource)  # only the dosage dicts change: copy just those
    dosages = resource.get("dosageInstruction")
    dosages = (
        [dict(d) if isinstance(d, dict) else d for d in dosages] if isinstance(dosages, list) and dosages else [{}]
    )
    for dosage in dosages:
        if isinstance(dosage, dict):
            existing = dosage.get("patientInstruction")
            dosage["patientInstruction"] = f"{existing} {instruction}".strip() if existing else instruction
            dosage["text"] = f"{dosage['text']}; {instruction}" if dosage.get("text") else instruction
    resource["dosageInstruction"] = dosages
    return SuggestedAction("update-order", label, order=order, resource=resource)


# MedicationRequest elements that are lists in R4 but that some EHRs (the CDS Hooks Sandbox) send as one object.
R4_LISTS = (
    "identifier",
    "category",
    "reasonCode",
    "reasonReference",
    "note",
    "dosageInstruction",
    "basedOn",
    "insurance",
    "supportingInformation",
    "detectedIssue",
    "eventHistory",
    "instantiatesCanonical",
    "instantiatesUri",
)


def repaired(resource: Any) -> dict[str, Any]:
    """A copy with the well-known cardinality slips fixed (one object where R4 has a list), so that an
    update built from it is valid R4. Nothing else is changed."""
    out = dict(resource)
    for name in R4_LISTS:
        if isinstance(out.get(name), (dict, str)):  # a tuple: faster than a union here
            out[name] = [out[name]]
    return out


def _lab(analyte: str, label: str, due: datetime) -> SuggestedAction:
    return SuggestedAction("order-lab", label, lab=analyte, due=due)


def _when(due: datetime, delay: timedelta) -> str:
    return f"due {day(due)}" if delay >= timedelta(days=1) else f"due {day(due)} {due:%H:%M} UTC"


def fit_name(template: str, name: str, **fields: Any) -> str:
    """Fill a summary, shortening the names in it (never the key words) to keep it under 140 characters;
    every other field is clipped to its bound (knowledge/anatomy.py), as the load-time check assumed."""
    names = {"drug": " ".join(name.split())}
    for k in NAME_FIELDS:
        if k in fields:
            names[k] = " ".join(str(fields[k]).split())
    # Only the fields the summary names are clipped (a family fills more, for its other texts).
    others = {}
    for k in placeholders(template):
        if k not in names:
            others[k] = clip(fields[k], FIELDS[k]) if k in FIELDS else fields[k]
    if max(map(len, names.values())) <= NAME_START:  # no name to shorten yet: the first round's summary
        summary = template.format(**others, **names)
        if len(summary) <= SUMMARY_LIMIT:
            return summary
    limits = dict.fromkeys(names, NAME_START)
    while True:
        shortened = {k: short_name(v, limits[k]) for k, v in names.items()}
        summary = template.format(**others, **shortened)
        over = len(summary) - SUMMARY_LIMIT
        if over <= 0:
            return summary
        longest = max(names, key=lambda k: len(shortened[k]))
        if limits[longest] <= NAME_FLOOR:
            return summary
        limits[longest] = max(NAME_FLOOR, len(shortened[longest]) - over)


NAME_START = 48  # the longest a name in a summary starts at (FIELDS["drug"])


@lru_cache(maxsize=8192)
def short_name(name: str, limit: int = NAME_START) -> str:
    """Drug names go into summaries that must stay under 140 characters (cached: names repeat)."""
    return shorten(name, limit)


def recognised_as(match: ProductMatch) -> str:
    return f"recognised as {match.salt_label} by {match.how}"
