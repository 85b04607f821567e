"""Which problem-list entries say what: coded Conditions by their codes, free text only as a last resort.

A problem list is where "history of ESRD, s/p kidney transplant" lives beside a normal creatinine. A
Condition coded in SNOMED CT or ICD-10-CM is judged by its codes alone; the words of a Condition are
read only when it carries no such code, and never when they say the problem is past or replaced.
"""

from __future__ import annotations

import re

from ..knowledge.model import ConditionSet, Knowledge
from ..record.model import ConditionEntry, PatientRecord


class Problems:
    """The problem list as the rules ask it, once per request: each condition set of the knowledge
    (conditions.yaml) is looked up at most once, whichever rule asks first."""

    __slots__ = ("_found", "_knowledge", "_record")

    def __init__(self, record: PatientRecord, knowledge: Knowledge) -> None:
        self._record, self._knowledge = record, knowledge
        self._found: dict[str, ConditionEntry | None] = {}

    def of(self, name: str) -> ConditionEntry | None:
        """The first active entry in the condition set `name` (coded first, then free text), or None."""
        if name not in self._found:
            self._found[name] = find_condition(self._record, self._knowledge.conditions[name])
        return self._found[name]


def find_condition(record: PatientRecord, condition_set: ConditionSet) -> ConditionEntry | None:
    """The first active problem-list entry in the set: coded matches first, then free-text ones."""
    coded = [c for c in record.conditions if _is_coded(c, condition_set)]
    for condition in coded:
        if code_match(condition, condition_set) is not None:
            return condition
    for condition in record.conditions:
        if condition not in coded and text_match(condition.text, condition_set):
            return condition
    return None


def code_match(condition: ConditionEntry, condition_set: ConditionSet) -> tuple[str, str] | None:
    """The (system, code) of the condition that puts it in the set, if any."""
    for coding in condition.codings:
        key = (coding.system or "", coding.code or "")
        if key in condition_set.codes:
            return key
        if (
            coding.system == "http://hl7.org/fhir/sid/icd-10-cm"
            and coding.code
            and any(coding.code.upper().startswith(prefix) for prefix in condition_set.icd10_prefixes)
        ):
            return key
    return None


def how_found(condition: ConditionEntry, condition_set: ConditionSet) -> str:
    key = code_match(condition, condition_set)
    if key is None:
        return f"problem list (free text): {condition.label} ({condition.reference})"
    system = "SNOMED CT" if "snomed" in key[0] else "ICD-10-CM" if "icd-10" in key[0] else key[0]
    return f"problem list: {condition.label} ({system} {key[1]}, {condition.reference})"


def _is_coded(condition: ConditionEntry, condition_set: ConditionSet) -> bool:
    return any(c.system in condition_set.coded_systems and c.code for c in condition.codings)


def text_match(text: str, condition_set: ConditionSet) -> bool:
    lowered = " " + " ".join(re.findall(r"[a-z0-9/\-]+", text.lower())) + " "
    if not text or any(f" {word} " in lowered for word in condition_set.not_when):
        return False
    return any(f" {phrase} " in lowered for phrase in condition_set.phrases)
