"""Which renal function estimate to trust for this patient now, and why.

From the latest creatinine: Cockcroft-Gault (adjusted body weight when BMI >= 30) and CKD-EPI 2021
side by side, the tier from the more cautious (a site may pick one); a reported eGFR stands in for
the computed one unless it disagrees with the same creatinine beyond a margin. Children 1-18 y:
bedside Schwartz. Then the problem list: dialysis/ESRD (coded) counts as < 15 mL/min unless a current
laboratory estimate >= 30 says otherwise; a coded CKD stage is a floor when no fresher laboratory
estimate says better. Old labs are missing, never normal, except that an old estimate below 30 keeps
its tier as "last known, recheck". An unknown unit is never guessed.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from ..immutable import immutable
from ..knowledge.model import Knowledge
from ..record.dates import day
from ..record.labs import creatinine_window_days
from ..record.model import ConditionEntry, LabValue, PatientRecord
from .formulas import bedside_schwartz, body_mass_index, ckd_epi_2021, cockcroft_gault, dosing_weight
from .problems import Problems, code_match, how_found

EGFR_UNIT = "mL/min/1.73 m²"


@immutable
class CreatinineRise:
    earlier: LabValue
    latest: LabValue
    description: str
    criterion: str = "KDIGO AKI criteria"  # or KDIGO AKD (a rise within 7-90 days)


@immutable
class RenalAssessment:
    value: float | None = None
    unit: str = "mL/min"
    method: str = ""
    short: str = ""
    bound: str | None = None  # "at most" / "at least" when a lab reported < or >, or a CKD stage floor
    found: tuple[str, ...] = ()
    dialysis: ConditionEntry | None = None
    unknown_reasons: tuple[str, ...] = ()
    rise: CreatinineRise | None = None
    when: datetime | None = None  # date of the lab the estimate rests on
    last_known: bool = False  # older than the impaired lookback but kept: "last known, recheck"
    fact: str = ""  # what the card's "Found:" line says: the estimate(s), the creatinine and its date
    note: str = ""  # a second fact when data disagree: a lab eGFR set aside, coded ESRD outranked
    not_retrieved: bool = False  # the renal results could not be retrieved (a FHIR timeout or error): a data gap

    @property
    def shown_value(self) -> str:
        prefix = {"at most": "≤", "at least": "≥"}.get(self.bound or "", "")
        return f"{prefix}{self.value:.0f}" if self.value is not None else "unknown"

    @property
    def line(self) -> str:
        """'CrCl 27 mL/min (Cockcroft-Gault ..., 2026-11-10)' for the card."""
        when = f", {self.when.date().isoformat()}" if self.when else ""
        return f"{self.short} {self.shown_value} {self.unit} ({self.method}{when})"


def assess_renal_function(record: PatientRecord, knowledge: Knowledge, problems: Problems) -> RenalAssessment:
    p = {name: param.value for name, param in knowledge.renal_function.items()}
    reasons: list[str] = []
    lab = _laboratory_estimate(record, knowledge, p, reasons)
    dialysis_set = knowledge.conditions["dialysis_or_esrd"]
    dialysis = problems.of("dialysis_or_esrd")
    if dialysis is not None:
        problem = f"Found on the {how_found(dialysis, dialysis_set)}"
        # "Current" here is the impaired lookback: the problem list says impaired, so an older estimate
        # cannot overrule it.
        recent = record.now - timedelta(days=p["creatinine_lookback_impaired_days"])
        current = lab is not None and not lab.last_known and lab.bound != "at most" and _since(lab.when, recent)
        if lab is not None and current and _at_least(lab.value, p["outranks_problem_list_at"]):
            return replace(
                lab,
                found=(
                    *lab.found,
                    f"{problem}: not used, the current laboratory estimate "
                    f"({lab.short} {lab.shown_value} {lab.unit}) outranks it",
                ),
                rise=detect_creatinine_rise(record, knowledge),
                note=f"{dialysis.label[:40]} on the problem list: not used, this newer estimate outranks it",
            )
        also = (f"Laboratory estimate: {lab.line}",) if lab is not None else ()
        return RenalAssessment(
            method="dialysis / ESRD on the problem list",
            short="Dialysis/ESRD",
            dialysis=dialysis,
            found=(f"{problem}; counted as renal function < 15 mL/min", *also),
            fact=f"{dialysis.label[:60]} on the problem list",
        )
    lab = _with_stage_floor(knowledge, problems, lab)
    if lab is None:
        return RenalAssessment(unknown_reasons=tuple(reasons), not_retrieved=record.gap("renal") is not None)
    return replace(lab, rise=detect_creatinine_rise(record, knowledge))


def _with_stage_floor(knowledge: Knowledge, problems: Problems, lab: RenalAssessment | None) -> RenalAssessment | None:
    """A coded CKD stage caps the estimate unless a laboratory estimate newer than the entry says better."""
    stages = knowledge.conditions["ckd_stage"]
    stage = problems.of("ckd_stage")
    key = code_match(stage, stages) if stage is not None else None
    if stage is None or key is None:
        return lab
    at_most = stages.at_most[key]
    found = f"Found on the {how_found(stage, stages)}"
    if lab is not None:
        fresher = not lab.last_known and (stage.recorded is None or (lab.when and lab.when > stage.recorded))
        if fresher or (lab.value is not None and lab.value <= at_most and lab.bound != "at least"):
            verdict = "is fresher and used" if fresher else "is no better than the stage and used"
            return replace(lab, found=(*lab.found, f"{found}: the laboratory estimate {verdict}"))
    return RenalAssessment(
        value=at_most,
        unit=EGFR_UNIT,
        method="coded CKD stage on the problem list, used as a floor",
        short="CKD stage: eGFR",
        bound="at most",
        found=(
            f"{found}: eGFR at most {at_most:.0f} {EGFR_UNIT}",
            *((f"Older laboratory estimate not used: {lab.line}",) if lab is not None else ()),
        ),
        when=stage.recorded,
        fact=f"{stage.label[:50]} on the problem list (eGFR at most {at_most:.0f})"
        + (f"; older estimate {lab.short} {lab.shown_value}" if lab is not None else ""),
    )


def _laboratory_estimate(
    record: PatientRecord, knowledge: Knowledge, p: dict[str, float], reasons: list[str]
) -> RenalAssessment | None:
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
        reasons.append(f"latest creatinine {creatinine.stated()}: unit not recognised, not used")
    elif creatinine is not None and creatinine.when < record.now - lookback:
        reasons.append(
            f"no creatinine in the last {p['creatinine_lookback_days']:.0f} days (last: {creatinine.stated()})"
        )
    elif creatinine is not None:
        estimate = _from_creatinine(record, creatinine, p, knowledge, reasons)
    if estimate is None:
        estimate = _reported_egfr(record, knowledge, lookback, creatinine if creatinine and creatinine.usable else None)
    if estimate is None:
        if creatinine is None and not gap:
            reasons.append(
                f"no serum creatinine or eGFR on record in the last {p['creatinine_lookback_days']:.0f} days"
            )
        return None
    impaired_lookback = timedelta(days=p["creatinine_lookback_impaired_days"])
    when = estimate.when
    if when is not None and when < record.now - impaired_lookback and _below(estimate.value, p["impaired_below"]):
        age = f"{when.date().isoformat()}, older than {p['creatinine_lookback_impaired_days']:.0f} days"
        if _below(estimate.value, p["stale_keeps_tier_below"]) and estimate.bound != "at least":
            return replace(
                estimate,
                last_known=True,
                short=f"Last known {estimate.short}",
                found=(*estimate.found, f"Last known estimate ({age}): its tier is kept; recheck creatinine"),
                fact=f"Last known: {estimate.fact}; nothing newer",
            )
        reasons.append(
            f"last estimate {estimate.short} {estimate.shown_value} {estimate.unit} on {day(when)} showed "
            f"impaired function; none in the last {p['creatinine_lookback_impaired_days']:.0f} days"
        )
        return None
    return estimate


def _from_creatinine(
    record: PatientRecord, scr: LabValue, p: dict[str, float], knowledge: Knowledge, reasons: list[str]
) -> RenalAssessment | None:
    creatinine = _positive(scr)
    if creatinine is None:
        reasons.append(f"latest creatinine {scr.stated()} is not a plausible value")
        return None
    exact_age = record.age_at(scr.when)
    if exact_age is None:
        reasons.append("birth date unknown: no creatinine-based estimate possible")
        return None
    age = float(int(exact_age))  # completed years, as clinical calculators take it
    bound = {"<": "at least", "<=": "at least", ">": "at most", ">=": "at most"}.get(scr.comparator or "")
    age_line = f"Age {int(age)} y at the creatinine date; sex {record.sex or 'not recorded'}"
    if exact_age < p["adult_age_years"]:
        return _child(record, scr, creatinine, exact_age, p, bound, age_line, reasons)
    if record.sex not in ("male", "female"):
        reasons.append("sex not recorded as male or female, which Cockcroft-Gault and CKD-EPI need")
        return None
    female = record.sex == "female"
    lines = [f"Creatinine {scr.shown()}", age_line]
    crcl = _cockcroft_gault(record, creatinine, age, female, p, lines)
    notes: list[str] = []
    egfr = _egfr_for(record, knowledge, scr, creatinine, age, female, p, lines, notes)
    chosen = _choose(crcl, egfr, knowledge.renal_estimate)
    if crcl is not None and egfr is not None:
        policy = {
            "cautious": "the more cautious of the two",
            "cockcroft-gault": "Cockcroft-Gault (site setting)",
            "ckd-epi": "eGFR (site setting)",
        }[knowledge.renal_estimate]
        lines.append(f"Tier set by {policy}: {chosen[1]} {chosen[0]:.0f} {chosen[3]}")
    value, short, method, unit = chosen
    return RenalAssessment(
        value=value,
        unit=unit,
        method=method,
        short=short,
        bound=bound,
        found=tuple(lines),
        when=scr.when,
        fact=_adult_fact(crcl, egfr, scr),
        note="; ".join(notes),
    )


def _adult_fact(crcl: Candidate | None, egfr: Candidate, scr: LabValue) -> str:
    """'CrCl 21 mL/min (Cockcroft-Gault), eGFR 22 (CKD-EPI 2021); creatinine 2.9 mg/dL on 3 Dec 2026'."""
    egfr_how = "lab" if egfr[2].startswith("eGFR reported") else "CKD-EPI 2021"
    parts = [f"CrCl {crcl[0]:.0f} mL/min (Cockcroft-Gault)"] if crcl is not None else []
    parts.append(f"eGFR {egfr[0]:.0f} ({egfr_how})" if parts else f"eGFR {egfr[0]:.0f} {EGFR_UNIT} ({egfr_how})")
    missing = "" if crcl is not None else "; no current weight for CrCl"
    return f"{', '.join(parts)}; creatinine {scr.stated()}{missing}"


Candidate = tuple[float, str, str, str]  # value, short name, method, unit


def _choose(crcl: Candidate | None, egfr: Candidate | None, policy: str) -> Candidate:
    options = [c for c in (crcl, egfr) if c is not None]
    if policy == "cockcroft-gault" and crcl is not None:
        return crcl
    if policy == "ckd-epi" and egfr is not None:
        return egfr
    return min(options, key=lambda c: c[0])


def _cockcroft_gault(
    record: PatientRecord, creatinine: float, age: float, female: bool, p: dict[str, float], lines: list[str]
) -> Candidate | None:
    weight = record.latest("weight", p["weight_lookback_days"])
    kg = _positive(weight)
    if weight is None or kg is None:
        lines.append("Cockcroft-Gault not computable: no current body weight")
        return None
    height = record.latest("height", p["height_lookback_days"])
    cm = _positive(height)
    if height is not None and cm is not None:
        used, which = dosing_weight(kg, cm, female, p["obese_bmi"], p["adjusted_weight_factor"])
        bmi = body_mass_index(kg, cm)
        how = f"{which} body weight {used:.0f} kg; BMI {bmi:.0f}"
        lines.append(f"Weight {weight.shown()}; height {height.shown()}")
    else:
        used, how = kg, "actual body weight; no height, so BMI unknown"
        lines.append(f"Weight {weight.shown()}")
    value = cockcroft_gault(age, used, creatinine, female)
    lines.append(f"Cockcroft-Gault CrCl **{value:.0f} mL/min** ({how})")
    return value, "CrCl", f"Cockcroft-Gault creatinine clearance, {how.split(';')[0]}", "mL/min"


def _egfr_for(
    record: PatientRecord,
    knowledge: Knowledge,
    scr: LabValue,
    creatinine: float,
    age: float,
    female: bool,
    p: dict[str, float],
    lines: list[str],
    notes: list[str],
) -> Candidate:
    """CKD-EPI 2021 computed; the lab's own eGFR from the same creatinine stands in when it agrees."""
    computed = ckd_epi_2021(age, creatinine, female)
    reported = _reported_egfr(record, knowledge, timedelta(days=p["creatinine_lookback_days"]), scr)
    for lab in record.series("egfr")[:1]:
        if not lab.usable:
            lines.append(
                f"Reported eGFR {lab.shown()} not used: unit '{lab.original_unit}' is not an eGFR unit (mL/min/1.73 m²)"
            )
    if reported is not None and reported.value is not None:
        margin = p["egfr_disagreement_margin"]
        if reported.bound is None and abs(reported.value - computed) > margin * computed:
            lines.append(
                f"Reported {reported.found[0]} set aside: CKD-EPI 2021 from the same creatinine gives "
                f"{computed:.0f}, more than {margin:.0%} apart"
            )
            when = f" on {day(reported.when)}" if reported.when else ""
            notes.append(
                f"Lab eGFR {reported.value:.0f}{when} set aside: more than {margin:.0%} "
                f"from CKD-EPI 2021 ({computed:.0f})"
            )
        elif reported.bound is None:
            lines.append(f"{reported.found[0]}; CKD-EPI 2021 computed {computed:.0f} {EGFR_UNIT}")
            return reported.value, "eGFR", reported.method, EGFR_UNIT
    lines.append(f"CKD-EPI 2021 eGFR **{computed:.0f} {EGFR_UNIT}** (computed)")
    return computed, "eGFR", "CKD-EPI 2021, computed", EGFR_UNIT


def _child(
    record: PatientRecord,
    scr: LabValue,
    creatinine: float,
    age: float,
    p: dict[str, float],
    bound: str | None,
    age_line: str,
    reasons: list[str],
) -> RenalAssessment | None:
    if age < p["child_min_age_years"]:
        reasons.append("under 1 year: no validated creatinine-based estimate")
        return None
    height = record.latest("height", p["height_lookback_days"])
    cm = _positive(height)
    if height is None or cm is None:
        reasons.append("child: body height needed for the bedside Schwartz estimate is missing or not current")
        return None
    egfr = bedside_schwartz(cm, creatinine)
    return RenalAssessment(
        value=egfr,
        unit=EGFR_UNIT,
        method="bedside Schwartz eGFR (child)",
        short="eGFR",
        bound=bound,
        found=(f"Creatinine {scr.shown()}", f"Height {height.shown()}", age_line),
        when=scr.when,
        fact=f"eGFR {egfr:.0f} {EGFR_UNIT} (bedside Schwartz); creatinine {scr.stated()}",
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
        unit=EGFR_UNIT,
        method=f"eGFR reported by the lab ({method})",
        short="eGFR",
        bound=bound,
        found=(f"eGFR {chosen.shown()} (LOINC {chosen.code})",),
        when=chosen.when,
        fact=f"eGFR {chosen.stated()} (reported by the lab)",
    )


def detect_creatinine_rise(record: PatientRecord, knowledge: Knowledge) -> CreatinineRise | None:
    """KDIGO AKI by creatinine: latest rose >= 0.3 mg/dL within 48 h or >= 1.5x within 7 days; KDIGO AKD: a
    rise of ratio_akd or more within 7-90 days (a creatinine from 0.74 to 3.02 in 35 days is not stable)."""
    spec = knowledge.rules["renal-unstable"]
    series = [(lab, value) for lab in record.series("creatinine") if (value := _positive(lab)) is not None]
    if len(series) < 2:
        return None
    latest, now_value = series[0]
    akd_days = creatinine_window_days(knowledge)  # the window the record read creatinine for
    best: CreatinineRise | None = None
    best_delta = 0.0
    for earlier, then_value in series[1:]:
        elapsed = latest.when - earlier.when
        if elapsed > timedelta(days=akd_days):
            break
        hours = elapsed.total_seconds() / 3600
        delta = now_value - then_value
        ratio = now_value / then_value
        if elapsed <= timedelta(days=7):
            absolute = elapsed <= timedelta(hours=48) and delta >= spec.value("rise_48h") - 1e-9
            hit, criterion = absolute or ratio >= spec.value("ratio_7d") - 1e-9, "KDIGO AKI criteria"
        else:
            hit, criterion = ratio >= spec.value("ratio_akd") - 1e-9, "KDIGO AKD: a rise within 7-90 days"
        if hit:
            text = (
                f"{then_value:.2f} → {now_value:.2f} mg/dL in {hours:.0f} h"
                if hours < 72
                else f"{then_value:.2f} → {now_value:.2f} mg/dL in {hours / 24:.0f} d"
            )
            if best is None or delta > best_delta:
                best, best_delta = CreatinineRise(earlier, latest, text, criterion), delta
    return best


def _positive(lab: LabValue | None) -> float | None:
    """A usable value above 0 (a creatinine, a weight, a height), else None: 0 or less is no measurement."""
    return lab.value if lab is not None and lab.value is not None and lab.value > 0 else None


def _since(when: datetime | None, start: datetime) -> bool:
    return when is not None and when >= start


def _at_least(value: float | None, limit: float) -> bool:
    return value is not None and value >= limit


def _below(value: float | None, limit: float) -> bool:
    return value is not None and value < limit
