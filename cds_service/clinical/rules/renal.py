"""renal-contraindicated, renal-severe, renal-moderate, renal-unknown, renal-unstable.

The tier comes from renal function alone; what the card says also depends on the order and the
treatment (the rule's variants in rules.yaml): documented hypomagnesaemia and parenteral magnesium
get "reduce the dose and check the level", a one-time or as-needed laxative gets "avoid" as a warning.
"""

from __future__ import annotations

from ..context import MagnesiumProduct, RuleContext, recognised_as
from ..findings import Finding

TIERS = ("renal-contraindicated", "renal-severe", "renal-moderate")


def renal_tier(value: float, ctx: RuleContext) -> str | None:
    """The first tier whose `below` threshold the value is under (tiers are ordered at load)."""
    for rule_id in TIERS:
        if value < ctx.knowledge.rule(rule_id).value("below"):
            return rule_id
    return None


def variant_for(ctx: RuleContext, product: MagnesiumProduct, rule_id: str) -> str | None:
    """The first variant of the rule that fits this order and patient, if any."""
    variants = ctx.knowledge.rule(rule_id).variants
    reading = product.reading
    if "treating-low" in variants and ctx.treatment.treating_low:
        return "treating-low"
    if "parenteral" in variants and reading.route == "parenteral":
        return "parenteral"
    if "cathartic" in variants and reading.use in ("one-time", "as-needed"):
        return "cathartic"
    return None


def evaluate(ctx: RuleContext) -> list[Finding]:
    findings: list[Finding] = []
    renal = ctx.renal
    for product in ctx.magnesium:
        if not product.in_scope:
            continue
        order, match = product.entry, product.match
        found = (
            f"Renal function: {renal.method}"
            + (f" **{renal.shown_value} {renal.unit}**" if renal.value is not None else ""),
            *renal.found,
            *ctx.treatment.found,
        )
        if renal.dialysis is not None:
            condition = renal.dialysis.label
            variant = variant_for(ctx, product, "renal-contraindicated")
            recheck, _ = ctx.level_check(order)
            findings.append(
                ctx.finding(
                    "renal-contraindicated",
                    order,
                    recognised_as(match),
                    found=found,
                    summary_key="summary_dialysis",
                    condition=condition[:40],
                    variant=variant,
                    recheck=recheck,
                )
            )
        elif renal.value is None:
            reasons = tuple(f"Missing: {r}" for r in renal.unknown_reasons) or ("Missing: no usable renal function",)
            findings.append(ctx.finding("renal-unknown", order, recognised_as(match), found=reasons))
        elif renal.bound != "at least":  # a floor ("eGFR >60") places no tier; at or above 60 there is none
            tier = renal_tier(renal.value, ctx)
            if tier is not None:
                recheck, _ = ctx.level_check(order)
                extra = ()
                if renal.last_known:
                    extra = tuple(s for s in ctx.suggestions(ctx.knowledge.rule("renal-unknown"), order, "") if s.lab)
                findings.append(
                    ctx.finding(
                        tier,
                        order,
                        recognised_as(match),
                        found=found,
                        estimate=renal.short,
                        value=renal.shown_value,
                        unit=renal.unit,
                        variant=variant_for(ctx, product, tier),
                        recheck=recheck,
                        extra_suggestions=extra,
                    )
                )
        if renal.rise is not None and renal.value is not None:
            rise = renal.rise
            findings.append(
                ctx.finding(
                    "renal-unstable",
                    order,
                    recognised_as(match),
                    change=rise.description,
                    found=(
                        f"Creatinine {rise.earlier.shown()}",
                        f"Creatinine {rise.latest.shown()}",
                        f"Rise: {rise.description} (KDIGO AKI criteria)",
                        f"Renal function used: {renal.method}",
                    ),
                )
            )
    return findings
