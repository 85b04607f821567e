"""The order reading and the gating table: how an order is read, and that the table (data) decides."""

from __future__ import annotations

import pytest

from cds_service.config import ConfigError, settings_from_mapping
from cds_service.knowledge import load_knowledge
from cds_service.record.medications import parse_medication
from cds_service.record.order_reading import encounter_setting, read_order

from .cards_check import explanation_text
from .conftest import SCENARIOS, SERVICE, load_json

READING_TABLE = load_knowledge().order_reading
URL = f"/cds-services/{SERVICE}"


def reading(name: str, **dosage):
    resource = {
        "resourceType": "MedicationRequest",
        "id": "x",
        "status": "draft",
        "medicationCodeableConcept": {"text": name},
        "dosageInstruction": [dosage],
    }
    category = dosage.pop("category", None)
    if category:
        resource["category"] = {"coding": [{"system": READING_TABLE.setting_system, "code": category}]}  # one object
    return read_order(parse_medication(resource, "draft", {}), READING_TABLE)


@pytest.mark.parametrize(
    ("name", "dosage", "route", "use"),
    [
        ("Magnesium glycinate 500 mg capsule", {}, "enteral", "long-term"),
        ("Magnesium glycinate 500 mg", {}, "enteral", "long-term"),  # a supplement with no route: assumed oral
        (
            "Magnesium sulfate 4 g/100 mL",
            {"route": {"text": "IV"}, "timing": {"repeat": {"count": 1}}},
            "parenteral",
            "one-time",
        ),
        (
            "Magnesium sulfate 50% injection",
            {"timing": {"repeat": {"count": 4, "frequency": 1, "period": 1, "periodUnit": "h"}}},
            "parenteral",
            "short-course",
        ),
        ("Milk of magnesia oral suspension", {"asNeededBoolean": True}, "enteral", "as-needed"),
        ("Magnesium citrate solution for bowel prep", {}, "enteral", "one-time"),
        ("Epsom salt bath flakes", {}, "not-absorbed", "long-term"),
        ("Magnesium hydroxide enema", {}, "rectal", "long-term"),
        (
            "Pantoprazole 40 mg tablet",
            {"timing": {"repeat": {"boundsPeriod": {"start": "2026-11-01", "end": "2026-11-08"}}}},
            "enteral",
            "short-course",
        ),
        (
            "Pantoprazole 40 mg tablet",
            {"timing": {"repeat": {"boundsDuration": {"value": 8, "code": "d"}}}},
            "enteral",
            "long-term",
        ),
    ],
)
def test_route_class_and_use_are_read_from_the_order(name, dosage, route, use):
    got = reading(name, **dosage)
    assert (got.route, got.use) == (route, use), got.shown()


def test_setting_comes_from_the_category_even_as_a_single_object():
    assert reading("Magnesium oxide 400 mg tablet", category="inpatient").setting == "inpatient"
    assert reading("Magnesium oxide 400 mg tablet", category="discharge").setting == "outpatient"
    assert reading("Magnesium oxide 400 mg tablet").setting == "unknown"


def test_the_gating_table_decides_and_a_site_can_widen_it(make_app):
    """The bath on dialysis is silent because of a row in gating.yaml, not because of code."""
    body = load_json(SCENARIOS / "gate-epsom-bath-dialysis" / "request.order-sign.json")
    assert make_app().test_client().post(URL, json=body).get_json()["cards"] == []
    every = ["enteral", "rectal", "parenteral", "not-absorbed"]
    uses = ["one-time", "short-course", "as-needed", "long-term"]
    config = {"gating": {"renal-contraindicated": {"magnesium": {"routes": every, "uses": uses}}}}
    cards = make_app(config).test_client().post(URL, json=body).get_json()["cards"]
    assert [c["source"]["topic"]["code"] for c in cards] == ["renal-contraindicated"]
    assert "read as: not absorbed" in explanation_text(cards[0])  # the audit trail, not the card text


@pytest.mark.parametrize(
    ("gating", "names"),
    [
        ({"renal-severe": {"magnesium": {"routes": ["oral"], "uses": ["one-time"]}}}, "routes: unknown 'oral'"),
        ({"renal-severe": {"magnesium": "enteral"}}, "must have routes and uses"),
        ({"no-such-rule": {"magnesium": {"routes": [], "uses": []}}}, "no-such-rule: unknown rule id"),
    ],
)
def test_a_bad_gating_override_stops_the_start_naming_the_key(gating, names):
    with pytest.raises(ConfigError, match=names):
        settings_from_mapping({"gating": gating})


@pytest.mark.parametrize(
    ("system", "code", "setting"),
    [
        ("http://terminology.hl7.org/CodeSystem/v3-ActCode", "IMP", "inpatient"),
        ("http://terminology.hl7.org/CodeSystem/v3-ActCode", "EMER", "inpatient"),
        ("http://terminology.hl7.org/CodeSystem/v3-ActCode", "AMB", "outpatient"),
        ("http://terminology.hl7.org/CodeSystem/v3-ActCode", "XYZ", "unknown"),
        ("http://example.org/local-classes", "IMP", "unknown"),  # a local code system is not guessed
    ],
)
def test_encounter_class_gives_the_setting_when_the_order_has_none(system, code, setting):
    from cds_service.record.model import Coding

    assert encounter_setting(Coding(system, code), READING_TABLE) == setting
    resource = {
        "resourceType": "MedicationRequest",
        "id": "x",
        "status": "draft",
        "medicationCodeableConcept": {"text": "Magnesium sulfate 2 g injection"},
    }
    read = read_order(
        parse_medication(resource, "draft", {}), READING_TABLE, encounter_setting(Coding(system, code), READING_TABLE)
    )
    assert read.setting == setting
    categorised = reading("Magnesium sulfate 2 g injection", category="outpatient")
    assert categorised.setting == "outpatient" and categorised.setting_how == "order category"  # the order wins


def _tables_with(change) -> dict:
    import copy

    from cds_service.knowledge.loader import read_tables

    tables = copy.deepcopy(read_tables())
    change(tables["gating.yaml"])
    return tables


def test_a_drug_exception_is_data_and_says_why():
    """cisplatin's single dose is judged because of its row in gating.yaml depletion-other.drugs, not code."""
    from cds_service.knowledge.loader import KnowledgeError, build_knowledge

    gating = load_knowledge().gates["depletion-other"]
    assert gating.drugs["cisplatin"].admits("parenteral", "one-time")
    assert not gating.partner.admits("parenteral", "one-time")
    with pytest.raises(KnowledgeError, match=r"drugs\.cisplatin: every exception says why"):
        build_knowledge(_tables_with(lambda g: g["rules"]["depletion-other"]["drugs"]["cisplatin"].pop("reason")))
    with pytest.raises(KnowledgeError, match=r"not_a_supplement\.drug-salt: unknown rule id 'no-such-rule'"):
        build_knowledge(_tables_with(lambda g: g["not_a_supplement"]["drug-salt"]["rules"].append("no-such-rule")))


def test_magnesium_that_is_no_supplement_is_judged_by_its_rules_only():
    kinds = load_knowledge().not_a_supplement
    assert "renal-contraindicated" in kinds["drug-salt"][0] and "dose-above-ul" not in kinds["drug-salt"][0]
    assert kinds["excipient"][0] == frozenset({"interaction-tetracycline"})
