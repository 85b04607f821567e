"""interaction-*: oral magnesium with a drug it chelates, in both directions, with drug-specific spacing.

A card needs one side of the pair among the orders in scope; the other side may be in scope, another
draft or an active medication. Both must be read as enteral (by mouth or by tube; an order with no route
or dose form is read as oral, and the card says so).
"""

from __future__ import annotations

from ..context import MagnesiumProduct, PartnerDrug, RuleContext, short_name, update_with_instruction
from ..findings import Finding, SuggestedAction
from ..matching import words_of
from .family import Family, says


def evaluate(ctx: RuleContext) -> list[Finding]:
    findings: list[Finding] = []
    for mg in ctx.magnesium:
        if mg.reading.route != "enteral":
            continue
        for partner in ctx.partners:
            if partner.hit.drug_class.kind != "chelation" or not (mg.in_scope or partner.in_scope):
                continue
            if not ctx.runs(partner.hit.drug_class.rule):
                continue
            if partner.entry is mg.entry:
                continue  # the ingredients of one product are formulated together
            if partner.reading.route != "enteral" or not _product_fits(mg, partner.hit.drug.only_with):
                continue
            findings.append(_finding(ctx, mg, partner))
    return findings


def _finding(ctx: RuleContext, mg: MagnesiumProduct, partner: PartnerDrug) -> Finding:
    drug = partner.hit.drug
    spec = ctx.knowledge.rule(partner.hit.drug_class.rule)
    target = mg.entry if mg.in_scope else partner.entry
    mg_name = short_name(mg.entry.name or ctx.known_name(mg.entry) or mg.match.salt_label, 40)
    has_spacing = drug.before_h is not None or drug.after_h is not None
    spacing = partner_spacing(drug.name, drug.before_h, drug.after_h) if has_spacing else ""
    found = [
        f"Magnesium product: {mg_name} ({mg.entry.reference}, {mg.entry.origin}); recognised as "
        f"{mg.match.salt_label} by {mg.match.how}",
        f"Interacting drug: {short_name(partner.entry.name or drug.name, 40)} ({partner.entry.reference}, "
        f"{partner.entry.origin}); recognised as {drug.name} by {partner.hit.how}",
        f"Spacing for {drug.name}: {spacing}"
        if has_spacing
        else f"{drug.name}: {drug.note or 'co-administration not recommended'}",
        f"Evidence for {drug.name}: {drug.evidence}; sources: {', '.join(drug.sources)}",
    ]
    if partner.reading.route_assumed:
        found.append(f"Route of {drug.name} not stated; assumed oral")
    if drug.note and has_spacing:
        found.append(f"Note: {drug.note}")
    extra: list[SuggestedAction] = []
    if has_spacing and "update-spacing" in spec.suggestions and target.resource_type == "MedicationRequest":
        instruction = (
            magnesium_spacing(drug.name, drug.before_h, drug.after_h, mg.match.excipient_of or "magnesium")
            if target is mg.entry
            else spacing
        )
        extra.append(update_with_instruction(target, instruction, f"Add to the dosage: {instruction}"))
    if not has_spacing and "remove-magnesium-if-no-spacing" in spec.suggestions and mg.in_scope:
        extra.append(
            SuggestedAction("remove-order", f"Remove the order for {mg_name}", order=mg.entry, recommended=True)
        )
    origin = {"draft": "ordered", "active": "taken"}
    pair = (
        f"{short_name(partner.entry.name or drug.name, 40)} ({origin[partner.entry.origin]}) and "
        f"{mg_name} ({origin[mg.entry.origin]}), both by mouth"
    )
    # The card cites this drug's own sources, not the labels of the other drugs its rule covers.
    others = {s for d in partner.hit.drug_class.drugs if d is not drug for s in d.sources} - set(drug.sources)
    sources = tuple(dict.fromkeys((*drug.sources, *(s for s in spec.sources if s not in others))))
    return ctx.finding(
        spec.id,
        target,
        f"interacts with {drug.name if target is mg.entry else mg_name}",
        sources=sources,
        found=tuple(found),
        summary_key="summary" if has_spacing else "summary_no_spacing",
        indicator=drug.indicator,
        partner=partner.entry if target is mg.entry else mg.entry,
        extra_suggestions=tuple(extra),
        merge_key=drug.name if target is mg.entry else "magnesium",
        partner_name=drug.name,
        mg=mg_name,
        spacing=spacing,
        pair=pair,
    )


def _product_fits(mg: MagnesiumProduct, words: tuple[str, ...]) -> bool:
    """A drug bound only by some products (rosuvastatin: Al/Mg hydroxide antacids) needs one of its words."""
    if not words:
        return True
    text = " ".join((mg.entry.name, *mg.entry.ingredient_names, *mg.match.salts)).lower()
    return bool(set(words) & set(words_of(text)))


def partner_spacing(name: str, before_h: float | None, after_h: float | None) -> str:
    """The advice from the partner's side: 'give ciprofloxacin at least 2 h before or 6 h after magnesium'."""
    return _spacing(f"give {name}", "magnesium", before_h, after_h)


def magnesium_spacing(name: str, before_h: float | None, after_h: float | None, subject: str = "magnesium") -> str:
    """The same advice from magnesium's side: partner 2 h before = magnesium 2 h after, and so on (for an
    excipient, the drug whose tablet carries it: "take quinapril at least 3 h before or 3 h after doxycycline")."""
    return _spacing(f"take {subject}", name, after_h, before_h)


def _spacing(subject: str, other: str, before_h: float | None, after_h: float | None) -> str:
    parts = [f"{_hours(h)} {word}" for h, word in ((before_h, "before"), (after_h, "after")) if h is not None]
    return f"{subject} at least {' or '.join(parts)} {other}"


def _hours(value: float) -> str:
    return f"{value * 60:.0f} min" if value < 1 else f"{value:g} h"


FAMILY = Family(
    "interactions",
    evaluate,
    table_kind="chelation",
    table_says=says("partner_name", "mg", "spacing", "pair", cases=("", "no_spacing")),
)
