"""What a rule page shows, built from the knowledge in force (site overrides applied) and compared
with the shipped knowledge, so a pharmacist sees at a glance what this site changed and why each
number is what it is."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..knowledge.model import Gate, GateSide, Knowledge, Parameter, RuleSpec, Source

# What each suggestion kind in rules.yaml offers the clinician (the labels on cards are built per
# patient by clinical/context.py; these say what kind of button it is).
SUGGESTION_KINDS: Mapping[str, str] = {
    "remove-order": "Remove the magnesium order (a delete of the draft order)",
    "order-serum-magnesium-now": "Order serum magnesium now (a ServiceRequest)",
    "order-serum-magnesium-recheck": "Order a serum magnesium recheck with a due date (a ServiceRequest)",
    "order-serum-magnesium-level-check": "Order serum magnesium at the level-check interval (a ServiceRequest)",
    "order-serum-creatinine": "Order serum creatinine now (a ServiceRequest)",
    "order-potassium-if-missing": "Order serum potassium when none is on record in its lookback",
    "order-calcium-if-missing": "Order serum calcium when none is on record in its lookback",
    "update-spacing": "Add the dose-spacing instruction to the order (an update; in the text for EHRs that take none)",
    "remove-magnesium-if-no-spacing": "Remove the magnesium order when no spacing works",
}
SITE_WIDE = ("renal_function", "level_checks", "lab_lookbacks")


@dataclass(frozen=True, slots=True)
class ParameterRow:
    name: str
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
            VariantRow(v.name, v.when, v.indicator, v.text.get("action"), _sources(knowledge, v.sources))
            for v in spec.variants.values()
        ),
        gate=gate_rows,
        gate_reason=gate.reason if gate else None,
        gate_sources=_sources(knowledge, gate.sources) if gate else (),
        trace=trace,
        drugs=drugs,
        suggestions=tuple(SUGGESTION_KINDS.get(s, s) for s in _all_suggestions(spec)),
        override_reasons=tuple(knowledge.override_reasons[r] for r in spec.override_reasons),
        sources=_sources(knowledge, tuple(dict.fromkeys(cited))),
    )


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
        value=f"{param.value:g}",
        unit="" if param.unit == "1" else param.unit,
        evidence=param.evidence,
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
