"""renal-contraindicated, renal-severe, renal-moderate, renal-unknown, renal-unstable."""

from __future__ import annotations

from ..context import RuleContext, recognised_as
from ..findings import Finding

TIERS = ("renal-contraindicated", "renal-severe", "renal-moderate")


def renal_tier(value: float, ctx: RuleContext) -> str | None:
    """The first tier whose `below` threshold the value is under (tiers are ordered at load)."""
    for rule_id in TIERS:
        if value < ctx.knowledge.rule(rule_id).value("below"):
            return rule_id
    return None


def evaluate(ctx: RuleContext) -> list[Finding]:
    findings: list[Finding] = []
    renal = ctx.renal
    for order, match in ctx.magnesium_orders:
        found = (
            f"Renal function: {renal.method}"
            + (f" **{renal.shown_value} {renal.unit}**" if renal.value is not None else ""),
            *renal.found,
        )
        if renal.dialysis is not None:
            condition = renal.dialysis.text or "Dialysis/ESRD"
            findings.append(
                ctx.finding(
                    "renal-contraindicated",
                    order,
                    recognised_as(match),
                    found=found,
                    summary_key="summary_dialysis",
                    condition=condition[:40],
                )
            )
        elif renal.value is None:
            reasons = tuple(f"Missing: {r}" for r in renal.unknown_reasons) or ("Missing: no usable renal function",)
            findings.append(ctx.finding("renal-unknown", order, recognised_as(match), found=reasons))
        elif renal.bound != "at least":  # a floor ("eGFR >60") places no tier; at or above 60 there is none
            tier = renal_tier(renal.value, ctx)
            if tier is not None:
                findings.append(
                    ctx.finding(
                        tier,
                        order,
                        recognised_as(match),
                        found=found,
                        estimate=renal.short,
                        value=renal.shown_value,
                        unit=renal.unit,
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
