"""The knowledge tables: every row sourced, every rule in the catalogue, site overrides checked."""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path

import pytest

from cds_service.config import ConfigError, settings_from_mapping
from cds_service.knowledge import KnowledgeError, load_knowledge
from cds_service.knowledge.anatomy import FIELDS, check_texts, fill
from cds_service.knowledge.loader import build_knowledge, read_tables

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
SHARED_DATA = ROOT.parent / "shared" / "data"  # third-party data (Synthea, the Sandbox's RxNorm table)


def _walk(node, path=""):
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            yield from _walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, f"{path}[{i}]")


def test_every_row_with_a_value_has_a_source():
    """A parameter, code, salt, product or rule without a source is a failure a pharmacist would flag."""
    tables = read_tables()
    sources = set(tables["sources.yaml"]["sources"])
    missing, unknown = [], []
    for name, table in tables.items():
        if name == "sources.yaml":
            continue
        for path, row in _walk(table):
            needs = any(
                k in row
                for k in (
                    "value",
                    "rxnorm_in",
                    "rxcui",
                    "prefix",
                    "indicator",
                    "factors",
                    "atc",
                    "before_h",
                    "after_h",
                    "min_daily_mg",
                    "elemental_fraction",
                )
            )
            needs = needs or ("code" in row and "display" in row and name == "labs.yaml")
            cited = row.get("source") or row.get("factor_source")
            if needs and not cited:
                missing.append(f"{name}{path}")
            for sid in [cited] if isinstance(cited, str) else cited or []:
                if sid not in sources:
                    unknown.append(f"{name}{path}: {sid}")
    assert not missing, f"rows without a source: {missing}"
    assert not unknown, f"rows citing unknown sources: {unknown}"


def test_every_source_has_a_status_and_https_url():
    for sid, src in load_knowledge().sources.items():
        assert src.status in {"VERIFIED", "SECONDARY", "POLICY", "UNVERIFIED"}, sid
        assert src.url is None or src.url.startswith("https://"), sid


def readme_rule_ids(readme: str = README) -> set[str]:
    """The rule ids of the README's rule table (the catalogue people read). A row may list a family on
    one line: `interaction-fluoroquinolone`, `-tetracycline` is interaction-fluoroquinolone and
    interaction-tetracycline."""
    table = readme.split("| rule id |", 1)[1].split("\n\n", 1)[0]
    ids = set()
    for row in table.splitlines()[2:]:
        first_cell = row.split("|")[1]
        names = re.findall(r"`(-?[a-z]+(?:-[a-z]+)*)`", first_cell)
        family = names[0].split("-", 1)[0] if names else ""
        ids |= {f"{family}{name}" if name.startswith("-") else name for name in names}
    return ids


def test_the_readme_rule_table_and_rules_yaml_list_the_same_rules():
    """The catalogue of record is rules.yaml (what runs) and the README's table (what people read):
    a rule added to one and not the other fails here, naming it."""
    in_readme = readme_rule_ids()
    in_yaml = set(read_tables()["rules.yaml"]["rules"])
    assert in_yaml - in_readme == set(), f"rules in rules.yaml missing from the README's table: {in_yaml - in_readme}"
    assert in_readme - in_yaml == set(), f"rules in the README's table that rules.yaml lacks: {in_readme - in_yaml}"


def test_the_rule_table_reader_reads_families_and_ignores_the_rest():
    """The reader above, on a table like the README's: it must not pass by reading nothing."""
    table = (
        "x\n| rule id | fires when | suggestion |\n|---|---|---|\n"
        "| `renal-severe` (critical) | 20-29 | delete |\n"
        "| `depletion-diuretic`, `-calcineurin-inhibitor` (info) | `not-an-id` here | serum Mg |\n\nafter `mg-high`\n"
    )
    assert readme_rule_ids(table) == {"renal-severe", "depletion-diuretic", "depletion-calcineurin-inhibitor"}
    assert len(readme_rule_ids()) >= 20


def test_ci_has_the_third_party_data_beside_the_clone():
    """Tests of the third-party data in ../shared/data skip, saying why, where it is absent; CI has it,
    so there its absence is a failure, not a quiet skip."""
    if not os.environ.get("CI"):
        pytest.skip("outside CI the third-party data beside the clone (../shared/data) is optional")
    assert SHARED_DATA.is_dir(), f"CI runs with the third-party data at {SHARED_DATA}; it is missing"


def test_every_card_template_names_known_fields_and_fits_the_budget():
    """The load-time check (knowledge/anatomy.py) holds for the shipped rules, variants included."""
    for rule in load_knowledge().rules.values():
        check_texts(rule.id, rule.text)
        for variant in rule.variants.values():
            check_texts(f"{rule.id}.{variant.name}", {**rule.text, **variant.text})


def _with_text(rule_id: str, **text):
    tables = copy.deepcopy(read_tables())
    tables["rules.yaml"]["rules"][rule_id]["text"].update(text)
    return tables


def test_a_template_naming_an_unknown_field_stops_the_start():
    with pytest.raises(KnowledgeError, match=r"myasthenia-gravis.text.do: unknown field '\{dose_x\}'"):
        build_knowledge(_with_text("myasthenia-gravis", do="Give {dose_x}."))


def test_a_summary_that_can_exceed_140_characters_stops_the_start():
    long = "{drug} " + "and a very long verdict " * 4 + "{risk}"
    with pytest.raises(KnowledgeError, match=r"myasthenia-gravis.text.summary: can reach \d+ characters"):
        build_knowledge(_with_text("myasthenia-gravis", summary=long))


def test_a_detail_that_can_exceed_700_characters_stops_the_start():
    why = "Magnesium reduces acetylcholine release at the neuromuscular junction. " * 9
    with pytest.raises(KnowledgeError, match=r"myasthenia-gravis.text: the detail can reach \d+ characters"):
        build_knowledge(_with_text("myasthenia-gravis", why=why))


def test_a_fact_longer_than_its_bound_is_shortened_when_filled():
    filled = fill("{renal}", {"renal": "x" * 500})
    assert len(filled) == FIELDS["renal"] and filled.endswith("…")
    assert fill("{renal}; {treatment}", {"renal": "CrCl 21"}) == ""  # a fact with nothing to say is left out


def test_site_overrides_apply():
    knowledge = load_knowledge(
        {
            "rules": {"mg-high": {"parameters": {"upper_limit": 2.5}}, "renal-moderate": {"enabled": False}},
            "lab_lookbacks": {"magnesium_days": 30},
        }
    )
    assert knowledge.rule("mg-high").value("upper_limit") == 2.5
    assert not knowledge.enabled("renal-moderate")
    assert knowledge.lab_lookbacks["magnesium_days"].value == 30
    assert load_knowledge().rule("mg-high").value("upper_limit") == 2.6  # defaults untouched


@pytest.mark.parametrize(
    ("config", "names"),
    [
        ({"rules": {"no-such-rule": {"enabled": False}}}, "rules.no-such-rule"),
        ({"rules": {"mg-high": {"parameters": {"upper": 2}}}}, "rules.mg-high.parameters.upper"),
        ({"rules": {"mg-high": {"parameters": {"upper_limit": "high"}}}}, "rules.mg-high.parameters.upper_limit"),
        ({"rules": {"mg-high": {"enabled": "no"}}}, "rules.mg-high.enabled"),
        ({"rules": {"renal-severe": {"parameters": {"below": 10}}}}, "renal tiers"),
        ({"renal_function": {"creatinine_lookback": 10}}, "renal_function.creatinine_lookback"),
        ({"fhir": {"timeout_seconds": -1}}, "fhir.timeout_seconds"),
        ({"fhir": {"servers": [{"base_url": "http://ehr.example/fhir"}]}}, "https required"),
        ({"colour": "blue"}, "unknown key 'colour'"),
        (
            {
                "security": {
                    "trusted_issuers": [{"iss": "https://ehr", "jwks_url": "https://ehr/jwks", "algorithms": ["HS256"]}]
                }
            },
            "security.trusted_issuers[0].algorithms",
        ),
        (
            {"security": {"trusted_issuers": [{"iss": "https://ehr", "jwks_url": "http://ehr.example/jwks"}]}},
            "JWKS URLs must be https",
        ),
        ({"security": {"trusted_issuers": [{"iss": "https://ehr"}]}}, "give jwks_url, jwks"),
        ({"public_base_url": "cds.example.org"}, "public_base_url"),
    ],
)
def test_invalid_configuration_names_the_key(config, names):
    with pytest.raises((ConfigError, KnowledgeError), match=re.escape(names)):
        settings_from_mapping(config)


def test_every_catalogue_rule_fires_in_a_fixture_and_is_silent_in_others():
    from .cards_check import silent_rules
    from .conftest import SCENARIOS, load_json

    fired, silent = set(), set()
    for expected in SCENARIOS.glob("*/expected.json"):
        for hook in load_json(expected)["hooks"].values():
            fired |= {card["rule"] for card in hook["cards"]}
            silent |= silent_rules(hook)
    rules = set(load_knowledge().rules)
    assert rules - fired == set(), f"rules no fixture makes fire: {rules - fired}"
    assert rules - silent == set(), f"rules never checked to stay silent: {rules - silent}"


def test_every_source_link_was_checked_and_local_policy_says_what_it_is():
    """A link opens the document its citation names (checked against a stored copy, or marked unchecked);
    the service's own policy has no link to an unrelated document and a one-sentence claim to show."""
    for source in load_knowledge().sources.values():
        if source.local_policy:
            assert source.url is None and source.claim, source.id
            continue
        if source.url:
            assert source.checked is not None and source.checked.on, source.id
            assert not re.search(r"search\.cfm\?query=", source.url), source.id  # a search page is no document


def test_a_rule_naming_a_suggestion_not_in_the_registry_stops_the_start():
    tables = copy.deepcopy(read_tables())
    tables["rules.yaml"]["rules"]["renal-severe"]["variants"]["parenteral"]["suggestions"] = ["order-pizza"]
    with pytest.raises(KnowledgeError, match=r"variants.parenteral.suggestions: unknown suggestion 'order-pizza'"):
        build_knowledge(tables)


def test_the_discovery_prefetch_asks_for_exactly_the_lab_codes_the_knowledge_reads():
    """hooks/discovery.json spells the LOINC codes of labs.yaml out by hand: each analyte's codes sit in one
    Observation template, whole, in every service, and no template asks for a code the knowledge ignores."""
    from cds_service.protocol.schemas import discovery_document

    analytes = load_knowledge().analytes
    wanted = {code: name for name, analyte in analytes.items() for code in analyte.codes}
    for service in discovery_document()["services"]:
        asked: dict[str, str] = {}
        for key, template in service["prefetch"].items():
            if template.startswith("Observation?"):
                for code in re.findall(r"http://loinc.org\|([\d-]+)", template):
                    asked[code] = key
        assert set(asked) == set(wanted), (service["id"], set(asked) ^ set(wanted))
        for name in analytes:
            keys = {asked[code] for code in analytes[name].codes}
            assert len(keys) == 1, (service["id"], name, keys)  # an analyte is never split across templates
