"""Assertions shared by the scenario tests: a response carries exactly the expected cards."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from fhir.resources.R4B.medicationrequest import MedicationRequest
from fhir.resources.R4B.servicerequest import ServiceRequest

from cds_service.knowledge import load_knowledge
from cds_service.protocol.schemas import validate

RULE_IDS = set(load_knowledge().rules)


def visible_text(card: dict[str, Any]) -> str:
    """What a clinician reads: the summary, the detail and the suggestions' labels (not the explanation)."""
    labels = [s.get("label", "") for s in card.get("suggestions", ())]
    return "\n".join([card["summary"], card.get("detail", ""), *labels])


def explanation_text(card: dict[str, Any]) -> str:
    """The card's audit trail (mg-cds.explanation) as text: how orders were read, record ids, gaps."""
    return json.dumps(card.get("extension", {}).get("mg-cds.explanation", {}), ensure_ascii=False)


def action_types(card: dict[str, Any]) -> list[str]:
    return sorted(a["type"] for s in card.get("suggestions", ()) for a in s.get("actions", ()))


def assert_valid_fhir(card: dict[str, Any]) -> None:
    """Every resource an EHR may create or update from a suggestion is valid FHIR R4 (R4B models)."""
    for suggestion in card.get("suggestions", ()):
        for action in suggestion.get("actions", ()):
            if "resource" in action:
                model = {"ServiceRequest": ServiceRequest, "MedicationRequest": MedicationRequest}
                model[action["resource"]["resourceType"]].model_validate(action["resource"])


def assert_cards(response: dict[str, Any], expected: dict[str, Any]) -> None:
    validate("response", response)  # contract: every response passes the response schema
    for card in response["cards"]:
        assert_valid_fhir(card)
    cards = response["cards"]
    got = Counter((c["source"]["topic"]["code"], c["indicator"], tuple(action_types(c))) for c in cards)
    want = Counter((e["rule"], e["indicator"], tuple(sorted(e["actions"]))) for e in expected["cards"])
    summaries = [c["summary"] for c in cards]
    assert got == want, f"cards differ:\n got  {sorted(got)}\n want {sorted(want)}\n summaries {summaries}"
    for e in expected["cards"]:
        card = next(c for c in cards if c["source"]["topic"]["code"] == e["rule"])
        # What the card must say, in its text or (how it read the orders, record ids) its explanation.
        explained = json.dumps(card.get("extension", {}).get("mg-cds.explanation", {}), ensure_ascii=False)
        text = visible_text(card) + "\n" + explained
        for needle in e["mentions"]:
            assert needle in text, f"{e['rule']} card does not mention {needle!r}:\n{text}"
    present = {c["source"]["topic"]["code"] for c in cards}
    fired_but_absent = present & silent_rules(expected)
    assert not fired_but_absent, f"rules that must stay silent fired: {fired_but_absent}"
    assert present <= RULE_IDS


def golden_cards(data_dir: str) -> list[tuple[str, str, dict[str, Any]]]:
    """Every golden scenario through the service (all hooks, full prefetch): (scenario, hook, card)."""
    from cds_service.app import create_app
    from cds_service.config import settings_from_mapping

    from .conftest import FIXTURE_NOW, SCENARIOS, SERVICE_FOR, load_json, scenario_cases

    apps: dict[str, Any] = {}
    out = []
    for name, hook in scenario_cases():
        request = load_json(SCENARIOS / name / f"request.{hook}.json")
        config = load_json(SCENARIOS / name / "expected.json").get("config", {})
        key = json.dumps(config, sort_keys=True)
        if key not in apps:
            apps[key] = create_app(settings_from_mapping({"data_dir": data_dir, **config}, now=FIXTURE_NOW))
        response = apps[key].test_client().post(f"/cds-services/{SERVICE_FOR[hook]}", json=request)
        assert response.status_code == 200, (name, hook, response.get_json())
        out.extend((name, hook, card) for card in response.get_json()["cards"])
    return out


def silent_rules(expected: dict[str, Any]) -> set[str]:
    """Every rule of the catalogue that the hook's expected cards do not name must stay silent: a new
    rule needs no edit of the scenarios it does not fire in."""
    return RULE_IDS - {e["rule"] for e in expected["cards"]}
