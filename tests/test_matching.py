"""Which orders are magnesium products: codes first, then names, never the unit 'mg'."""

from __future__ import annotations

import pytest

from cds_service.clinical.matching import ATC, RXNORM, MagnesiumMatcher
from cds_service.knowledge import load_knowledge
from cds_service.record.model import Coding, MedicationEntry

MATCHER = MagnesiumMatcher(load_knowledge().magnesium)


def med(name: str = "", codings: tuple[Coding, ...] = (), ingredients: tuple[str, ...] = ()) -> MedicationEntry:
    return MedicationEntry.named(name, codings, ingredients)


@pytest.mark.parametrize(
    ("name", "salt"),
    [
        ("Magnesium glycinate 500 mg capsule", "magnesium glycinate"),
        ("MAGNESIUM BISGLYCINATE CHELATE", "magnesium glycinate"),
        ("magnesium-oxide 400mg tab", "magnesium oxide"),
        ("Mg citrate 200 mg", "magnesium citrate"),
        ("Milk of Magnesia suspension", None),
        ("Magnesium L-Threonate 144 mg", "magnesium L-threonate"),
        ("Aluminium hydroxide / magnesium hydroxide oral suspension", "magnesium hydroxide"),
        ("Mag-Ox 400", None),
    ],
)
def test_text_names_match(name, salt):
    match = MATCHER.match(med(name))
    assert match is not None, name
    if salt:
        assert salt in match.salts


@pytest.mark.parametrize(
    "name",
    [
        "Metformin 500 mg tablet",
        "500 mg",
        "Calcium carbonate 1250 mg",
        "Manganese gluconate 10 mg",
        "Potassium chloride 20 mEq",
        "500 mg citrate",
        "Magnesiumfree formula",
    ],
)
def test_non_magnesium_names_do_not_match(name):
    assert MATCHER.match(med(name)) is None


def test_rxnorm_ingredient_and_product_codes():
    assert MATCHER.match(med(codings=(Coding(RXNORM, "6582"),))).salts == ("magnesium oxide",)
    assert MATCHER.match(med(codings=(Coding(RXNORM, "198741"),))).how.startswith("RxNorm clinical drug 198741")
    assert MATCHER.match(med(codings=(Coding(RXNORM, "6809"),))) is None  # not a magnesium code


def test_atc_codes():
    assert MATCHER.match(med(codings=(Coding(ATC, "A12CC04"),))) is not None
    assert MATCHER.match(med(codings=(Coding(ATC, "A02AA04"),))) is not None
    assert MATCHER.match(med(codings=(Coding(ATC, "A12AA04"),))) is None  # calcium carbonate


def test_ingredient_names_count():
    assert MATCHER.match(med("Sleep Support Complex", ingredients=("Magnesium glycinate",))) is not None


def test_one_drug_in_several_classes_is_judged_by_each():
    from cds_service.clinical.drugs import DrugMatcher

    drugs = DrugMatcher(load_knowledge())
    hits = drugs.match_all(med("Crestor 20 mg tablet"))
    assert sorted(h.drug_class.id for h in hits) == ["other_chelation", "statin"]
    assert {h.how for h in hits} == {"name 'crestor'"}
    coded = drugs.match_all(med("", (Coding(RXNORM, "301542", "rosuvastatin"),)))
    assert sorted(h.drug_class.rule for h in coded) == ["depletion-statin", "interaction-other-chelation"]
    assert [h.drug.name for h in drugs.match_all(med("Furosemide 40 mg tablet"))] == ["furosemide"]
