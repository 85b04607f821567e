"""The committee's report: figures.json (the counts, exact and mergeable, plus the rates), CSV per rule,
and one self-contained report.html (inline styles, charts as inline SVG, nothing to fetch). Every
figure says its denominator."""

from __future__ import annotations

import csv
import json
from html import escape
from pathlib import Path
from typing import Any

from .figures import Figures

TOP = 5


def write_report(out: Path, figures: dict[str, Figures], about: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    labels = list(figures)
    main = figures[labels[0]]
    body = {**main.as_dict(), "rates": rates(main), "configuration": labels[0], "about": about}
    if len(labels) > 1:
        body["compare"] = {label: {**figures[label].as_dict(), "rates": rates(figures[label])} for label in labels[1:]}
    (out / "figures.json").write_text(json.dumps(body, indent=2), encoding="utf-8")
    with (out / "cards_by_rule.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["configuration", "rule", "indicator", "cards", "cards_per_100_orders", "orders_replayed"])
        for label in labels:
            fig = figures[label]
            for key, n in sorted(fig.cards_by_rule_indicator.items()):
                rule, indicator = key.split("|", 1)
                writer.writerow([label, rule, indicator, n, _per100(n, fig.orders_replayed), fig.orders_replayed])
    (out / "report.html").write_text(_html(figures, about), encoding="utf-8")


def rates(fig: Figures) -> dict[str, Any]:
    n = fig.orders_replayed
    return {
        "denominator": "orders replayed (orders some rule speaks about, at their own time)",
        "cards_per_100_orders": _per100(fig.cards, n),
        "share_of_orders_with_a_card": _share(fig.orders_with_card, n),
        "share_of_orders_with_a_critical_card": _share(fig.orders_with_critical, n),
        "cards_per_100_orders_by_rule": {r: _per100(c, n) for r, c in sorted(fig.cards_by_rule.items())},
    }


def _per100(count: int, orders: int) -> float:
    return round(100 * count / orders, 2) if orders else 0.0


def _share(count: int, orders: int) -> float:
    return round(count / orders, 4) if orders else 0.0


def _bars(rows: list[tuple[str, float]], unit: str, caption: str) -> str:
    """A horizontal bar chart as inline SVG, one bar per row, the value printed beside it."""
    if not rows:
        return f'<p class="muted">{escape(caption)}: nothing to show.</p>'
    width, bar_h, label_w = 640, 22, 260
    top = max(v for _, v in rows) or 1
    parts = []
    for i, (label, value) in enumerate(rows):
        y = i * (bar_h + 6)
        w = (width - label_w - 80) * value / top
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 15}" text-anchor="end">{escape(label[:40])}</text>'
            f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="#0550ae"></rect>'
            f'<text x="{label_w + w + 6:.1f}" y="{y + 15}">{value:g}{escape(unit)}</text>'
        )
    height = len(rows) * (bar_h + 6)
    return (
        f'<figure><svg class="chart" viewBox="0 0 {width} {height}" width="100%" role="img" '
        f'aria-label="{escape(caption)}" font-size="12">{"".join(parts)}</svg>'
        f"<figcaption>{escape(caption)}</figcaption></figure>"
    )


def _top(counter: dict[str, int], rule: str) -> list[tuple[str, int]]:
    found = [(key.split("|", 1)[1], n) for key, n in counter.items() if key.split("|", 1)[0] == rule]
    return sorted(found, key=lambda item: (-item[1], item[0]))[:TOP]


def _rule_rate(fig: Figures, rule: str) -> float:
    return _per100(fig.cards_by_rule.get(rule, 0), fig.orders_replayed)


def _rule_row(fig: Figures, rule: str, cards: int) -> str:
    indicators = sorted(fig.cards_by_rule_indicator.items())
    by_indicator = ", ".join(f"{key.split('|', 1)[1]} {n}" for key, n in indicators if key.startswith(rule + "|"))
    products = "; ".join(f"{p} ({c})" for p, c in _top(fig.products_by_rule, rule))
    partners = "; ".join(f"{p} ({c})" for p, c in _top(fig.partners_by_rule, rule))
    return (
        f"<tr><td><code>{escape(rule)}</code></td><td class=num>{cards}</td>"
        f"<td class=num>{_per100(cards, fig.orders_replayed)}</td><td>{escape(by_indicator)}</td>"
        f"<td class=num>{fig.gated_by_rule.get(rule, 0)}</td>"
        f"<td>{escape(products)}</td><td>{escape(partners)}</td></tr>"
    )


def _section(label: str, fig: Figures) -> str:
    n = fig.orders_replayed
    per_rule = sorted(fig.cards_by_rule.items(), key=lambda item: (-item[1], item[0]))
    rows = "".join(_rule_row(fig, rule, cards) for rule, cards in per_rule)
    gated_only = sorted(set(fig.gated_by_rule) - set(fig.cards_by_rule))
    gated_rows = "".join(
        f"<tr><td><code>{escape(r)}</code></td><td class=num>0</td><td class=num>0</td><td></td>"
        f"<td class=num>{fig.gated_by_rule[r]}</td><td></td><td></td></tr>"
        for r in gated_only
    )
    distribution = sorted(fig.cards_per_order.items(), key=lambda item: int(item[0]))
    caption = f"Cards per 100 orders replayed, by rule (denominator: {n:,} orders)"
    by_rule_chart = _bars([(r, _per100(c, n)) for r, c in per_rule], "", caption)
    months = sorted(set(fig.orders_by_month) | set(fig.cards_by_month))
    return f"""
<h2>{escape(label)}</h2>
<dl>
  <dt>Orders replayed</dt><dd>{n:,} (orders some rule speaks about, of {fig.orders_read:,} orders read for
  {fig.patients:,} patients; {fig.orders_without_date:,} without a date and {fig.orders_unreadable:,} not readable
  as FHIR were skipped)</dd>
  <dt>Cards per 100 orders</dt><dd>{_per100(fig.cards, n)} ({fig.cards:,} cards / {n:,} orders replayed)</dd>
  <dt>Orders with any card</dt><dd>{_share(fig.orders_with_card, n):.1%} ({fig.orders_with_card:,} / {n:,})</dd>
  <dt>Orders with a critical card</dt><dd>{_share(fig.orders_with_critical, n):.1%}
  ({fig.orders_with_critical:,} / {n:,})</dd>
</dl>
{by_rule_chart}
<div class="scroll"><table>
<thead><tr><th>Rule</th><th class=num>Cards</th><th class=num>Per 100 orders</th><th>By indicator</th>
<th class=num>Held back by gating</th><th>Top products</th><th>Top partner drugs</th></tr></thead>
<tbody>{rows}{gated_rows}</tbody></table></div>
<p class="muted">Per 100 orders: denominator {n:,} orders replayed. Held back by gating: cards the gating table
(route and use) kept from this rule, counted per order.</p>
{_bars([(f"{k} card(s)", v) for k, v in distribution], " orders", f"Cards per order (denominator: {n:,} orders)")}
{
        _bars(
            [(m, _per100(fig.cards_by_month.get(m, 0), fig.orders_by_month.get(m, 0))) for m in months],
            "",
            "Cards per 100 orders by month (denominator: that month's orders replayed)",
        )
    }
"""


def _html(figures: dict[str, Figures], about: dict[str, Any]) -> str:
    labels = list(figures)
    compare = ""
    if len(labels) > 1:
        a, b = figures[labels[0]], figures[labels[1]]
        rules = sorted(set(a.cards_by_rule) | set(b.cards_by_rule))
        rows = "".join(
            f"<tr><td><code>{escape(r)}</code></td><td class=num>{_rule_rate(a, r)}</td>"
            f"<td class=num>{_rule_rate(b, r)}</td></tr>"
            for r in rules
        )
        compare = f"""<h2>Side by side: {escape(labels[0])} against {escape(labels[1])}</h2>
<div class="scroll"><table><thead><tr><th>Rule</th><th class=num>{escape(labels[0])}: per 100 orders</th>
<th class=num>{escape(labels[1])}: per 100 orders</th></tr></thead><tbody>{rows}</tbody></table></div>
<p class="muted">Both over the same orders; denominators {a.orders_replayed:,} and {b.orders_replayed:,}.</p>"""
    sections = "".join(_section(label, figures[label]) for label in labels)
    facts = "".join(f"<li>{escape(str(k))}: {escape(str(v))}</li>" for k, v in about.items())
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Alert burden: magnesium product safety rules</title>
<style>
body {{ font: 15px/1.5 system-ui, sans-serif; color: #1b1f24; max-width: 64rem; margin: 0 auto; padding: 1rem; }}
h1 {{ font-size: 1.5rem; }} h2 {{ font-size: 1.2rem; margin-top: 2rem; }} .muted {{ color: #57606a; }}
table {{ border-collapse: collapse; width: 100%; }} th, td {{ text-align: left; padding: .3rem .5rem;
border-bottom: 1px solid #d0d7de; vertical-align: top; }} .num {{ text-align: right; }}
.scroll {{ overflow-x: auto; }} dl {{ display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1rem; }}
dt {{ font-weight: 600; }} dd {{ margin: 0; }} figure {{ margin: 1rem 0; }} figcaption {{ color: #57606a; }}
</style></head><body>
<h1>Alert burden of the magnesium product safety rules</h1>
<p>Every order a rule speaks about, replayed as an order-sign at its own time with the record as it was
then (labs and conditions recorded before it, medications active then). Nothing was shown to anyone.</p>
<ul class="muted">{facts}</ul>
{compare}{sections}
</body></html>
"""
