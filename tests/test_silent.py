"""Shadow mode in the live service: a silent rule (or a silent service) is evaluated and recorded but
its cards never reach the EHR; `report` and /metrics count them apart from the cards shown."""

from __future__ import annotations

import pytest

from cds_service.config import ConfigError, settings_from_mapping
from cds_service.feedback.report import per_rule

from .conftest import SCENARIOS, SERVICE_FOR, load_json
from .test_operations import samples, scrape
from .timing import scaled

SIGN = f"/cds-services/{SERVICE_FOR['order-sign']}"
FQ, RULE = "fq-cipro-magnesium-ordered", "interaction-fluoroquinolone"


def _sign(app, name: str = FQ) -> list[str]:
    response = app.test_client().post(SIGN, json=load_json(SCENARIOS / name / "request.order-sign.json"))
    assert response.status_code == 200
    return [c["source"]["topic"]["code"] for c in response.get_json()["cards"]]


def test_a_silent_rule_is_recorded_not_returned(make_app):
    app = make_app({"rules": {RULE: {"mode": "silent"}}})
    assert _sign(app) == []
    assert _sign(app, "renal-severe-cg") == ["renal-severe"], "other rules stay live"
    assert app.extensions["card_recorder"].flush(timeout=scaled(20))
    numbers = {row.rule_id: row for row in per_rule(app.extensions["feedback_store"])}
    assert numbers[RULE].held_back == {"silent": 1} and numbers[RULE].issued == 0
    assert numbers["renal-severe"].issued == 1 and not numbers["renal-severe"].held_back
    counted = samples(scrape(), "cds_cards_held_back_total")
    assert counted[(("reason", "silent"), ("rule", RULE), ("service", SERVICE_FOR["order-sign"]))] >= 1


def test_a_silent_service_returns_nothing_and_records_everything(make_app):
    app = make_app({"silent": True})
    assert _sign(app, "renal-severe-cg") == []
    assert app.extensions["card_recorder"].flush(timeout=scaled(20))
    numbers = {row.rule_id: row for row in per_rule(app.extensions["feedback_store"])}
    assert numbers["renal-severe"].held_back == {"silent": 1} and numbers["renal-severe"].issued == 0


def test_modes_are_checked():
    with pytest.raises(ConfigError, match=r"rules\.mg-high\.mode"):
        settings_from_mapping({"rules": {"mg-high": {"mode": "quiet"}}})
    with pytest.raises(ConfigError, match="silent must be true or false"):
        settings_from_mapping({"silent": "yes"})
