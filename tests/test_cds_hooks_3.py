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


def test_a_client_whose_profile_says_3_0_is_offered_3_0_prefetch_templates(make_app):
    """FHIRPath in prefetch tokens (the 3.0 ballot): the draft orders' Medications resolved by the client,
    and lab queries bounded to the longest lookback a rule reads. Other clients keep the 2.0 templates."""
    from cds_service.protocol.schemas import validate

    plain = make_app().test_client().get("/cds-services").get_json()
    three = make_app({"clients": {"default": {"prefetch": "3.0"}}}).test_client().get("/cds-services").get_json()
    validate("discovery", three)
    days = KNOWLEDGE.lab_retention_days
    for before, after in zip(plain["services"], three["services"], strict=True):
        assert "draftMedications" not in before["prefetch"]
        for key, template in before["prefetch"].items():
            expected = f"{template}&date=ge{{{{today() - {days:.0f} days}}}}" if key in LABS else template
            assert after["prefetch"][key] == expected, (before["id"], key)
        if before["hook"] == "patient-view":
            assert "draftMedications" not in after["prefetch"]  # no draft orders to resolve
        else:
            assert after["prefetch"]["draftMedications"] == (
                "Medication?_id={{context.draftOrders.entry.resource.ofType(MedicationRequest).medication.resolve().id}}"
            )


LABS = ("magnesium", "renal", "weight", "height", "electrolytes")


def test_the_draft_medications_a_3_0_client_resolved_are_read_without_a_fetch(client):
    """A draft naming its drug only by reference, the Medication answered under `draftMedications`: the
    card is the one the scenario expects, and nothing is fetched (there is no FHIR server to ask)."""
    body = load_json(SCENARIOS / "referenced-medication" / "request.order-sign.json")
    entries = body["context"]["draftOrders"]["entry"]
    medications = [e for e in entries if e["resource"]["resourceType"] == "Medication"]
    body["context"]["draftOrders"]["entry"] = [e for e in entries if e not in medications]
    without = client.post(f"/cds-services/{SERVICE_FOR['order-sign']}", json=body).get_json()
    assert without["cards"] == []  # with no server to fetch it from, the drug stays unknown: no card
    body["prefetch"]["draftMedications"] = {"resourceType": "Bundle", "type": "searchset", "entry": medications}
    response = client.post(f"/cds-services/{SERVICE_FOR['order-sign']}", json=body)
    assert response.status_code == 200, response.get_json()
    cards = response.get_json()["cards"]
    assert [c["source"]["topic"]["code"] for c in cards] == ["renal-severe"]
    assert "Mg citrate 200 mg tablet" in cards[0]["summary"]


def test_a_client_profile_asking_for_an_unknown_prefetch_version_stops_the_start():
    from cds_service.config import ConfigError, settings_from_mapping

    with pytest.raises(ConfigError, match=r"clients.default.prefetch"):
        settings_from_mapping({"clients": {"default": {"prefetch": "4.0"}}})
