"""low-mg-digoxin and low-mg-qt-drug: a drug that a low magnesium makes dangerous, ordered while the
latest serum magnesium is low (warning) or not on record in the lookback (info)."""

from __future__ import annotations

from ..context import PartnerDrug, RuleContext
from ..findings import Finding
from .family import Family, says


def evaluate(ctx: RuleContext) -> list[Finding]:
    findings = (_finding(ctx, partner) for partner in ctx.partners_in_scope("risk"))
    return [finding for finding in findings if finding is not None]


def _finding(ctx: RuleContext, partner: PartnerDrug) -> Finding | None:
    """None when the latest level in the lookback is usable and not low."""
    drug, drug_class = partner.hit.drug, partner.hit.drug_class
    spec = ctx.knowledge.rule(drug_class.rule)
    lookback = spec.value("lookback_days")
    current = ctx.mg_level.current(lookback)
    if current is not None and not ctx.mg_level.low:
        return None
    found = [f"Recognised as {drug.name} ({drug_class.label}) by {partner.hit.how}"]
    if current is None:
        latest = ctx.record.latest("magnesium")
        found.append(
            f"Last serum magnesium {latest.shown()}: not usable or older than {lookback:.0f} days"
            if latest is not None
            else f"No serum magnesium on record in the last {lookback:.0f} days"
        )
        return ctx.finding(
            spec.id,
            partner.entry,
            f"a {drug_class.label}",
            found=tuple(found),
            summary_key="summary_unknown",
            indicator=spec.escalated_indicator,
            lookback=f"{lookback:.0f}",
        )
    found.append(f"Serum magnesium **{current.shown()}** = {current.value:.2f} mg/dL (low)")
    return ctx.finding(
        spec.id,
        partner.entry,
        f"a {drug_class.label}",
        found=tuple(found),
        value=f"{current.value:.2g}",
        unit="mg/dL",
        lookback=f"{lookback:.0f}",
    )


FAMILY = Family(
    "risk",
    evaluate,
    table_kind="risk",
    table_says=says("lookback", "value", "unit", cases=("", "unknown")),
)
