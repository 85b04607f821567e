"""Kidney failure from the record, not from words: coded Conditions by code, free text only when uncoded."""

from __future__ import annotations

import pytest

from cds_service.clinical.problems import find_condition, how_found
from cds_service.knowledge import KnowledgeError, load_knowledge
from cds_service.record.model import Coding, ConditionEntry, PatientRecord

from .records import patient_record

KNOWLEDGE = load_knowledge()
ICD10, SNOMED = "http://hl7.org/fhir/sid/icd-10-cm", "http://snomed.info/sct"


def record(*conditions: ConditionEntry) -> PatientRecord:
    return patient_record(conditions=conditions)


def problem(text: str, *codings: tuple[str, str]) -> ConditionEntry:
    return ConditionEntry(f"Condition/{len(text)}", tuple(Coding(s, c, text) for s, c in codings), text)


@pytest.mark.parametrize(
    "text",
    [
        "History of ESRD",
        "ESRD, s/p kidney transplant",
        "h/o hemodialysis",
        "Kidney failure - resolved",
        "Family history of kidney failure",
    ],
)
def test_free_text_that_says_past_or_replaced_is_not_kidney_failure(text):
    assert find_condition(record(problem(text)), KNOWLEDGE.conditions["dialysis_or_esrd"]) is None


def test_free_text_counts_when_nothing_is_coded():
    found = find_condition(record(problem("ESRD on hemodialysis")), KNOWLEDGE.conditions["dialysis_or_esrd"])
    assert found is not None
    assert "free text" in how_found(found, KNOWLEDGE.conditions["dialysis_or_esrd"])


def test_a_coded_condition_is_judged_by_its_code_not_its_words():
    # Z94.0 (kidney transplant status) whose text mentions dialysis: the code says what it is
    coded = problem("Kidney transplant, previously on dialysis", (ICD10, "Z94.0"))
    assert find_condition(record(coded), KNOWLEDGE.conditions["dialysis_or_esrd"]) is None
    esrd = problem("ESRD", (ICD10, "N18.6"))
    assert find_condition(record(coded, esrd), KNOWLEDGE.conditions["dialysis_or_esrd"]) is esrd


def test_icd10_prefixes_and_stage_floors():
    pre = problem("Severe pre-eclampsia, third trimester", (ICD10, "O14.13"))
    assert find_condition(record(pre), KNOWLEDGE.conditions["preeclampsia"]) is pre
    stages = KNOWLEDGE.conditions["ckd_stage"]
    assert stages.at_most[(SNOMED, "431857002")] == 29 and stages.at_most[(ICD10, "N18.32")] == 44
    assert find_condition(record(problem("CKD stage 4")), stages) is None  # a floor only from codes


def test_site_picks_the_renal_estimate_and_a_wrong_choice_is_refused():
    assert KNOWLEDGE.renal_estimate == "cautious"
    assert load_knowledge({"renal_function": {"estimate": "ckd-epi"}}).renal_estimate == "ckd-epi"
    with pytest.raises(KnowledgeError, match=r"renal_function\.estimate: must be one of cautious"):
        load_knowledge({"renal_function": {"estimate": "mdrd"}})


def test_each_condition_set_is_looked_up_once_per_request(monkeypatch):
    """The problem list is read once (clinical/problems.Problems): the renal estimate and the renal rule
    both ask for a coded CKD stage, and the list is searched for it one time."""
    import sys
    from collections import Counter
    from dataclasses import replace
    from datetime import date

    from cds_service.clinical import problems
    from cds_service.clinical.engine import RuleEngine
    from cds_service.record.medications import parse_medication

    from .records import patient_record

    looked_up: Counter[str] = Counter()
    names = {id(condition_set): name for name, condition_set in KNOWLEDGE.conditions.items()}
    original = problems.find_condition

    def counting(record, condition_set):
        looked_up[names[id(condition_set)]] += 1
        return original(record, condition_set)

    for module in list(sys.modules.values()):  # wherever the lookup is imported by name
        if getattr(module, "__name__", "").startswith("cds_service") and getattr(module, "find_condition", None):
            monkeypatch.setattr(module, "find_condition", counting)
    resource = {
        "resourceType": "MedicationRequest",
        "id": "m",
        "status": "draft",
        "medicationCodeableConcept": {"text": "Magnesium oxide 400 mg tablet"},
    }
    order = parse_medication(resource, "draft", {})
    assert order is not None
    record = replace(patient_record(order), birth_date=date(1980, 1, 1))
    RuleEngine(KNOWLEDGE).evaluate(record)
    assert looked_up["ckd_stage"] == 1 and max(looked_up.values()) == 1, looked_up
