"""HTTP contract: discovery, errors as JSON OperationOutcomes (never 5xx), CORS, tolerance, feedback."""

from __future__ import annotations

import copy
import json

import pytest

from cds_service.knowledge.loader import read_tables
from cds_service.protocol.schemas import validate

from .conftest import SCENARIOS, SERVICE, SERVICE_FOR, load_json

URL = f"/cds-services/{SERVICE}"
BASE = load_json(SCENARIOS / "renal-contraindicated-cg" / "request.order-select.json")


def request_body(**changes):
    body = copy.deepcopy(BASE)
    body.update(changes)
    return body


def assert_outcome(response, status, field=None):
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert body["resourceType"] == "OperationOutcome"
    issue = body["issue"][0]
    assert issue["diagnostics"]
    if field:
        assert field in issue["expression"][0], issue
    assert "Traceback" not in response.get_data(as_text=True)


def test_discovery_lists_one_service_per_hook_with_unique_ids(client):
    response = client.get("/cds-services")
    assert response.status_code == 200
    body = response.get_json()
    validate("discovery", body)
    ids = [s["id"] for s in body["services"]]
    assert len(ids) == len(set(ids)), "clients key services by id: two entries with one id lose one"
    assert {(s["id"], s["hook"]) for s in body["services"]} == {(v, k) for k, v in SERVICE_FOR.items()}
    assert SERVICE not in ids  # the wave-1 id still answers (below) but is no longer listed


def _hook_body(hook: str) -> dict:
    name = "patient-view-chronic-mg-crcl-25" if hook == "patient-view" else "renal-contraindicated-cg"
    return load_json(SCENARIOS / name / f"request.{hook}.json")


@pytest.mark.parametrize("hook", ["order-select", "order-sign", "patient-view"])
@pytest.mark.parametrize(
    "service", ["magnesium-order-select", "magnesium-order-sign", "magnesium-patient-review", SERVICE]
)
def test_each_id_answers_its_hook_and_refuses_the_others(client, service, hook):
    response = client.post(f"/cds-services/{service}", json=_hook_body(hook))
    answers = {SERVICE: ("order-select", "order-sign")}.get(service) or (
        next(k for k, v in SERVICE_FOR.items() if v == service),
    )
    if hook in answers:
        assert response.status_code == 200, response.get_json()
        assert response.get_json()["cards"], "the right hook gets its cards"
    else:
        assert_outcome(response, 400, "hook")


def test_prefetch_templates_use_only_allowed_tokens_and_queries(client):
    allowed = {
        "context.patientId",
        "context.userId",
        "context.encounterId",
        "userPractitionerId",
        "userPractitionerRoleId",
        "userPatientId",
        "userRelatedPersonId",
    }
    for service in client.get("/cds-services").get_json()["services"]:
        for key, template in service["prefetch"].items():
            tokens = {t.strip() for t in __import__("re").findall(r"\{\{(.*?)\}\}", template)}
            assert tokens <= allowed, (key, tokens)
            params = {p.split("=")[0] for p in template.partition("?")[2].split("&") if p}
            assert params <= {"patient", "status", "clinical-status", "code", "_sort", "_count", "_include"}, (
                key,
                params,
            )


def test_fixture_request_gets_its_card(client):
    response = client.post(URL, json=BASE)
    assert response.status_code == 200
    codes = sorted(c["source"]["topic"]["code"] for c in response.get_json()["cards"])
    assert codes == ["renal-contraindicated"]  # monitoring-recheck yields to it


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda b: b.pop("context"), "context"),
        (lambda b: b.pop("hookInstance"), "hookInstance"),
        (lambda b: b["context"].pop("patientId"), "context"),
        (lambda b: b["context"].update(patientId="../../etc/passwd"), "context.patientId"),
        (lambda b: b["context"].update(selections=[]), "context.selections"),
        (lambda b: b["context"].update(selections=["MedicationRequest/not-there"]), "context.selections[0]"),
        (lambda b: b["context"].update(draftOrders=[1, 2]), "context.draftOrders"),
        (lambda b: b["context"].pop("selections"), "context"),
        (lambda b: b.update(prefetch={"patient": "a string"}), "prefetch.patient"),
        (lambda b: b.update(fhirAuthorization={"access_token": "x"}), "fhirAuthorization"),
        (lambda b: b.update(hook="patient-view"), "hook"),
    ],
)
def test_malformed_requests_are_400_naming_the_field(client, mutate, field):
    body = request_body()
    mutate(body)
    assert_outcome(client.post(URL, json=body), 400, field)


def test_unknown_service_is_404(client):
    assert_outcome(client.post("/cds-services/nope", json=BASE), 404)
    assert_outcome(client.get("/no/such/path"), 404)


def test_not_json(client):
    assert_outcome(client.post(URL, data="hello", content_type="text/plain"), 415)
    assert_outcome(client.post(URL, data="{not json", content_type="application/json"), 400)
    assert_outcome(client.post(URL, data="[" * 100000 + "]" * 100000, content_type="application/json"), 400)
    assert_outcome(client.post(URL, data=json.dumps([1, 2]), content_type="application/json"), 400)


def test_body_over_the_limit_is_413(make_app):
    app = make_app({"limits": {"max_body_bytes": 2000}})
    assert_outcome(app.test_client().post(URL, json=BASE), 413)


def test_wrong_method_is_405_json(client):
    assert_outcome(client.get(URL), 405)


def test_cors_preflight_and_response_headers(client):
    preflight = client.options(
        URL,
        headers={
            "Origin": "https://sandbox.cds-hooks.org",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["Access-Control-Allow-Origin"] == "*"
    assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    for response in (client.get("/cds-services"), client.post(URL, json=BASE), client.post(URL, json={})):
        assert response.headers["Access-Control-Allow-Origin"] == "*"


def test_cors_allow_list(make_app):
    client = make_app({"cors": {"allowed_origins": ["https://ehr.example.org"]}}).test_client()
    ok = client.get("/cds-services", headers={"Origin": "https://ehr.example.org"})
    assert ok.headers["Access-Control-Allow-Origin"] == "https://ehr.example.org"
    other = client.get("/cds-services", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers


def test_tolerates_odd_but_legal_draft_orders(client):
    """Bundle without type, entry without resource, DSTU2 MedicationOrder, order with no medication."""
    body = request_body()
    body["context"]["draftOrders"] = {
        "resourceType": "Bundle",
        "entry": [
            {},
            {"fullUrl": "urn:uuid:x"},
            {"resource": {"resourceType": "MedicationOrder", "id": "dstu2", "status": "draft"}},
            {
                "resource": {
                    "resourceType": "MedicationRequest",
                    "id": "empty",
                    "status": "draft",
                    "intent": "order",
                    "subject": {"reference": "Patient/renal-contraindicated-cg"},
                }
            },
            {"resource": {"resourceType": "NutritionOrder", "id": "diet", "status": "draft"}},
        ],
    }
    body["context"]["selections"] = ["MedicationOrder/dstu2", "MedicationRequest/empty"]
    response = client.post(URL, json=body)
    assert response.status_code == 200
    assert response.get_json() == {"cards": []}


def test_null_prefetch_means_no_data_and_is_not_fetched(client):
    body = request_body()
    body["prefetch"] = {key: None for key in body["prefetch"]}
    response = client.post(URL, json=body)  # no fhirServer: any fetch attempt would be a 412
    assert response.status_code == 200
    cards = {c["source"]["topic"]["code"]: c for c in response.get_json()["cards"]}
    assert sorted(cards) == ["renal-unknown"]  # no age, no renal value: nothing marks the patient at risk
    assert "patient demographics" in cards["renal-unknown"]["detail"].lower()


def test_prefetch_error_without_a_server_is_a_reported_gap(client):
    body = request_body()
    body["prefetch"]["renal"] = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "timeout"}],
    }
    response = client.post(URL, json=body)
    assert response.status_code == 200
    payload = response.get_json()
    cards = {c["source"]["topic"]["code"]: c for c in payload["cards"]}
    assert sorted(cards) == ["renal-unknown"]  # 78 years old: renal function matters; age alone asks for no recheck
    assert "the EHR reported an error" in cards["renal-unknown"]["detail"]
    assert cards["renal-unknown"]["summary"].startswith("Renal data not retrieved")  # a gap, not "order a creatinine"
    assert payload["extension"]["mg-cds.data-gaps"] == [
        {"topic": "renal", "reason": "the EHR reported an error for this prefetch"}
    ]


def test_missing_prefetch_without_fhir_server_is_412(client):
    body = request_body()
    del body["prefetch"]["renal"]
    response = client.post(URL, json=body)
    assert_outcome(response, 412, "prefetch")
    assert "renal" in response.get_json()["issue"][0]["diagnostics"]


def test_fhir_server_not_on_allow_list_is_412(client):
    body = request_body(fhirServer="https://elsewhere.example/fhir")
    del body["prefetch"]
    assert_outcome(client.post(URL, json=body), 412, "fhirServer")


def test_missing_prefetch_without_token_is_412(make_app):
    app = make_app({"fhir": {"servers": [{"base_url": "https://ehr.example.org/fhir"}]}})
    body = request_body(fhirServer="https://ehr.example.org/fhir")
    del body["prefetch"]
    assert_outcome(app.test_client().post(URL, json=body), 412, "fhirAuthorization")


def test_health_and_readiness(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    rules = len(read_tables()["rules.yaml"]["rules"])  # every rule of the catalogue, switched on or off
    assert ready.get_json() == {"status": "ok", "config": "ok", "rules": rules}
    assert client.get("/healthz/store").get_json() == {"status": "ok", "store": "sqlite"}


FEEDBACK = {
    "feedback": [
        {
            "card": "0f5a1c9e-3f1f-4f8a-9d59-3f0f6f1b2a11",
            "outcome": "accepted",
            "acceptedSuggestions": [{"id": "8e3b5a6c-1d2e-4f5a-8b9c-0d1e2f3a4b5c"}],
            "outcomeTimestamp": "2026-11-15T12:01:00Z",
        },
        {
            "card": "1a2b3c4d-5e6f-4a8b-9c0d-1e2f3a4b5c6d",
            "outcome": "overridden",
            "overrideReason": {
                "reason": {
                    "code": "nephrology-directed",
                    "system": "urn:mg-cds:override-reason",
                    "display": "Nephrology-directed",
                },
                "userComment": "patient name here",
            },
            "outcomeTimestamp": "2026-11-15T12:02:00Z",
        },
    ]
}


def test_feedback_is_stored_once_and_without_free_text(make_app):
    app = make_app()
    client = app.test_client()
    first = client.post(f"{URL}/feedback", json=FEEDBACK)
    assert first.status_code == 200 and first.get_json() == {"received": 2, "stored": 2}
    again = client.post(f"{URL}/feedback", json=FEEDBACK)
    assert again.status_code == 200 and again.get_json() == {"received": 2, "stored": 0}
    store = app.extensions["feedback_store"]
    assert store.count() == 2
    with store.engine.connect() as conn:
        dump = str(conn.exec_driver_sql("select * from feedback").all())
    assert "nephrology-directed" in dump and "patient name here" not in dump


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"feedback": []},
        {"feedback": [{"card": "x", "outcome": "maybe", "outcomeTimestamp": "2026-11-15T12:00:00Z"}]},
        {"feedback": [{"card": "x", "outcome": "accepted", "outcomeTimestamp": "2026-11-15T12:00:00Z"}]},
        {"feedback": [{"card": "x", "outcome": "overridden", "outcomeTimestamp": "yesterday"}]},
    ],
)
def test_malformed_feedback_is_400(client, body):
    assert_outcome(client.post(f"{URL}/feedback", json=body), 400)


def test_feedback_for_unknown_service_is_404(client):
    assert_outcome(client.post("/cds-services/nope/feedback", json=FEEDBACK), 404)


def test_a_site_can_switch_a_rule_on_and_off(make_app):
    """depletion-statin is off by default (low evidence); a site may switch it on, and any rule off."""
    body = load_json(SCENARIOS / "depletion-statin-high" / "request.order-sign.json")
    default = make_app().test_client().post(URL, json=body).get_json()["cards"]
    on = make_app({"rules": {"depletion-statin": {"enabled": True}}}).test_client().post(URL, json=body)
    assert default == []
    assert [c["source"]["topic"]["code"] for c in on.get_json()["cards"]] == ["depletion-statin"]
    body = load_json(SCENARIOS / "low-mg-digoxin-low" / "request.order-sign.json")
    off = make_app({"rules": {"low-mg-digoxin": {"enabled": False}}}).test_client().post(URL, json=body)
    assert off.status_code == 200 and off.get_json()["cards"] == []


def test_update_suggestion_carries_the_whole_order_with_the_spacing(client):
    body = load_json(SCENARIOS / "fq-cipro-partner-ordered" / "request.order-sign.json")
    card = client.post(URL, json=body).get_json()["cards"][0]
    action = card["suggestions"][0]["actions"][0]
    draft = body["context"]["draftOrders"]["entry"][0]["resource"]
    assert action["type"] == "update"
    assert action["resource"]["id"] == draft["id"]
    assert action["resource"]["medicationCodeableConcept"] == draft["medicationCodeableConcept"]
    assert "6 h after magnesium" in action["resource"]["dosageInstruction"][0]["patientInstruction"]


def test_compiled_and_reference_validators_agree():
    """The fast path (jsonschema-rs) and the reference validator (jsonschema) accept the same requests."""
    from cds_service.protocol.schemas import fast_validator, validator

    bodies = [load_json(p) for p in SCENARIOS.glob("*/request.*.json")]
    mutations = [
        lambda b: b.pop("hook"),
        lambda b: b["context"].update(patientId=""),
        lambda b: b["context"].update(userId="nobody"),
        lambda b: b.update(prefetch=[]),
        lambda b: b.update(fhirServer="ftp://x"),
        lambda b: b["context"]["draftOrders"].update(entry={}),
        lambda b: b.update(
            fhirAuthorization={"access_token": "t", "token_type": "MAC", "expires_in": 1, "scope": "s", "subject": "c"}
        ),
    ]
    for mutate in mutations:
        broken = copy.deepcopy(BASE)
        mutate(broken)
        bodies.append(broken)
    for body in bodies:
        assert fast_validator("request").is_valid(body) == validator("request").is_valid(body), body.get("hook")


def test_rule_page_links_follow_each_callers_host(client):
    """With no public_base_url, a card's source links to its rule's page where the caller reached the
    service: worked out once per scheme and host, never one host's URL given to another."""
    for base in ("http://ehr-a.example:8080", "https://ehr-b.example", "http://ehr-a.example:8080"):
        response = client.post(URL, json=BASE, base_url=base)
        assert response.status_code == 200
        urls = [c["source"]["url"] for c in response.get_json()["cards"]]
        assert urls and all(u.startswith(f"{base}/rules/") for u in urls), (base, urls)
