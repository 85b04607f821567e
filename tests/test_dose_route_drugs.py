"""Dose arithmetic, route, and interacting-drug recognition (the clinical layer, without HTTP)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cds_service.clinical.dose import daily_elemental_mg, daily_mg
from cds_service.clinical.drugs import DrugMatcher
from cds_service.clinical.matching import ATC, RXNORM, MagnesiumMatcher
from cds_service.clinical.rules.interactions import magnesium_spacing, partner_spacing
from cds_service.knowledge import load_knowledge
from cds_service.record.dosage import read_dosage
from cds_service.record.model import Coding, MedicationEntry
from cds_service.record.order_reading import read_order

KNOWLEDGE = load_knowledge()
MG = MagnesiumMatcher(KNOWLEDGE.magnesium)
DRUGS = DrugMatcher(KNOWLEDGE)


def med(name="", dosage=None, codings=(), route=None, strengths=()) -> MedicationEntry:
    resource = {"resourceType": "MedicationRequest", "dosageInstruction": [dosage] if dosage else []}
    route_codings = tuple(Coding(*c) for c in route) if isinstance(route, list) else ()
    return MedicationEntry(
        "MedicationRequest/x",
        "MedicationRequest",
        "draft",
        "draft",
        name,
        tuple(codings),
        (),
        (),
        route_codings,
        route if isinstance(route, str) else "",
        None,
        resource,
        tuple(strengths),
        read_dosage(dosage) if dosage else None,
    )


def dosage(value, unit, frequency=None, period_unit="d", **extra):
    out = {"doseAndRate": [{"doseQuantity": {"value": value, "unit": unit}}]}
    if frequency is not None:
        out["timing"] = {"repeat": {"frequency": frequency, "period": 1, "periodUnit": period_unit}}
    out.update(extra)
    return out


def test_glycinate_capsules_to_elemental():
    entry = med("Magnesium glycinate 500 mg capsule", dosage(2, "capsule", 2))
    dose = daily_elemental_mg(entry, MG.match(entry), KNOWLEDGE.magnesium)
    assert dose.mg_per_day == pytest.approx(2 * 500 * 2 * 0.141)
    assert "14.1% elemental" in dose.how


def test_labelled_elemental_is_used_as_is():
    entry = med("Magnesium (as magnesium glycinate) 100 mg", dosage(1, "tablet", 3))
    assert daily_elemental_mg(entry, MG.match(entry), KNOWLEDGE.magnesium).mg_per_day == pytest.approx(300)


def test_medication_ingredient_strength_wins_over_the_name():
    entry = med("Magnesium oxide tablet", dosage(1, "tablet", 1), strengths=[("magnesium oxide", 250.0, "mg")])
    assert daily_mg(entry).mg_per_day == 250


def test_liquid_dose_uses_the_concentration():
    entry = med("Magnesium citrate 290 mg/5 mL oral solution", dosage(10, "mL", 1))
    assert daily_mg(entry).mg_per_day == pytest.approx(580)


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        (med("Magnesium glycinate capsule", dosage(1, "capsule", 1)), "strength not stated"),
        (med("Magnesium glycinate 500 mg capsule", {"text": "one daily"}), "dose amount not stated"),
        (med("Magnesium glycinate 500 mg capsule", dosage(1, "capsule")), "frequency not stated"),
        (med("Magnesium 400 mg tablet", dosage(1, "tablet", 1)), "salt not stated"),
        (med("Magnesium glycinate 500 mg capsule", dosage(1, "puff", 1)), "dose unit 'puff'"),
    ],
)
def test_uncomputable_doses_say_why(entry, reason):
    dose = daily_elemental_mg(entry, MG.match(entry), KNOWLEDGE.magnesium)
    assert dose.mg_per_day is None and reason in dose.how


def test_as_needed_uses_the_maximum_frequency():
    d = dosage(1, "tablet", asNeededBoolean=True)
    d["timing"] = {"repeat": {"frequency": 1, "frequencyMax": 4, "period": 1, "periodUnit": "d"}}
    dose = daily_mg(med("Magnesium oxide 400 mg tablet", d))
    assert dose.mg_per_day == 1600 and dose.as_needed


@given(st.integers(1, 6), st.integers(1, 6), st.sampled_from([100, 250, 400, 500]))
def test_daily_dose_is_linear_in_count_and_frequency(count, frequency, strength):
    entry = med(f"Magnesium oxide {strength} mg tablet", dosage(count, "tablet", frequency))
    assert daily_mg(entry).mg_per_day == pytest.approx(count * frequency * strength)


def test_hourly_period_converts_to_per_day():
    assert daily_mg(med("Magnesium oxide 400 mg tablet", dosage(1, "tablet", 1, "h"))).mg_per_day == 400 * 24


@pytest.mark.parametrize(
    ("entry", "route"),
    [
        (med("Ciprofloxacin 500 mg", route=[("http://snomed.info/sct", "26643006", "Oral")]), "enteral"),
        (med("Ciprofloxacin 400 mg/200 mL injection"), "parenteral"),
        (med("Ciprofloxacin 500 mg", route="Intravenous"), "parenteral"),
        (med("Ciprofloxacin 500 mg tablet"), "enteral"),
        (med("Ciprofloxacin 0.3 % ophthalmic solution"), "not-absorbed"),
        (med("Ciprofloxacin 500 mg"), "enteral"),  # nothing says how: assumed oral (route_assumed)
    ],
)
def test_route(entry, route):
    assert read_order(entry, KNOWLEDGE.order_reading).route == route


@pytest.mark.parametrize(
    ("entry", "drug", "rule"),
    [
        (med(codings=[Coding(RXNORM, "2551")]), "ciprofloxacin", "interaction-fluoroquinolone"),
        (med(codings=[Coding(ATC, "N03AX12")]), "gabapentin", "interaction-gabapentin"),  # old ATC
        (med(codings=[Coding(ATC, "N02BF01")]), "gabapentin", "interaction-gabapentin"),  # 2026 ATC
        (med("Synthroid 50 mcg tablet"), "levothyroxine", "interaction-levothyroxine"),
        (med("Alendronic acid 70 mg"), "alendronate", "interaction-bisphosphonate"),
        (med("Lasix 40 mg"), "furosemide", "depletion-diuretic"),
        (med(codings=[Coding(RXNORM, "1596450")]), "gentamicin", "depletion-aminoglycoside"),
        (med("Ciclosporin 100 mg capsule"), "cyclosporine", "depletion-calcineurin-inhibitor"),
    ],
)
def test_drug_recognition(entry, drug, rule):
    hit = DRUGS.match(entry)
    assert hit is not None and hit.drug.name == drug and hit.drug_class.rule == rule


@pytest.mark.parametrize("name", ["Metformin 500 mg", "Magnesium oxide 400 mg", "Amoxicillin 500 mg capsule"])
def test_unrelated_drugs_are_not_recognised(name):
    assert DRUGS.match(med(name)) is None


def test_spacing_is_stated_from_both_sides():
    assert partner_spacing("ciprofloxacin", 2, 6) == "give ciprofloxacin at least 2 h before or 6 h after magnesium"
    assert magnesium_spacing("ciprofloxacin", 2, 6) == "take magnesium at least 6 h before or 2 h after ciprofloxacin"
    assert partner_spacing("alendronate", 0.5, None) == "give alendronate at least 30 min before magnesium"
    assert magnesium_spacing("gabapentin", None, 2) == "take magnesium at least 2 h before gabapentin"
