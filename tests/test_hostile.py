"""Hostile input: thousands of malformed, truncated, nested, huge and type-confused requests to every
endpoint. Zero 5xx, every answer JSON, the service healthy afterwards. And no PHI or secrets in logs."""

from __future__ import annotations

import copy
import json
import logging

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import SCENARIOS, SERVICE, SERVICE_FOR, load_json, scenario_names

VALID = load_json(SCENARIOS / "fq-cipro-magnesium-ordered" / "request.order-select.json")
ENDPOINTS = [f"/cds-services/{SERVICE}", f"/cds-services/{SERVICE}/feedback", "/cds-services", "/cds-services/x"]
COUNTS = {"requests": 0, "5xx": 0}

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False),
    st.text(max_size=300),
    st.sampled_from(
        ["", "Bundle", "MedicationRequest/x", "order-sign", "order-select", "2026-13-45", "\x00", "💊" * 50]
    ),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=6), st.dictionaries(st.text(max_size=20), inner, max_size=6)),
    max_leaves=40,
)


def paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from paths(value, (*prefix, i))


ALL_PATHS = [p for p in paths(VALID) if p]


def replace(document, path, value):
    doc = copy.deepcopy(document)
    node = doc
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return doc


def check(client, path, data, content_type="application/json"):
    response = client.post(path, data=data, content_type=content_type)
    COUNTS["requests"] += 1
    if response.status_code >= 500:
        COUNTS["5xx"] += 1
    assert response.status_code < 500, (path, data[:300] if isinstance(data, bytes | str) else data)
    assert response.mimetype == "application/json"
    json.loads(response.get_data())  # every answer is JSON


FUZZ = settings(max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck))


@FUZZ
@given(path=st.sampled_from(ALL_PATHS), value=json_values)
def test_valid_request_with_one_field_replaced(client_once, path, value):
    check(client_once, ENDPOINTS[0], json.dumps(replace(VALID, path, value)))


@FUZZ
@given(body=json_values, endpoint=st.sampled_from(ENDPOINTS))
def test_arbitrary_json_to_every_endpoint(client_once, body, endpoint):
    check(client_once, endpoint, json.dumps(body))


@FUZZ
@given(
    cut=st.integers(0, len(json.dumps(VALID))),
    noise=st.binary(max_size=40),
    content_type=st.sampled_from(["application/json", "application/fhir+json", "text/plain", ""]),
)
def test_truncated_and_binary_bodies(client_once, cut, noise, content_type):
    check(client_once, ENDPOINTS[0], json.dumps(VALID).encode()[:cut] + noise, content_type)


def test_nan_and_infinity_are_not_json(client_once):
    for constant in ("NaN", "Infinity", "-Infinity"):
        body = (
            json.dumps(VALID)
            .replace('"value": 7', f'"value": {constant}', 1)
            .replace('"intent"', '"x": NaN, "intent"', 1)
        )
        response = client_once.post(ENDPOINTS[0], data=body, content_type="application/json")
        assert response.status_code == 400 and "not a JSON number" in response.get_json()["issue"][0]["diagnostics"]


def test_a_number_no_float_can_hold_is_refused(client_once):
    """1e400 parses as inf in the standard library: refused like NaN (a FHIR value is finite)."""
    body = json.dumps(VALID).replace('"intent"', '"x": 1e400, "intent"', 1)
    response = client_once.post(ENDPOINTS[0], data=body, content_type="application/json")
    assert response.status_code == 400 and "out of range" in response.get_json()["issue"][0]["diagnostics"]


@pytest.mark.parametrize(
    "repeat",
    [
        {"count": 2, "frequency": 1, "period": 1e308, "periodUnit": "a"},
        {"count": 2, "frequency": 5e-324, "period": 1, "periodUnit": "a"},
        {"count": 1e308, "frequency": 1e308, "period": 1e-308, "periodUnit": "s"},
    ],
)
def test_extreme_timings_are_read_not_crashed_on(client_once, repeat):
    """A course's length from count / doses a day: a period or frequency at the edge of a float gives no
    length (it raised ZeroDivisionError, a 500, after the one-table rewrite)."""
    body = copy.deepcopy(VALID)
    for entry in body["context"]["draftOrders"]["entry"]:
        resource = entry["resource"]
        if resource.get("resourceType") == "MedicationRequest":
            resource["dosageInstruction"] = [{"timing": {"repeat": repeat}}]
    response = client_once.post(ENDPOINTS[0], json=body)
    assert response.status_code == 200, response.get_data(as_text=True)[:300]


def test_deep_huge_and_many(client_once):
    deep = "[" * 100_000 + "]" * 100_000
    check(client_once, ENDPOINTS[0], deep)
    check(client_once, ENDPOINTS[0], json.dumps(replace(VALID, ("context", "patientId"), "x" * 4_000_000)))
    many = replace(
        VALID, ("context", "draftOrders", "entry"), [{"resource": {"resourceType": "MedicationRequest"}}] * 5000
    )
    check(client_once, ENDPOINTS[0], json.dumps(many))
    check(
        client_once, ENDPOINTS[0], json.dumps(replace(VALID, ("context", "selections"), ["MedicationRequest/a"] * 1000))
    )
    wide = replace(VALID, ("prefetch",), {f"k{i}": None for i in range(5000)})
    check(client_once, ENDPOINTS[0], json.dumps(wide))


def test_still_healthy_after_the_fuzzing(client_once):
    assert client_once.get("/healthz").status_code == 200
    response = client_once.post(ENDPOINTS[0], json=VALID)
    assert response.status_code == 200 and response.get_json()["cards"]
    print(f"\nhostile requests sent: {COUNTS['requests']}, 5xx: {COUNTS['5xx']}")
    assert COUNTS["5xx"] == 0


def test_no_patient_data_or_secrets_in_debug_logs(make_app, caplog):
    """Every scenario at DEBUG, plus a fetch with an access token and a bearer JWT: none of it in the logs."""
    secrets = ["opaque-access-token-SECRET", "eyJhbGciOiJFUzM4NCJ9.SECRET.SIG"]
    down = "https://127.0.0.1:9/fhir"  # allow-listed but nothing listens: the fetch path runs and fails
    app = make_app({"log_level": "DEBUG", "fhir": {"servers": [{"base_url": down}]}})
    client = app.test_client()
    needles = set(secrets)
    with caplog.at_level(logging.DEBUG):
        for name in scenario_names():
            bundle = load_json(SCENARIOS / name / "bundle.json")
            patient = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient")
            needles |= {patient["id"], patient["birthDate"], patient["name"][0]["given"][0]}
            for hook in load_json(SCENARIOS / name / "expected.json")["hooks"]:
                body = load_json(SCENARIOS / name / f"request.{hook}.json")
                url = f"/cds-services/{SERVICE_FOR[hook]}"
                client.post(url, json=body, headers={"Authorization": f"Bearer {secrets[1]}"})
        body = copy.deepcopy(VALID)
        del body["prefetch"]["renal"]
        body.update(
            fhirServer="https://ehr.example.org/fhir",
            fhirAuthorization={
                "access_token": secrets[0],
                "token_type": "Bearer",
                "expires_in": 300,
                "scope": "patient/*.read",
                "subject": "mg-cds",
            },
        )
        client.post(f"/cds-services/{SERVICE}", json=body)
        client.post(f"/cds-services/{SERVICE}", data="{broken", content_type="application/json")
    text = "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    assert caplog.records, "the test must see the service's logging"
    from cds_service.knowledge import load_knowledge

    needles -= set(load_knowledge().rules)  # fixture patients named after a rule id (e.g. "mg-high") would match it
    leaked = sorted(n for n in needles if n in text)
    assert not leaked, f"found in logs: {leaked}"


def test_a_contained_resource_of_no_r4_type_drops_the_update_not_the_call(client_once):
    """fhir_core raises KeyError for a contained resource type R4B does not have (an R5-only one): the
    R4 check of an order to update took that for a crash, and the call answered 500."""

    def updates(body):
        response = client_once.post(ENDPOINTS[0], json=body)
        assert response.status_code == 200, response.get_data(as_text=True)[:300]
        cards = response.get_json()["cards"]
        return [a for c in cards for s in c.get("suggestions", []) for a in s["actions"] if a["type"] == "update"]

    assert updates(VALID)  # the request as it is gets a one-click spacing update
    body = copy.deepcopy(VALID)
    for entry in body["context"]["draftOrders"]["entry"]:
        entry["resource"]["contained"] = [{"resourceType": "InventoryItem", "id": "r5-only"}]
    assert updates(body) == []  # not valid R4: no update offered (the Do line still says the advice)
