"""What real clients send: Sandbox drafts with cardinality slips, Epic's empty searches and feedback shapes."""

from __future__ import annotations

import copy

from fhir.resources.R4B.medicationrequest import MedicationRequest

from cds_service.feedback.store import override_reason_of

from .cards_check import explanation_text
from .conftest import SCENARIOS, SERVICE_FOR, load_json

SIGN = f"/cds-services/{SERVICE_FOR['order-sign']}"


def _sign(name: str) -> dict:
    return copy.deepcopy(load_json(SCENARIOS / name / "request.order-sign.json"))


def test_a_sandbox_draft_with_single_objects_still_gets_a_valid_update(make_app):
    body = _sign("fq-cipro-magnesium-ordered")
    draft = body["context"]["draftOrders"]["entry"][0]["resource"]
    draft["category"] = {"coding": [{"code": "outpatient"}]}  # R4: a list; the Sandbox sends one object
    draft["reasonCode"] = {"text": "cramps"}
    cards = make_app().test_client().post(SIGN, json=body).get_json()["cards"]
    card = next(c for c in cards if c["source"]["topic"]["code"] == "interaction-fluoroquinolone")
    update = next(a for s in card["suggestions"] for a in s["actions"] if a["type"] == "update")
    MedicationRequest.model_validate(update["resource"])  # repaired: lists where R4 has lists
    assert update["resource"]["reasonCode"] == [{"text": "cramps"}]
    assert "Note:" not in card["detail"]


def test_when_no_update_can_be_offered_the_card_says_why(make_app):
    body = _sign("fq-cipro-magnesium-ordered")
    body["context"]["draftOrders"]["entry"][0]["resource"]["subject"] = "Patient/x"  # a string: beyond repair
    cards = make_app().test_client().post(SIGN, json=body).get_json()["cards"]
    card = next(c for c in cards if c["source"]["topic"]["code"] == "interaction-fluoroquinolone")
    assert not any(a["type"] == "update" for s in card.get("suggestions", ()) for a in s["actions"])
    assert "cannot take a one-click update" in card["detail"]
    assert "6 h" in card["summary"] or "6 h" in card["detail"]  # the advice itself is still on the card


def test_an_operation_outcome_only_search_is_empty_not_an_error(make_app):
    body = _sign("renal-severe-cg")
    no_matches = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": 0,
        "entry": [
            {
                "resource": {
                    "resourceType": "OperationOutcome",
                    "issue": [{"severity": "warning", "code": "processing", "diagnostics": "No matches"}],
                },
                "search": {"mode": "outcome"},
            }
        ],
    }
    body["prefetch"]["medicationRequests"] = no_matches
    body["prefetch"]["magnesium"] = no_matches
    payload = make_app().test_client().post(SIGN, json=body).get_json()
    assert "extension" not in payload  # no gap: the EHR searched and found nothing
    assert [c["source"]["topic"]["code"] for c in payload["cards"]] == ["renal-severe"]


def test_every_feedback_shape_gives_the_override_reason():
    coding = {"system": "urn:mg-cds:override-reason", "code": "nephrology-directed"}
    shapes = [
        {"overrideReason": {"reason": coding, "userComment": "x"}},  # CDS Hooks 2.0
        {"overrideReasons": [{"reason": coding}]},  # plural, of overrideReason objects
        {"overrideReasons": [coding]},  # plural, of Codings
        {"extension": {"https://ehr.example/override": {"valueCoding": coding}}},  # inside an extension
        {"extension": [{"url": "https://ehr.example/override", "valueCoding": coding}]},
    ]
    for shape in shapes:
        assert override_reason_of(shape)[1]["code"] == "nephrology-directed", shape
    assert override_reason_of({"outcome": "accepted"}) == ({}, {})


def test_epic_order_sign_and_its_plural_override_feedback(make_app):
    """The Epic-shaped fixture gets its card; Epic's `overrideReasons` feedback is stored with its reason."""
    from cds_service import metrics

    app = make_app()
    client = app.test_client()
    body = load_json(SCENARIOS / "epic-order-sign" / "request.order-sign.json")
    card = client.post(SIGN, json=body).get_json()["cards"][0]
    assert card["source"]["topic"]["code"] == "renal-severe"
    feedback = {
        "feedback": [
            {
                "card": card["uuid"],
                "outcome": "overridden",
                "overrideReasons": [
                    {"reason": {"system": card["overrideReasons"][0]["system"], "code": "nephrology-directed"}}
                ],
                "outcomeTimestamp": "2026-11-15T12:05:00Z",
            }
        ]
    }
    response = client.post(f"{SIGN}/feedback", json=feedback)
    assert response.status_code == 200 and response.get_json()["stored"] == 1
    text = metrics.exposition()[0].decode()
    assert 'rule="renal-severe"' in text and 'reason="nephrology-directed"' in text


def test_a_client_that_cannot_apply_updates_gets_the_advice_in_the_text(make_app):
    from cds_service.config import ConfigError, settings_from_mapping

    body = _sign("fq-cipro-magnesium-ordered")
    app = make_app({"clients": {"default": {"update_suggestions": False}}})
    card = next(
        c
        for c in app.test_client().post(SIGN, json=body).get_json()["cards"]
        if c["source"]["topic"]["code"] == "interaction-fluoroquinolone"
    )
    assert not any(a["type"] == "update" for s in card.get("suggestions", ()) for a in s["actions"])
    do = next(p for p in card["detail"].split("\n\n") if p.startswith("**Do:**"))
    assert "give ciprofloxacin at least 2 h before or 6 h after magnesium" in do  # the advice, without a button
    for bad, names in (({"default": {"update_suggestions": "no"}}, "update_suggestions"), ([1], "clients")):
        try:
            settings_from_mapping({"clients": bad})
        except ConfigError as exc:
            assert names in str(exc)
        else:
            raise AssertionError(f"{bad} was accepted")


def test_a_client_profile_offers_only_the_suggestion_kinds_that_client_can_apply(make_app):
    """The Sandbox applies medication orders only: no lab or spacing buttons, the advice in the Do line."""
    from cds_service.config import ConfigError, settings_from_mapping

    body = load_json(SCENARIOS / "renal-severe-cg" / "request.order-sign.json")
    sandbox = make_app({"clients": {"default": {"suggestions": ["remove-order"]}}})
    card = sandbox.test_client().post(SIGN, json=body).get_json()["cards"][0]
    assert [a["type"] for s in card["suggestions"] for a in s["actions"]] == ["delete"]
    assert "check serum Mg now" in card["detail"]  # the lab the button would have ordered, said in words
    full = make_app().test_client().post(SIGN, json=body).get_json()["cards"][0]
    assert sorted(a["type"] for s in full["suggestions"] for a in s["actions"]) == ["create", "delete"]
    try:
        settings_from_mapping({"clients": {"default": {"suggestions": ["order-pizza"]}}})
    except ConfigError as exc:
        assert "clients.default.suggestions" in str(exc)
    else:
        raise AssertionError("an unknown suggestion kind was accepted")


def test_a_chart_review_speaks_of_medications_running_not_of_orders(client):
    """patient-view cards are about therapy already running: no 'ordered', no 'Order:' line."""
    body = load_json(SCENARIOS / "patient-view-interactions-depletion" / "request.patient-view.json")
    cards = client.post(f"/cds-services/{SERVICE_FOR['patient-view']}", json=body).get_json()["cards"]
    assert len(cards) == 3
    for card in cards:
        assert "ordered" not in card["summary"]
        explained = explanation_text(card)  # how the service read them: in the explanation, not the text
        assert "Order:" not in explained and "This order" not in explained
        assert "Medication:" in explained and "This medication (" in explained
    sign = client.post(SIGN, json=_sign("depletion-ppi-coded")).get_json()["cards"]
    assert sign and all("Order:" in explanation_text(c) for c in sign)
