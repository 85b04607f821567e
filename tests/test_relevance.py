"""Relevance first: an order no rule speaks about is answered `{"cards": []}` from the request alone
(no FHIR call, no 412: tests/test_fetch.py), and that shortcut never hides a card the full path would give."""

from __future__ import annotations

from datetime import datetime

import pytest

from cds_service.clinical.relevance import may_concern_a_rule
from cds_service.config import settings_from_mapping
from cds_service.fhir.gather import gather
from cds_service.fhir.templates import templates_for
from cds_service.protocol.request import parse_request
from cds_service.record import build_record
from cds_service.service import CdsService

from .conftest import SCENARIOS, SERVICE_FOR, load_json, scenario_cases


def test_the_shortcut_never_hides_a_card(tmp_path):
    """For every golden request: when relevance-first says no rule is concerned, the full path (prefetch,
    record, every rule) finds nothing either; and at least the negative controls take the shortcut."""
    settings = settings_from_mapping({"data_dir": str(tmp_path)}, now=datetime.fromisoformat("2026-11-15T12:00Z"))
    service = CdsService(settings)
    shortcut = []
    for name, hook in scenario_cases():
        if hook == "patient-view":
            continue
        body = load_json(SCENARIOS / name / f"request.{hook}.json")
        request = parse_request(body, SERVICE_FOR[hook], (hook,))
        if may_concern_a_rule(request, service.engine):
            continue
        shortcut.append(name)
        templates = templates_for(service.discovery, SERVICE_FOR[hook], hook)
        data = gather(request, templates, settings.fhir, None)
        record = build_record(request, data.resources, data.gaps, service.knowledge, service.now())
        assert service.engine.evaluate(record) == [], name
    assert {"unrelated-order", "unrelated-selection"} <= set(shortcut)


@pytest.mark.parametrize("name", ["fq-cipro-magnesium-ordered", "epic-order-sign", "renal-severe-cg"])
def test_orders_about_magnesium_take_the_full_path(tmp_path, name):
    service = CdsService(settings_from_mapping({"data_dir": str(tmp_path)}))
    body = load_json(SCENARIOS / name / "request.order-sign.json")
    assert may_concern_a_rule(parse_request(body, SERVICE_FOR["order-sign"], ("order-sign",)), service.engine)
