"""What each rule family says it does, so that the knowledge and the code are checked against each other
when the service starts, not when a patient first meets an odd branch.

A family declares the rules it speaks for (by id, or every rule a drug class of one kind names in
drugs.yaml: a table-only rule needs no code), and for each rule the text cases it chooses (`summary_low`
is the case "low"; "" is the plain summary), the variants it picks and the template fields it fills.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ...knowledge.anatomy import placeholders
from ...knowledge.loader import KnowledgeError
from ...knowledge.model import Knowledge, RuleSpec

if TYPE_CHECKING:
    from ..context import RuleContext
    from ..findings import Finding

TEXT_PARTS = ("summary", "found", "do", "why")


@dataclass(frozen=True, slots=True)
class Says:
    """For one rule: the text cases a family chooses, the variants it picks, the fields it fills."""

    fields: frozenset[str] = frozenset()
    cases: frozenset[str] = frozenset({""})
    variants: frozenset[str] = frozenset()


def says(*fields: str, cases: Iterable[str] = ("",), variants: Iterable[str] = ()) -> Says:
    return Says(frozenset(fields), frozenset(cases), frozenset(variants))


@dataclass(frozen=True, slots=True)
class Family:
    """One module of clinical/rules/: its `evaluate` and what it says it does."""

    name: str
    evaluate: Callable[[RuleContext], list[Finding]]
    rules: Mapping[str, Says] = field(default_factory=dict)
    table_kind: str | None = None  # it also speaks for every rule a drug class of this kind names
    table_says: Says = Says()

    def speaks_for(self, knowledge: Knowledge) -> dict[str, Says]:
        """Rule id -> what the family says for it, table-named rules included."""
        out = dict(self.rules)
        if self.table_kind is not None:
            out.update((c.rule, self.table_says) for c in knowledge.drug_classes.values() if c.kind == self.table_kind)
        return out


def declarations(families: Iterable[Family], knowledge: Knowledge, standard: frozenset[str]) -> dict[str, Says]:
    """Rule id -> what its family says, after checking it against rules.yaml; KnowledgeError (one line,
    naming the rule) for a rule no family speaks for, a family's rule missing from rules.yaml, a text
    case or variant no family chooses, or a template field nobody fills. `standard`: the facts any
    template may name (RuleContext.standard_fact)."""
    owner: dict[str, str] = {}
    declared: dict[str, Says] = {}
    for family in families:
        for rule_id, said in family.speaks_for(knowledge).items():
            if rule_id in owner:
                raise KnowledgeError(f"rule {rule_id}: spoken for by two families ({owner[rule_id]}, {family.name})")
            if rule_id not in knowledge.rules:
                raise KnowledgeError(f"rule {rule_id}: family {family.name} speaks for it but rules.yaml has no row")
            owner[rule_id], declared[rule_id] = family.name, said
    for rule_id, spec in knowledge.rules.items():
        if rule_id not in declared:
            raise KnowledgeError(
                f"rules.yaml: rule {rule_id} has no rule family (name it in a drugs.yaml class, "
                "or declare it in a clinical/rules/ module)"
            )
        _check(spec, declared[rule_id], owner[rule_id], standard)
    return declared


def _check(spec: RuleSpec, said: Says, family: str, standard: frozenset[str]) -> None:
    texts = [("text", spec.text)] + [(f"variant {name}", v.text) for name, v in spec.variants.items()]
    for name in spec.variants:
        if name not in said.variants:
            raise KnowledgeError(f"rule {spec.id}: variant {name} is chosen by no code (family {family})")
    fillable = said.fields | standard | {"drug"}
    for where, text in texts:
        for key, template in text.items():
            case = _case(key)
            if case is not None and case not in said.cases:
                raise KnowledgeError(f"rule {spec.id} {where}: {key} is a case family {family} never chooses")
            unfilled = sorted(set(placeholders(template)) - fillable)
            if unfilled:
                raise KnowledgeError(
                    f"rule {spec.id} {where}.{key}: field {{{unfilled[0]}}} is filled by nobody (family {family})"
                )


def _case(key: str) -> str | None:
    """'summary_low' -> 'low', 'do' -> '', a key that is no text part -> None."""
    for part in TEXT_PARTS:
        if key == part:
            return ""
        if key.startswith(f"{part}_"):
            return key.removeprefix(f"{part}_")
    return None
