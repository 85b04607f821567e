"""mg-high and mg-low: the latest serum magnesium within its lookback, the lab's own range first."""

from __future__ import annotations

from ..context import RuleContext, recognised_as
from ..findings import Finding


def evaluate(ctx: RuleContext) -> list[Finding]:
    lookback = ctx.knowledge.lab_lookbacks["magnesium_days"].value
    mg = ctx.record.latest("magnesium", lookback)
    if mg is None or not mg.usable or mg.value <= 0:  # 0 or less is a lab error, not hypomagnesaemia
        return []
    limit_source = (
        "the lab's reference range" if mg.ref_high is not None or mg.ref_low is not None else "the service default"
    )
    is_high, is_low = ctx.is_high(mg), ctx.is_low(mg)
    if not (is_high or is_low):
        return []
    rule_id = "mg-high" if is_high else "mg-low"
    limit = ctx.high_limit(mg) if is_high else ctx.low_limit(mg)
    shown_value = f"{mg.comparator or ''}{mg.value:.2g}" if mg.value < 10 else f"{mg.value:.0f}"
    found = (
        f"Serum magnesium **{mg.shown()}** = {mg.value:.2f} mg/dL",
        f"{'Upper' if is_high else 'Lower'} limit {limit:.2f} mg/dL from {limit_source}",
    )
    return [
        ctx.finding(rule_id, order, recognised_as(match), found=found, value=shown_value, unit="mg/dL")
        for order, match in ctx.magnesium_orders
    ]
