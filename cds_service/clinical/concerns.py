"""One card per rule and concern: findings that say the same thing about several products become one.

A patient on two magnesium products with a CrCl of 25 has one renal problem, not two; the card names
both products and offers one suggestion per product where the actions differ (remove this one, remove
that one). Findings merge only when the rule, its indicator and variant, what to do, and every value
of the summary other than the product names are the same (their facts are joined), so a merged card
never states a value that holds for one product only.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from ..knowledge.anatomy import MAX_FACTS, NAME_FIELDS, placeholders
from .context import fit_name, short_name
from .findings import Finding, SuggestedAction


def one_card_per_concern(findings: list[Finding]) -> list[Finding]:
    groups: dict[tuple[Any, ...], list[Finding]] = {}
    for finding in findings:
        groups.setdefault(_concern(finding), []).append(finding)
    return [group[0] if len(group) == 1 else _merged(group) for group in groups.values()]


def _concern(finding: Finding) -> tuple[Any, ...]:
    named = set(placeholders(finding.summary_template)) - set(NAME_FIELDS)
    values = tuple(sorted((k, str(v)) for k, v in finding.fields.items() if k in named))
    return (
        finding.rule_id,
        finding.indicator,
        finding.variant,
        finding.merge_key,
        finding.summary_template,
        finding.do,
        values,
    )


def _merged(group: list[Finding]) -> Finding:
    first = group[0]
    products = [f.order.name or str(f.fields.get("mg", "")) for f in group]
    differing = [n for n in NAME_FIELDS if n in first.fields and len({str(f.fields[n]) for f in group}) > 1]
    named = placeholders(first.summary_template)
    for limit in (40, 32, 26, 20, 16, 12):  # each name shortened alike, so that every product stays named
        joined = {n: _apart([str(f.fields[n]) for f in group], limit) for n in differing}
        names = _apart(products, limit)
        if names is None or None in joined.values():
            continue  # shortened this far, two names read the same
        fields = {**first.fields, **joined}
        summary = fit_name(first.summary_template, names, **fields)
        shown = ([names] if "drug" in named else []) + [str(fields[n]) for n in differing if n in named]
        if all(value in summary for value in shown):
            break
    else:  # no length keeps every name whole and apart: the summary counts them, the facts name each
        count = f"{len(set(products))} magnesium products"
        fields = {**first.fields, **dict.fromkeys(differing, count)}
        summary = fit_name(first.summary_template, count, **fields)
    facts = tuple(dict.fromkeys(fact for f in group for fact in f.facts))[:MAX_FACTS]
    suggestions: list[SuggestedAction] = []
    labs: set[str] = set()
    for finding in group:
        for suggestion in finding.suggestions:
            if suggestion.lab is not None and suggestion.lab in labs:
                continue  # one lab order for the concern, whatever the number of products
            labs.update({suggestion.lab} if suggestion.lab else ())
            suggestions.append(suggestion)
    return replace(
        first,
        summary=summary,
        facts=facts,
        suggestions=tuple(suggestions),
        audit=tuple(dict.fromkeys(line for f in group for line in f.audit)),
        fields=fields,
        also=tuple(o for f in group[1:] for o in f.orders),
    )


def _apart(names: list[str], limit: int) -> str | None:
    """The distinct names, each shortened to `limit`, joined; None when shortening makes two alike."""
    distinct = list(dict.fromkeys(n for n in names if n))
    short = [short_name(n, limit) for n in distinct]
    return _joined(short) if len(set(short)) == len(distinct) else None


def _joined(names: Iterable[str]) -> str:
    distinct = list(dict.fromkeys(n for n in names if n))
    return distinct[0] if len(distinct) == 1 else ", ".join(distinct[:-1]) + " and " + distinct[-1]
