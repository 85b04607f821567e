"""Every route, use and timing question is answered by the one order reading (record/order_reading.py, over
the typed dosage of record/dosage.py): the rules and the gating table ask it, nothing reads a dosage again."""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

import pytest

from cds_service.clinical.engine import RuleEngine
from cds_service.knowledge import load_knowledge
from cds_service.record.medications import parse_medication
from cds_service.record.model import MedicationEntry
from cds_service.record.order_reading import read_order

from .records import patient_record

KNOWLEDGE = load_knowledge()
PACKAGE = Path(__file__).resolve().parent.parent / "cds_service"


def order(name: str, route: str | None = None, ident: str = "x", **dosage: object) -> MedicationEntry:
    instruction: dict[str, object] = {**dosage, **({"route": {"text": route}} if route else {})}
    resource = {
        "resourceType": "MedicationRequest",
        "id": ident,
        "status": "draft",
        "medicationCodeableConcept": {"text": name},
        "dosageInstruction": [instruction],
    }
    entry = parse_medication(resource, "draft", {})
    assert entry is not None
    return entry


def daily(frequency: float, unit: str = "d", **repeat: object) -> dict[str, object]:
    return {"timing": {"repeat": {"frequency": frequency, "period": 1, "periodUnit": unit, **repeat}}}


CASES = [
    # name, route text, dosage -> route class, use, doses a day, course days
    ("Magnesium oxide 400 mg", "via NG tube", daily(2), "enteral", "long-term", 2.0, None),
    ("Ciprofloxacin 400 mg IVPB", None, daily(2), "parenteral", "long-term", 2.0, None),
    ("Ciprofloxacin 400 mg", "IVPB", daily(2, count=6), "parenteral", "short-course", 2.0, 3.0),
    ("Magnesium oxide 400 mg", "per PEG", {}, "enteral", "long-term", None, None),
    ("Magnesium glycinate 120 mg capsule", None, daily(1, "h", count=4), "enteral", "short-course", 4.0, 4 / 24),
    ("Magnesium sulfate 2 g/50 mL", "IV", {"timing": {"repeat": {"count": 1}}}, "parenteral", "one-time", None, 1.0),
    (
        "Milk of magnesia",
        "oral",
        {"asNeededBoolean": True, **daily(1, frequencyMax=3)},
        "enteral",
        "as-needed",
        3.0,
        None,
    ),
    (
        "Magnesium oxide 400 mg tablet",
        None,
        {"timing": {"code": {"coding": [{"code": "BID"}]}}},
        "enteral",
        "long-term",
        2.0,
        None,
    ),
    (
        "Doxycycline 100 mg",
        None,
        daily(2, boundsDuration={"value": 2, "code": "wk"}),
        "enteral",
        "long-term",
        2.0,
        14.0,
    ),
    ("Magnesium hydroxide enema", None, {}, "rectal", "long-term", None, None),
    ("Epsom salt bath flakes", None, {}, "not-absorbed", "long-term", None, None),
    (
        "Ciprofloxacin 500 mg",
        None,
        {"timing": {"repeat": {"when": ["MORN", "EVE"]}}},
        "enteral",
        "long-term",
        2.0,
        None,
    ),
]


@pytest.mark.parametrize(("name", "route", "dosage", "route_class", "use", "per_day", "days"), CASES)
def test_the_one_reading_answers_route_use_and_timing(name, route, dosage, route_class, use, per_day, days):
    entry = order(name, route, **dosage)
    got = read_order(entry, KNOWLEDGE.order_reading)
    assert (got.route, got.use) == (route_class, use), got.shown()
    assert entry.dosage is not None
    assert entry.dosage.doses_per_day()[0] == (pytest.approx(per_day) if per_day is not None else None)
    assert got.days == (pytest.approx(days) if days is not None else None)


MAGNESIUM_BY_TUBE = ("Magnesium oxide 400 mg", "via NG tube")


@pytest.mark.parametrize(
    ("partner", "chelation_card", "assumed_oral"),
    [
        (("Ciprofloxacin 500 mg", "via NG tube"), True, False),  # stated: by tube, enteral; not "assumed oral"
        (("Ciprofloxacin 500 mg", None), True, True),  # nothing stated: assumed oral, and the card says so
        (("Ciprofloxacin 400 mg IVPB", None), False, False),  # parenteral: no chelation in the gut
        (("Ciprofloxacin 400 mg", "IVPB"), False, False),
    ],
)
def test_the_interaction_rule_reads_the_route_the_gating_reads(partner, chelation_card, assumed_oral):
    """The rule judged a cipro IVPB as 'route unknown, assumed oral' while the gating read it as parenteral
    (a card then held back only by the gating table); a tube feed as 'route not stated' on the card."""
    counted: Counter[str] = Counter()
    findings = RuleEngine(KNOWLEDGE).evaluate(
        patient_record(order(*MAGNESIUM_BY_TUBE, **daily(2)), order(*partner, ident="c", **daily(2))), counted
    )
    gated = {rule: n for rule, n in counted.items() if rule.startswith("interaction")}
    chelation = [f for f in findings if f.rule_id == "interaction-fluoroquinolone"]
    assert bool(chelation) == chelation_card
    assert not gated, "the rule judged an order the gating reads otherwise"
    if chelation:
        assumed = any("assumed oral" in line for line in chelation[0].audit)
        assert assumed == assumed_oral, chelation[0].audit


DOSAGE_KEYS = frozenset(
    {
        "timing",
        "repeat",
        "periodUnit",
        "frequency",
        "frequencyMax",
        "boundsDuration",
        "boundsPeriod",
        "asNeededBoolean",
        "asNeededCodeableConcept",
        "doseAndRate",
        "doseQuantity",
        "doseRange",
    }
)
ROUTE_WORDS = frozenset({"intravenous", "iv", "ivpb", "oral", "po", "injection", "topical", "enema"})


def _modules(folder: str) -> list[Path]:
    return sorted((PACKAGE / folder).rglob("*.py"))


def test_no_clinical_module_reads_a_dosage_or_keeps_route_words():
    """The clinical layer asks the reading: no FHIR dosage key, no route word list, no `.resource` read."""
    offenders = []
    for path in _modules("clinical"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            text = node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else ""
            if text in DOSAGE_KEYS or text.lower() in ROUTE_WORDS:
                offenders.append(f"{path.name}:{node.lineno}: '{node.value}'")
            if isinstance(node, ast.FunctionDef):
                reads = [n for n in ast.walk(node) if isinstance(n, ast.Attribute) and n.attr == "resource"]
                if reads and node.name != "update_with_instruction":  # the order echoed back, edited
                    offenders.append(f"{path.name}:{node.lineno}: {node.name} reads .resource")
    assert not offenders, offenders


def test_one_table_of_time_units():
    """The days table lives in record/dosage.py alone (there were three, each its own)."""
    tables = []
    for path in _modules("."):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Dict) and {"wk", "d"} <= {
                k.value for k in node.keys if isinstance(k, ast.Constant)
            }:
                tables.append(str(path.relative_to(PACKAGE)))
    assert tables == ["record/dosage.py"], tables
