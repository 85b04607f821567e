"""depletion-*: a magnesium-wasting drug ordered while serum magnesium is unchecked or low."""

from __future__ import annotations

from typing import Any

from ..context import PartnerDrug, RuleContext
from ..dose import daily_mg
from ..findings import Finding
from .family import Family, says


def evaluate(ctx: RuleContext) -> list[Finding]:
    findings = (_finding(ctx, partner) for partner in ctx.partners_in_scope("depletion"))
    return [finding for finding in findings if finding is not None]


def _finding(ctx: RuleContext, partner: PartnerDrug) -> Finding | None:
    drug = partner.hit.drug
    spec = ctx.knowledge.rule(partner.hit.drug_class.rule)
    found = [f"Recognised as {drug.name} ({partner.hit.drug_class.label}) by {partner.hit.how}"]
    fields: dict[str, Any] = {}
    if drug.min_daily_mg is not None:  # statins: only high-intensity daily doses count
        dose = daily_mg(partner.entry)
        if dose.mg_per_day is None or dose.mg_per_day < drug.min_daily_mg:
            return None
        found.append(f"Daily dose: {dose.how} (high intensity: >= {drug.min_daily_mg:g} mg/day)")
        fields["daily"] = f"{dose.mg_per_day:g}"
        fields["dose"] = f"{drug.name} {dose.mg_per_day:g} mg a day (high intensity: at least {drug.min_daily_mg:g})"
    lookback = spec.value("lookback_days")
    latest = ctx.record.latest("magnesium")
    current = ctx.mg_level.current(lookback)
    recognised = f"a {partner.hit.drug_class.label}"
    if current is None:
        if latest is not None:
            found.append(
                f"Last serum magnesium {latest.shown()}: older than {lookback:.0f} days"
                + ("" if latest.usable else f", unit '{latest.original_unit}' not recognised")
            )
        else:
            found.append(f"No serum magnesium on record in the last {lookback:.0f} days")
        return ctx.finding(spec.id, partner.entry, recognised, found=tuple(found), lookback=f"{lookback:.0f}", **fields)
    if not ctx.mg_level.low:
        return None
    found.append(f"Serum magnesium **{current.shown()}** = {current.value:.2f} mg/dL (low)")
    return ctx.finding(
        spec.id,
        partner.entry,
        recognised,
        found=tuple(found),
        summary_key="summary_low",
        indicator=spec.escalated_indicator,
        spec_suggestions=False,
        value=f"{current.value:.2g}",
        unit="mg/dL",
        lookback=f"{lookback:.0f}",
        **fields,
    )


FAMILY = Family(
    "depletion",
    evaluate,
    table_kind="depletion",
    table_says=says("lookback", "daily", "dose", "value", "unit", cases=("", "low")),
)
