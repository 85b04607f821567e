"""What a rule page shows, built from the knowledge in force (site overrides applied) and compared
with the shipped knowledge, so a pharmacist sees at a glance what this site changed and why each
number is what it is."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from ..knowledge.anatomy import evidence_words
from ..knowledge.model import Gate, GateSide, Knowledge, Parameter, RuleSpec, Source
from ..knowledge.suggestions import SUGGESTIONS

SITE_WIDE = ("renal_function", "level_checks", "lab_lookbacks")

# A parameter's name in words, for a pharmacist reading the page (the key stays what a site config sets).
PARAMETER_WORDS: Mapping[str, str] = {
    "below": "Fires below (renal function)",
    "recheck_after_days": "Recheck due after",
    "recheck_by_days": "Recheck due by",
    "rise_48h": "Creatinine rise within 48 h",
    "ratio_7d": "Creatinine ratio within 7 days",
    "upper_limit": "Upper limit of serum magnesium (when the lab gives none)",
    "lower_limit": "Lower limit of serum magnesium (when the lab gives none)",
    "preeclampsia_low": "Therapeutic range in pre-eclampsia: from",
    "preeclampsia_high": "Therapeutic range in pre-eclampsia: to",
    "lookback_days": "A serum magnesium counts as current for",
    "interval_days": "Check serum magnesium every",
    "at_risk_age": "At risk from age",
    "every_start": "Recheck after every start (1 = yes)",
    "ul_age_1_3": "Upper limit, age 1-3",
    "ul_age_4_8": "Upper limit, age 4-8",
    "ul_age_9_plus": "Upper limit, age 9 and over",
    "warn_below_age": "Warning (not info) below age",
}
# How each source was checked, in words (the knowledge's status codes stay in sources.yaml).
STATUS_WORDS: Mapping[str, str] = {
    "VERIFIED": "read in the cited document",
    "SECONDARY": "seen in a secondary source; to be confirmed in the original",
    "UNVERIFIED": "not yet confirmed in the cited document",
    "POLICY": "local policy of this service",
}
RENAL_TIERS = ("renal-contraindicated", "renal-severe", "renal-moderate")
# What each rule reads from the record, for the codes its page lists (conditions.yaml sets, labs.yaml analytes).
READS: Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "renal-contraindicated": (("dialysis_or_esrd", "ckd_stage", "hypomagnesaemia"), ("creatinine", "egfr", "weight")),
    "renal-severe": (("dialysis_or_esrd", "ckd_stage", "hypomagnesaemia"), ("creatinine", "egfr", "weight")),
    "renal-moderate": (("ckd_stage", "hypomagnesaemia"), ("creatinine", "egfr", "weight")),
    "renal-unknown": ((), ("creatinine", "egfr")),
    "renal-unstable": ((), ("creatinine",)),
    "mg-high": (("preeclampsia",), ("magnesium",)),
    "mg-low": ((), ("magnesium", "potassium", "calcium")),
    "myasthenia-gravis": (("myasthenia_gravis",), ()),
    "monitoring-recheck": ((), ("magnesium",)),
    "monitoring-overdue": ((), ("magnesium",)),
}
SYSTEM_WORDS: Mapping[str, str] = {
    "http://snomed.info/sct": "SNOMED CT",
    "http://hl7.org/fhir/sid/icd-10-cm": "ICD-10-CM",
    "http://loinc.org": "LOINC",
    "http://www.nlm.nih.gov/research/umls/rxnorm": "RxNorm",
}


@dataclass(frozen=True, slots=True)
class CodeRow:
    """A code the rule matches in the record: what it stands for, its system and the codes."""

    what: str
    system: str
    codes: str


@dataclass(frozen=True, slots=True)
class ParameterRow:
    name: str
    words: str
    value: str
    unit: str
    evidence: str
    sources: tuple[Source, ...]
    note: str | None
    shipped: str | None  # the shipped value when this site changed it


@dataclass(frozen=True, slots=True)
class GateRow:
    side: str  # "magnesium product" | "partner drug"
    routes: tuple[str, ...]
    uses: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class DrugRow:
    name: str
    spacing: str
    evidence: str
    sources: tuple[Source, ...]
    note: str | None


@dataclass(frozen=True, slots=True)
class VariantRow:
    name: str
    when: str
    indicator: str
    action: str | None
    sources: tuple[Source, ...]


@dataclass(frozen=True, slots=True)
class RulePage:
    spec: RuleSpec
    changed: bool  # anything on this page differs from the shipped knowledge
    parameters: tuple[ParameterRow, ...]
    variants: tuple[VariantRow, ...]
    gate: tuple[GateRow, ...]
    gate_reason: str | None
    gate_sources: tuple[Source, ...]
    trace: str | None  # how combination products with trace magnesium are judged by this rule
    drugs: tuple[DrugRow, ...]
    suggestions: tuple[str, ...]
    override_reasons: tuple[str, ...]
    sources: tuple[Source, ...]  # every source the page cites, once, in order of first mention
    fires_for: str | None = None  # a renal tier's range with both bounds: "20-29 mL/min"
    codes: tuple[CodeRow, ...] = ()

    @property
    def refs(self) -> Mapping[str, int]:
        """Each cited source's number on this page ([1], [2] ...)."""
        return {source.id: i for i, source in enumerate(self.sources, start=1)}

    @property
    def evidence(self) -> str:
        """The rule's grade in words; the service's own choice is local policy."""
        return evidence_words(self.spec.evidence, any(s.local_policy for s in self.sources[: len(self.spec.sources)]))

    @property
    def asks(self) -> str | None:
        return in_words(self.spec.text.get("do"))


def rule_page(knowledge: Knowledge, shipped: Knowledge, rule_id: str) -> RulePage:
    spec = knowledge.rule(rule_id)
    base = shipped.rules.get(rule_id)
    parameters = tuple(
        _row(knowledge, name, p, base.parameters.get(name) if base else None) for name, p in spec.parameters.items()
    )
    gate = knowledge.gates.get(rule_id)
    gate_rows = _gate_rows(gate)
    drugs = tuple(
        DrugRow(d.name, _spacing(d.before_h, d.after_h), d.evidence, _sources(knowledge, d.sources), d.note)
        for c in knowledge.drug_classes.values()
        if c.rule == rule_id
        for d in c.drugs
    )
    trace = None
    if rule_id in knowledge.trace_rules:
        trace = f"judged also for combination products giving < {knowledge.trace_below_mg_per_day:g} mg magnesium a day"
    elif knowledge.trace_rules:
        trace = f"not judged for combination products giving < {knowledge.trace_below_mg_per_day:g} mg magnesium a day"
    cited = [*spec.sources, *(s for v in spec.variants.values() for s in v.sources)]
    cited += [s for p in spec.parameters.values() for s in p.sources]
    cited += list(gate.sources) if gate else []
    cited += [s for c in knowledge.drug_classes.values() if c.rule == rule_id for d in c.drugs for s in d.sources]
    changed = (
        base is None
        or base.enabled != spec.enabled
        or base.mode != spec.mode
        or any(p.shipped is not None for p in parameters)
        or _gate_rows(shipped.gates.get(rule_id)) != gate_rows
    )
    return RulePage(
        spec=spec,
        changed=changed,
        parameters=parameters,
        variants=tuple(
            VariantRow(v.name, v.when, v.indicator, in_words(v.text.get("do")), _sources(knowledge, v.sources))
            for v in spec.variants.values()
        ),
        gate=gate_rows,
        gate_reason=gate.reason if gate else None,
        gate_sources=_sources(knowledge, gate.sources) if gate else (),
        trace=trace,
        drugs=drugs,
        suggestions=tuple(SUGGESTIONS[s].page_label for s in _all_suggestions(spec)),
        override_reasons=tuple(knowledge.override_reasons[r] for r in spec.override_reasons),
        sources=_sources(knowledge, tuple(dict.fromkeys(cited))),
        fires_for=_tier_range(knowledge, rule_id),
        codes=_codes(knowledge, rule_id),
    )


# What a card template's fields stand for, where a page shows the template rather than a card.
FIELD_WORDS: Mapping[str, str] = {
    "recheck": "6 h (parenteral) or 7 days",
    "spacing": "the drug's spacing",
    "due_from": "2 weeks",
    "due_by": "3 weeks",
}


def in_words(template: str | None) -> str | None:
    """A card template as a page shows it: each {field} replaced by what it stands for."""
    if template is None:
        return None
    return re.sub(r"\{(\w+)\}", lambda m: FIELD_WORDS.get(m.group(1), m.group(1).replace("_", " ")), template)


def _tier_range(knowledge: Knowledge, rule_id: str) -> str | None:
    """'20-29 mL/min': a renal tier runs from the tier below it up to its own threshold."""
    if rule_id not in RENAL_TIERS:
        return None
    top = knowledge.rule(rule_id).value("below")
    index = RENAL_TIERS.index(rule_id)
    if index == 0:
        return f"below {top:g} mL/min, or dialysis / ESRD on the problem list"
    bottom = knowledge.rule(RENAL_TIERS[index - 1]).value("below")
    return f"{bottom:g}-{top - 1:g} mL/min"


def _codes(knowledge: Knowledge, rule_id: str) -> tuple[CodeRow, ...]:
    conditions, analytes = READS.get(rule_id, ((), ()))
    rows = []
    for name in conditions:
        found = knowledge.conditions.get(name)
        if found is None:
            continue
        by_system: dict[str, list[str]] = {}
        for system, code in sorted(found.codes):
            by_system.setdefault(SYSTEM_WORDS.get(system, system), []).append(code)
        for prefix in found.icd10_prefixes:
            by_system.setdefault("ICD-10-CM", []).append(f"{prefix}*")
        rows += [CodeRow(found.label, system, ", ".join(codes)) for system, codes in by_system.items()]
    for name in analytes:
        analyte = knowledge.analytes.get(name)
        if analyte is not None:
            rows.append(CodeRow(analyte.label, "LOINC", ", ".join(analyte.codes)))
    for drug_class in knowledge.drug_classes.values():
        if drug_class.rule == rule_id:
            for drug in drug_class.drugs:
                codes = [f"RxNorm {c}" for c in drug.rxnorm_in] + [f"ATC {c}" for c in drug.atc]
                rows.append(CodeRow(drug.name, "RxNorm / ATC", ", ".join(codes) or "by name only"))
    return tuple(rows)


def site_parameters(knowledge: Knowledge, shipped: Knowledge) -> dict[str, tuple[ParameterRow, ...]]:
    """The settings every renal and level rule shares (renal_function, level_checks, lab_lookbacks)."""
    out = {}
    for section in SITE_WIDE:
        now, base = getattr(knowledge, section), getattr(shipped, section)
        out[section] = tuple(_row(knowledge, name, p, base.get(name)) for name, p in now.items())
    return out


def cited_by(rows: dict[str, tuple[ParameterRow, ...]]) -> tuple[Source, ...]:
    """Every source the rows cite, once, in order of first mention."""
    seen: dict[str, Source] = {}
    for section in rows.values():
        for row in section:
            for source in row.sources:
                seen.setdefault(source.id, source)
    return tuple(seen.values())


def _row(knowledge: Knowledge, name: str, param: Parameter, shipped: Parameter | None) -> ParameterRow:
    differs = shipped is not None and shipped.value != param.value
    return ParameterRow(
        name=name,
        words=PARAMETER_WORDS.get(name, name.replace("_", " ").capitalize()),
        value=f"{param.value:g}",
        unit="" if param.unit == "1" else param.unit,
        evidence=evidence_words(param.evidence, any(knowledge.sources[s].local_policy for s in param.sources)),
        sources=_sources(knowledge, param.sources),
        note=param.note,
        shipped=f"{shipped.value:g}" if differs and shipped is not None else None,
    )


def _gate_rows(gate: Gate | None) -> tuple[GateRow, ...]:
    if gate is None:
        return ()
    sides: list[tuple[str, GateSide | None]] = [("magnesium product", gate.magnesium), ("partner drug", gate.partner)]
    return tuple(GateRow(name, tuple(sorted(s.routes)), tuple(sorted(s.uses))) for name, s in sides if s)


def _spacing(before_h: float | None, after_h: float | None) -> str:
    if before_h is None and after_h is None:
        return "no spacing that works: avoid together"
    parts = []
    if before_h is not None:
        parts.append(f"{before_h:g} h before magnesium")
    if after_h is not None:
        parts.append(f"{after_h:g} h after magnesium")
    return " or ".join(parts)


def _all_suggestions(spec: RuleSpec) -> tuple[str, ...]:
    return tuple(dict.fromkeys([*spec.suggestions, *(s for v in spec.variants.values() for s in v.suggestions)]))


def _sources(knowledge: Knowledge, ids: tuple[str, ...]) -> tuple[Source, ...]:
    return tuple(knowledge.sources[i] for i in ids if i in knowledge.sources)
