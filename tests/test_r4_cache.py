"""The R4 check of an updated order, remembered per order content minus its per-patient elements,
gives the verdict of checking the whole order, for valid and invalid per-patient elements alike."""

from __future__ import annotations

from typing import Any

import pytest

from cds_service.cards.resources import _valid_r4, valid_medication_request

pytestmark = pytest.mark.unit

ORDER: dict[str, Any] = {
    "resourceType": "MedicationRequest",
    "id": "draft-1",
    "status": "draft",
    "intent": "order",
    "subject": {"reference": "Patient/p1"},
    "encounter": {"reference": "Encounter/e1"},
    "requester": {"reference": "Practitioner/d1"},
    "authoredOn": "2026-11-15",
    "medicationCodeableConcept": {"text": "Magnesium oxide 400 mg tablet"},
    "dosageInstruction": [
        {"text": "1 tablet daily", "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}}}
    ],
}

VARIANTS: list[dict[str, Any]] = [
    {},
    {"id": "other-patient-order"},
    {"id": "not an id!"},
    {"subject": {"reference": 7}},
    {"subject": "Patient/p1"},
    {"subject": None},
    {"encounter": {"reference": "Encounter/e2", "display": "ward 3"}},
    {"encounter": ["Encounter/e1"]},
    {"requester": {"reference": "Practitioner/d2", "unknownField": 1}},
    {"authoredOn": "2026-02-30"},
    {"authoredOn": "2026-11-15T10:00:00+01:00"},
    {"authoredOn": 20261115},
    {"status": "not-a-status"},
    {"medicationReference": {"reference": "Medication/m1"}},  # two choices of medication[x]
    {"dosageInstruction": [None]},
    {"_authoredOn": {"extension": [{"url": "http://example.org/x", "valueString": "y"}]}},
]


@pytest.mark.parametrize("change", VARIANTS, ids=[str(sorted(v.items()))[:60] for v in VARIANTS])
def test_verdict_is_the_whole_orders(change: dict[str, Any]) -> None:
    order = {**ORDER, **change}
    assert valid_medication_request(order) is _valid_r4(order)


def test_missing_subject_is_invalid_as_a_whole() -> None:
    order = {k: v for k, v in ORDER.items() if k != "subject"}
    assert valid_medication_request(order) is _valid_r4(order) is False


def test_a_bad_per_patient_element_is_caught_after_a_good_one_was_remembered() -> None:
    assert valid_medication_request(dict(ORDER)) is True
    assert valid_medication_request({**ORDER, "subject": {"reference": ["Patient/p1"]}}) is False
