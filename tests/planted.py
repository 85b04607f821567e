"""A Bulk Data export with a known answer: magnesium-product and furosemide orders, and serum
magnesium results planted after them at known rates, so the replay's outcome figures can be checked
against counts made here, from the plan, without the service.

Each patient has one order (a new start), written in an outpatient encounter, coded with RxNorm only
(code and display, no text, no Medication resource: how Bulk Data exports often arrive), and is 70 or
older (at risk: the new-start recheck card fires on every magnesium order). Magnesium results after
the order follow the patient's number modulo 10 (PLAN), some in mmol/L, some with the lab's own
reference range. Every seventh magnesium patient also had a doxycycline stopped 6.5 months before
(never running at the order: no tetracycline card), every eleventh one a doxycycline course of 10 days
started 5 days before (running: a card). Observations of codes no rule reads pad the export.

Also used by bench/simulate_bench.py to generate large exports quickly (no clinical generator)."""

from __future__ import annotations

import gzip
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
# Codes from ../shared/reference/terminology.md: magnesium oxide 400 mg tablet (SCD 198741), furosemide
# (IN 4603), doxycycline (IN 3640); serum magnesium (LOINC 19123-9 mg/dL, 2601-3 mmol/L), creatinine 2160-0.
MG_OXIDE = {"system": RXNORM, "code": "198741", "display": "magnesium oxide 400 MG Oral Tablet"}
FUROSEMIDE = {"system": RXNORM, "code": "4603", "display": "furosemide"}
DOXYCYCLINE = {"system": RXNORM, "code": "3640", "display": "doxycycline"}
MG_MASS, MG_MOLES, CREATININE = "19123-9", "2601-3", "2160-0"
MG_MMOL_TO_MGDL = 2.4305  # molar mass of magnesium, 24.305 g/mol: 1 mmol/L = 2.4305 mg/dL
START = datetime(2025, 1, 1, tzinfo=UTC)
END = datetime(2026, 7, 1, tzinfo=UTC)  # the history ends here (a creatinine of the first patient)
SPAN_DAYS = (END - START).days - 5

# Results after the order, by patient number modulo 10: (days after, value, unit, (low, high) of the lab or None)
PLAN = {
    "magnesium": [
        [(10, 3.1, "mg/dL", None)],  # hypermagnesaemia, drawn for the recheck
        [(10, 3.1, "mg/dL", None)],
        [(12, 2.5, "mg/dL", (1.6, 2.3))],  # above the lab's own range: hypermagnesaemia
        [(16, 2.0, "mg/dL", None)],  # normal, drawn for the recheck
        [(16, 2.0, "mg/dL", None)],
        [(16, 2.0, "mg/dL", None)],
        [(40, 3.0, "mg/dL", None)],  # high, but after the 30-day window
        [(25, 1.5, "mmol/L", None)],  # 3.65 mg/dL: hypermagnesaemia; day 25: after the recheck's window
        [],  # never measured
        [],
    ],
    "depletion": [
        [(60, 1.4, "mg/dL", None)],  # hypomagnesaemia
        [(60, 1.4, "mg/dL", None)],
        [(60, 1.7, "mg/dL", (1.5, 2.5))],  # low by the default limit, in the lab's own range: none
        [(100, 1.6, "mg/dL", None)],  # after the 90-day window
        [(5, 2.0, "mg/dL", None)],  # drawn "now" (within the week) for the depletion card
        [(5, 2.0, "mg/dL", None)],
        [(5, 2.0, "mg/dL", None)],
        [],
        [],
        [],
    ],
}


@dataclass
class Planted:
    """What was planted: the orders and the results after each, from which the tests count."""

    orders: list[tuple[str, str, datetime, list[tuple[int, float, str, tuple | None]]]] = field(default_factory=list)
    running_doxycycline: int = 0
    stopped_doxycycline: int = 0
    patients: int = 0


def generate(out: Path, patients: int, seed: int = 1, noise: int = 6, gz: bool = False) -> Planted:
    """Write Patient, Encounter, MedicationRequest, Observation and Condition NDJSON files to `out`."""
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    planted = Planted(patients=patients)
    names = ("Patient", "Encounter", "MedicationRequest", "Observation", "Condition")
    suffix = ".ndjson.gz" if gz else ".ndjson"
    sinks: dict[str, IO[bytes]] = {n: _sink(out / f"{n}{suffix}", gz) for n in names}
    try:
        for i in range(patients):
            for resource in _patient(i, seed, rng, planted, noise):
                sinks[resource["resourceType"]].write(json.dumps(resource, separators=(",", ":")).encode() + b"\n")
    finally:
        for sink in sinks.values():
            sink.close()
    return planted


def _sink(path: Path, gz: bool) -> IO[bytes]:
    return gzip.open(path, "wb", compresslevel=1) if gz else path.open("wb")  # type: ignore[return-value]


def _patient(i: int, seed: int, rng: random.Random, planted: Planted, noise: int) -> Iterator[dict]:
    pid = f"s{seed}-p{i:07d}"
    subject = {"reference": f"Patient/{pid}"}
    yield {"resourceType": "Patient", "id": pid, "gender": ("female", "male")[i % 2],
           "birthDate": f"{1930 + rng.randint(0, 25)}-0{1 + i % 9}-15"}  # fmt: skip
    kind = ("magnesium", "depletion", "magnesium", "none")[(i // 10) % 4]
    when = START + timedelta(days=rng.randint(0, SPAN_DAYS), hours=9)
    yield _obs(f"{pid}-cr0", subject, CREATININE, 0.6, "mg/dL", when - timedelta(days=30))  # renal function normal
    if i == 0:
        yield _obs(f"{pid}-cr-end", subject, CREATININE, 0.6, "mg/dL", END)
    for n in range(noise):  # codes no rule reads (a local code system: not LOINC)
        yield {"resourceType": "Observation", "id": f"{pid}-n{n}", "status": "final", "subject": subject,
               "code": {"coding": [{"system": "urn:example:noise", "code": f"n{n % 7}"}], "text": "noise"},
               "effectiveDateTime": (when - timedelta(days=n * 20)).isoformat(),
               "valueQuantity": {"value": 60 + n, "unit": "/min"}}  # fmt: skip
    yield {"resourceType": "Condition", "id": f"{pid}-c", "subject": subject, "recordedDate": "2020-01-01",
           "clinicalStatus": {"coding": [{"code": "active"}]}, "code": {"text": "Essential hypertension"}}  # fmt: skip
    if kind == "none":
        return
    encounter = f"{pid}-e1"
    yield {"resourceType": "Encounter", "id": encounter, "status": "finished", "subject": subject,
           "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
           "period": {"start": when.isoformat(), "end": (when + timedelta(hours=1)).isoformat()}}  # fmt: skip
    coding = MG_OXIDE if kind == "magnesium" else FUROSEMIDE
    yield _order(f"{pid}-o1", subject, encounter, coding, when, "active")
    results = [r for r in PLAN[kind][i % 10] if when + timedelta(days=r[0]) <= END]  # none after the history
    planted.orders.append((pid, kind, when, results))
    for n, (days, value, unit, limits) in enumerate(results):
        yield _obs(f"{pid}-mg{n}", subject, MG_MASS if unit == "mg/dL" else MG_MOLES, value, unit,
                   when + timedelta(days=days), limits)  # fmt: skip
    if kind == "magnesium" and i % 7 == 0:
        planted.stopped_doxycycline += 1
        yield _order(f"{pid}-dx", subject, encounter, DOXYCYCLINE, when - timedelta(days=198), "stopped")
    elif kind == "magnesium" and i % 11 == 0:
        planted.running_doxycycline += 1
        course = _order(f"{pid}-dx", subject, encounter, DOXYCYCLINE, when - timedelta(days=5), "completed")
        course["dosageInstruction"][0]["timing"]["repeat"]["boundsDuration"] = {"value": 10, "unit": "d", "code": "d"}
        yield course


def _order(rid: str, subject: dict, encounter: str, coding: dict, when: datetime, status: str) -> dict:
    return {
        "resourceType": "MedicationRequest", "id": rid, "status": status, "intent": "order", "subject": subject,
        "encounter": {"reference": f"Encounter/{encounter}"}, "authoredOn": when.isoformat(),
        "medicationCodeableConcept": {"coding": [coding]},
        "dosageInstruction": [{"text": "1 tablet daily", "timing": {"repeat": {"frequency": 1, "period": 1,
                                                                              "periodUnit": "d"}}}],
    }  # fmt: skip


def _obs(rid: str, subject: dict, code: str, value: float, unit: str, when: datetime, limits=None) -> dict:
    obs = {"resourceType": "Observation", "id": rid, "status": "final", "subject": subject,
           "code": {"coding": [{"system": LOINC, "code": code}]}, "effectiveDateTime": when.isoformat(),
           "valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit}}  # fmt: skip
    if limits is not None:
        obs["referenceRange"] = [
            {"low": {"value": limits[0], "unit": unit}, "high": {"value": limits[1], "unit": unit}}
        ]
    return obs
