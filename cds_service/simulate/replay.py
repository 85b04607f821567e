"""Replay one patient's orders through the rules, each at its own moment, with the record as it was
then (history.py), and count what followed it (outcomes.py)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from ..clinical.engine import RuleEngine
from ..clinical.findings import Finding
from ..pipeline import Pipeline
from ..protocol.errors import ProtocolError
from ..protocol.request import HookRequest, parse_request
from ..protocol.services import ORDER_SIGN, SERVICES
from ..record.build import READ_ERRORS
from ..record.labs import every_lab_value
from ..record.medications import parse_medication
from ..record.model import LabValue
from .figures import Figures
from .history import History, order_time
from .outcomes import OrderOutcome, event_outcomes, labs_asked
from .partition import Medications

# The order-sign service of the registry: each order is replayed as the call its signature made.
SIGN = next(s for s in SERVICES if s.listed and s.hook is ORDER_SIGN)
NOT_SIGNED_STATUS = frozenset({"draft"})  # never signed: no order-sign was ever called for it
NOT_ORDER_INTENTS = frozenset({"proposal", "plan"})  # a suggestion or a plan, not an order


def replay_patient(
    patient: str,
    resources: list[dict[str, Any]],
    medications: Medications,
    pipelines: Mapping[str, Pipeline],
    figures: Mapping[str, Figures],
    since: datetime | None = None,
    until: datetime | None = None,
    history_end: datetime | None = None,
) -> int:
    """Replay this patient's orders into `figures`, one per configuration; how many orders were scanned.
    An order is replayed under every configuration when any of them speaks about it, so that compared
    configurations share their denominator."""
    for fig in figures.values():
        fig.patients += 1
    history = History(resources)
    labs: dict[str, list[LabValue]] | None = None  # every lab result, read only for a patient with an order replayed
    first = next(iter(pipelines.values()))
    engine, knowledge = first.engine, first.knowledge
    named = medications.of(history.medication_references)  # the Medications its orders name
    own = list(named.values())
    for order in history.orders:
        when = order_time(order)
        if when is not None and ((since and when < since) or (until and when >= until)):
            continue
        signed = order.get("resourceType") == "MedicationStatement" or not (
            order.get("status") in NOT_SIGNED_STATUS or order.get("intent") in NOT_ORDER_INTENTS
        )
        for fig in figures.values():
            fig.orders_read += 1
            fig.orders_without_date += when is None
            fig.orders_not_signed += when is not None and not signed
        if when is None or not signed:
            continue
        try:
            parsed = parse_request(_request(patient, order, history.encounter_of(order)), SIGN.id, SIGN.hooks)
            if not any(each.concerns(parsed, SIGN.hook) for each in pipelines.values()):
                continue
            as_of = [*history.as_of(order, when), *own]
            results = {}
            for label, each in pipelines.items():
                gated: Counter[str] = Counter()
                found = each.findings(each.record(parsed, as_of, (), when), gated)
                results[label] = (*each.apart(found, _itself), gated)
            kind, wasting = _kind(parsed, named, engine)
        except (*READ_ERRORS, ProtocolError):
            for fig in figures.values():
                fig.orders_unreadable += 1
            continue
        if labs is None:
            labs = every_lab_value(history.observations, knowledge)
        events = event_outcomes(when, kind == "magnesium", wasting, labs.get("magnesium", []), knowledge, history_end)
        for label, (findings, silent, gated) in results.items():
            _count(figures[label], when, kind, findings, gated)
            figures[label].silent_by_rule.update(f.rule_id for f in silent)
            _count_outcomes(figures[label], events, findings, when, labs, history_end)
    return len(history.orders)


def _kind(parsed: HookRequest, medications: Mapping[str, Any], engine: RuleEngine) -> tuple[str, bool]:
    """What the order is ("magnesium", else its partner class's kind), and whether it wastes magnesium."""
    entry = parse_medication(parsed.draft_orders[0], "draft", {**medications, **parsed.draft_medications})
    if entry is None:
        return "other", False
    hits = engine.drugs.match_all(entry)
    wasting = any(hit.drug_class.kind == "depletion" for hit in hits)
    if engine.magnesium.match(entry) is not None:
        return "magnesium", wasting
    return (hits[0].drug_class.kind if hits else "other"), wasting


def _count(figures: Figures, when: datetime, kind: str, findings: list[Finding], gated: Counter[str]) -> None:
    month = when.strftime("%Y-%m")
    figures.orders_replayed += 1
    figures.orders_by_month[month] += 1
    figures.orders_by_kind_month[f"{kind}|{month}"] += 1
    figures.cards_per_order[str(len(findings))] += 1
    figures.gated_by_rule.update(gated)
    if findings:
        figures.orders_with_card += 1
    if any(f.indicator == "critical" for f in findings):
        figures.orders_with_critical += 1
    for f in findings:
        figures.cards += 1
        figures.cards_by_month[month] += 1
        figures.cards_by_kind_month[f"{kind}|{month}"] += 1
        figures.cards_by_rule[f.rule_id] += 1
        figures.cards_by_rule_kind[f"{f.rule_id}|{kind}"] += 1
        figures.cards_by_rule_indicator[f"{f.rule_id}|{f.indicator}"] += 1
        figures.products_by_rule[f"{f.rule_id}|{_name(f.order)}"] += 1
        if f.partner is not None:
            figures.partners_by_rule[f"{f.rule_id}|{_name(f.partner)}"] += 1


def _count_outcomes(
    figures: Figures,
    events: list[OrderOutcome],
    findings: list[Finding],
    when: datetime,
    labs: Mapping[str, list[LabValue]],
    history_end: datetime | None,
) -> None:
    fired = {f.rule_id for f in findings}
    for outcome in events:
        if outcome.censored:
            figures.outcomes[f"{outcome.event}|censored"] += 1
            continue
        figures.outcomes[f"{outcome.event}|eligible"] += 1
        figures.outcomes[f"{outcome.event}|measured"] += outcome.measured
        if outcome.happened:
            figures.outcomes[f"{outcome.event}|happened"] += 1
            for rule in fired:
                figures.caught_by_rule[f"{outcome.event}|{rule}"] += 1
    for asked in labs_asked(findings, when, labs, history_end):
        key = f"{asked.rule}|{asked.analyte}"
        if asked.censored:
            figures.labs_censored[key] += 1
        else:
            figures.labs_asked[key] += 1
            figures.labs_drawn[key] += asked.drawn


def _itself(finding: Finding) -> Finding:
    return finding


def _name(entry: Any) -> str:
    return " ".join((entry.name or entry.reference).split())[:80]


def _request(patient: str, order: Mapping[str, Any], encounter: Mapping[str, Any] | None) -> dict[str, Any]:
    """The order-sign the EHR sent when the order was signed: the order as a draft, in its encounter."""
    draft = {**order, "resourceType": "MedicationRequest", "status": "draft", "intent": order.get("intent", "order")}
    if order.get("resourceType") == "MedicationStatement":  # a start the patient reported: judged as an order
        draft = {k: v for k, v in draft.items() if k not in ("effectivePeriod", "effectiveDateTime", "dosage")}
        draft["dosageInstruction"] = order.get("dosage") or []
        draft["intent"] = "order"
    draft["id"] = str(order.get("id") or "order")
    context: dict[str, Any] = {
        "userId": "Practitioner/simulate",
        "patientId": patient,
        "draftOrders": {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": draft}]},
    }
    if encounter is not None:  # the live service reads the setting from the hook's encounter
        context["encounterId"] = encounter["id"]
    return {"hook": SIGN.hook.name, "hookInstance": f"simulate-{draft['id']}"[:100], "context": context}
