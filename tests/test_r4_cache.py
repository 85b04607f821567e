"""The R4 check of an updated order, remembered per order content minus its per-patient and
patient-linked elements (checked each on its own), gives the verdict of checking the whole order, for
valid and invalid elements alike."""

from __future__ import annotations

from typing import Any

import pytest
from fhir.resources.R4B.medicationrequest import MedicationRequest
from fhir_core.utils import is_list_type, is_primitive_type
from hypothesis import given, settings
from hypothesis import strategies as st

from cds_service.cards import resources
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
    {"identifier": [{"system": "urn:oid:1.2.3", "value": "rx-991"}]},
    {"identifier": {"value": "rx-991"}},  # one object where R4 has a list
    {"note": [{"text": "patient prefers liquid"}]},
    {"note": [None]},
    {"note": [{"authorString": "x"}]},  # an Annotation without its text
    {"reasonCode": [{"text": "hypomagnesaemia"}]},
    {"reasonReference": [{"reference": "Condition/c1"}], "basedOn": [{"reference": "CarePlan/cp1"}]},
    {"reasonReference": [{"reference": "Condition/c1"}, "Condition/c2"]},
    {"groupIdentifier": {"value": "g1"}, "priorPrescription": {"reference": "MedicationRequest/old"}},
    {"performer": {"reference": "Practitioner/n1"}, "recorder": {"reference": "Practitioner/r1"}},
    {"recorder": [{"reference": "Practitioner/r1"}]},
    {"supportingInformation": [{"reference": "Observation/o1"}], "insurance": [{"reference": "Coverage/c"}]},
    {"detectedIssue": [{"display": "dup"}], "eventHistory": [{"reference": "Provenance/p1", "unknown": 1}]},
    {"performer": {"reference": ""}},
    {"text": {"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">Mg for J. Doe</div>'}},
    {"text": {"status": "not-a-status", "div": "<div>x</div>"}},
    {"meta": {"lastUpdated": "2026-11-15T10:00:00Z", "source": "#ehr"}},
    {"meta": {"lastUpdated": "yesterday"}},
    {"contained": [{"resourceType": "InventoryItem", "id": "r5-only"}]},  # fhir_core: KeyError, not a verdict
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


# Per-patient elements as EHRs send them and as they should not: ids, references of every shape the
# Reference type has (and unknown keys, wrong types, lists, nulls), dates and dateTimes right and wrong.
_TEXT = st.one_of(
    st.sampled_from(["p1", "Patient/p1", "Practitioner/d-2.x", "", " ", "a b", "\u00e9", "2026-11-15", "x" * 65]),
    st.text(max_size=12),
)
_SCALAR = st.one_of(st.none(), st.booleans(), st.integers(-5, 20261115), _TEXT)
_REFERENCE = st.dictionaries(
    st.sampled_from(["reference", "display", "type", "identifier", "id", "extension", "unknown"]),
    st.one_of(_SCALAR, st.lists(_SCALAR, max_size=2), st.dictionaries(st.sampled_from(["value", "system"]), _SCALAR)),
    max_size=3,
)
_NOTE = st.dictionaries(st.sampled_from(["text", "authorString", "time", "unknown"]), _SCALAR, max_size=2)
_WHEN = st.one_of(
    st.sampled_from(
        ["2026", "2026-11", "2026-11-15", "2026-02-30", "2026-11-15T10:00:00Z", "2026-11-15T10:00:00+01:00",
         "2026-11-15T10:00:00", "2026-11-15T24:00:00Z", "2016-12-31T23:59:60Z", "2026-11-15T10:00:00.1234567Z"]
    ),
    _SCALAR,
)  # fmt: skip
_ELEMENTS = st.fixed_dictionaries(
    {},
    optional={
        "id": _TEXT,
        "subject": st.one_of(_REFERENCE, _SCALAR),
        "encounter": st.one_of(_REFERENCE, st.lists(_REFERENCE, max_size=2), _SCALAR),
        "requester": _REFERENCE,
        "authoredOn": _WHEN,
        "identifier": st.one_of(st.lists(st.one_of(_REFERENCE, _SCALAR), max_size=2), _SCALAR),
        "note": st.one_of(st.lists(st.one_of(_NOTE, _SCALAR), max_size=2), _NOTE),
        "reasonReference": st.one_of(st.lists(st.one_of(_REFERENCE, _SCALAR), max_size=2), _REFERENCE),
        "recorder": st.one_of(_REFERENCE, st.lists(_REFERENCE, max_size=1), _SCALAR),
        "groupIdentifier": st.one_of(_REFERENCE, _SCALAR),
    },
)


@settings(max_examples=300, deadline=None)
@given(_ELEMENTS)
def test_generated_per_patient_elements_get_the_whole_orders_verdict(change: dict[str, Any]) -> None:
    order = {**ORDER, **change}
    assert valid_medication_request(order) is _valid_r4(order)


@pytest.mark.parametrize("name", sorted(resources._LISTS))
def test_a_null_inside_a_list_element_is_refused_as_the_whole_order_refuses_it(name: str) -> None:
    order = {**ORDER, name: [None]}
    assert valid_medication_request(order) is _valid_r4(order) is False


def test_the_elements_left_out_of_the_key_are_read_by_no_rule_of_the_whole_order() -> None:
    """What the split verdict rests on, read from the model itself: no left-out element is required, in
    a choice group or paired with an extension sibling, and the lists refused with a null inside are
    fhir_core's own (lists of complex types)."""
    fields = MedicationRequest.model_fields
    required = {name for pair in MedicationRequest.get_required_fields(None) for name in pair if name}
    choices = {name for names in MedicationRequest.get_one_of_many_fields(None).values() for name in names}
    for name in (*resources.PER_PATIENT, *resources.LINKED):
        assert fields[name].alias in (None, name) and name not in choices, name
    for name in resources.LINKED:  # left out (a per-patient one gets a stand-in: its sibling stays beside it)
        assert name not in required and f"{name}__ext" not in fields, name
    checked = resources._ELEMENT_CHECKS
    complex_lists = {n for n in checked if is_list_type(fields[n]) and not is_primitive_type(fields[n])}
    assert complex_lists == resources._LISTS


@settings(max_examples=300, deadline=None)
@given(
    st.from_regex(resources.PLAIN_REFERENCE.pattern, fullmatch=True),
    st.sampled_from(["subject", "encounter", "requester", "priorPrescription", "performer", "recorder"]),
)
def test_a_plain_reference_taken_as_valid_is_valid_to_the_model(reference: str, name: str) -> None:
    """The shortcut for {"reference": "<printable ASCII, no space>"} agrees with the Reference model."""
    assert _valid_r4({**ORDER, name: {"reference": reference}}) is True
    assert valid_medication_request({**ORDER, name: {"reference": reference}}) is True


def test_the_remembered_verdict_is_keyed_by_nothing_that_names_the_patient(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the cross-call memory keeps: the order without its per-patient and patient-linked elements."""
    keys: list[bytes] = []
    remembered = resources._valid_by_content
    monkeypatch.setattr(resources, "_valid_by_content", lambda content: keys.append(content) or remembered(content))
    linked = {
        "identifier": [{"value": "rx-secret-991"}],
        "groupIdentifier": {"value": "secret-group"},
        "note": [{"text": "secret: lives alone"}],
        "reasonCode": [{"text": "secret diagnosis"}],
        "reasonReference": [{"reference": "Condition/secret-c1"}],
        "performer": {"reference": "Practitioner/secret-n1"},
        "text": {"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">secret name</div>'},
        "meta": {"lastUpdated": "2026-11-15T10:00:00Z", "source": "#secret-source"},
    }
    assert valid_medication_request({**ORDER, **linked}) is True
    assert len(keys) == 1 and b"Magnesium oxide" in keys[0]
    for secret in (b"secret", b"p1", b"e1", b"d1", b"draft-1", b"2026-11-15"):
        assert secret not in keys[0]
