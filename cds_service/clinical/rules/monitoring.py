"""monitoring-recheck (new start) and monitoring-overdue (continuing while at risk)."""

from __future__ import annotations

from datetime import timedelta

from ...record.dates import day
from ..context import MagnesiumProduct, RuleContext, recognised_as
from ..findings import Finding
from .family import Family, says


def evaluate(ctx: RuleContext) -> list[Finding]:
    if "magnesium" in ctx.record.draft_lab_orders:
        return []  # a serum magnesium is already being ordered in this session
    continuing = [p for p in ctx.magnesium if p.entry.origin == "active" and not p.in_scope]
    if ctx.record.reviewing:
        continuing = list(ctx.magnesium)  # every product is a running therapy: overdue, never a "new start"
    findings = []
    for product in ctx.magnesium:
        if product.in_scope:
            rule_id = "monitoring-overdue" if continuing else "monitoring-recheck"
            if not ctx.runs(rule_id):
                continue
            finding = _overdue(ctx, product) if continuing else _recheck(ctx, product)
            if finding is not None:
                findings.append(finding)
    return findings


def risks_of(ctx: RuleContext, product: MagnesiumProduct, *, age_and_dose: bool = True) -> list[str]:
    """Why this patient needs magnesium followed: renal function < 60, a wasting drug, and for a new start of
    a salt with a sourced age (magnesium.yaml monitor_from_age: long-term MgO from 65) that age. Age alone
    and a dose above the upper limit are no reason: dose-above-ul speaks about the dose."""
    risks = []
    renal = ctx.renal
    impaired_below = ctx.knowledge.renal_function["impaired_below"].value
    impaired = renal.value is not None and renal.value < impaired_below and renal.bound != "at least"
    if renal.dialysis is not None or impaired:
        when = f" on {day(renal.when)}" if renal.when is not None and renal.dialysis is None else " (problem list)"
        risks.append(f"{renal.short} {renal.shown_value} {renal.unit}{when}" if renal.value is not None else "dialysis")
    wasting = ctx.wasting_drugs()
    if wasting:
        risks.append(f"{', '.join(wasting)} (magnesium-wasting)")
    if not age_and_dose:
        return risks
    age = ctx.record.age_at(ctx.record.now)
    from_age = ctx.knowledge.magnesium.monitor_from_age
    for salt in product.match.salts:
        if age is not None and salt in from_age and age >= from_age[salt]:
            risks.append(f"age {int(age)} years, on long-term {salt}")
            break
    return risks


def _recheck(ctx: RuleContext, product: MagnesiumProduct) -> Finding | None:
    order, match = product.entry, product.match
    spec = ctx.knowledge.rule("monitoring-recheck")
    risks = risks_of(ctx, product)
    if not risks and not spec.value("every_start"):
        return None
    now = ctx.record.now
    due_from = now + timedelta(days=spec.value("recheck_after_days"))
    due_by = now + timedelta(days=spec.value("recheck_by_days"))
    dose = product.dose
    why = f"At risk: {', '.join(risks)}" if risks else "Recheck after every start (site setting)"
    found = ("No active magnesium product: this is a new start", why, f"Daily elemental magnesium: {dose.how}")
    return ctx.finding(
        "monitoring-recheck",
        order,
        recognised_as(match),
        found=found,
        due_from=day(due_from),
        due_by=day(due_by),
        risk=risks[0].split(" (")[0] if risks else "no risk factor (site setting)",
        risks=f"At risk: {'; '.join(risks)}" if risks else "Recheck after every start (site setting)",
    )


def _overdue(ctx: RuleContext, product: MagnesiumProduct) -> Finding | None:
    spec = ctx.knowledge.rule("monitoring-overdue")
    order, match = product.entry, product.match
    risks = risks_of(ctx, product, age_and_dose=False)
    if not risks:
        return None
    interval = spec.value("interval_days")
    latest = ctx.record.latest("magnesium")
    if latest is not None and latest.usable and latest.when >= ctx.record.now - timedelta(days=interval):
        return None
    last = "none on record" if latest is None else f"{day(latest.when)} ({latest.reference})"
    found = (
        f"Continuing magnesium therapy with {' and '.join(risks)}",
        f"Last serum magnesium: {last}; recommended every {interval:.0f} days while at risk",
    )
    return ctx.finding(
        "monitoring-overdue",
        order,
        recognised_as(match),
        found=found,
        risk=" and ".join(r.split(" (")[0] for r in risks),
        last=last.split(" (")[0],
        risks=f"At risk: {'; '.join(risks)}",
        lookback=f"{interval:.0f}",
    )


FAMILY = Family(
    "monitoring",
    evaluate,
    {
        "monitoring-recheck": says("due_from", "due_by", "risk", "risks"),
        "monitoring-overdue": says("risk", "last", "risks", "lookback"),
    },
)
