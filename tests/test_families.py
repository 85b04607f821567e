"""Rule families and the knowledge, checked against each other: each family declares the rules it speaks
for, the text cases and variants it chooses and the fields it fills (clinical/rules/family.py); the start
stops on any mismatch, and the data (site switches, gating table) picks what runs before a family runs."""

from __future__ import annotations

import copy
from collections import Counter
from datetime import datetime
from typing import Any

import pytest

from cds_service.clinical.context import RuleContext
from cds_service.clinical.engine import RuleEngine
from cds_service.clinical.rules import FAMILIES
from cds_service.clinical.rules.family import declarations
from cds_service.config import settings_from_mapping
from cds_service.knowledge import KnowledgeError
from cds_service.knowledge.loader import build_knowledge, read_tables
from cds_service.service import CdsService

from .conftest import SCENARIOS, SERVICE_FOR, load_json, scenario_cases

pytestmark = pytest.mark.unit
NOW = datetime.fromisoformat("2026-11-15T12:00Z")


def _declared(tables: dict[str, Any]) -> None:
    declarations(FAMILIES, build_knowledge(tables), RuleContext.STANDARD_FACTS)


def _tables() -> dict[str, Any]:
    return copy.deepcopy(read_tables())


def test_a_rule_row_without_a_family_stops_the_start():
    tables = _tables()
    rules = tables["rules.yaml"]["rules"]
    rules["myasthenia-crisis"] = copy.deepcopy(rules["myasthenia-gravis"])
    with pytest.raises(KnowledgeError, match=r"rules.yaml: rule myasthenia-crisis has no rule family"):
        _declared(tables)


def test_a_variant_no_family_chooses_stops_the_start():
    tables = _tables()
    variants = tables["rules.yaml"]["rules"]["mg-high"].setdefault("variants", {})
    variants["pregnant"] = {
        "when": "pregnancy",
        "indicator": "warning",
        "summary": "Mg high in pregnancy: {drug}",
        "source": ["mg-sulfate-label"],
    }
    with pytest.raises(KnowledgeError, match=r"rule mg-high: variant pregnant is chosen by no code"):
        _declared(tables)


def test_a_text_case_no_family_chooses_stops_the_start():
    tables = _tables()
    tables["rules.yaml"]["rules"]["dose-above-ul"]["text"]["summary_child"] = "{drug}: above the limit for a child"
    with pytest.raises(KnowledgeError, match=r"rule dose-above-ul text: summary_child is a case family dosing never"):
        _declared(tables)


def test_a_field_no_family_fills_stops_the_start():
    """{daily} is a field some families fill (the anatomy knows it), but not the conditions family."""
    tables = _tables()
    tables["rules.yaml"]["rules"]["myasthenia-gravis"]["text"]["do"] = "Check {daily} mg a day."
    with pytest.raises(KnowledgeError, match=r"myasthenia-gravis text.do: field \{daily\} is filled by nobody"):
        _declared(tables)


def test_a_table_only_rule_belongs_to_the_family_of_its_drug_class():
    """A drug class of kind risk naming a new rule: the risk family speaks for it, no code needed."""
    tables = _tables()
    rules = tables["rules.yaml"]["rules"]
    rules["low-mg-new-drug"] = copy.deepcopy(rules["low-mg-digoxin"])
    new_class = copy.deepcopy(tables["drugs.yaml"]["classes"]["digoxin"])
    new_class["rule"] = "low-mg-new-drug"
    tables["drugs.yaml"]["classes"]["new-drug"] = new_class
    knowledge = build_knowledge(tables)
    owner = {rule: f.name for f in FAMILIES for rule in f.speaks_for(knowledge)}
    assert owner["low-mg-new-drug"] == "risk" and owner["low-mg-digoxin"] == "risk"


@pytest.fixture
def finding_calls(monkeypatch):
    """Every RuleContext.finding call: (rule id, summary key, variant, fields filled)."""
    calls: list[tuple[str, str, str | None, frozenset[str]]] = []
    original = RuleContext.finding

    def recording(self, rule_id, order, recognised, **kwargs):
        fields = frozenset(
            k
            for k in kwargs
            if k
            not in {
                "found",
                "summary_key",
                "indicator",
                "partner",
                "extra_suggestions",
                "merge_key",
                "spec_suggestions",
                "variant",
                "sources",
            }
        )
        calls.append((rule_id, kwargs.get("summary_key", "summary"), kwargs.get("variant"), fields))
        return original(self, rule_id, order, recognised, **kwargs)

    monkeypatch.setattr(RuleContext, "finding", recording)
    return calls


def _service(tmp_path, **config: Any) -> CdsService:
    return CdsService(settings_from_mapping({"data_dir": str(tmp_path), **config}, now=NOW))


def test_every_card_the_golden_scenarios_build_is_one_its_family_declared(tmp_path, finding_calls):
    """What a family does agrees with what it declares: its fields, its text cases, its variants."""
    service = _service(tmp_path)
    for name, hook in scenario_cases():
        service.call(SERVICE_FOR[hook], load_json(SCENARIOS / name / f"request.{hook}.json"))
    declared = service.engine.declared
    assert {rule for rule, *_ in finding_calls} >= {"renal-severe", "mg-high", "interaction-levothyroxine"}
    for rule, summary_key, variant, fields in finding_calls:
        said = declared[rule]
        assert fields <= said.fields, (rule, sorted(fields - said.fields))
        assert summary_key.removeprefix("summary").removeprefix("_") in said.cases, (rule, summary_key)
        assert variant is None or variant in said.variants, (rule, variant)


def _scenario(service: CdsService, name: str, hook: str = "order-sign") -> list[str]:
    answer = service.call(SERVICE_FOR[hook], load_json(SCENARIOS / name / f"request.{hook}.json"))
    return answer.rules


def test_a_rule_switched_off_is_never_evaluated(tmp_path, finding_calls):
    service = _service(tmp_path, rules={"renal-severe": {"enabled": False}})
    assert _scenario(service, "renal-severe-iv-dose") == []
    assert "renal-severe" not in {rule for rule, *_ in finding_calls}


def test_a_rule_its_gating_row_holds_back_is_never_evaluated(tmp_path, finding_calls):
    """IV magnesium sulfate in CrCl 20-29: monitoring-recheck's gating row does not judge parenteral doses,
    so the family never builds that card (it used to be built, then filtered out)."""
    service = _service(tmp_path)
    assert _scenario(service, "renal-severe-iv-dose") == ["renal-severe"]
    assert [rule for rule, *_ in finding_calls] == ["renal-severe"]


def test_shadow_mode_still_counts_what_gating_held_back_and_not_what_is_switched_off(tmp_path):
    """`simulate` asks the engine to count the cards gating held back: then every enabled rule runs."""
    from cds_service.fhir.gather import gather
    from cds_service.fhir.templates import templates_for
    from cds_service.protocol.request import parse_request
    from cds_service.record import build_record

    def gated_in(service: CdsService) -> Counter[str]:
        hook = "order-sign"
        body = load_json(SCENARIOS / "renal-severe-iv-dose" / f"request.{hook}.json")
        request = parse_request(body, SERVICE_FOR[hook], (hook,))
        data = gather(request, templates_for(service.discovery, SERVICE_FOR[hook], hook), service.settings, None)
        record = build_record(request, data.resources, data.gaps, service.knowledge, service.now())
        counted: Counter[str] = Counter()
        service.engine.evaluate(record, counted)
        return counted

    assert gated_in(_service(tmp_path)) == Counter({"monitoring-recheck": 1})
    assert gated_in(_service(tmp_path, rules={"monitoring-recheck": {"enabled": False}})) == Counter()


def test_the_shipped_knowledge_and_families_agree():
    engine = RuleEngine(build_knowledge(read_tables()))
    assert set(engine.declared) == set(engine.knowledge.rules)
