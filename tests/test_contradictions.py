"""`cds-service evaluate` over every golden fixture: no response may contradict itself.

A clinician who sees "remove this order" beside "this level supports the order", the same lab offered
twice, or "remove the IV dose" while magnesium is low stops trusting every card. These checks run on
the real command, over every scenario folder, for both order hooks.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest
import yaml

from cds_service.cli import main
from cds_service.knowledge import load_knowledge

from .conftest import SCENARIOS, load_json, scenario_cases

KNOWLEDGE = load_knowledge()
PLACEHOLDER = re.compile(r"\{[a-z_]+\}")
AGREEING_WORDS = ("supports", "continue", "appropriate", "agrees")
ORDER_REF = re.compile(r"\((MedicationRequest|MedicationStatement)/([A-Za-z0-9\-.]+)\)")


def evaluate(name: str, hook: str, tmp_path: Path, capsys) -> dict:
    folder = SCENARIOS / name
    args = ["evaluate", str(folder / "bundle.json"), "--hook", hook, "--json", "--now", "2026-11-15T12:00:00Z"]
    config = load_json(folder / "expected.json").get("config")
    if config:
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump({"data_dir": str(tmp_path / "data"), **config}))
        args += ["--config", str(path)]
    code = main(args)
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


def contradictions(response: dict) -> list[str]:
    """Every way the cards of one response contradict each other, in words."""
    problems = []
    cards = response["cards"]
    orders_of = {id(c): {m.group(0)[1:-1] for m in ORDER_REF.finditer(c["detail"])} for c in cards}
    deleted = {
        a["resourceId"]: c
        for c in cards
        for s in c.get("suggestions", ())
        for a in s["actions"]
        if a["type"] == "delete"
    }
    for ref, deleting in deleted.items():
        for card in cards:
            if card is not deleting and ref in orders_of[id(card)]:
                said = [w for w in AGREEING_WORDS if w in card["summary"].lower()]
                if said:
                    problems.append(f"{deleting['source']['topic']['code']} deletes {ref}; {card['summary']!r} {said}")
    low = any("(low)" in c["summary"] for c in cards) or any("treating low Mg" in c["summary"] for c in cards)
    for ref, card in deleted.items():
        if low and "This order" in card["detail"] and "read as: parenteral" in card["detail"]:
            problems.append(f"{card['source']['topic']['code']} suggests removing parenteral {ref} while Mg is low")
    labs = Counter(
        coding["code"]
        for c in cards
        for s in c.get("suggestions", ())
        for a in s["actions"]
        if a["type"] == "create"
        for coding in a["resource"]["code"]["coding"]
    )
    problems += [f"lab {code} suggested {n} times" for code, n in labs.items() if n > 1]
    per_rule_order = Counter((c["source"]["topic"]["code"], ref) for c in cards for ref in sorted(orders_of[id(c)])[:1])
    problems += [
        f"{rule} twice for {ref}" for (rule, ref), n in per_rule_order.items() if n > 1 and "duplicate" not in rule
    ]
    problems += [f"summary lost its key words: {c['summary']!r}" for c in cards if not keeps_key_words(c)]
    return problems


def keeps_key_words(card: dict) -> bool:
    """Every fixed word of one of the rule's summary templates is in the summary, in order: only the
    names filled in may be shortened."""
    rule = KNOWLEDGE.rule(card["source"]["topic"]["code"])
    templates = [t for k, t in rule.text.items() if k.startswith("summary")]
    templates += [t for v in rule.variants.values() for k, t in v.text.items() if k.startswith("summary")]
    for template in templates:
        parts = [p.strip() for p in PLACEHOLDER.split(template) if p.strip()]
        at = 0
        for part in parts:
            at = card["summary"].find(part, at)
            if at < 0:
                break
            at += len(part)
        else:
            return True
    return False


@pytest.mark.parametrize(("name", "hook"), scenario_cases())
def test_no_card_contradicts_another(name, hook, tmp_path, capsys):
    assert contradictions(evaluate(name, hook, tmp_path, capsys)) == []


def test_the_check_catches_a_contradiction():
    """The checker itself fails on the response wave 1 gave the dialysis patient with Mg 1.1."""
    deleting = {
        "summary": "Dependence on renal dialysis on problem list: Magnesium sulfate 4 g contraindicated",
        "detail": "- Order: Magnesium sulfate (MedicationRequest/x)\n- This order (MgSO4) read as: parenteral",
        "source": {"topic": {"code": "renal-contraindicated"}},
        "suggestions": [{"actions": [{"type": "delete", "resourceId": "MedicationRequest/x"}]}],
    }
    agreeing = {
        "summary": "Serum Mg 1.1 mg/dL (low) supports Magnesium sulfate 4 g",
        "detail": "- Order: Magnesium sulfate (MedicationRequest/x)",
        "source": {"topic": {"code": "mg-low"}},
    }
    found = contradictions({"cards": [deleting, agreeing]})
    assert any("supports" in p for p in found) and any("parenteral" in p for p in found)
