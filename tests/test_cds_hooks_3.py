"""CDS Hooks 3.0 readiness behind the 2.0 behaviour: override reasons carry the ballot's standard
non-adherence codes beside this service's own (and `report` counts them), discovery gives a version."""

from __future__ import annotations

import copy
from datetime import UTC, datetime

import pytest

from cds_service.feedback import FeedbackStore
from cds_service.feedback.report import per_rule, render_text
from cds_service.knowledge import KnowledgeError, load_knowledge
from cds_service.knowledge.loader import build_knowledge, read_tables

from .conftest import SCENARIOS, SERVICE_FOR, load_json

KNOWLEDGE = load_knowledge()
STANDARD = "http://terminology.hl7.org/CodeSystem/non-adherence-reason-codes"  # the 3.0 ballot's code system
LOCAL = KNOWLEDGE.override_reason_system


def _cards(client, name: str) -> list[dict]:
    body = load_json(SCENARIOS / name / "request.order-sign.json")
    return client.post(f"/cds-services/{SERVICE_FOR['order-sign']}", json=body).get_json()["cards"]


def test_cards_offer_their_own_reasons_first_then_each_standard_one_once(client):
    cards = _cards(client, "renal-severe-cg")
    assert cards
    for card in cards:
        reasons = card["overrideReasons"]
        local = [r for r in reasons if r["system"] == LOCAL]
        standard = [r for r in reasons if r["system"] == STANDARD]
        assert reasons == local + standard, "2.0 clients see the service's own reasons first, as before"
        expected = list(dict.fromkeys(KNOWLEDGE.standard_reasons.by_local[r["code"]][0] for r in local))
        assert [r["code"] for r in standard] == expected
        assert all(r["display"] for r in reasons)


def test_every_override_reason_is_mapped_or_said_to_have_no_standard_code():
    tables = read_tables()
    table = tables["override_reasons.yaml"]
    assert table["system"] == STANDARD
    local = set(KNOWLEDGE.override_reasons)
    assert local == set(table["map"]) | set(table["unmapped"])
    broken = copy.deepcopy(tables)
    del broken["override_reasons.yaml"]["map"]["short-course"]
    with pytest.raises(KnowledgeError, match="short-course"):
        build_knowledge(broken)
    broken = copy.deepcopy(tables)
    broken["override_reasons.yaml"]["map"]["short-course"] = "not-a-standard-code"
    with pytest.raises(KnowledgeError, match="not-a-standard-code"):
        build_knowledge(broken)


def test_report_counts_the_standard_reason_whichever_coding_came_back(tmp_path):
    store = FeedbackStore(f"sqlite:///{tmp_path / 'store.sqlite3'}")
    store.ensure_schema()
    cards = [f"c-{i}" for i in range(4)]
    store.record_cards(
        [
            {
                "card_uuid": uuid,
                "service_id": "magnesium-order-sign",
                "hook": "order-sign",
                "hook_instance": "h",
                "rule_id": "renal-severe",
                "indicator": "critical",
                "issued_at": datetime(2026, 11, 20, tzinfo=UTC),
            }
            for uuid in cards
        ]
    )

    def overridden(uuid: str, system: str, code: str) -> dict:
        return {
            "card": uuid,
            "outcome": "overridden",
            "outcomeTimestamp": "2026-11-20T09:00:00Z",
            "overrideReason": {"reason": {"system": system, "code": code}},
        }

    store.add(
        "magnesium-order-sign",
        [
            overridden(cards[0], LOCAL, "benefit-outweighs-risk"),  # a 2.0 client: this service's own code
            overridden(cards[1], STANDARD, "risk-benefit-ratio"),  # a 3.0 client: the standard one
            overridden(cards[2], LOCAL, "snooze-30-days"),  # no standard equivalent
            overridden(cards[3], "urn:elsewhere", "risk-benefit-ratio"),  # someone else's code: not standard
        ],
    )
    (row,) = per_rule(store)
    assert row.standard_reasons == {"risk-benefit-ratio": 2, "(none)": 2}
    assert row.as_dict()["overridden_by_standard_reason"] == {"(none)": 2, "risk-benefit-ratio": 2}
    assert "as standard reasons (CDS Hooks 3.0): (none) 2, risk-benefit-ratio 2" in render_text([row], None, "sqlite")


def test_discovery_gives_each_service_the_cds_hooks_version_it_implements(client):
    services = client.get("/cds-services").get_json()["services"]
    assert services and all(service["version"] == "2.0.0" for service in services)
