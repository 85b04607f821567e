"""Know every product: the RxNorm table derived from the Sandbox's list, ingredients, dose arithmetic."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from cds_service.clinical.dose import daily_elemental_mg
from cds_service.clinical.drugs import DrugMatcher
from cds_service.clinical.matching import RXNORM, MagnesiumMatcher
from cds_service.knowledge import load_knowledge
from cds_service.record.medications import parse_medication
from cds_service.rxnorm_derive import main as derive_main

from .cards_check import explanation_text
from .conftest import SCENARIOS, SERVICE, SHARED

KNOWLEDGE = load_knowledge()
MG = MagnesiumMatcher(KNOWLEDGE.magnesium)
DRUGS = DrugMatcher(KNOWLEDGE)
SANDBOX = SHARED / "data" / "rxnorm" / "rxnorm-subset.json"
SALT_WORDS = {w: s.name for s in KNOWLEDGE.magnesium.salts for w in s.words}


def order(medication: dict, dosage: dict | None = None, **extra) -> object:
    resource = {"resourceType": "MedicationRequest", "id": "x", "status": "draft", **medication, **extra}
    if dosage is not None:
        resource["dosageInstruction"] = [dosage]
    return parse_medication(resource, "draft", {})


def coded(rxcui: str) -> dict:
    """What an EHR sends when it knows only the code: no display, no text."""
    return {"medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": rxcui}]}}


def dose(value, unit, **repeat):
    out = {"doseAndRate": [{"doseQuantity": {"value": value, "unit": unit}}]}
    out["timing"] = {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d", **repeat}}
    return out


@pytest.mark.skipif(
    not SANDBOX.exists(),
    reason=f"the CDS Hooks Sandbox RxNorm table is not at {SANDBOX} (the data folder 'shared' beside the clone, "
    "as CI has it); the derived table in the repository is still checked",
)
def test_the_committed_table_is_what_the_source_gives(capsys):
    assert derive_main([str(SANDBOX), "--check"]) == 0, capsys.readouterr().out


def _expected(name: str) -> list[tuple[str | None, float | None]]:
    """An independent reading of an RxNorm name: the magnesium components, their salt and mg strength."""
    out = []
    for part in re.split(r" / | with ", re.sub(r"\s*\[[^\]]*\]", "", name)):
        words = re.findall(r"[a-z][a-z\-]*", part.lower())
        if words and (
            words[0] in KNOWLEDGE.magnesium.brands or "magnesia" in words
        ):  # "Mag-Tab SR", "Milk of Magnesia"
            out.append((None, None))
            continue
        if "magnesium" not in words:
            continue
        at = words.index("magnesium")
        after = words[at + 1 : at + 2]
        if any(w in KNOWLEDGE.magnesium.drug_words for w in words[:at]) or after == ["stearate"]:
            continue  # "esomeprazole magnesium": another drug's counter-ion; magnesium stearate: an excipient
        salt = SALT_WORDS.get(after[0]) if after else None
        strength = re.search(r"(\d+(?:\.\d+)?) MG\b", part)
        out.append((salt, float(strength.group(1)) if strength else None))
    return out


@pytest.mark.skipif(
    not SANDBOX.exists(),
    reason=f"the CDS Hooks Sandbox RxNorm table is not at {SANDBOX} (the data folder 'shared' beside the clone, "
    "as CI has it); the derived table in the repository is still checked",
)
def test_every_sandbox_magnesium_product_is_known_by_its_code_alone():
    names = json.loads(SANDBOX.read_text())["cuiToName"]
    swept = 0
    for rxcui, name in names.items():
        expected = _expected(name)
        match = MG.match(order(coded(rxcui)))
        if not expected:
            excipient = match is not None and match.excipient_of  # quinapril: magnesium carbonate in the tablet
            assert match is None or excipient, f"{rxcui} {name} is not a magnesium product"
            continue
        swept += 1
        assert match is not None, f"{rxcui} {name}"
        got = [(i.salt, i.mg) for i in match.magnesium]
        assert got == expected, f"{rxcui} {name}: {got} != {expected}"
    assert swept > 390  # the Sandbox lists 323 magnesium products and 71 magnesium salicylates (alone and combined)


@pytest.mark.parametrize(
    ("text", "is_magnesium"),
    [
        ("Esomeprazole magnesium 40 mg delayed release capsule", False),
        ("Omeprazole magnesium 20 mg", False),
        ("Magnesium salicylate 580 mg tablet", True),  # the salt of an NSAID: its magnesium is real
        ("Choline magnesium trisalicylate 500 mg", True),
        ("Magnesium stearate", False),  # a tablet lubricant
        ("Omeprazole 20 MG / Magnesium Hydroxide 700 MG", True),
        ("Calcium Carbonate 333 MG / Magnesium Oxide 167 MG Oral Tablet", True),
    ],
)
def test_magnesium_counts_only_as_an_ingredient_of_its_own(text, is_magnesium):
    entry = order({"medicationCodeableConcept": {"text": text}})
    assert (MG.match(entry) is not None) == is_magnesium
    if "prazole" in text:
        assert [h.drug_class.rule for h in DRUGS.match_all(entry)] == ["depletion-ppi"]  # the PPI is still said


def test_every_sandbox_salicylate_is_magnesium_salicylate_with_its_elemental_amount():
    """Doan's 580 mg (tetrahydrate) is 38 mg elemental magnesium a caplet; every salicylate product is found by code."""
    names = json.loads(SANDBOX.read_text())["cuiToName"] if SANDBOX.exists() else {"198742": ""}
    salicylates = [rxcui for rxcui, name in names.items() if "magnesium salicylate" in name.lower()]
    for rxcui in salicylates:
        match = MG.match(order(coded(rxcui)))
        assert match is not None and "magnesium salicylate" in match.salts, rxcui
    doans = order(coded("198742"), dose(1, "tablet"))
    result = daily_elemental_mg(doans, MG.match(doans), KNOWLEDGE.magnesium)
    assert result.mg_per_day == pytest.approx(580 * 0.0656), result.how


def test_quinapril_is_the_magnesium_side_by_its_excipient():
    """Accupril tablets carry magnesium carbonate: known by code alone and by name, as an excipient."""
    for entry in (order(coded("207893")), order({"medicationCodeableConcept": {"text": "Accupril 20 mg tablet"}})):
        match = MG.match(entry)
        assert match is not None and match.excipient_of == "quinapril" and match.salts == ("magnesium carbonate",)
    assert MG.match(order({"medicationCodeableConcept": {"text": "Lisinopril 20 mg tablet"}})) is None


def test_a_salt_word_of_another_ingredient_never_names_the_magnesium_salt():
    match = MG.match(
        order({"medicationCodeableConcept": {"text": "Calcium Carbonate 333 MG / Magnesium Oxide 167 MG"}})
    )
    assert match.salts == ("magnesium oxide",)
    antacid = MG.match(
        order({"medicationCodeableConcept": {"text": "Aluminum Hydroxide 160 MG / magnesium carbonate 105 MG"}})
    )
    assert antacid.salts == ("magnesium carbonate",)


def test_code_only_order_in_the_table_and_a_display_only_unknown_code():
    known = MG.match(order(coded("311431")))
    assert known is not None and known.product_name.startswith("Magnesium Oxide 500 MG")
    unknown = {
        "medicationCodeableConcept": {
            "coding": [{"system": RXNORM, "code": "999999999", "display": "Magnesium citrate 100 MG Oral Tablet"}]
        }
    }
    assert MG.match(order(unknown)).salts == ("magnesium citrate",)


def test_combination_dose_uses_the_magnesium_ingredient_only():
    # Ca 333 / Mg oxide 167 mg, 2 tablets twice daily: 4 x 167 x 60.3 % = 403 mg elemental
    entry = order(
        coded("1491604")
        if False
        else {"medicationCodeableConcept": {"text": "Calcium Carbonate 333 MG / Magnesium Oxide 167 MG Oral Tablet"}},
        dose(2, "{pill}", frequency=2),
    )
    result = daily_elemental_mg(entry, MG.match(entry), KNOWLEDGE.magnesium)
    assert result.mg_per_day == pytest.approx(4 * 167 * 0.603)


def test_contained_medication_strengths_take_the_magnesium_one():
    # Ca 333 mg / Mg 120 mg (as oxide, labelled elemental) / Zn 5 mg, 1 tablet daily: 120, not 333 x 3 = 1080
    medication = {
        "resourceType": "Medication",
        "id": "m",
        "code": {"text": "Calcium-Magnesium-Zinc tablet"},
        "ingredient": [
            {
                "itemCodeableConcept": {"text": "Calcium carbonate"},
                "strength": {"numerator": {"value": 333, "unit": "mg"}, "denominator": {"value": 1, "unit": "tablet"}},
            },
            {
                "itemCodeableConcept": {"text": "Magnesium (as magnesium oxide)"},
                "strength": {"numerator": {"value": 120, "unit": "mg"}, "denominator": {"value": 1, "unit": "tablet"}},
            },
            {
                "itemCodeableConcept": {"text": "Zinc oxide"},
                "strength": {"numerator": {"value": 5, "unit": "mg"}, "denominator": {"value": 1, "unit": "tablet"}},
            },
        ],
    }
    entry = order({"contained": [medication], "medicationReference": {"reference": "#m"}}, dose(1, "tablet"))
    result = daily_elemental_mg(entry, MG.match(entry), KNOWLEDGE.magnesium)
    assert result.mg_per_day == pytest.approx(120), result.how


@pytest.mark.parametrize(
    ("text", "dosage", "expected"),
    [
        # MgSO4 1 g IV q1h x 4: the course ends within the day: 4 g x 9.9 % = 396 mg, not 24 doses
        (
            "Magnesium sulfate 1 g/100 mL injection",
            dose(1, "g", frequency=1, period=1, periodUnit="h", count=4),
            4 * 1000 * 0.099,
        ),
        ("Magnesium chloride injection", dose(8, "mmol"), 8 * 24.305),
        ("Magnesium sulfate injection", dose(16, "mEq"), 16 * 12.1525),
        ("Magnesium oxide 400 MG Oral Tablet", dose(1, "{tbl}"), 400 * 0.603),
        ("Magnesium hydroxide 400 mg/5 mL oral suspension", dose(30, "mL"), 30 * 80 * 0.417),
    ],
)
def test_dose_units_a_pharmacist_would_check(text, dosage, expected):
    entry = order({"medicationCodeableConcept": {"text": text}}, dosage)
    result = daily_elemental_mg(entry, MG.match(entry), KNOWLEDGE.magnesium)
    assert result.mg_per_day == pytest.approx(expected, rel=1e-3), result.how


def test_a_bounded_course_states_its_total():
    entry = order(
        {"medicationCodeableConcept": {"text": "Magnesium oxide 400 MG Oral Tablet"}},
        dose(1, "tablet", frequency=2, boundsDuration={"value": 5, "unit": "d", "code": "d"}),
    )
    result = daily_elemental_mg(entry, MG.match(entry), KNOWLEDGE.magnesium)
    assert "course of 5 days: 2412 mg elemental Mg in total" in result.how


def test_a_dose_in_mg_of_a_combination_is_not_guessed():
    entry = order(
        {"medicationCodeableConcept": {"text": "Calcium Carbonate 333 MG / Magnesium Oxide 167 MG"}}, dose(500, "mg")
    )
    result = daily_elemental_mg(entry, MG.match(entry), KNOWLEDGE.magnesium)
    assert result.mg_per_day is None and "combination product" in result.how


def test_transaction_bundle_without_ids_keeps_every_order(tmp_path, capsys):
    """carebundle writes POST transaction bundles with no ids at all: every id-less order stays itself."""
    import subprocess
    import sys

    from cds_service.cli import main

    out = tmp_path / "bundles"
    subprocess.run(
        [
            str(Path(sys.executable).with_name("carebundle")),  # pinned in the test extras
            "generate",
            "--profile",
            "ckd_stage3",
            "--count",
            "1",
            "--seed",
            "7",
            "--out",
            str(out),
        ],
        check=True,
        capture_output=True,
    )
    bundle = json.loads(next(out.glob("*.json")).read_text())
    patient = next(e["fullUrl"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient")
    assert not any("id" in e["resource"] for e in bundle["entry"])

    def request(text: str, status: str, full_url: str | None) -> dict:
        resource = {
            "resourceType": "MedicationRequest",
            "status": status,
            "intent": "order",
            "subject": {"reference": patient},
            "medicationCodeableConcept": {"text": text},
        }
        return {"fullUrl": full_url, "resource": resource} if full_url else {"resource": resource}

    bundle["entry"] += [
        request("Magnesium oxide 400 mg tablet", "draft", "urn:uuid:11111111-2222-4333-8444-555555555555"),
        request("Ciprofloxacin 500 mg tablet", "active", None),  # no id and no fullUrl: told apart by position
        request("Levothyroxine 100 mcg tablet", "active", None),
    ]
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle))
    assert main(["evaluate", str(path), "--json", "--now", "2026-11-15T12:00:00Z"]) == 0
    rules = {c["source"]["topic"]["code"] for c in json.loads(capsys.readouterr().out)["cards"]}
    assert {"interaction-fluoroquinolone", "interaction-levothyroxine"} <= rules


def test_id_less_active_orders_in_prefetch_are_each_judged(make_app):
    """Two active orders without ids in the EHR's prefetch: both are partners, neither is lost."""
    body = json.loads((SCENARIOS / "renal-normal" / "request.order-sign.json").read_text())
    patient = f"Patient/{body['context']['patientId']}"
    actives = [
        {
            "resourceType": "MedicationRequest",
            "status": "active",
            "intent": "order",
            "subject": {"reference": patient},
            "medicationCodeableConcept": {"text": text},
        }
        for text in ("Ciprofloxacin 500 mg tablet", "Levothyroxine 100 mcg tablet")
    ]
    body["prefetch"]["medicationRequests"] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [{"resource": r} for r in actives],
    }
    response = make_app().test_client().post(f"/cds-services/{SERVICE}", json=body)
    assert response.status_code == 200, response.get_json()
    cards = response.get_json()["cards"]
    assert sorted(c["source"]["topic"]["code"] for c in cards) == [
        "interaction-fluoroquinolone",
        "interaction-levothyroxine",
    ]
    assert all("(no id: active" in explanation_text(c) for c in cards)  # the explanation says which, by position
