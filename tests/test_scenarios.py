"""Golden scenarios through the HTTP API: with full prefetch, and with none against a real FHIR server."""

from __future__ import annotations

import copy

import pytest

from .cards_check import assert_cards
from .conftest import SCENARIOS, SERVICE_FOR, load_json, scenario_cases

CASES = scenario_cases()


def _case(name: str, hook: str):
    request = load_json(SCENARIOS / name / f"request.{hook}.json")
    expected = load_json(SCENARIOS / name / "expected.json")
    return request, expected["hooks"][hook], expected.get("config", {})


def _prefetch_only(name: str) -> bool:
    """A scenario about the EHR's own answer to a prefetch key (an OperationOutcome): without prefetch the
    FHIR server answers instead, so there is nothing of it to show on that path."""
    return bool(load_json(SCENARIOS / name / "expected.json").get("prefetch_only"))


@pytest.mark.parametrize(("name", "hook"), CASES)
def test_scenario_with_prefetch(make_app, name, hook):
    request, expected, config = _case(name, hook)
    response = make_app(config).test_client().post(f"/cds-services/{SERVICE_FOR[hook]}", json=request)
    assert response.status_code == 200, response.get_json()
    assert_cards(response.get_json(), expected)


@pytest.mark.fhir_server
@pytest.mark.parametrize(("name", "hook"), CASES)
def test_scenario_without_prefetch_from_fhir_server(make_app, fhir_server, name, hook):
    if _prefetch_only(name):
        pytest.skip("the EHR's prefetch error is the subject: prefetch only")
    request, expected, config = _case(name, hook)
    request = copy.deepcopy(request)
    del request["prefetch"]
    request["fhirServer"] = fhir_server
    request["fhirAuthorization"] = {
        "access_token": "opaque-test-token",
        "token_type": "Bearer",
        "expires_in": 300,
        "scope": "patient/*.read",
        "subject": "mg-cds",
    }
    app = make_app({**config, "fhir": {"servers": [{"base_url": fhir_server, "allow_http": True}]}})
    response = app.test_client().post(f"/cds-services/{SERVICE_FOR[hook]}", json=request)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert "extension" not in body, body.get("extension")  # every key was fetched without a gap
    assert_cards(body, expected)


def test_fixture_files_are_current():
    """The committed scenario folders are exactly what fixtures/build.py writes."""
    from fixtures.build import main

    assert main(["--check"]) == 0
