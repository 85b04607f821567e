"""Renal formulas and unit conversion: worked examples and properties that must hold for all inputs."""

from __future__ import annotations

import math

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from cds_service.clinical.formulas import (
    bedside_schwartz,
    body_mass_index,
    ckd_epi_2021,
    cockcroft_gault,
    dosing_weight,
    ideal_body_weight,
)
from cds_service.knowledge import load_knowledge
from cds_service.record.units import to_canonical, ucum_unit

KNOWLEDGE = load_knowledge()
ages = st.floats(min_value=18, max_value=110)
weights = st.floats(min_value=25, max_value=250)
creatinines = st.floats(min_value=0.2, max_value=20)


def test_cockcroft_gault_worked_example():
    # 78-year-old woman, 60 kg, SCr 2.9: (140 - 78) x 60 / (72 x 2.9) x 0.85 = 15.1 mL/min
    assert cockcroft_gault(78, 60, 2.9, female=True) == pytest.approx(62 * 60 / (72 * 2.9) * 0.85)
    assert round(cockcroft_gault(78, 60, 2.9, female=True)) == 15


def test_ckd_epi_2021_worked_examples():
    # female 50 y, SCr 1.0: 142 x (1.0/0.7)^-1.200 x 0.9938^50 x 1.012
    assert ckd_epi_2021(50, 1.0, female=True) == pytest.approx(142 * (1 / 0.7) ** -1.2 * 0.9938**50 * 1.012)
    # male 40 y, SCr 0.7 (below kappa 0.9): the alpha branch applies
    assert ckd_epi_2021(40, 0.7, female=False) == pytest.approx(142 * (0.7 / 0.9) ** -0.302 * 0.9938**40)


def test_adjusted_body_weight_worked_example():
    # man, 175 cm (68.9 in), 109 kg: ideal 50 + 2.3 x 8.9 = 70.5 kg; BMI 35.6; adjusted 70.5 + 0.4 x 38.5 = 85.9
    assert ideal_body_weight(175, female=False) == pytest.approx(50 + 2.3 * (175 / 2.54 - 60))
    assert body_mass_index(109, 175) == pytest.approx(35.6, abs=0.05)
    weight, which = dosing_weight(109, 175, female=False, obese_bmi=30, factor=0.4)
    assert which == "adjusted" and weight == pytest.approx(85.9, abs=0.05)
    assert round(cockcroft_gault(45, weight, 2.17, female=False)) == 52
    assert round(cockcroft_gault(45, 109, 2.17, female=False)) == 66  # actual weight: the overestimate


heights = st.floats(min_value=140, max_value=210)


@given(st.floats(min_value=30, max_value=250), heights, st.booleans())
def test_dosing_weight_lies_between_ideal_and_actual(weight, height, female):
    used, which = dosing_weight(weight, height, female, obese_bmi=30, factor=0.4)
    ideal = ideal_body_weight(height, female)
    assert used <= weight + 1e-9
    if which == "adjusted":
        assert body_mass_index(weight, height) >= 30 and ideal < used < weight
    else:
        assert used == weight  # not obese, or lighter than ideal: actual weight


@given(st.floats(min_value=30, max_value=250), st.floats(min_value=30, max_value=250), heights, st.booleans())
def test_dosing_weight_never_falls_as_weight_rises_on_one_side_of_the_threshold(a, b, height, female):
    """Monotone within each regime. At BMI 30 itself the policy steps down (actual -> adjusted weight):
    hypothesis found a 47.0 kg -> 46.9 kg step in a 140 cm patient; that step is the policy, not a bug."""
    low, high = sorted((a, b))
    assume((body_mass_index(low, height) >= 30) == (body_mass_index(high, height) >= 30))
    assert dosing_weight(low, height, female, 30, 0.4)[0] <= dosing_weight(high, height, female, 30, 0.4)[0] + 1e-9


def test_bedside_schwartz_worked_example():
    assert bedside_schwartz(100, 0.4) == pytest.approx(103.25)  # kidney.org example: 0.413 x 100 / 0.4


@given(ages, weights, creatinines, creatinines)
def test_cockcroft_gault_falls_as_creatinine_rises(age, weight, a, b):
    low, high = sorted((a, b))
    assert cockcroft_gault(age, weight, high, False) <= cockcroft_gault(age, weight, low, False) + 1e-9


@given(ages, weights, creatinines)
def test_cockcroft_gault_female_is_085_of_male(age, weight, scr):
    assert cockcroft_gault(age, weight, scr, True) == pytest.approx(0.85 * cockcroft_gault(age, weight, scr, False))


@given(ages, weights, weights, creatinines)
def test_cockcroft_gault_rises_with_weight(age, a, b, scr):
    light, heavy = sorted((a, b))
    assert cockcroft_gault(age, light, scr, True) <= cockcroft_gault(age, heavy, scr, True) + 1e-9


@given(ages, creatinines, creatinines, st.booleans())
def test_ckd_epi_falls_as_creatinine_rises(age, a, b, female):
    low, high = sorted((a, b))
    assert ckd_epi_2021(age, high, female) <= ckd_epi_2021(age, low, female) + 1e-9


@given(ages, ages, creatinines, st.booleans())
def test_ckd_epi_falls_with_age(a, b, scr, female):
    young, old = sorted((a, b))
    assert ckd_epi_2021(old, scr, female) <= ckd_epi_2021(young, scr, female) + 1e-9


@given(ages, st.floats(min_value=0.2, max_value=20), st.booleans())
def test_ckd_epi_is_continuous_at_kappa(age, _scr, female):
    kappa = 0.7 if female else 0.9
    below, above = ckd_epi_2021(age, kappa * 0.99999, female), ckd_epi_2021(age, kappa * 1.00001, female)
    assert math.isclose(below, above, rel_tol=1e-4)


@pytest.mark.parametrize("bad", [0.0, -1.0])
def test_formulas_refuse_non_positive_creatinine(bad):
    with pytest.raises(ValueError):
        cockcroft_gault(60, 70, bad, False)
    with pytest.raises(ValueError):
        ckd_epi_2021(60, bad, False)


@given(st.floats(min_value=0.1, max_value=20))
def test_magnesium_units_agree(mg_dl):
    """1 mmol/L = 2 mEq/L = 2.4305 mg/dL: the same amount in each unit converts to the same mg/dL."""
    mg = KNOWLEDGE.analytes["magnesium"]
    mmol = mg_dl / 2.4305
    assert to_canonical(mmol, "mmol/L", mg) == pytest.approx(mg_dl)
    assert to_canonical(2 * mmol, "mEq/L", mg) == pytest.approx(mg_dl)


@given(st.floats(min_value=10, max_value=2000))
def test_creatinine_umol_to_mg_dl(umol):
    assert to_canonical(umol, "umol/L", KNOWLEDGE.analytes["creatinine"]) == pytest.approx(umol / 88.4)


@pytest.mark.parametrize(
    ("quantity", "expected"),
    [
        ({"value": 1, "unit": "mg/dL", "system": "http://unitsofmeasure.org", "code": "mg/dL"}, "mg/dL"),
        ({"value": 1, "unit": "MG/DL"}, "mg/dL"),
        ({"value": 1, "unit": "µmol/L"}, "umol/L"),
        ({"value": 1, "unit": "mEq/L"}, "mEq/L"),
        ({"value": 1, "unit": "mL/min/1.73m2"}, "mL/min/{1.73_m2}"),
        ({"value": 1, "unit": "mg%"}, None),  # ambiguous legacy unit: never guessed
        ({"value": 1, "unit": "U/L"}, None),
        ({"value": 1}, None),
    ],
)
def test_unit_recognition(quantity, expected):
    assert ucum_unit(quantity, KNOWLEDGE.unit_aliases) == expected


def test_unknown_unit_is_not_converted():
    assert to_canonical(3.0, None, KNOWLEDGE.analytes["magnesium"]) is None
    assert to_canonical(3.0, "kg", KNOWLEDGE.analytes["magnesium"]) is None
