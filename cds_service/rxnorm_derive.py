"""Derive rxnorm_products.json from the CDS Hooks Sandbox's RxNorm table: the products this service knows.

The Sandbox's medication picker sends RxCUIs, often with no display and no text; an EHR does the same.
From the table (`cuiToName`: 23,342 RxCUIs and their RxNorm names) this keeps every RxCUI whose name
lists a magnesium ingredient or a partner drug of drugs.yaml, each ingredient read by
clinical/products.py (substance, magnesium salt, strength). The source file is not copied: only what
the rules need, with its provenance. It sits above the clinical layer it reads names with (the knowledge
package, below every other, imports nothing of this service). Regenerate after a knowledge change:

    python -m cds_service.rxnorm_derive ../shared/data/rxnorm/rxnorm-subset.json

`--check` exits 1 when the committed table differs from what the source gives (tests run this).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from .clinical.drugs import DrugMatcher
from .clinical.products import read_ingredients
from .knowledge.loader import RXNORM_TABLE, build_knowledge, read_tables
from .knowledge.words import words_of
from .record.model import MedicationEntry

OUTPUT = Path(__file__).parent / "knowledge" / RXNORM_TABLE
PROVENANCE = {
    "source": ["sandbox-medication-list"],
    "origin": "CDS Hooks Sandbox medication list (cds-hooks/sandbox src/assets/medication-list.js, commit 3b7e2554, "
    "2026-03-31, Apache-2.0), as converted to JSON in shared/data/rxnorm/rxnorm-subset.json",
    "how": "every cuiToName RxCUI whose RxNorm name lists a magnesium ingredient of its own (magnesium.yaml salts, "
    "magnesium salicylate included; not a counter-ion such as esomeprazole magnesium), a drugs.yaml partner drug "
    "or a drug with a magnesium excipient (magnesium.yaml excipients); "
    "ingredients, salts and strengths read from the name by cds_service/clinical/products.py",
    "derived_by": "python -m cds_service.rxnorm_derive <source>",
}


def derive(source: dict[str, Any], source_bytes: bytes) -> dict[str, Any]:
    tables = read_tables()
    tables.pop(RXNORM_TABLE, None)
    knowledge = build_knowledge(tables)
    drugs = DrugMatcher(knowledge)
    products: dict[str, Any] = {}
    for rxcui, name in sorted(source["cuiToName"].items(), key=lambda kv: int(kv[0])):
        ingredients = read_ingredients(name, knowledge.magnesium)
        partners = sorted(
            {hit.drug.name for i in ingredients for hit in drugs.match_all(MedicationEntry.named(i.name))}
        )
        excipient = any(set(words_of(name)) & set(e.words) for e in knowledge.magnesium.excipients)
        if not partners and not excipient and not any(i.magnesium for i in ingredients):
            continue
        products[rxcui] = {
            "name": name,
            "kind": _kind(name),
            "ingredients": [
                [i.name, i.salt if i.magnesium else None, i.magnesium, i.amount, i.unit, i.per_ml, i.elemental]
                for i in ingredients
            ],
            "drugs": partners,
        }
    return {
        "provenance": {**PROVENANCE, "source_sha256": hashlib.sha256(source_bytes).hexdigest()},
        "columns": ["name", "salt", "magnesium", "amount", "unit", "per_ml", "elemental"],
        "products": products,
    }


def _kind(name: str) -> str:
    if name.endswith(" Pill"):
        return "dose-form group"
    branded = "[" in name
    has_form = any(char.isalpha() for char in name.split(" MG")[-1].split("[")[0]) if " MG" in name else False
    if has_form:
        return "branded drug" if branded else "clinical drug"
    return "branded component" if branded else "clinical drug component"


def render(table: dict[str, Any]) -> str:
    """One product per line: reviewable diffs, a small file."""
    lines = ["{", f'  "provenance": {json.dumps(table["provenance"], ensure_ascii=False)},']
    lines.append(f'  "columns": {json.dumps(table["columns"])},')
    lines.append('  "products": {')
    items = list(table["products"].items())
    for i, (rxcui, row) in enumerate(items):
        comma = "," if i < len(items) - 1 else ""
        lines.append(f"    {json.dumps(rxcui)}: {json.dumps(row, ensure_ascii=False)}{comma}")
    lines += ["  }", "}"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="rxnorm-subset.json")
    parser.add_argument("--check", action="store_true", help="exit 1 if the committed table differs")
    args = parser.parse_args(argv)
    try:
        data = args.source.read_bytes()
        source = json.loads(data)
    except (OSError, ValueError) as exc:
        print(f"rxnorm_derive: cannot read {args.source}: {exc}", file=sys.stderr)
        return 2
    text = render(derive(source, data))
    if args.check:
        if not OUTPUT.exists() or OUTPUT.read_text(encoding="utf-8") != text:
            print(f"{OUTPUT.name} is stale: run python -m cds_service.rxnorm_derive {args.source}")
            return 1
        print(f"{OUTPUT.name} is current")
        return 0
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"wrote {len(json.loads(text)['products'])} products to {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
