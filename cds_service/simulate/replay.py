"""Replay one patient's orders through the rules, each at its own moment, with the record as it was
then: labs and conditions recorded before it, medications active then."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from ..clinical.engine import RuleEngine
from ..clinical.relevance import may_concern_a_rule
from ..knowledge.model import Knowledge
from ..protocol.errors import ProtocolError
from ..protocol.request import parse_request
from ..record import build_record
from ..record.build import READ_ERRORS, recorded_time
from ..record.dates import parse_datetime
from ..record.labs import effective_time
from .figures import Figures

ORDER_TYPES = ("MedicationRequest", "MedicationStatement")
ACTIVE_THEN = frozenset({"active", "completed", "stopped", "on-hold"})  # it ran; when it ended is unknown
SERVICE_ID = "magnesium-order-sign"


def order_time(resource: Mapping[str, Any]) -> datetime | None:
    if resource.get("resourceType") == "MedicationRequest":
        return parse_datetime(resource.get("authoredOn"))
    period = resource.get("effectivePeriod")
    start = period.get("start") if isinstance(period, Mapping) else None
    return parse_datetime(resource.get("effectiveDateTime") or start)


def replay_patient(
    patient: str,
    resources: list[dict[str, Any]],
    medications: Mapping[str, dict[str, Any]],
    engines: Mapping[str, tuple[RuleEngine, Knowledge]],
    figures: Mapping[str, Figures],
    since: datetime | None = None,
    until: datetime | None = None,
) -> int:
    """Replay this patient's orders into `figures`, one per configuration; how many orders were scanned.
    An order is replayed under every configuration when any of them speaks about it, so that compared
    configurations share their denominator."""
    for fig in figures.values():
        fig.patients += 1
    orders = [r for r in resources if r.get("resourceType") in ORDER_TYPES and r.get("status") != "entered-in-error"]
    for order in orders:
        when = order_time(order)
        if when is not None and ((since and when < since) or (until and when >= until)):
            continue
        for fig in figures.values():
            fig.orders_read += 1
            fig.orders_without_date += when is None
        if when is None:
            continue
        try:
            parsed = parse_request(_request(patient, order), SERVICE_ID, ("order-sign",))
            if not any(may_concern_a_rule(parsed, engine) for engine, _ in engines.values()):
                continue
            as_of = [*_as_of(resources, order, when), *medications.values()]
            results = {}
            for label, (engine, knowledge) in engines.items():
                gated: Counter = Counter()
                results[label] = engine.evaluate(build_record(parsed, as_of, (), knowledge, when), gated), gated
        except (*READ_ERRORS, ProtocolError):
            for fig in figures.values():
                fig.orders_unreadable += 1
            continue
        for label, (findings, gated) in results.items():
            _count(figures[label], when, findings, gated)
    return len(orders)


def _count(figures: Figures, when: datetime, findings: list, gated: Counter) -> None:
    month = when.strftime("%Y-%m")
    figures.orders_replayed += 1
    figures.orders_by_month[month] += 1
    figures.cards_per_order[str(len(findings))] += 1
    figures.gated_by_rule.update(gated)
    if findings:
        figures.orders_with_card += 1
    if any(f.indicator == "critical" for f in findings):
        figures.orders_with_critical += 1
    for f in findings:
        figures.cards += 1
        figures.cards_by_month[month] += 1
        figures.cards_by_rule[f.rule_id] += 1
        figures.cards_by_rule_indicator[f"{f.rule_id}|{f.indicator}"] += 1
        figures.products_by_rule[f"{f.rule_id}|{_name(f.order)}"] += 1
        if f.partner is not None:
            figures.partners_by_rule[f"{f.rule_id}|{_name(f.partner)}"] += 1


def _name(entry: Any) -> str:
    return " ".join((entry.name or entry.reference).split())[:80]


def _request(patient: str, order: Mapping[str, Any]) -> dict[str, Any]:
    draft = {**order, "resourceType": "MedicationRequest", "status": "draft", "intent": order.get("intent", "order")}
    if order.get("resourceType") == "MedicationStatement":  # a start the patient reported: judged as an order
        draft = {k: v for k, v in draft.items() if k not in ("effectivePeriod", "effectiveDateTime", "dosage")}
        draft["dosageInstruction"] = order.get("dosage") or []
    draft["id"] = str(order.get("id") or "order")
    return {
        "hook": "order-sign",
        "hookInstance": f"simulate-{draft['id']}"[:100],
        "context": {
            "userId": "Practitioner/simulate",
            "patientId": patient,
            "draftOrders": {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": draft}]},
        },
    }


def _as_of(resources: list[dict[str, Any]], order: Mapping[str, Any], when: datetime) -> list[dict[str, Any]]:
    """The record at `when`: what was known before the order, medications active then (as active)."""
    out = []
    for r in resources:
        rtype = r.get("resourceType")
        if r is order:
            continue
        if rtype == "Patient":
            out.append(r)
        elif rtype == "Observation":
            seen = effective_time(r)  # the time the record reads, so the replay and the rules agree
            if seen is not None and seen <= when:
                out.append(r)
        elif rtype == "Condition":
            start = recorded_time(r)
            ended = parse_datetime(r.get("abatementDateTime"))
            if (start is None or start <= when) and (ended is None or ended > when):
                out.append(r)
        elif rtype in ORDER_TYPES:
            start = order_time(r)
            if start is None or start >= when or r.get("status") not in ACTIVE_THEN:
                continue
            end = _end(r)
            if end is None or end >= when:
                out.append({**r, "status": "active"})
    return out


def _end(resource: Mapping[str, Any]) -> datetime | None:
    period = resource.get("effectivePeriod") if resource.get("resourceType") == "MedicationStatement" else None
    if period is None:
        dispense = resource.get("dispenseRequest")
        period = dispense.get("validityPeriod") if isinstance(dispense, Mapping) else None
    end = parse_datetime(period.get("end")) if isinstance(period, Mapping) else None
    return end + timedelta(days=1) if end and len(str(period.get("end"))) == 10 else end
