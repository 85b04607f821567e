"""The committee's report: figures.json (the counts, exact and mergeable, plus the rates), CSVs (cards
per rule, outcomes per rule, orders and cards per period), and one self-contained report.html
(inline styles, bar charts in HTML and CSS, nothing to fetch). Every figure says its denominator;
magnesium-product orders and partner-drug orders are reported apart."""

from __future__ import annotations

import csv
import json
import re
from html import escape
from pathlib import Path
from typing import Any

from .figures import Figures
from .history import ASSUMED_COURSE_DAYS
from .outcomes import EVENTS, GRACE_DAYS, WINDOW_DAYS, wilson

TOP = 5
KINDS = {  # what an order was, as the report names it
    "magnesium": "Magnesium-product orders",
    "chelation": "Chelation-partner orders (antibiotics, bisphosphonates, ...)",
    "depletion": "Magnesium-wasting drug orders (diuretics, PPIs, ...)",
    "risk": "Orders of drugs risky when magnesium is low (digoxin, QT drugs)",
    "other": "Other orders (read only from the full record)",
}
MAX_BARS = 24  # the time axis is binned by month, year, 5 years or decade: the finest with at most this many
ASSOCIATION = (
    "The outcomes are associations in this site's own history, not effects: the cards were never shown, "
    "so nothing here says what showing them would have changed. Follow-through and events depend on the "
    "labs the site drew; an event nobody measured is not seen."
)


def write_report(out: Path, figures: dict[str, Figures], about: dict[str, Any], read: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    labels = list(figures)
    main = figures[labels[0]]
    body = {**main.as_dict(), "rates": rates(main), "configuration": labels[0], "about": about, "input": read}
    if len(labels) > 1:
        body["compare"] = {label: {**figures[label].as_dict(), "rates": rates(figures[label])} for label in labels[1:]}
    (out / "figures.json").write_text(json.dumps(body, indent=2), encoding="utf-8")
    _csv(out / "cards_by_rule.csv", ["configuration", "rule", "indicator", "cards", "cards_per_100_orders",
         "orders_replayed"], (
        [label, *key.split("|", 1), n, _per100(n, figures[label].orders_replayed), figures[label].orders_replayed]
        for label in labels for key, n in sorted(figures[label].cards_by_rule_indicator.items())
    ))  # fmt: skip
    _csv(out / "outcomes_by_rule.csv", ["configuration", "rule", "measure", "numerator", "denominator", "proportion",
         "ci95_low", "ci95_high", "cards_of_rule", "cards_per_event_caught"], (
        [label, row["rule"], row["measure"], row["numerator"], row["denominator"], row["proportion"],
         *(row["ci95"] or ("", "")), row["cards"], row.get("cards_per_event_caught", "")]
        for label in labels for row in outcome_rows(figures[label])
    ))  # fmt: skip
    _csv(out / "orders_by_period.csv", ["configuration", "kind", "period", "orders_replayed", "cards",
         "cards_per_100_orders"], (
        [label, kind, period, n, cards, _per100(cards, n)]
        for label in labels for kind, bins in periods(figures[label]).items() for period, n, cards in bins
    ))  # fmt: skip
    (out / "report.html").write_text(_html(figures, about, read), encoding="utf-8")


def _csv(path: Path, header: list[str], rows: Any) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


def merged_input(inputs: list[dict[str, Any]]) -> dict[str, Any]:
    """The shards' `input` added up, after checking each shard of the partition is there exactly once
    and every resource the manifest kept was read."""
    if not inputs:
        raise ValueError("no shards to merge")
    count = inputs[0]["shards"]
    shards = sorted(i["shard"] for i in inputs)
    if any(i["shards"] != count for i in inputs) or shards != list(range(count)):
        raise ValueError(f"shards {shards} of a partition into {count}: each shard must be merged exactly once")
    read = sum(i["resources"] for i in inputs)
    if read != inputs[0]["manifest_resources_kept"]:
        raise ValueError(
            f"the shards read {read:,} resources, the partition kept {inputs[0]['manifest_resources_kept']:,}"
        )
    return {
        "shard": "all",
        "shards": count,
        "resources": read,
        "bytes_read": sum(i["bytes_read"] for i in inputs),
        "export_bytes": inputs[0]["export_bytes"],
        "manifest_resources_kept": inputs[0]["manifest_resources_kept"],
        "history_end": inputs[0]["history_end"],
    }


def rates(fig: Figures) -> dict[str, Any]:
    n = fig.orders_replayed
    return {
        "denominator": "orders replayed (orders some rule speaks about, at their own time)",
        "cards_per_100_orders": _per100(fig.cards, n),
        "share_of_orders_with_a_card": _share(fig.orders_with_card, n),
        "share_of_orders_with_a_critical_card": _share(fig.orders_with_critical, n),
        "cards_per_100_orders_by_rule": {r: _per100(c, n) for r, c in sorted(fig.cards_by_rule.items())},
        "orders_by_kind": kinds(fig),
        "events": events(fig),
        "outcomes_by_rule": outcome_rows(fig),
        "note": ASSOCIATION,
    }


def kinds(fig: Figures) -> dict[str, dict[str, Any]]:
    """Orders and cards per kind of order: magnesium products apart from partner drugs."""
    out: dict[str, dict[str, Any]] = {"magnesium": {"orders_replayed": 0, "cards": 0}}  # said, even when none
    for key, n in fig.orders_by_kind_month.items():
        kind = key.split("|", 1)[0]
        out.setdefault(kind, {"orders_replayed": 0, "cards": 0})["orders_replayed"] += n
    for key, n in fig.cards_by_kind_month.items():
        out.setdefault(key.split("|", 1)[0], {"orders_replayed": 0, "cards": 0})["cards"] += n
    for row in out.values():
        row["cards_per_100_orders"] = _per100(row["cards"], row["orders_replayed"])
    return {k: out[k] for k in KINDS if k in out}


def events(fig: Figures) -> dict[str, dict[str, Any]]:
    """Per event: orders whose window lies inside the history, how many were measured, the events."""
    out = {}
    for event in EVENTS:
        eligible = fig.outcomes.get(f"{event}|eligible", 0)
        happened = fig.outcomes.get(f"{event}|happened", 0)
        out[event] = {
            "window_days": WINDOW_DAYS[event],
            "orders": eligible,
            "orders_with_magnesium_measured": fig.outcomes.get(f"{event}|measured", 0),
            "events": happened,
            "share": _share(happened, eligible),
            "ci95": _ci(happened, eligible),
            "censored_orders": fig.outcomes.get(f"{event}|censored", 0),
        }
    return out


def outcome_rows(fig: Figures) -> list[dict[str, Any]]:
    """Per rule: follow-through of each lab it asked for, and each event it caught (sensitivity), with
    numerator, denominator and a Wilson 95 % interval; cards per event caught."""
    rows = []
    for key in sorted(fig.labs_asked):
        rule, analyte = key.split("|", 1)
        asked, drawn = fig.labs_asked[key], fig.labs_drawn.get(key, 0)
        rows.append({"rule": rule, "measure": f"follow-through: {analyte} drawn by {GRACE_DAYS} days past due",
                     "numerator": drawn, "denominator": asked, "proportion": _share(drawn, asked),
                     "ci95": _ci(drawn, asked), "cards": fig.cards_by_rule.get(rule, 0)})  # fmt: skip
    for event in EVENTS:
        total = fig.outcomes.get(f"{event}|happened", 0)
        rules = sorted({k.split("|", 1)[1] for k in fig.caught_by_rule if k.startswith(event + "|")})
        for rule in rules:
            caught = fig.caught_by_rule[f"{event}|{rule}"]
            cards = fig.cards_by_rule.get(rule, 0)
            rows.append({"rule": rule, "measure": f"caught: {event} after an order it fired on (sensitivity)",
                         "numerator": caught, "denominator": total, "proportion": _share(caught, total),
                         "ci95": _ci(caught, total), "cards": cards,
                         "cards_per_event_caught": round(cards / caught, 1) if caught else None})  # fmt: skip
    return rows


def periods(fig: Figures) -> dict[str, list[tuple[str, int, int]]]:
    """Per kind group ("magnesium", "partner"), (period, orders, cards) binned to fit: the finest of
    month, year, 5 years and decade that spans the history in at most MAX_BARS bins."""
    months = sorted({k.split("|", 1)[1] for k in fig.orders_by_kind_month})
    span = _months_between(months[0], months[-1]) + 1 if months else 0
    width = next((w for w in (1, 12, 60, 120) if -(-span // w) <= MAX_BARS), 120)
    out: dict[str, dict[str, list[int]]] = {}
    for counter, column in ((fig.orders_by_kind_month, 0), (fig.cards_by_kind_month, 1)):
        for key, n in counter.items():
            kind, month = key.split("|", 1)
            group = "magnesium" if kind == "magnesium" else "partner"
            out.setdefault(group, {}).setdefault(_bin(month, width), [0, 0])[column] += n
    return {g: [(p, v[0], v[1]) for p, v in sorted(out[g].items())] for g in ("magnesium", "partner") if g in out}


def period_unit(period: str) -> str:
    return {7: "month", 4: "year", 9: "5 years", 5: "decade"}[len(period)]


def _months_between(first: str, last: str) -> int:
    return (int(last[:4]) - int(first[:4])) * 12 + int(last[5:7]) - int(first[5:7])


def _bin(month: str, width: int) -> str:
    """'2026-03' by month, '2026' by year, '2025-2029' by 5 years, '2020s' by decade."""
    year = int(month[:4])
    if width == 1:
        return month
    if width == 12:
        return str(year)
    if width == 60:
        return f"{year - year % 5}-{year - year % 5 + 4}"
    return f"{year - year % 10}s"


def _per100(count: int, orders: int) -> float:
    return round(100 * count / orders, 2) if orders else 0.0


def _share(count: int, orders: int) -> float:
    return round(count / orders, 4) if orders else 0.0


def _ci(k: int, n: int) -> list[float] | None:
    interval = wilson(k, n)
    return [round(interval[0], 4), round(interval[1], 4)] if interval else None


def _pct(k: int, n: int) -> str:
    """'12.5 % (3 / 24; 95 % CI 4.3-31.0 %)', or 'no denominator'."""
    if not n:
        return "none to count (0)"
    low, high = wilson(k, n) or (0.0, 0.0)
    return f"{100 * k / n:.1f} % ({k:,} / {n:,}; 95 % CI {100 * low:.1f}-{100 * high:.1f} %)"


def _bars(rows: list[tuple[str, float, str]], caption: str) -> str:
    """A horizontal bar chart in HTML and CSS (text stays readable at phone width), one bar per row,
    its value and count printed beside it."""
    if not rows:
        return f'<p class="muted">{escape(caption)}: nothing to show.</p>'
    top = max(v for _, v, _ in rows) or 1
    bars = "".join(
        f'<div class="bar-row"><span class="bar-label">{escape(label)}</span><span class="bar-track">'
        f'<span class="bar" style="width: {60 * value / top:.1f}%"></span><span class="bar-value">{escape(text)}'
        "</span></span></div>"
        for label, value, text in rows
    )
    return (
        f'<figure class="chart" role="img" aria-label="{escape(caption)}">'
        f"<figcaption>{escape(caption)}</figcaption>{bars}</figure>"
    )


def _top(counter: dict[str, int], rule: str) -> list[tuple[str, int]]:
    found = [(key.split("|", 1)[1], n) for key, n in counter.items() if key.split("|", 1)[0] == rule]
    return sorted(found, key=lambda item: (-item[1], item[0]))[:TOP]


def _rule_rate(fig: Figures, rule: str) -> float:
    return _per100(fig.cards_by_rule.get(rule, 0), fig.orders_replayed)


def _rule_row(fig: Figures, rule: str, cards: int) -> str:
    indicators = sorted(fig.cards_by_rule_indicator.items())
    by_indicator = ", ".join(f"{key.split('|', 1)[1]} {n}" for key, n in indicators if key.startswith(rule + "|"))
    on_mg = fig.cards_by_rule_kind.get(f"{rule}|magnesium", 0)
    products = "; ".join(f"{p} ({c})" for p, c in _top(fig.products_by_rule, rule))
    partners = "; ".join(f"{p} ({c})" for p, c in _top(fig.partners_by_rule, rule))
    return (
        f"<tr><td><code>{escape(rule)}</code></td><td class=num>{cards:,}</td>"
        f"<td class=num>{_per100(cards, fig.orders_replayed)}</td><td class=num>{on_mg:,}</td>"
        f"<td class=num>{cards - on_mg:,}</td><td>{escape(by_indicator)}</td>"
        f"<td class=num>{fig.gated_by_rule.get(rule, 0):,}</td>"
        f"<td>{escape(products)}</td><td>{escape(partners)}</td></tr>"
    )


def _silent(fig: Figures) -> str:
    """Rules in `mode: silent` (or `silent: true`): raised and recorded as the live service would, not
    counted as cards."""
    if not fig.silent_by_rule:
        return ""
    held = ", ".join(f"{escape(rule)} {n:,}" for rule, n in sorted(fig.silent_by_rule.items()))
    return f"\n  <dt>Held back: silent rules</dt><dd>{held} (not among the cards above)</dd>"


def _kinds_table(fig: Figures) -> str:
    rows = "".join(
        f"<tr><td>{escape(KINDS[kind])}</td><td class=num>{row['orders_replayed']:,}</td>"
        f"<td class=num>{row['cards']:,}</td><td class=num>{row['cards_per_100_orders']}</td></tr>"
        for kind, row in kinds(fig).items()
    )
    return f"""<h3>Magnesium orders and partner-drug orders, apart</h3>
<div class="scroll"><table><thead><tr><th>Orders</th><th class=num>Replayed</th><th class=num>Cards</th>
<th class=num>Cards per 100 of these orders</th></tr></thead><tbody>{rows}</tbody></table></div>
<p class="muted">An order is a magnesium product when it matches one (a combination with a partner drug counts
here); otherwise it is counted under its partner drug's class.</p>"""


def _events_table(fig: Figures) -> str:
    rows = ""
    for event, row in events(fig).items():
        after = "a magnesium-product order" if event == "hypermagnesaemia" else "a magnesium-wasting drug's start"
        rows += (
            f"<tr><td>{event.capitalize()} within {row['window_days']} days after {after}</td>"
            f"<td class=num>{row['orders']:,}</td><td class=num>{row['orders_with_magnesium_measured']:,}</td>"
            f"<td>{_pct(row['events'], row['orders'])}</td><td class=num>{row['censored_orders']:,}</td></tr>"
        )
    return f"""<h3>Events in the history</h3>
<div class="scroll"><table><thead><tr><th>Event</th><th class=num>Orders (window inside the history)</th>
<th class=num>Of them, magnesium measured in the window</th><th>Orders followed by the event</th>
<th class=num>Censored (window past the history's end)</th></tr></thead><tbody>{rows}</tbody></table></div>
<p class="muted">Hypermagnesaemia: a serum magnesium above the lab's reference range, else above the mg-high
rule's upper limit (2.6 mg/dL as shipped). Hypomagnesaemia: below the lab's range, else below the mg-low rule's
lower limit (1.8 mg/dL as shipped). A chelation partner's treatment failure (an infection not cured, a viral
load that rose) is out of scope: the history does not record it in a form this replay reads.</p>"""


def _outcome_table(fig: Figures) -> str:
    found = outcome_rows(fig)
    if not found:
        return '<h3>What each rule would have caught</h3><p class="muted">No card asked for a lab and no event followed an order.</p>'  # noqa: E501
    rows = "".join(
        f"<tr><td><code>{escape(r['rule'])}</code></td><td>{escape(r['measure'])}</td>"
        f"<td>{_pct(r['numerator'], r['denominator'])}</td><td class=num>{r['cards']:,}</td>"
        f"<td class=num>{r.get('cards_per_event_caught') or ''}</td></tr>"
        for r in found
    )
    return f"""<h3>What each rule would have caught</h3>
<div class="scroll"><table><thead><tr><th>Rule</th><th>Measure</th><th>Share (numerator / denominator; Wilson
95 % CI)</th><th class=num>Cards of the rule</th><th class=num>Cards per event caught</th></tr></thead>
<tbody>{rows}</tbody></table></div>
<p class="muted">Follow-through: of the cards that asked for a lab (an order-lab suggestion) whose window lies
inside the history, how many had that lab drawn after the order and at most {GRACE_DAYS} days past the due date
the card gave (a lab "due now": within {GRACE_DAYS} days). Caught: of all the events of that
kind, how many followed an order on which the rule fired (its sensitivity); cards per event caught is all the
rule's cards divided by them (the number needed to alert). {escape(ASSOCIATION)}</p>"""


def _time_charts(fig: Figures) -> str:
    out = [] if "magnesium" in periods(fig) else ['<p class="muted">No magnesium-product order in the history.</p>']
    for group, bins in periods(fig).items():
        unit = period_unit(bins[0][0]) if bins else "month"
        name = "magnesium-product orders" if group == "magnesium" else "partner-drug orders"
        rows = [(period, _per100(cards, n), f"{_per100(cards, n):g} (n={n:,})") for period, n, cards in bins]
        out.append(_bars(rows, f"Cards per 100 {name} by {unit} (n: the {name} replayed in that period)"))
    return "".join(out)


def _section(label: str, fig: Figures) -> str:
    n = fig.orders_replayed
    per_rule = sorted(fig.cards_by_rule.items(), key=lambda item: (-item[1], item[0]))
    rows = "".join(_rule_row(fig, rule, cards) for rule, cards in per_rule)
    gated_rows = "".join(
        f"<tr><td><code>{escape(r)}</code></td><td class=num>0</td><td class=num>0</td><td class=num>0</td>"
        f"<td class=num>0</td><td></td><td class=num>{fig.gated_by_rule[r]:,}</td><td></td><td></td></tr>"
        for r in sorted(set(fig.gated_by_rule) - set(fig.cards_by_rule))
    )
    distribution = sorted(fig.cards_per_order.items(), key=lambda item: int(item[0]))
    by_rule_chart = _bars(
        [(r, _per100(c, n), f"{_per100(c, n):g} ({c:,} cards)") for r, c in per_rule],
        f"Cards per 100 orders replayed, by rule (denominator: {n:,} orders)",
    )
    per_order = _bars(
        [(f"{k} card(s)", v, f"{v:,} orders") for k, v in distribution], f"Cards per order (denominator: {n:,} orders)"
    )
    return f"""
<h2>{escape(label)}</h2>
<dl>
  <dt>Orders replayed</dt><dd>{n:,} (orders some rule speaks about, of {fig.orders_read:,} orders read for
  {fig.patients:,} patients; {fig.orders_without_date:,} without a date, {fig.orders_not_signed:,} never signed
  (draft, proposal, plan) and {fig.orders_unreadable:,} not readable as FHIR were skipped)</dd>
  <dt>Cards per 100 orders</dt><dd>{_per100(fig.cards, n)} ({fig.cards:,} cards / {n:,} orders replayed)</dd>
  <dt>Orders with any card</dt><dd>{_share(fig.orders_with_card, n):.1%} ({fig.orders_with_card:,} / {n:,})</dd>
  <dt>Orders with a critical card</dt><dd>{_share(fig.orders_with_critical, n):.1%}
  ({fig.orders_with_critical:,} / {n:,})</dd>{_silent(fig)}
</dl>
{_kinds_table(fig)}
{_outcome_table(fig)}
{_events_table(fig)}
<h3>Cards by rule</h3>
{by_rule_chart}
<div class="scroll"><table>
<thead><tr><th>Rule</th><th class=num>Cards</th><th class=num>Per 100 orders</th><th class=num>On magnesium
orders</th><th class=num>On partner orders</th><th>By indicator</th><th class=num>Held back by gating</th>
<th>Top products</th><th>Top partner drugs</th></tr></thead>
<tbody>{rows}{gated_rows}</tbody></table></div>
<p class="muted">Per 100 orders: denominator {n:,} orders replayed. Held back by gating: cards the gating table
(route and use) kept from this rule, counted per order.</p>
{per_order}
<h3>Over time</h3>
{_time_charts(fig)}
"""


def _compare(figures: dict[str, Figures]) -> str:
    labels = list(figures)
    if len(labels) < 2:
        return ""
    a, b = figures[labels[0]], figures[labels[1]]
    rules = sorted(set(a.cards_by_rule) | set(b.cards_by_rule))

    def caught(fig: Figures, rule: str) -> str:
        parts = []
        for event in EVENTS:
            total = fig.outcomes.get(f"{event}|happened", 0)
            if total:
                parts.append(f"{event}: {fig.caught_by_rule.get(f'{event}|{rule}', 0):,} / {total:,}")
        return "; ".join(parts)

    rows = "".join(
        f"<tr><td><code>{escape(r)}</code></td><td class=num>{_rule_rate(a, r)}</td>"
        f"<td class=num>{_rule_rate(b, r)}</td><td>{escape(caught(a, r))}</td><td>{escape(caught(b, r))}</td></tr>"
        for r in rules
    )
    la, lb = escape(labels[0]), escape(labels[1])
    return f"""<h2>Side by side: {la} against {lb}</h2>
<div class="scroll"><table><thead><tr><th>Rule</th><th class=num>{la}: cards per 100 orders</th>
<th class=num>{lb}: cards per 100 orders</th><th>{la}: events caught</th><th>{lb}: events caught</th></tr>
</thead><tbody>{rows}</tbody></table></div>
<p class="muted">Both over the same orders; denominators {a.orders_replayed:,} and {b.orders_replayed:,}.</p>"""


TABLE = re.compile(r"<table>(.*?)</table>", re.S)
TAG = re.compile(r"<[^>]+>")


def _stacked(page: str) -> str:
    """Every table labels its cells with their column's header, so that on a phone (see the CSS) each
    row reads as a stack of 'header: value' lines instead of a table scrolled sideways."""

    def label(match: re.Match[str]) -> str:
        head, _, body = match.group(1).partition("</thead>")
        names = [" ".join(TAG.sub("", h).split()) for h in re.findall(r"<th[^>]*>(.*?)</th>", head, re.S)]
        rows = []
        for row in body.split("<tr>"):
            parts = row.split("<td")
            labels = [*names, *[""] * len(parts)]
            rows.append(parts[0] + "".join(f'<td data-label="{n}"{p}' for n, p in zip(labels, parts[1:], strict=False)))
        return f'<table class="stack">{head}</thead>{"<tr>".join(rows)}</table>'

    return TABLE.sub(label, page)


def _html(figures: dict[str, Figures], about: dict[str, Any], read: dict[str, Any]) -> str:
    return _stacked(_page(figures, about, read))


def _page(figures: dict[str, Figures], about: dict[str, Any], read: dict[str, Any]) -> str:
    sections = "".join(_section(label, fig) for label, fig in figures.items())
    facts = "".join(f"<li>{escape(str(k))}: {escape(str(v))}</li>" for k, v in about.items())
    facts += (
        f"<li>read: {read['resources']:,} resources ({read['bytes_read']:,} bytes of shard files, from an export of "
        f"{read['export_bytes']:,} bytes) from {read['shards']} shard(s); the history ends "
        f"{escape(str(read['history_end']))}</li>"
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Alert burden and outcomes: magnesium product safety rules</title>
<style>
body {{ font: 15px/1.5 system-ui, sans-serif; color: #1b1f24; max-width: 64rem; margin: 0 auto; padding: 1rem; }}
h1 {{ font-size: 1.5rem; }} h2 {{ font-size: 1.25rem; margin-top: 2rem; border-bottom: 2px solid #0550ae; }}
h3 {{ font-size: 1.05rem; margin-top: 1.5rem; }} .muted {{ color: #57606a; font-size: .9rem; }}
table {{ border-collapse: collapse; width: 100%; }} th, td {{ text-align: left; padding: .3rem .5rem;
border-bottom: 1px solid #d0d7de; vertical-align: top; }} .num {{ text-align: right; }}
.scroll {{ overflow-x: auto; }} dl {{ display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1rem; }}
dt {{ font-weight: 600; }} dd {{ margin: 0; }} figure {{ margin: 1rem 0; }}
figcaption {{ color: #57606a; margin-bottom: .4rem; }}
.bar-row {{ display: grid; grid-template-columns: minmax(5rem, 15rem) 1fr; gap: .5rem; align-items: center;
margin: .2rem 0; }} .bar-label {{ text-align: right; overflow-wrap: anywhere; }}
.bar-track {{ display: flex; align-items: center; gap: .4rem; }} .bar-value {{ white-space: nowrap; }}
.bar {{ display: inline-block; height: 1.1rem; min-width: 2px; background: #0550ae; }}
.note {{ background: #fff8c5; border-left: 4px solid #bf8700; padding: .5rem .75rem; }}
@media (max-width: 40rem) {{ dl {{ grid-template-columns: 1fr; }} body {{ font-size: 14px; padding: .5rem; }}
.bar-row {{ grid-template-columns: 6.5rem 1fr; }}
table.stack thead {{ display: none; }} table.stack tr {{ display: block; border-bottom: 2px solid #d0d7de;
padding: .3rem 0; }} table.stack td {{ display: grid; grid-template-columns: 42% 1fr; gap: .5rem; border: 0;
padding: .1rem .25rem; text-align: left; }} table.stack td:empty {{ display: none; }}
table.stack td::before {{ content: attr(data-label); font-weight: 600; color: #57606a; }} }}
</style></head><body>
<h1>Alert burden and outcomes of the magnesium product safety rules</h1>
<p>Every order a rule speaks about, replayed as an order-sign at its own time with the record as it was
then (labs and conditions recorded before it, the encounter it was written in, the medications running
then). Nothing was shown to anyone.</p>
<p class="note"><strong>Associations, not effects.</strong> {escape(ASSOCIATION)}</p>
<ul class="muted">{facts}
<li>A stopped or completed medication whose record states no end is taken to have run
{ASSUMED_COURSE_DAYS} days; an active one runs until the end it states.</li></ul>
{_compare(figures)}{sections}
</body></html>
"""
