"""Per-rule numbers from the store: cards issued, accepted, overridden (by reason), override rate.

Cards, not clicks: a card is counted once, by its latest outcome (a clinician who accepts a card
and then undoes it, or clicks twice, has answered one card); every feedback event stays stored,
and the report says how many events it folded. For the whole store and any period, across every
replica. Override rate = overridden / (accepted + overridden): cards nobody answered are not counted
either way, since many EHRs send no feedback for a card that was only read.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select

from .. import metrics
from .models import CardIssued, FeedbackItem
from .store import FeedbackStore


@dataclass(slots=True)
class RuleNumbers:
    rule_id: str
    issued: int = 0
    accepted: int = 0
    overridden: int = 0
    override_reasons: Counter[str] = field(default_factory=Counter)
    events: int = 0  # feedback events folded into the answered cards (>= accepted + overridden)
    issued_by_service: Counter[str] = field(default_factory=Counter)  # the CDS service id that issued them
    held_back: Counter[str] = field(default_factory=Counter)  # raised but kept from the EHR by card memory, by why
    # CDS Hooks 3.0 non-adherence codes (cards/reasons.py)
    standard_reasons: Counter[str] = field(default_factory=Counter)

    @property
    def override_rate(self) -> float | None:
        answered = self.accepted + self.overridden
        return self.overridden / answered if answered else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule_id,
            "issued": self.issued,
            "accepted": self.accepted,
            "overridden": self.overridden,
            "overridden_by_reason": dict(sorted(self.override_reasons.items())),
            "overridden_by_standard_reason": dict(sorted(self.standard_reasons.items())),
            "override_rate": None if self.override_rate is None else round(self.override_rate, 4),
            "feedback_events": self.events,
            "issued_by_service": dict(sorted(self.issued_by_service.items())),
            "held_back": dict(sorted(self.held_back.items())),
        }


def per_rule(store: FeedbackStore, since: datetime | None = None, rule_id: str | None = None) -> list[RuleNumbers]:
    """Numbers per rule (only `rule_id`'s when given: a rule page needs no other)."""
    since_utc = since.astimezone(UTC) if since else None
    rules: dict[str, RuleNumbers] = {}
    issued = select(CardIssued.rule_id, CardIssued.service_id, CardIssued.held_back, func.count()).group_by(
        CardIssued.rule_id, CardIssued.service_id, CardIssued.held_back
    )
    events = select(
        FeedbackItem.card_uuid,
        FeedbackItem.rule_id,
        FeedbackItem.outcome,
        FeedbackItem.override_reason_system,
        FeedbackItem.override_reason_code,
        func.row_number()
        .over(
            partition_by=FeedbackItem.card_uuid,
            order_by=(FeedbackItem.outcome_timestamp.desc(), FeedbackItem.received_at.desc(), FeedbackItem.id.desc()),
        )
        .label("newest_first"),
        func.count().over(partition_by=FeedbackItem.card_uuid).label("events"),
    )
    if since_utc:
        events = events.where(FeedbackItem.received_at >= since_utc)
    latest = events.subquery()
    rule = func.coalesce(latest.c.rule_id, CardIssued.rule_id, metrics.UNKNOWN_RULE)
    reason = (latest.c.override_reason_system, latest.c.override_reason_code)
    answers = (
        select(rule, latest.c.outcome, *reason, func.count(), func.sum(latest.c.events))
        .select_from(latest)
        .join(CardIssued, CardIssued.card_uuid == latest.c.card_uuid, isouter=True)
        .where(latest.c.newest_first == 1)
        .group_by(rule, latest.c.outcome, *reason)
    )
    if since_utc:
        issued = issued.where(CardIssued.issued_at >= since_utc)
    if rule_id is not None:
        issued = issued.where(CardIssued.rule_id == rule_id)
        answers = answers.where(rule == rule_id)
    with store.engine.connect() as conn:
        for rule_id, service_id, held_back, count in conn.execute(issued):
            numbers = rules.setdefault(rule_id, RuleNumbers(rule_id))
            if held_back:
                numbers.held_back[held_back] += count
                continue
            numbers.issued += count
            numbers.issued_by_service[service_id] += count
        for rule_id, outcome, system, reason, count, folded in conn.execute(answers):
            numbers = rules.setdefault(rule_id, RuleNumbers(rule_id))
            numbers.events += int(folded or 0)
            if outcome == "accepted":
                numbers.accepted += count
            else:
                numbers.overridden += count
                numbers.override_reasons[reason or "(no reason given)"] += count
                numbers.standard_reasons[_standard(system, reason) or "(none)"] += count
    return sorted(rules.values(), key=lambda r: (-r.issued, r.rule_id))


def total(rows: list[RuleNumbers]) -> RuleNumbers:
    whole = RuleNumbers("all rules")
    for row in rows:
        whole.issued += row.issued
        whole.accepted += row.accepted
        whole.overridden += row.overridden
        whole.events += row.events
        whole.override_reasons.update(row.override_reasons)
        whole.standard_reasons.update(row.standard_reasons)
        whole.issued_by_service.update(row.issued_by_service)
        whole.held_back.update(row.held_back)
    return whole


def _standard(system: str | None, code: str | None) -> str | None:
    """The CDS Hooks 3.0 non-adherence code of a stored reason: the code itself when the EHR sent the
    standard coding, else the mapping of this service's own (knowledge/override_reasons.yaml)."""
    from ..knowledge import load_knowledge

    knowledge = load_knowledge()  # built once per process; the mapping is not a site setting
    if knowledge.standard_reasons is None:
        return None
    return knowledge.standard_reasons.of(system, code, knowledge.override_reason_system)


def render_text(rows: list[RuleNumbers], since: datetime | None, store: str) -> str:
    period = f"since {since.isoformat()}" if since else "all time"
    lines = [f"Cards and feedback per rule ({store} store, {period})", ""]
    header = f"{'rule':<34}{'issued':>8}{'accepted':>10}{'overridden':>12}{'override rate':>15}"
    ruler = "-" * len(header)
    lines += [header, ruler]
    for row in rows:
        lines.append(_numbers_line(row))
        if row.issued_by_service:
            services = ", ".join(f"{sid} {n}" for sid, n in sorted(row.issued_by_service.items()))
            lines.append(f"    issued by service: {services}")
        if row.held_back:
            held = ", ".join(f"{why} {n}" for why, n in sorted(row.held_back.items()))
            lines.append(f"    held back (not shown): {held}")
        if row.override_reasons:
            reasons = ", ".join(f"{code} {n}" for code, n in sorted(row.override_reasons.items()))
            lines.append(f"    overridden because: {reasons}")
            standard = ", ".join(f"{code} {n}" for code, n in sorted(row.standard_reasons.items()))
            lines.append(f"    as standard reasons (CDS Hooks 3.0): {standard}")
    lines += [ruler, _numbers_line(total(rows))]
    if not rows:
        lines.append("(no cards issued and no feedback in this period)")
    whole = total(rows)
    answered = whole.accepted + whole.overridden
    lines += [
        "",
        f"Cards, not clicks: {answered} answered cards counted once each by their latest outcome "
        f"({whole.events} feedback events stored).",
        "Override rate = overridden / (accepted + overridden); cards with no feedback count in neither.",
    ]
    return "\n".join(lines)


def _numbers_line(row: RuleNumbers) -> str:
    rate = "-" if row.override_rate is None else f"{row.override_rate:.0%}"
    return f"{row.rule_id:<34}{row.issued:>8}{row.accepted:>10}{row.overridden:>12}{rate:>15}"
