"""Renal function formulas: pure arithmetic, each with its published constants.

Cockcroft-Gault (Nephron 1976;16:31-41), CKD-EPI 2021 race-free (N Engl J Med 2021;385:1737-49),
bedside Schwartz 2009 (ages 1-18). Creatinine in mg/dL throughout.
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
    egfr = 142.0 * min(ratio, 1.0) ** alpha * max(ratio, 1.0) ** -1.200 * 0.9938**age_years
    return egfr * (1.012 if female else 1.0)


def bedside_schwartz(height_cm: float, creatinine_mg_dl: float) -> float:
    """eGFR in mL/min/1.73 m2 for children 1-18 years (IDMS-traceable creatinine)."""
    _require_positive(height_cm=height_cm, creatinine_mg_dl=creatinine_mg_dl)
    return 0.413 * height_cm / creatinine_mg_dl


def _require_positive(**values: float) -> None:
    for name, value in values.items():
        if not value > 0:
            raise ValueError(f"{name} must be positive, got {value}")
