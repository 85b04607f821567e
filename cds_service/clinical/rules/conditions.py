"""myasthenia-gravis: a magnesium product ordered for a patient with myasthenia gravis."""

from __future__ import annotations

from ..context import RuleContext, recognised_as
from ..findings import Finding
from ..renal_function import find_condition


def evaluate(ctx: RuleContext) -> list[Finding]:
    condition = find_condition(ctx.record, ctx.knowledge.conditions["myasthenia_gravis"])
    if condition is None:
        return []
    label = condition.text or next((c.display for c in condition.codings if c.display), "Myasthenia gravis")
    return [
        ctx.finding(
            "myasthenia-gravis",
            order,
            recognised_as(match),
            found=(f"Problem list: {label} ({condition.reference})",),
            condition=label[:40],
        )
        for order, match in ctx.magnesium_orders
    ]
