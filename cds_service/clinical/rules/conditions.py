"""myasthenia-gravis: a magnesium product ordered for a patient with myasthenia gravis."""

from __future__ import annotations

from ..context import RuleContext, recognised_as
from ..findings import Finding
from ..problems import how_found
from .family import Family, says


def evaluate(ctx: RuleContext) -> list[Finding]:
    if not ctx.runs("myasthenia-gravis"):
        return []
    condition = ctx.problems.of("myasthenia_gravis")
    if condition is None:
        return []
    label = condition.label
    return [
        ctx.finding(
            "myasthenia-gravis",
            order,
            recognised_as(match),
            found=(f"Found on the {how_found(condition, ctx.knowledge.conditions['myasthenia_gravis'])}",),
            condition=label[:40],
        )
        for order, match in ctx.magnesium_orders
    ]


FAMILY = Family("conditions", evaluate, {"myasthenia-gravis": says("condition")})
