"""Is this medication a magnesium product? RxNorm ingredient or product code, ATC, then text.

Text is needed because most magnesium glycinate supplements have no RxNorm code. Whole words only:
"magnesium"/"magnesia", listed brands, or "Mg" directly before a salt word; "500 mg" never matches.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..knowledge.model import MagnesiumTables
from ..record.model import MedicationEntry

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
ATC = "http://www.whocc.no/atc"
_NON_WORD = re.compile(r"[^a-z0-9\-]+")
_NUMBER = re.compile(r"^\d+([.,]\d+)?$")


@dataclass(frozen=True, slots=True)
class ProductMatch:
    salts: tuple[str, ...]
    how: str

    @property
    def salt_label(self) -> str:
        return ", ".join(self.salts) if self.salts else "magnesium (salt not stated)"


class MagnesiumMatcher:
    def __init__(self, tables: MagnesiumTables) -> None:
        self._ingredients = {s.rxnorm_in: s.name for s in tables.salts if s.rxnorm_in}
        self._products = dict(tables.product_ingredient)
        self._atc = tables.atc_prefixes
        self._salt_by_word = {w: s.name for s in tables.salts for w in s.words}
        self._words = frozenset(tables.words)
        self._brands = frozenset(tables.brands)
        self._abbreviation = tables.abbreviation

    def match(self, med: MedicationEntry) -> ProductMatch | None:
        for coding in (*med.codings, *med.ingredient_codings):
            if coding.system == RXNORM and coding.code:
                if coding.code in self._ingredients:
                    return ProductMatch((self._ingredients[coding.code],), f"RxNorm ingredient {coding.code}")
                if coding.code in self._products:
                    return ProductMatch((self._products[coding.code],), f"RxNorm product {coding.code}")
            if coding.system == ATC and coding.code and coding.code.upper().startswith(self._atc):
                return ProductMatch(self._salts_in_text(med), f"ATC {coding.code}")
        texts = [med.name, *med.ingredient_names, *(c.display for c in med.codings if c.display)]
        for text in texts:
            hit = self._text_hit(text)
            if hit:
                return ProductMatch(self._salts_in_text(med), f"name '{hit}'")
        return None

    def _text_hit(self, text: str) -> str | None:
        tokens = words_of(text)
        for i, token in enumerate(tokens):
            if token in self._words or token in self._brands:
                return token
            if (
                token == self._abbreviation
                and i + 1 < len(tokens)
                and tokens[i + 1] in self._salt_by_word
                and not (i > 0 and _NUMBER.match(tokens[i - 1]))
            ):
                return f"{token} {tokens[i + 1]}"
        return None

    def _salts_in_text(self, med: MedicationEntry) -> tuple[str, ...]:
        found: list[str] = []
        for text in (med.name, *med.ingredient_names):
            for token in words_of(text):
                salt = self._salt_by_word.get(token)
                if salt and salt not in found:
                    found.append(salt)
        return tuple(found)


def words_of(text: str) -> list[str]:
    """Lower-case words; a hyphenated word counts whole ("mag-ox") and by its parts ("magnesium-oxide")."""
    out: list[str] = []
    for token in _NON_WORD.split(text.lower()):
        token = token.strip("-")
        if token:
            out.append(token)
            if "-" in token:
                out.extend(part for part in token.split("-") if part)
    return out
