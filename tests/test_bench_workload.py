"""The benchmarks' workload is what their documentation says it is: the figures in bench/README.md are
only as true as the bodies they were measured on. (Performance itself is measured, never asserted.)"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs

import pytest

from cds_service.protocol.schemas import discovery_document, validate

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))

import workload  # noqa: E402  (bench/ is not a package: its scripts import each other by name)

SERVICE_ID = "magnesium-order-sign"


def _bundled(body: dict, resource_type: str) -> list[tuple[str, dict]]:
    """(prefetch key, resource) for every resource of that type in the prefetch bundles."""
    return [
        (key, entry["resource"])
        for key, value in body["prefetch"].items()
        if value.get("resourceType") == "Bundle"
        for entry in value["entry"]
        if entry["resource"]["resourceType"] == resource_type
    ]


def _asked_codes() -> dict[str, set[str]]:
    """The LOINC codes each Observation prefetch template of the order-sign service asks for."""
    service = next(s for s in discovery_document()["services"] if s["id"] == SERVICE_ID)
    asked = {}
    for key, template in service["prefetch"].items():
        if template.startswith("Observation?"):
            codes = parse_qs(template.split("?", 1)[1])["code"][0].split(",")
            asked[key] = {code.removeprefix("http://loinc.org|") for code in codes}
    return asked


@pytest.mark.parametrize(("observations", "medications"), [(200, 20), (10, 20), (10_000, 20), (200, 1_000)])
def test_a_request_carries_the_observations_and_medications_it_is_named_for(observations, medications):
    body = workload.request(observations, medications)
    validate("request", body)
    assert len(_bundled(body, "Observation")) == observations
    assert len(_bundled(body, "MedicationRequest")) == medications
    assert len(body["context"]["draftOrders"]["entry"]) == len(workload.DRAFTS)


def test_every_observation_answers_the_code_search_of_the_bundle_it_is_in():
    """As an EHR answers `Observation?code=...`: no Observation of a code no template asks for, none in
    the wrong bundle."""
    asked = _asked_codes()
    for key, observation in _bundled(workload.request(500, 20), "Observation"):
        assert observation["code"]["coding"][0]["code"] in asked[key], key


def test_first_sight_leaves_no_marker_and_makes_a_new_patient_each_time():
    marked = json.dumps(workload.request(marked=True)).encode()
    assert marked.count(workload.MARKER.encode()) > 400  # ids, timestamps and the hookInstance
    rng = random.Random(1)
    first, second = workload.first_sight(marked, rng), workload.first_sight(marked, rng)
    assert workload.MARKER.encode() not in first
    assert first != second and len(first) == len(second) == len(marked)
    new = json.loads(first)
    validate("request", new)
    assert new["context"]["patientId"] != json.loads(second)["context"]["patientId"]


def test_the_unrelated_request_keeps_the_prefetch_and_orders_one_drug_no_rule_speaks_about():
    typical, unrelated = workload.request(), workload.request(unrelated=True)
    assert unrelated["prefetch"] == typical["prefetch"]
    names = [e["resource"]["medicationCodeableConcept"]["text"] for e in unrelated["context"]["draftOrders"]["entry"]]
    assert names == [name for name, *_ in workload.UNRELATED_DRAFTS]


def test_the_budget_script_runs_and_reports_the_engine_against_its_budget(tmp_path):
    """bench/budget.py in its smallest form: it must keep running, as the figures in bench/README.md
    quote it. Only that figures come out is checked, never their size."""
    done = subprocess.run(
        [sys.executable, str(BENCH / "budget.py"), "--rounds", "1", "--calls", "3", "--output", "budget.json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Engine budget for 2x" in done.stdout
    result = json.loads((tmp_path / "budget.json").read_text())
    assert set(result["median_ms"]) == {"baseline", "service", "service, engine free", "engine"}
