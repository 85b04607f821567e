"""Every golden card reads in five seconds: within its length budget, in a clinician's words.

Runs every scenario through the service (all hooks, full prefetch) and checks each card returned:
the summary (< 140) names the drug and says what to do; the detail (<= 700) is Found / Do / Why
with the evidence grade in words; each lab value found carries a unit and a date; no resource ids,
repository files, knowledge-status grades, policy keys or parsing vocabulary anywhere a clinician
reads; patient-view never repeats a rule for one concern.
"""

from __future__ import annotations

import re
import statistics
from typing import Any

import pytest

from cds_service.knowledge.anatomy import DETAIL_LIMIT, FACT_SEPARATOR, SUMMARY_LIMIT

from .cards_check import golden_cards

FORBIDDEN = {
    "a FHIR resource id": re.compile(
        r"\b(MedicationRequest|MedicationStatement|Medication|Observation|Condition|Patient|Encounter|ServiceRequest)/"
    ),
    "a repository file": re.compile(r"\b[\w-]+\.(ya?ml|md|py|json)\b|clinical-rules|terminology\b"),
    "a knowledge-status grade": re.compile(r"\b(VERIFIED|SECONDARY|POLICY|UNVERIFIED)\b"),
    "a policy key": re.compile(r"\bservice-[a-z-]+-policy\b|\[[a-z0-9]+(-[a-z0-9]+)+\]"),
    "an unfilled template field": re.compile(r"\{[a-z_]+\}"),
    "parsing vocabulary": re.compile(
        r"\bread as\b|\brecognised as\b|\bRxNorm clinical drug\b|\bby name '|\brule `|\bSaid as\b|\bLOINC\b"
    ),
}
ACTIONS = re.compile(
    r"\b(contraindicated|avoid|reduce|lower|lowest|recheck|check|hold|do not start|correct|replete|give|"
    r"not recommended|keep one|take)\b",
    re.IGNORECASE,
)
LAB_VALUE = re.compile(r"\b(Serum Mg|creatinine|eGFR|CrCl|potassium|calcium)\s*[≤≥<>]?\d", re.IGNORECASE)
DATE = re.compile(r"\b\d{1,2} [A-Z][a-z]{2} \d{4}\b")
NUMBER_WITH_UNIT = re.compile(r"\d\s*(mg|g|mL|mmol|mEq|umol|µmol|%|h|d|days|y|kg|mcg)\b|\d\s*\(|\d [a-z]")
EVIDENCE = re.compile(r"\*Evidence: (high|moderate|low|local policy|low \(expert opinion\))\.\*$")


@pytest.fixture(scope="module")
def golden(tmp_path_factory) -> list[tuple[str, str, dict[str, Any]]]:
    return golden_cards(str(tmp_path_factory.mktemp("quality")))


def _facts(detail: str) -> list[str]:
    found = next((p for p in detail.split("\n\n") if p.startswith("**Found:** ")), "")
    return [f.strip() for f in found.removeprefix("**Found:** ").rstrip(".").split(FACT_SEPARATOR) if f.strip()]


def _read_by_clinician(card: dict[str, Any]) -> list[str]:
    texts = [card["summary"], card.get("detail", "")]
    for suggestion in card.get("suggestions", ()):
        texts.append(suggestion.get("label", ""))
        texts.extend(a.get("description", "") for a in suggestion.get("actions", ()))
    texts.extend(link["label"] for link in card.get("links", ()))
    texts.extend(reason["display"] for reason in card.get("overrideReasons", ()))
    return texts


def assert_readable(card: dict[str, Any], where: str) -> None:
    """One card, any source (golden scenarios, third-party patients): every check above but the median."""
    assert len(card["summary"]) <= SUMMARY_LIMIT and len(card["detail"]) <= DETAIL_LIMIT, where
    parts = card["detail"].split("\n\n")
    assert [p.split(":**")[0] for p in parts] == ["**Found", "**Do", "**Why"] and EVIDENCE.search(parts[-1]), where
    for text in _read_by_clinician(card):
        for what, pattern in FORBIDDEN.items():
            assert not pattern.search(text), f"{where}: {what} in {text!r}"
    for fact in _facts(card["detail"]):
        assert not LAB_VALUE.search(fact) or DATE.search(fact) or "problem list" in fact, (where, fact)
    assert ACTIONS.search(card["summary"]), (where, card["summary"])


def test_there_are_golden_cards_of_every_hook(golden):
    assert {hook for _, hook, _ in golden} == {"order-select", "order-sign", "patient-view"}
    assert len(golden) > 150


def test_every_card_is_within_its_length_budget(golden):
    for name, hook, card in golden:
        assert len(card["summary"]) <= SUMMARY_LIMIT, (name, hook, card["summary"])
        assert len(card["detail"]) <= DETAIL_LIMIT, (name, hook, len(card["detail"]), card["detail"])


def test_median_detail_is_short(golden):
    lengths = [len(card["detail"]) for _, _, card in golden]
    assert statistics.median(lengths) <= 450, statistics.median(lengths)


def test_every_detail_is_found_do_why_with_the_evidence_in_words(golden):
    for name, hook, card in golden:
        parts = card["detail"].split("\n\n")
        assert [p.split(":**")[0] for p in parts] == ["**Found", "**Do", "**Why"], (name, hook, parts)
        assert EVIDENCE.search(parts[-1]), (name, hook, parts[-1])
        assert 1 <= len(_facts(card["detail"])) <= 4, (name, hook, card["detail"])


def test_no_internal_words_where_a_clinician_reads(golden):
    for name, hook, card in golden:
        for text in _read_by_clinician(card):
            for what, pattern in FORBIDDEN.items():
                assert not pattern.search(text), f"{name} {hook}: {what} in {text!r}"


def test_every_lab_value_found_carries_a_unit_and_a_date(golden):
    for name, hook, card in golden:
        for fact in _facts(card["detail"]):
            if LAB_VALUE.search(fact):
                assert DATE.search(fact) or "problem list" in fact, (name, hook, fact)
            if re.search(r"\d", fact):
                assert NUMBER_WITH_UNIT.search(fact), (name, hook, fact)


def test_every_summary_names_the_drug_and_the_action(golden):
    for name, hook, card in golden:
        summary = card["summary"].lower()
        assert ACTIONS.search(summary), (name, hook, card["summary"])
        explained = card["extension"]["mg-cds.explanation"]
        order_lines = [line for line in explained["evidence"] if line.startswith(("Order: ", "Medication: "))]
        drug = order_lines[0].split(": ", 1)[1].split(" (")[0].lower() if order_lines else ""
        first_word = drug.split()[0] if drug else ""
        assert first_word and first_word.rstrip("…") in summary, (name, hook, card["summary"], drug)


def test_patient_view_never_repeats_a_rule_for_one_concern(golden):
    seen: dict[tuple[str, str, str], str] = {}
    for name, hook, card in golden:
        if hook != "patient-view":
            continue
        explained = card["extension"]["mg-cds.explanation"]
        key = (name, explained["rule"], explained.get("partner", ""))
        assert key not in seen, f"{name}: {explained['rule']} twice: {seen.get(key)!r} and {card['summary']!r}"
        seen[key] = card["summary"]


def test_the_explanation_keeps_the_audit_trail(golden):
    for name, hook, card in golden:
        explained = card["extension"]["mg-cds.explanation"]
        assert explained["orders"] and all("/" in ref for ref in explained["orders"]), (name, hook)
        assert any("read as" in line for line in explained["evidence"]) or hook == "patient-view", (name, hook)
