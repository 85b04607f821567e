"""The knowledge tables: every row sourced, every rule in the catalogue, site overrides checked."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from cds_service.config import ConfigError, settings_from_mapping
from cds_service.knowledge import KnowledgeError, load_knowledge
from cds_service.knowledge.loader import read_tables

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


def test_card_texts_fill_with_the_fields_rules_give():
    fields = {
        "drug": "X",
        "estimate": "CrCl",
        "value": "15",
        "unit": "mL/min",
        "condition": "ESRD",
        "change": "1 → 2",
        "partner_name": "P",
        "mg": "M",
        "spacing": "s",
        "lookback": "180",
        "daily": "9",
        "ul": "350",
        "age": "50 y",
        "other": "O",
        "total": "",
        "due_from": "d1",
        "due_by": "d2",
        "risk": "r",
        "last": "l",
        "high": "8.4",
        "wasting": "furosemide",
        "recheck": "6 h",
    }
    for rule in load_knowledge().rules.values():
        for key, template in rule.text.items():
            assert "{" not in template.format(**fields), (rule.id, key)
        for variant in rule.variants.values():
            for key, template in variant.text.items():
                assert "{" not in template.format(**fields), (rule.id, variant.name, key)


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
