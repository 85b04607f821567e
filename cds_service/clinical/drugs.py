"""Which interacting or magnesium-wasting drug is this medication? RxNorm ingredient, ATC, name."""

from __future__ import annotations

from dataclasses import dataclass

from ..knowledge.model import Drug, DrugClass, Knowledge
from ..memo import Memo
from ..record.model import MedicationEntry
from .matching import ATC, RXNORM, words_of


@dataclass(frozen=True, slots=True)
class DrugHit:
    drug: Drug
    drug_class: DrugClass
    how: str


NAME_CACHE_SIZE = 8192


class DrugMatcher:
    def __init__(self, knowledge: Knowledge) -> None:
        self._classes = knowledge.drug_classes
        # One drug may sit in several classes (rosuvastatin: a statin, and bound by Al/Mg antacids).
        self._by_rxnorm: dict[str, list[Drug]] = {}
        self._by_word: dict[str, list[Drug]] = {}
        self._atc: list[tuple[str, Drug]] = []
        self._products = knowledge.magnesium.rxnorm_products  # RxCUI -> its partner drugs, by name
        self._by_name: dict[str, list[Drug]] = {}
        self._word_of_name: Memo[str, str | None] = Memo(NAME_CACHE_SIZE)
        for drug_class in self._classes.values():
            for drug in drug_class.drugs:
                self._by_name.setdefault(drug.name, []).append(drug)
                for code in drug.rxnorm_in:
                    self._by_rxnorm.setdefault(code, []).append(drug)
                for code in drug.atc:
                    self._atc.append((code, drug))
                for word in drug.words:
                    self._by_word.setdefault(word.split()[0], []).append(drug)

    def match(self, med: MedicationEntry) -> DrugHit | None:
        hits = self.match_all(med)
        return hits[0] if hits else None

    def match_all(self, med: MedicationEntry) -> list[DrugHit]:
        """Every class the drug belongs to, found by the most trusted identity (RxNorm, ATC, then name)."""
        for coding in (*med.codings, *med.ingredient_codings):
            if coding.system == RXNORM and coding.code in self._by_rxnorm:
                return self._hits(self._by_rxnorm[coding.code], f"RxNorm ingredient {coding.code}")
            product = self._products.get(coding.code or "") if coding.system == RXNORM else None
            if product is not None and product.drugs:
                drugs = [drug for name in product.drugs for drug in self._by_name.get(name, ())]
                return self._hits(drugs, f"RxNorm {product.kind} {coding.code} ({product.name})")
            if coding.system == ATC and coding.code:
                code = coding.code.upper()
                found = [drug for prefix, drug in self._atc if code.startswith(prefix)]
                if found:
                    return self._hits(found, f"ATC {coding.code}")
        for text in (med.name, *med.ingredient_names, *(c.display for c in med.codings if c.display)):
            word = self._named_word(text)
            if word is not None:
                return self._hits(self._by_word[word], f"name '{word}'")
        return []

    def _named_word(self, text: str) -> str | None:
        """The first word of a name that names a partner drug; remembered per name (formularies repeat)."""
        return self._word_of_name.get(text, lambda: next((w for w in words_of(text) if w in self._by_word), None))

    def _hits(self, drugs: list[Drug], how: str) -> list[DrugHit]:
        return [DrugHit(drug, self._classes[drug.class_id], how) for drug in drugs]
