"""mg-high and mg-low: the latest serum magnesium within its lookback, the lab's own range first.

Parenteral magnesium sulfate in pregnancy (pre-eclampsia, eclampsia, preterm labour: on the problem list or
the order's reasonCode) is judged against the obstetric therapeutic range (ACOG), not the normal one.
A low level is a card only where it asks for something: potassium and calcium not on record, a
magnesium-wasting drug to review, or a laxative dose that does not replete.
"""

from __future__ import annotations

from ...record.model import LabValue
from .. import facts
from ..context import MagnesiumProduct, RuleContext, recognised_as
from ..findings import Finding
from ..treatment import obstetric_reason
from .family import Family, says

SULFATE = "magnesium sulfate"


def evaluate(ctx: RuleContext) -> list[Finding]:
    mg = ctx.mg_level.current(ctx.knowledge.lab_lookbacks["magnesium_days"].value)
    if mg is None or mg.value is None or not ctx.mg_level.plausible:  # 0 or less is a lab error
        return []
    if not ctx.runs("mg-high") and not ctx.runs("mg-low"):
        return []
    findings = []
    for product in ctx.magnesium:
        if product.in_scope:
            finding = _judge(ctx, product, mg, mg.value)
            if finding is not None:
                findings.append(finding)
    return findings


def _judge(ctx: RuleContext, product: MagnesiumProduct, mg: LabValue, value: float) -> Finding | None:
    spec = ctx.knowledge.rule("mg-high")
    limit_source = (
        "the lab's reference range" if mg.ref_high is not None or mg.ref_low is not None else "the service default"
    )
    shown_value = f"{mg.comparator or ''}{value:.2g}" if value < 10 else f"{value:.0f}"
    measured = f"Serum magnesium **{mg.shown()}** = {value:.2f} mg/dL"
    order, match = product.entry, product.match
    obstetric = obstetric_indication(ctx, product)
    if obstetric is not None and not ctx.runs("mg-high"):
        return None
    if obstetric is not None:
        low, high = spec.value("preeclampsia_low"), spec.value("preeclampsia_high")
        if value <= high or mg.comparator in ("<", "<="):
            return None  # within (or below) the obstetric range: more magnesium sulfate is the plan
        found = (measured, f"Obstetric therapeutic range of MgSO4 {low:g}-{high:g} mg/dL (ACOG)", *obstetric)
        # Hold, do not delete: the infusion is the plan once the level is back in range; check it now.
        recheck = tuple(ctx.suggestions(spec, order, "", ("order-serum-magnesium-now",)))
        return ctx.finding(
            "mg-high",
            order,
            recognised_as(match),
            found=found,
            summary_key="summary_preeclampsia",
            spec_suggestions=False,
            extra_suggestions=recheck,
            value=shown_value,
            unit="mg/dL",
            high=f"{high:g}",
            obstetric_level=f"{facts.lab('Serum Mg', mg)} (obstetric range {low:g}-{high:g} mg/dL)",
        )
    if ctx.mg_level.high:
        if not ctx.runs("mg-high"):
            return None
        found = (measured, f"Upper limit {ctx.mg_level.high_limit:.2f} mg/dL from {limit_source}")
        return ctx.finding("mg-high", order, recognised_as(match), found=found, value=shown_value, unit="mg/dL")
    if not ctx.mg_level.low or not ctx.runs("mg-low"):
        return None
    found = (measured, f"Lower limit {ctx.mg_level.low_limit:.2f} mg/dL from {limit_source}")
    return _low(ctx, product, mg, shown_value, found)


def obstetric_indication(ctx: RuleContext, product: MagnesiumProduct) -> tuple[str, ...] | None:
    """For parenteral magnesium sulfate with an obstetric indication (problem list or reasonCode): what says so."""
    if SULFATE not in product.match.salts or product.reading.route != "parenteral":
        return None
    reason = obstetric_reason(product.entry, ctx.knowledge)
    if reason is not None:
        return (reason, *ctx.treatment.found)
    return ctx.treatment.found if ctx.treatment.obstetric is not None else None


def _low(
    ctx: RuleContext, product: MagnesiumProduct, mg: LabValue, shown_value: str, found: tuple[str, ...]
) -> Finding | None:
    spec = ctx.knowledge.rule("mg-low")
    order, match = product.entry, product.match
    missing = [s for s in ctx.suggestions(spec, order, "") if s.lab]
    wasting = ctx.wasting_drugs()
    laxative = product.reading.occasional and product.reading.route in ("enteral", "rectal")
    if wasting:
        key, extra = "summary_wasting", f"Magnesium-wasting drug ordered or taken: {', '.join(wasting)}"
    elif laxative:
        key, extra = "summary_laxative", "This order is a one-time or as-needed dose: it does not replete magnesium"
    elif missing:
        key, extra = "summary", None
    else:
        return None  # the level only agrees with the order: no card
    lookback = ctx.knowledge.lab_lookbacks["potassium_days"].value
    absent = " or ".join(s.lab for s in missing if s.lab)
    reason = extra or f"No serum {absent} in the last {lookback:.0f} days"
    return ctx.finding(
        "mg-low",
        order,
        recognised_as(match),
        found=(*found, *((extra,) if extra else ())),
        summary_key=key,
        value=shown_value,
        unit="mg/dL",
        wasting=", ".join(wasting)[:40],
        reason=reason,
    )


FAMILY = Family(
    "labs",
    evaluate,
    {
        "mg-high": says("value", "unit", "high", "obstetric_level", cases=("", "preeclampsia")),
        "mg-low": says("value", "unit", "wasting", "reason", cases=("", "wasting", "laxative")),
    },
)
