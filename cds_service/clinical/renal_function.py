"""Which renal function estimate to trust for this patient now, and why.

Order of preference (clinical-rules.md): dialysis/ESRD on the problem list; Cockcroft-Gault from
the latest creatinine, weight, age and sex; else a reported eGFR no older than that creatinine;
else CKD-EPI 2021 computed; children 1-18 y: bedside Schwartz with height. Old labs are missing,
never normal; an unknown unit is never guessed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from ..knowledge.model import ConditionSet, Knowledge
from ..record.model import ConditionEntry, LabValue, PatientRecord
from .formulas import bedside_schwartz, ckd_epi_2021, cockcroft_gault


@dataclass(frozen=True, slots=True)
class CreatinineRise:
    earlier: LabValue
    latest: LabValue
    description: str


@dataclass(frozen=True, slots=True)
class RenalAssessment:
    value: float | None = None
    unit: str = "mL/min"
    method: str = ""
    short: str = ""
    bound: str | None = None  # "at most" / "at least" when a lab reported < or >
    found: tuple[str, ...] = ()
    dialysis: ConditionEntry | None = None
    unknown_reasons: tuple[str, ...] = ()
    rise: CreatinineRise | None = None

    @property
    def shown_value(self) -> str:
        prefix = {"at most": "≤", "at least": "≥"}.get(self.bound or "", "")
        return f"{prefix}{self.value:.0f}" if self.value is not None else "unknown"


def find_condition(record: PatientRecord, condition_set: ConditionSet) -> ConditionEntry | None:
    for condition in record.conditions:
        if any((c.system, c.code) in condition_set.codes for c in condition.codings):
            return condition
        text = " ".join([condition.text, *(c.display or "" for c in condition.codings)]).lower()
        if any(phrase in text for phrase in condition_set.phrases):
            return condition
    return None


def assess_renal_function(record: PatientRecord, knowledge: Knowledge) -> RenalAssessment:
    p = {name: param.value for name, param in knowledge.renal_function.items()}
    dialysis = find_condition(record, knowledge.conditions["dialysis_or_esrd"])
    if dialysis is not None:
        label = dialysis.text or next((c.display for c in dialysis.codings if c.display), "dialysis / ESRD")
        return RenalAssessment(
            method="dialysis / ESRD on the problem list",
            short="Dialysis/ESRD",
            dialysis=dialysis,
            found=(f"Problem list: {label} ({dialysis.reference}); counted as renal function < 15 mL/min",),
        )
    reasons: list[str] = []
    gap = record.gap("renal")
    if gap:
        reasons.append(f"creatinine/eGFR results could not be retrieved: {gap.reason}")
    if not record.patient_known:
        patient_gap = record.gap("patient")
        reasons.append(
            "patient demographics (age, sex) unavailable" + (f": {patient_gap.reason}" if patient_gap else "")
        )

    lookback = timedelta(days=p["creatinine_lookback_days"])
    creatinine = record.latest("creatinine")
    estimate: RenalAssessment | None = None
    if creatinine is not None and not creatinine.usable:
        reasons.append(f"latest creatinine {creatinine.shown()}: unit '{creatinine.original_unit}' not recognised")
    elif creatinine is not None and creatinine.when < record.now - lookback:
        reasons.append(f"latest creatinine {creatinine.shown()} is older than {p['creatinine_lookback_days']:.0f} days")
    elif creatinine is not None:
        estimate = _from_creatinine(record, creatinine, p, knowledge, reasons)
    if estimate is None:
        estimate = _reported_egfr(record, knowledge, lookback, creatinine if creatinine and creatinine.usable else None)
    if estimate is None:
        if creatinine is None and not gap:
            reasons.append(
                f"no serum creatinine or eGFR on record in the last {p['creatinine_lookback_days']:.0f} days"
            )
        return RenalAssessment(unknown_reasons=tuple(reasons))
    newest_input = _newest_renal_lab_date(record)
    impaired_lookback = timedelta(days=p["creatinine_lookback_impaired_days"])
    if (
        estimate.value is not None
        and estimate.value < p["impaired_below"]
        and newest_input is not None
        and newest_input < record.now - impaired_lookback
    ):
        return RenalAssessment(
            unknown_reasons=(
                f"last estimate {estimate.short} {estimate.shown_value} {estimate.unit} "
                f"({newest_input.date().isoformat()}) showed impaired function and is older than "
                f"{p['creatinine_lookback_impaired_days']:.0f} days",
            )
        )
    rise = detect_creatinine_rise(record, knowledge)
    return replace(estimate, rise=rise)


def _from_creatinine(
    record: PatientRecord, scr: LabValue, p: dict[str, float], knowledge: Knowledge, reasons: list[str]
) -> RenalAssessment | None:
    if scr.value is None or scr.value <= 0:
        reasons.append(f"latest creatinine {scr.shown()} is not a plausible value")
        return None
    exact_age = record.age_at(scr.when)
    if exact_age is None:
        reasons.append("birth date unknown: no creatinine-based estimate possible")
        return None
    age = float(int(exact_age))  # completed years, as clinical calculators take it
    bound = {"<": "at least", "<=": "at least", ">": "at most", ">=": "at most"}.get(scr.comparator or "")
    age_line = f"Age {int(age)} y at the creatinine date; sex {record.sex or 'not recorded'}"
    if exact_age < p["adult_age_years"]:
        if exact_age < p["child_min_age_years"]:
            reasons.append("under 1 year: no validated creatinine-based estimate")
            return None
        height = record.latest("height", p["height_lookback_days"])
        if height is None or not height.usable or height.value <= 0:
            reasons.append("child: body height needed for the bedside Schwartz estimate is missing or not current")
            return None
        value = bedside_schwartz(height.value, scr.value)
        return RenalAssessment(
            value=value,
            unit="mL/min/1.73 m²",
            method="bedside Schwartz eGFR (child)",
            short="eGFR",
            bound=bound,
            found=(f"Creatinine {scr.shown()}", f"Height {height.shown()}", age_line),
        )
    if record.sex not in ("male", "female"):
        reasons.append("sex not recorded as male or female, which Cockcroft-Gault and CKD-EPI need")
        return None
    female = record.sex == "female"
    weight = record.latest("weight", p["weight_lookback_days"])
    if weight is not None and weight.usable and weight.value > 0:
        value = cockcroft_gault(age, weight.value, scr.value, female)
        return RenalAssessment(
            value=value,
            unit="mL/min",
            method="Cockcroft-Gault creatinine clearance (actual body weight)",
            short="CrCl",
            bound=bound,
            found=(f"Creatinine {scr.shown()}", f"Weight {weight.shown()}", age_line),
        )
    reported = _reported_egfr(record, knowledge, timedelta(days=p["creatinine_lookback_days"]), scr)
    if reported is not None:
        return reported
    value = ckd_epi_2021(age, scr.value, female)
    set_aside = tuple(
        f"Reported eGFR {lab.shown()} not used: unit '{lab.original_unit}' is not an eGFR unit (mL/min/1.73 m²)"
        for lab in record.series("egfr")[:1]
        if not lab.usable
    )
    return RenalAssessment(
        value=value,
        unit="mL/min/1.73 m²",
        method="eGFR by CKD-EPI 2021, computed (no current weight)",
        short="eGFR",
        bound=bound,
        found=(f"Creatinine {scr.shown()}", age_line, *set_aside),
    )


def _reported_egfr(
    record: PatientRecord, knowledge: Knowledge, lookback: timedelta, creatinine: LabValue | None
) -> RenalAssessment | None:
    """The newest usable reported eGFR, preferring CKD-EPI 2021 among results of the same day."""
    analyte = knowledge.analytes["egfr"]
    rank = {code: i for i, code in enumerate(analyte.codes)}
    candidates = [lab for lab in record.series("egfr") if lab.usable and lab.when >= record.now - lookback]
    if creatinine is not None:
        candidates = [lab for lab in candidates if lab.when >= creatinine.when - timedelta(days=1)]
    if not candidates:
        return None
    newest_day = candidates[0].when.date()
    chosen = min((lab for lab in candidates if lab.when.date() == newest_day), key=lambda lab: rank.get(lab.code, 99))
    method = analyte.methods.get(chosen.code, "unspecified")
    bound = {"<": "at most", "<=": "at most", ">": "at least", ">=": "at least"}.get(chosen.comparator or "")
    return RenalAssessment(
        value=chosen.value,
        unit="mL/min/1.73 m²",
        method=f"eGFR reported by the lab ({method})",
        short="eGFR",
        bound=bound,
        found=(f"eGFR {chosen.shown()} (LOINC {chosen.code})",),
    )


def detect_creatinine_rise(record: PatientRecord, knowledge: Knowledge) -> CreatinineRise | None:
    """KDIGO AKI by creatinine: latest rose >= 0.3 mg/dL within 48 h or >= 1.5x within 7 days."""
    spec = knowledge.rules["renal-unstable"]
    series = [lab for lab in record.series("creatinine") if lab.usable and lab.value > 0]
    if len(series) < 2:
        return None
    latest = series[0]
    best: CreatinineRise | None = None
    for earlier in series[1:]:
        elapsed = latest.when - earlier.when
        if elapsed > timedelta(days=7):
            break
        hours = elapsed.total_seconds() / 3600
        delta = latest.value - earlier.value
        absolute = elapsed <= timedelta(hours=48) and delta >= spec.value("rise_48h") - 1e-9
        relative = earlier.value > 0 and latest.value / earlier.value >= spec.value("ratio_7d") - 1e-9
        if absolute or relative:
            text = (
                f"{earlier.value:.2f} → {latest.value:.2f} mg/dL in {hours:.0f} h"
                if hours < 72
                else f"{earlier.value:.2f} → {latest.value:.2f} mg/dL in {hours / 24:.0f} d"
            )
            if best is None or delta > best.latest.value - best.earlier.value:
                best = CreatinineRise(earlier, latest, text)
    return best


def _newest_renal_lab_date(record: PatientRecord) -> datetime | None:
    dates = [lab.when for analyte in ("creatinine", "egfr") for lab in record.series(analyte)[:1]]
    return max(dates) if dates else None
