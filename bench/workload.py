"""Synthetic, deterministic order-sign requests of a chosen size, for the benchmarks.

A typical request (the issue's definition): 5 draft orders, 20 active medications, 200 Observations,
all with full prefetch. Every Observation is of a code the prefetch templates ask for and in its bundle;
there are more of them than the templates' `_count` would return (a stress quantity, and what an EHR
that ignores `_count` sends). Sizes scale the Observations and the active medications.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

NOW = datetime.fromisoformat("2026-11-15T12:00:00+00:00")
LOINC = "http://loinc.org"
PATIENT = "bench-patient"
# "First sight": every id, timestamp and the hookInstance carry this marker, which the load generator
# replaces by a new random number per request, so each call is about a patient no cache has seen.
MARKER = "918273"
# (LOINC, unit, low, high): one code of each Observation prefetch the service asks for, so every generated
# Observation is in the body (an EHR answers `code=` searches with those codes only). Codes no template
# asks for (haemoglobin, glucose, heart rate) used to be generated here too and then left out of every
# bundle: "200 Observations" were 140 in the body, "10,000" were 7,000.
LABS = [
    ("2160-0", "mg/dL", 0.7, 3.0),
    ("19123-9", "mg/dL", 1.4, 2.8),
    ("29463-7", "kg", 50, 110),
    ("2823-3", "mmol/L", 3.2, 5.4),
    ("17861-6", "mg/dL", 8.0, 10.5),
    ("98979-8", "mL/min/{1.73_m2}", 15, 100),
    ("8302-2", "cm", 150, 190),
]
ACTIVE_NAMES = [
    "Metformin 500 mg tablet",
    "Lisinopril 10 mg tablet",
    "Furosemide 40 mg tablet",
    "Omeprazole 20 mg capsule",
    "Atorvastatin 40 mg tablet",
    "Levothyroxine 50 mcg tablet",
    "Amlodipine 5 mg tablet",
    "Sertraline 50 mg tablet",
    "Magnesium oxide 400 mg tablet",
    "Gabapentin 300 mg capsule",
    "Aspirin 81 mg tablet",
    "Vitamin D3 1000 unit capsule",
]
DRAFTS = [
    ("Magnesium glycinate 500 mg capsule", 1, 2),
    ("Ciprofloxacin 500 mg tablet", 1, 2),
    ("Hydrochlorothiazide 25 mg tablet", 1, 1),
    ("Atorvastatin 80 mg tablet", 1, 1),
    ("Metformin 1000 mg tablet", 1, 2),
]


def _bundle(resources: list[dict]) -> dict:
    return {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": r} for r in resources]}


def _medication(rid: str, name: str, status: str, count: float = 1, per_day: int = 1, patient: str = PATIENT) -> dict:
    return {
        "resourceType": "MedicationRequest",
        "id": rid,
        "status": status,
        "intent": "order",
        "subject": {"reference": f"Patient/{patient}"},
        "medicationCodeableConcept": {"text": name},
        "authoredOn": NOW.date().isoformat(),
        "dosageInstruction": [
            {
                "route": {"coding": [{"system": "http://snomed.info/sct", "code": "26643006"}]},
                "doseAndRate": [{"doseQuantity": {"value": count, "unit": "tablet"}}],
                "timing": {"repeat": {"frequency": per_day, "period": 1, "periodUnit": "d"}},
            }
        ],
    }


UNRELATED_DRAFTS = [("Metformin 1000 mg tablet", 1, 2)]  # no magnesium, partner, wasting or risk drug


def request(
    observations: int = 200, medications: int = 20, seed: int = 7, unrelated: bool = False, marked: bool = False
) -> dict[str, Any]:
    """The typical order-sign; `unrelated`: the same patient and full prefetch, one order no rule speaks about;
    `marked`: ids, timestamps (their microseconds) and hookInstance carry MARKER (see `first_sight`)."""
    rng = random.Random(seed)
    tag = f"-{MARKER}" if marked else ""
    patient = PATIENT + tag
    obs = []
    for i in range(observations):
        code, unit, low, high = LABS[i % len(LABS)]
        when = NOW - timedelta(days=rng.uniform(0, 700))
        if marked:
            when = when.replace(microsecond=int(MARKER))
        obs.append(
            {
                "resourceType": "Observation",
                "id": f"obs-{i}{tag}",
                "status": "final",
                "code": {"coding": [{"system": LOINC, "code": code}]},
                "subject": {"reference": f"Patient/{patient}"},
                "effectiveDateTime": when.isoformat(),
                "valueQuantity": {
                    "value": round(rng.uniform(low, high), 2),
                    "unit": unit,
                    "system": "http://unitsofmeasure.org",
                    "code": unit,
                },
            }
        )
    obs.sort(key=lambda o: o["effectiveDateTime"], reverse=True)
    by_code: dict[str, list[dict]] = {}
    for o in obs:
        by_code.setdefault(o["code"]["coding"][0]["code"], []).append(o)

    def labs(*codes: str) -> dict:
        return _bundle(
            sorted((o for c in codes for o in by_code.get(c, ())), key=lambda o: o["effectiveDateTime"], reverse=True)
        )

    active = [
        _medication(f"active-{i}{tag}", ACTIVE_NAMES[i % len(ACTIVE_NAMES)], "active", patient=patient)
        for i in range(medications)
    ]
    drafts = [
        _medication(f"draft-{i}{tag}", name, "draft", count, per_day, patient)
        for i, (name, count, per_day) in enumerate(UNRELATED_DRAFTS if unrelated else DRAFTS)
    ]
    return {
        "hook": "order-sign",
        "hookInstance": f"6f1b6a3e-2f0a-4c55-9b1e-0c5a4f{MARKER if marked else '0d9e11'}",
        "context": {
            "userId": "Practitioner/bench",
            "patientId": patient,
            "draftOrders": {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": d} for d in drafts]},
        },
        "prefetch": {
            "patient": {"resourceType": "Patient", "id": patient, "gender": "female", "birthDate": "1950-03-03"},
            "medicationRequests": _bundle(active),
            "medicationStatements": _bundle([]),
            "conditions": _bundle([]),
            "magnesium": labs("19123-9", "2601-3"),
            "renal": labs("2160-0", "98979-8"),
            "weight": labs("29463-7"),
            "height": labs("8302-2"),
            "electrolytes": labs("2823-3", "17861-6"),
        },
    }


def first_sight(marked_body: bytes, rng: random.Random) -> bytes:
    """The marked body about a new patient: MARKER replaced by a random number of the same width, so
    per-content caches (timestamps, the R4 check of an order) meet it for the first time."""
    return marked_body.replace(MARKER.encode(), b"%06d" % rng.randrange(10**6))
