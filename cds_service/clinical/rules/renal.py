"""renal-contraindicated, renal-severe, renal-moderate, renal-unknown, renal-unstable.

The tier comes from renal function alone; what the card says also depends on the order and the
treatment (the rule's variants in rules.yaml): documented hypomagnesaemia and parenteral magnesium
get "reduce the dose and check the level", a one-time or as-needed laxative gets "avoid" as a warning.
"""

from __future__ import annotations

from ..context import MagnesiumProduct, RuleContext, recognised_as
from ..findings import Finding, SuggestedAction
from ..matching import magnesium_kind
from ..renal_function import CreatinineRise
from .dosing import upper_limit
from .family import Family, says

TIERS = ("renal-contraindicated", "renal-severe", "renal-moderate")


def renal_tier(value: float, ctx: RuleContext) -> str | None:
    """The first tier whose `below` threshold the value is under (tiers are ordered at load)."""
    for rule_id in TIERS:
        if value < ctx.knowledge.rule(rule_id).value("below"):
            return rule_id
    return None


def variant_for(ctx: RuleContext, product: MagnesiumProduct, rule_id: str) -> str | None:
    """The first variant of the rule that fits this order and patient, if any."""
    spec = ctx.knowledge.rule(rule_id)
    variants = spec.variants
    reading = product.reading
    if "treating-low" in variants and ctx.treatment.treating_low:
        return "treating-low"
    if "parenteral" in variants and reading.route == "parenteral":
        return "parenteral"
    supplement = magnesium_kind(product.match, ctx.knowledge.magnesium) == "supplement"  # a salicylate is no cathartic
    if "cathartic" in variants and reading.occasional and supplement:
        return "cathartic"
    if "g3a-under-ul" in variants and _g3a_under_upper_limit(ctx, product, spec.value("info_from")):
        return "g3a-under-ul"
    return None


def _g3a_under_upper_limit(ctx: RuleContext, product: MagnesiumProduct, info_from: float) -> bool:
    """KDIGO G3a (45-59) with an enteral dose known to be at or under the upper limit for age."""
    renal, dose = ctx.renal, product.dose
    age = ctx.record.age_at(ctx.record.now)
    limit = upper_limit(ctx, age) if age is not None else None
    in_g3a = renal.value is not None and renal.value >= info_from and renal.bound is None and not renal.last_known
    return in_g3a and product.reading.route == "enteral" and limit is not None and _at_most(dose.mg_per_day, limit)


def _at_most(value: float | None, limit: float) -> bool:
    return value is not None and value <= limit


def unknown_renal_matters(ctx: RuleContext, product: MagnesiumProduct) -> str | None:
    """Why a missing creatinine changes something for this order (the at-risk reason), else None: age, coded CKD,
    diabetes, hypertension or heart failure, a wasting drug, a dose above the upper limit, a parenteral dose;
    a patient or problem list that could not be read counts as at risk (the service cannot tell)."""
    record = ctx.record
    age = record.age_at(record.now)
    if age is None or record.gap("conditions"):
        return "patient data incomplete"
    if age >= ctx.knowledge.rule("renal-unknown").value("at_risk_age"):
        return f"age {int(age)}"
    for name in ("ckd_stage", "renal_risk"):
        condition = ctx.problems.of(name)
        if condition is not None:
            return f"{condition.label} on the problem list"
    wasting = ctx.wasting_drugs()
    if wasting:
        return f"a magnesium-wasting drug ({', '.join(wasting)})"
    if product.reading.route == "parenteral":
        return "parenteral magnesium"
    limit = upper_limit(ctx, age)
    if limit is not None and product.dose.mg_per_day is not None and product.dose.mg_per_day > limit:
        return f"{product.dose.mg_per_day:.0f} mg/day, above the upper limit"
    return None


def evaluate(ctx: RuleContext) -> list[Finding]:
    findings: list[Finding] = []
    renal = ctx.renal
    for product in ctx.magnesium:
        if not product.in_scope:
            continue
        found = (
            f"Renal function: {renal.method}"
            + (f" **{renal.shown_value} {renal.unit}**" if renal.value is not None else ""),
            *renal.found,
            *ctx.treatment.found,
        )
        if renal.dialysis is not None:  # on dialysis the contraindicated rule alone speaks
            if ctx.runs("renal-contraindicated"):
                findings.append(_dialysis(ctx, product, found, renal.dialysis.label))
        elif renal.value is None:
            if ctx.runs("renal-unknown"):
                findings.extend(_unknown(ctx, product))
        elif renal.bound != "at least":  # a floor ("eGFR >60") places no tier; at or above 60 there is none
            tier = renal_tier(renal.value, ctx)
            if tier is not None and ctx.runs(tier):
                findings.append(_tier(ctx, product, tier, found))
        if renal.rise is not None and renal.value is not None and ctx.runs("renal-unstable"):
            findings.append(_unstable(ctx, product, renal.rise))
    return findings


def _dialysis(ctx: RuleContext, product: MagnesiumProduct, found: tuple[str, ...], condition: str) -> Finding:
    recheck, _ = ctx.level_check(product.entry)
    return ctx.finding(
        "renal-contraindicated",
        product.entry,
        recognised_as(product.match),
        found=found,
        summary_key="summary_dialysis",
        condition=condition[:40],
        variant=variant_for(ctx, product, "renal-contraindicated"),
        recheck=recheck,
    )


def _unknown(ctx: RuleContext, product: MagnesiumProduct) -> list[Finding]:
    renal = ctx.renal
    at_risk = unknown_renal_matters(ctx, product)
    if at_risk is None:
        return []
    reasons = tuple(f"Missing: {r}" for r in renal.unknown_reasons) or ("Missing: no usable renal function",)
    variant = "not-retrieved" if renal.not_retrieved else None
    found = (*reasons, f"Renal function matters here: {at_risk}")
    return [ctx.finding("renal-unknown", product.entry, recognised_as(product.match), found=found, variant=variant)]


def _tier(ctx: RuleContext, product: MagnesiumProduct, tier: str, found: tuple[str, ...]) -> Finding:
    renal, order = ctx.renal, product.entry
    recheck, _ = ctx.level_check(order)
    extra: tuple[SuggestedAction, ...] = ()
    if renal.last_known:
        extra = tuple(s for s in ctx.suggestions(ctx.knowledge.rule("renal-unknown"), order, "") if s.lab)
    return ctx.finding(
        tier,
        order,
        recognised_as(product.match),
        found=found,
        estimate=renal.short,
        value=renal.shown_value,
        unit=renal.unit,
        variant=variant_for(ctx, product, tier),
        recheck=recheck,
        extra_suggestions=extra,
        daily=f"{product.dose.mg_per_day:.0f}" if product.dose.known else "",
    )


def _unstable(ctx: RuleContext, product: MagnesiumProduct, rise: CreatinineRise) -> Finding:
    return ctx.finding(
        "renal-unstable",
        product.entry,
        recognised_as(product.match),
        change=rise.description,
        found=(
            f"Creatinine {rise.earlier.shown()}",
            f"Creatinine {rise.latest.shown()}",
            f"Rise: {rise.description} ({rise.criterion})",
            f"Renal function used: {ctx.renal.method}",
        ),
    )


_TIER_VARIANTS = ("treating-low", "parenteral", "cathartic", "g3a-under-ul")  # variant_for's order
_TIER_FIELDS = ("estimate", "value", "unit", "recheck", "daily")
FAMILY = Family(
    "renal",
    evaluate,
    {
        "renal-contraindicated": says(*_TIER_FIELDS, "condition", cases=("", "dialysis"), variants=_TIER_VARIANTS),
        "renal-severe": says(*_TIER_FIELDS, variants=_TIER_VARIANTS),
        "renal-moderate": says(*_TIER_FIELDS, variants=_TIER_VARIANTS),
        "renal-unknown": says(variants=("not-retrieved",)),
        "renal-unstable": says("change"),
    },
)
