"""The body decoded once with its Observation bundles typed (record/fhir_types.py) gives the answer
the dict path gives, for the typical request and for bundles that do not fit the typed shape (a bundle
whose status, dates or entries do not fit is read as dicts, the others stay typed; an Observation whose
code, value or range does not fit is read as dicts alone, when it is read)."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from cds_service.config import Settings
from cds_service.record.fhir_types import TypedBundle, decode_body
from cds_service.service import CdsService

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import workload

pytestmark = pytest.mark.unit
SERVICE_ID = "magnesium-order-sign"


def _without_uuids(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_uuids(v) for k, v in value.items() if k != "uuid"}
    if isinstance(value, list):
        return [_without_uuids(v) for v in value]
    return value


def _first_observation(body: dict[str, Any], key: str) -> dict[str, Any]:
    resource: dict[str, Any] = body["prefetch"][key]["entry"][0]["resource"]
    return resource


def _string_value(body: dict[str, Any]) -> None:
    _first_observation(body, "magnesium")["valueQuantity"]["value"] = "0.5"


def _no_value(body: dict[str, Any]) -> None:
    del _first_observation(body, "renal")["valueQuantity"]


def _outcome_entry(body: dict[str, Any]) -> None:
    body["prefetch"]["electrolytes"]["entry"].append({"resource": {"resourceType": "OperationOutcome"}})


def _numeric_status(body: dict[str, Any]) -> None:
    _first_observation(body, "weight")["status"] = 1


def _same_id_twice(body: dict[str, Any]) -> None:
    twin = copy.deepcopy(_first_observation(body, "magnesium"))
    twin["valueQuantity"]["value"] = 0.3
    body["prefetch"]["renal"]["entry"].insert(0, {"resource": twin})
    _string_value(body)  # the magnesium bundle falls back to dicts, renal stays typed


def _string_range(body: dict[str, Any]) -> None:
    _first_observation(body, "magnesium")["referenceRange"] = [{"low": {"value": "0.7"}}]


def _coding_not_a_list(body: dict[str, Any]) -> None:
    observation = _first_observation(body, "magnesium")
    observation["code"]["coding"] = observation["code"]["coding"][0]


def _numeric_code(body: dict[str, Any]) -> None:
    _first_observation(body, "renal")["code"]["coding"][0]["code"] = 2160


def _null_code(body: dict[str, Any]) -> None:
    _first_observation(body, "magnesium")["code"] = None


CHANGES = [
    lambda body: None,
    _string_value,
    _no_value,
    _outcome_entry,
    _numeric_status,
    _same_id_twice,
    _string_range,
    _coding_not_a_list,
    _numeric_code,
    _null_code,
]


@pytest.fixture(scope="module")
def service() -> CdsService:
    return CdsService(Settings(now=workload.NOW))


@pytest.mark.parametrize("change", CHANGES)
def test_typed_and_dict_paths_answer_alike(service: CdsService, change: Any) -> None:
    body = workload.request()
    change(body)
    raw = json.dumps(body).encode()
    typed = decode_body(raw)
    assert typed is not None
    assert any(type(v) is TypedBundle for v in typed["prefetch"].values())
    by_dicts = service.call(SERVICE_ID, orjson.loads(raw)).response
    assert _without_uuids(service.call(SERVICE_ID, typed).response) == _without_uuids(by_dicts)


def test_a_bundle_whose_status_does_not_fit_is_read_as_dicts_and_the_others_stay_typed() -> None:
    body = workload.request()
    _numeric_status(body)
    decoded = decode_body(json.dumps(body).encode())
    assert decoded is not None
    assert type(decoded["prefetch"]["weight"]) is dict
    assert type(decoded["prefetch"]["renal"]) is TypedBundle


def test_a_value_that_does_not_fit_keeps_its_bundle_typed() -> None:
    """The value is read only for the results a rule reads: its bundle stays typed, and that one
    Observation is read as dicts (test_typed_and_dict_paths_answer_alike: the same answer)."""
    body = workload.request()
    _string_value(body)
    decoded = decode_body(json.dumps(body).encode())
    assert decoded is not None
    assert type(decoded["prefetch"]["magnesium"]) is TypedBundle


def test_a_value_out_of_range_in_a_result_read_is_that_result_unreadable(service: CdsService) -> None:
    """1e400 where a lab value belongs: that Observation is reported unreadable and not used; the
    request is answered (it was a 400 for the whole request while every value was decoded up front)."""
    body = workload.request()
    _first_observation(body, "magnesium")["valueQuantity"]["value"] = 0.123456789  # the newest: it is read
    raw = json.dumps(body).replace("0.123456789", "1e400").encode()
    decoded = decode_body(raw)
    assert decoded is not None
    cards = service.call(SERVICE_ID, decoded).response["cards"]
    assert cards
    for card in cards:  # each card's explanation says what was not used
        evidence = card["extension"]["mg-cds.explanation"]["evidence"]
        assert (
            "Not available: unreadable resources (1 Observation did not follow FHIR R4 and were not used)" in evidence
        )


@pytest.mark.parametrize("raw", [b"", b"[1]", b'{"a": NaN}', b'{"a": "\\ud800"}', b"{" * 2000 + b"}" * 2000])
def test_what_msgspec_cannot_decode_is_left_to_the_parser_of_record(raw: bytes) -> None:
    assert decode_body(raw) is None
