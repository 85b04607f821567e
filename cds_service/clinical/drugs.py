"""Which interacting or magnesium-wasting drug is this medication? RxNorm ingredient, ATC, name."""

from __future__ import annotations

from dataclasses import dataclass

from ..knowledge.model import Drug, DrugClass, Knowledge
from ..record.model import MedicationEntry
from .matching import ATC, RXNORM, words_of


@dataclass(frozen=True, slots=True)
class DrugHit:
    drug: Drug
    drug_class: DrugClass
    how: str


class DrugMatcher:
    def __init__(self, knowledge: Knowledge) -> None:
        self._classes = knowledge.drug_classes
        self._by_rxnorm: dict[str, Drug] = {}
        self._by_word: dict[str, Drug] = {}
        self._atc: list[tuple[str, Drug]] = []
        for drug_class in self._classes.values():
            for drug in drug_class.drugs:
                for code in drug.rxnorm_in:
                    self._by_rxnorm[code] = drug
                for code in drug.atc:
                    self._atc.append((code, drug))
                for word in drug.words:
                    self._by_word[word.split()[0]] = drug

    def match(self, med: MedicationEntry) -> DrugHit | None:
        for coding in (*med.codings, *med.ingredient_codings):
            if coding.system == RXNORM and coding.code in self._by_rxnorm:
                return self._hit(self._by_rxnorm[coding.code], f"RxNorm ingredient {coding.code}")
            if coding.system == ATC and coding.code:
                code = coding.code.upper()
                for prefix, drug in self._atc:
                    if code.startswith(prefix):
                        return self._hit(drug, f"ATC {coding.code}")
        for text in (med.name, *med.ingredient_names, *(c.display for c in med.codings if c.display)):
            for word in words_of(text):
                if word in self._by_word:
                    return self._hit(self._by_word[word], f"name '{word}'")
        return None

    def _hit(self, drug: Drug, how: str) -> DrugHit:
        return DrugHit(drug, self._classes[drug.class_id], how)
