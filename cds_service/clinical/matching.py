"""Is this medication a magnesium product? RxNorm ingredient or product code, ATC, then text.

Text is needed because most magnesium glycinate supplements have no RxNorm code. Whole words only:
"magnesium"/"magnesia", listed brands, or "Mg" directly before a salt word; "500 mg" never matches.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..knowledge.model import Ingredient, MagnesiumTables
from ..knowledge.words import words_of
from ..record.model import MedicationEntry
from .products import read_ingredients

__all__ = ["ATC", "RXNORM", "MagnesiumMatcher", "ProductMatch", "magnesium_kind", "words_of"]

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
ATC = "http://www.whocc.no/atc"


@dataclass(frozen=True, slots=True)
class ProductMatch:
    salts: tuple[str, ...]
    how: str
    ingredients: tuple[Ingredient, ...] = ()  # every ingredient, magnesium or not, when the product was read
    product_name: str = ""  # the RxNorm name, when the order was known by its code alone
    excipient_of: str = ""  # the drug whose tablet carries this magnesium as an excipient (quinapril)

    @property
    def salt_label(self) -> str:
        return ", ".join(self.salts) if self.salts else "magnesium (salt not stated)"

    @property
    def magnesium(self) -> tuple[Ingredient, ...]:
        return tuple(i for i in self.ingredients if i.magnesium)


class MagnesiumMatcher:
    """RxNorm ingredient or product code (the derived table), then ATC, then the product's words."""

    def __init__(self, tables: MagnesiumTables) -> None:
        self._tables = tables
        self._ingredients = {s.rxnorm_in: s.name for s in tables.salts if s.rxnorm_in}
        self._products = dict(tables.product_ingredient)
        self._rxnorm = tables.rxnorm_products
        self._atc = tables.atc_prefixes

    def match(self, med: MedicationEntry) -> ProductMatch | None:
        for coding in (*med.codings, *med.ingredient_codings):
            if coding.system == RXNORM and coding.code:
                if coding.code in self._ingredients:
                    salt = self._ingredients[coding.code]
                    return ProductMatch((salt,), f"RxNorm ingredient {coding.code}", self._read(med))
                product = self._rxnorm.get(coding.code)
                if product is not None:  # the table knows this code: it decides, whatever the text says
                    if not product.magnesium:  # esomeprazole magnesium, a PPI: not a magnesium product
                        return self._excipient(product.name, product.name)
                    salts = tuple(dict.fromkeys(i.salt for i in product.magnesium if i.salt))
                    how = f"RxNorm {product.kind} {coding.code} ({product.name})"
                    return ProductMatch(salts, how, product.ingredients, product.name)
                if coding.code in self._products:
                    salt = self._products[coding.code]
                    return ProductMatch((salt,), f"RxNorm product {coding.code}", self._read(med))
            if coding.system == ATC and coding.code and coding.code.upper().startswith(self._atc):
                ingredients = self._read(med)
                return ProductMatch(_salts(ingredients), f"ATC {coding.code}", ingredients)
        for text in (med.name, *(c.display for c in med.codings if c.display)):
            ingredients = read_ingredients(text, self._tables) if text else ()
            hit = next((i for i in ingredients if i.magnesium), None)
            if hit is not None:
                return ProductMatch(_salts(ingredients), f"name '{short(hit.name)}'", ingredients)
        for name in med.ingredient_names:  # Medication.ingredient: each one is an ingredient of its own
            ingredients = read_ingredients(name, self._tables)
            hit = next((i for i in ingredients if i.magnesium), None)
            if hit is not None:
                return ProductMatch(_salts(self._read(med)), f"ingredient '{short(hit.name)}'", self._read(med))
        for text in (med.name, *(c.display for c in med.codings if c.display)):
            found = self._excipient(text) if text else None
            if found is not None:
                return found
        return None

    def _excipient(self, text: str, product_name: str = "") -> ProductMatch | None:
        """A drug whose tablet carries a magnesium salt as an excipient (magnesium.yaml excipients)."""
        words = set(words_of(text))
        for excipient in self._tables.excipients:
            if words & set(excipient.words):
                ingredient = Ingredient(f"{excipient.salt} (excipient of {excipient.drug})", True, excipient.salt)
                how = f"excipient of {excipient.drug} ({excipient.salt} in the tablet)"
                return ProductMatch((excipient.salt,), how, (ingredient,), product_name, excipient.drug)
        return None

    def _read(self, med: MedicationEntry) -> tuple[Ingredient, ...]:
        """The product's ingredients from its Medication.ingredient list, else from its name."""
        if med.ingredient_names:
            return tuple(i for name in med.ingredient_names for i in read_ingredients(name, self._tables))
        return read_ingredients(med.name, self._tables) if med.name else ()


def magnesium_kind(match: ProductMatch, tables: MagnesiumTables) -> str:
    """supplement, drug-salt (every magnesium ingredient is a drug's salt: magnesium salicylate) or excipient."""
    if match.excipient_of:
        return "excipient"
    kinds = {tables.salt_kind.get(i.salt or "", "supplement") for i in match.magnesium}
    return "drug-salt" if kinds == {"drug-salt"} else "supplement"


def _salts(ingredients: tuple[Ingredient, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(i.salt for i in ingredients if i.magnesium and i.salt))


def short(text: str, limit: int = 40) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
