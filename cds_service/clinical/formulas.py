"""Renal function formulas: pure arithmetic, each with its published constants.

Cockcroft-Gault (Nephron 1976;16:31-41), CKD-EPI 2021 race-free (N Engl J Med 2021;385:1737-49),
bedside Schwartz 2009 (ages 1-18), Devine 1974 ideal body weight and the 0.4 adjusted body weight
used with Cockcroft-Gault in obesity. Creatinine in mg/dL throughout.
"""

from __future__ import annotations


def cockcroft_gault(age_years: float, weight_kg: float, creatinine_mg_dl: float, female: bool) -> float:
    """Creatinine clearance in mL/min (not normalised to body surface area)."""
    _require_positive(weight_kg=weight_kg, creatinine_mg_dl=creatinine_mg_dl)
    clearance = (140.0 - age_years) * weight_kg / (72.0 * creatinine_mg_dl)
    return max(0.0, clearance * (0.85 if female else 1.0))


def ckd_epi_2021(age_years: float, creatinine_mg_dl: float, female: bool) -> float:
    """eGFR in mL/min/1.73 m2 by the 2021 race-free CKD-EPI creatinine equation."""
    _require_positive(creatinine_mg_dl=creatinine_mg_dl)
    kappa, alpha = (0.7, -0.241) if female else (0.9, -0.302)
    ratio = creatinine_mg_dl / kappa
    egfr: float = 142.0 * min(ratio, 1.0) ** alpha * max(ratio, 1.0) ** -1.200 * 0.9938**age_years
    return egfr * (1.012 if female else 1.0)


def bedside_schwartz(height_cm: float, creatinine_mg_dl: float) -> float:
    """eGFR in mL/min/1.73 m2 for children 1-18 years (IDMS-traceable creatinine)."""
    _require_positive(height_cm=height_cm, creatinine_mg_dl=creatinine_mg_dl)
    return 0.413 * height_cm / creatinine_mg_dl


def _require_positive(**values: float) -> None:
    for name, value in values.items():
        if not value > 0:
            raise ValueError(f"{name} must be positive, got {value}")


def body_mass_index(weight_kg: float, height_cm: float) -> float:
    """kg/m2."""
    _require_positive(weight_kg=weight_kg, height_cm=height_cm)
    return weight_kg / (height_cm / 100.0) ** 2


def ideal_body_weight(height_cm: float, female: bool) -> float:
    """Devine 1974: 50 kg (men) or 45.5 kg (women) + 2.3 kg per inch over 5 feet (never below 0)."""
    _require_positive(height_cm=height_cm)
    inches_over_five_feet = height_cm / 2.54 - 60.0
    return max(0.0, (45.5 if female else 50.0) + 2.3 * inches_over_five_feet)


def dosing_weight(
    weight_kg: float, height_cm: float, female: bool, obese_bmi: float, factor: float
) -> tuple[float, str]:
    """The weight for Cockcroft-Gault: adjusted (ideal + factor x excess) when BMI >= obese_bmi, actual
    when lower than ideal or not obese. Returns the weight and which one it is."""
    _require_positive(weight_kg=weight_kg, height_cm=height_cm)
    if body_mass_index(weight_kg, height_cm) < obese_bmi:
        return weight_kg, "actual"
    ideal = ideal_body_weight(height_cm, female)
    if weight_kg <= ideal:
        return weight_kg, "actual"
    return ideal + factor * (weight_kg - ideal), "adjusted"
