"""What followed each replayed order in the site's own history: the events a rule is meant to warn
of, and whether the lab a card asked for was drawn. Associations in the history, not effects: the
cards were never shown, so nothing here says what showing them would have changed.

- hypermagnesaemia: a serum magnesium above the lab's reference range (else the mg-high rule's upper
  limit, 2.6 mg/dL) within 30 days after a magnesium-product order;
- hypomagnesaemia: below the lab's range (else the mg-low rule's lower limit, 1.8 mg/dL) within 90
  days after the start of a magnesium-wasting drug;
- follow-through: a card that asked for a lab (an order-lab suggestion with a due date): was that lab
  drawn after the order and at most a week past the due date (a lab "due now" within the week; the
  new-start recheck, due on day 14, by day 21, the end of the window its card names).
A chelation partner's treatment failure (an infection not cured, an HIV load that rose) is out of
scope: the history does not say it in a form this replay could read.

An outcome whose window ends after the history does (the export's last order or lab) is censored:
counted apart, in no denominator."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from math import sqrt

from ..clinical.findings import Finding
from ..clinical.magnesium_level import is_high, is_low
from ..knowledge.model import Knowledge
from ..record.model import LabValue

EVENTS = ("hypermagnesaemia", "hypomagnesaemia")
WINDOW_DAYS = {"hypermagnesaemia": 30, "hypomagnesaemia": 90}  # the definitions of this report (issue 30)
GRACE_DAYS = 7  # a lab counts as drawn for a card up to this long past the due date the card gave


@dataclass(frozen=True, slots=True)
class OrderOutcome:
    """One event's status after one order: eligible (window inside the history), measured (any Mg in
    the window), event; or censored."""

    event: str
    censored: bool
    measured: bool = False
    happened: bool = False


def event_outcomes(
    when: datetime,
    magnesium_order: bool,
    wasting_order: bool,
    magnesium_labs: list[LabValue],
    knowledge: Knowledge,
    history_end: datetime | None,
) -> list[OrderOutcome]:
    out = []
    for event, applies in zip(EVENTS, (magnesium_order, wasting_order), strict=True):
        if not applies:
            continue
        until = when + timedelta(days=WINDOW_DAYS[event])
        if history_end is not None and until > history_end:
            out.append(OrderOutcome(event, censored=True))
            continue
        inside = [lab for lab in magnesium_labs if when < lab.when <= until and lab.value is not None]
        out.append(OrderOutcome(event, False, bool(inside), any(_abnormal(event, lab, knowledge) for lab in inside)))
    return out


def _abnormal(event: str, lab: LabValue, knowledge: Knowledge) -> bool:
    return is_high(lab, knowledge) if event == "hypermagnesaemia" else is_low(lab, knowledge)


@dataclass(frozen=True, slots=True)
class LabAsked:
    rule: str
    analyte: str
    censored: bool
    drawn: bool


def labs_asked(
    findings: Iterable[Finding],
    when: datetime,
    labs: Mapping[str, list[LabValue]],
    history_end: datetime | None,
) -> list[LabAsked]:
    """Each card's lab suggestions, and whether that lab was drawn after the order, by its due date
    plus the grace."""
    out = []
    for finding in findings:
        for s in finding.suggestions:
            if s.kind != "order-lab" or s.lab is None or s.due is None:
                continue
            until = max(s.due, when) + timedelta(days=GRACE_DAYS)
            if history_end is not None and until > history_end:
                out.append(LabAsked(finding.rule_id, s.lab, True, False))
                continue
            drawn = any(when < lab.when <= until for lab in labs.get(s.lab, ()))
            out.append(LabAsked(finding.rule_id, s.lab, False, drawn))
    return out


def wilson(successes: int, total: int, z: float = 1.959964) -> tuple[float, float] | None:
    """Wilson score interval (95 % by default) of a proportion; None without a denominator."""
    if total <= 0:
        return None
    p = successes / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return max(0.0, centre - half), min(1.0, centre + half)
