"""An order's meaning (drug, codes, ingredients, dose, route, category) is read once per content:
the same order written for the next patient is not read again, and what comes back is what a fresh
reading gives."""

from __future__ import annotations

import copy
import json

import pytest

from cds_service.record import medications
from cds_service.record.medications import _read_meaning, _resolve_medication, parse_medication

from .conftest import SCENARIOS

pytestmark = pytest.mark.unit

ORDER = {
    "resourceType": "MedicationRequest",
    "id": "a",
    "status": "draft",
    "intent": "order",
    "subject": {"reference": "Patient/1"},
    "authoredOn": "2026-11-01",
    "medicationCodeableConcept": {"text": "Magnesium oxide 400 mg tablet"},
    "dosageInstruction": [{"timing": {"repeat": {"frequency": 2, "period": 1, "periodUnit": "d"}}}],
}


def test_the_same_order_for_another_patient_is_not_read_again():
    other = {**ORDER, "id": "b", "subject": {"reference": "Patient/2"}, "authoredOn": "2026-11-02", "status": "active"}
    first, second = parse_medication(ORDER, "draft", {}), parse_medication(other, "active", {})
    assert first is not None and second is not None
    assert first.dosage is second.dosage  # one reading, shared
    assert (second.reference, second.status, second.origin) == ("MedicationRequest/b", "active", "active")
    assert second.authored_on is not None and second.authored_on.day == 2


def test_a_different_dose_is_read_on_its_own():
    three_a_day = copy.deepcopy(ORDER)
    three_a_day["dosageInstruction"][0]["timing"]["repeat"]["frequency"] = 3
    first, other = parse_medication(ORDER, "draft", {}), parse_medication(three_a_day, "draft", {})
    assert first is not None and other is not None
    assert first.dosage != other.dosage


def test_every_golden_order_reads_as_a_fresh_reading_does():
    orders = []
    for path in sorted(SCENARIOS.glob("*/bundle.json")):
        bundle = json.loads(path.read_text(encoding="utf-8"))
        resources = [e["resource"] for e in bundle.get("entry", []) if "resource" in e]
        meds = {f"Medication/{r['id']}": r for r in resources if r.get("resourceType") == "Medication"}
        orders += [(r, meds) for r in resources if r.get("resourceType") in medications.MEDICATION_TYPES]
    assert len(orders) > 100
    medications._KEYED.clear()
    for resource, meds in (*orders, *orders):  # the second pass is served from the cache
        entry = parse_medication(resource, "active", meds)
        assert entry is not None
        fresh = _read_meaning(resource, _resolve_medication(resource, meds))
        assert (entry.name, entry.codings, entry.dosage, entry.strengths, entry.category_codings) == (
            fresh.name, fresh.codings, fresh.dosage, fresh.strengths, fresh.category_codings,
        )  # fmt: skip


def test_an_engine_that_has_seen_every_golden_order_answers_as_a_fresh_one(tmp_path):
    """The engine remembers how an order of a given content is matched and read (and its elemental Mg a
    day) across calls and patients: one service answering every golden request twice, in two orders,
    gives each request the findings a service that saw nothing before gives it."""
    from cds_service.config import settings_from_mapping
    from cds_service.service import CdsService

    from .conftest import FIXTURE_NOW, SERVICE_FOR, load_json, scenario_cases

    def settings():
        return settings_from_mapping({"data_dir": str(tmp_path)}, now=FIXTURE_NOW)

    cases = scenario_cases()
    bodies = {case: load_json(SCENARIOS / case[0] / f"request.{case[1]}.json") for case in cases}
    warm = CdsService(settings())
    seen = {}
    for case in (*cases, *reversed(cases)):
        answer = warm.call(SERVICE_FOR[case[1]], bodies[case])
        seen.setdefault(case, []).append([(c["summary"], c["indicator"]) for c in answer.response["cards"]])
    fresh = CdsService(settings())
    for case in cases:  # each as if first seen: nothing remembered, by the engine or the record layer
        fresh.engine._sides.clear()
        fresh.engine._doses.clear()
        medications._KEYED.clear()
        answer = fresh.call(SERVICE_FOR[case[1]], bodies[case])
        expected = [(c["summary"], c["indicator"]) for c in answer.response["cards"]]
        assert seen[case] == [expected, expected], case
