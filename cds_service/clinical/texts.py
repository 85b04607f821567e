"""A rule's card texts as `RuleContext.finding` fills them: which templates (the rule's, a variant's, a
summary case's), the fields they name, the sources and suggestions, worked out once per rule, variant
and summary case instead of on every finding (they depend on the knowledge alone)."""

from __future__ import annotations

from dataclasses import dataclass

from ..knowledge.anatomy import placeholders
from ..knowledge.model import Knowledge


@dataclass(frozen=True, slots=True)
class TextPlan:
    summary: str  # the summary's template
    found_lines: tuple[str, ...]  # the Found templates, one fact each
    do: str
    why: str
    needed: tuple[str, ...]  # the fields Found and Do name, in order
    indicator: str | None  # the variant's, when it sets one
    sources: tuple[str, ...]  # the rule's, then the variant's
    variant_sources: tuple[str, ...]
    suggestions: tuple[str, ...]  # suggestion keys: the variant's, else the rule's
    said: tuple[str, ...]  # the audit line naming the variant
    variant: str | None


class TextPlans:
    """Built once per knowledge (by the engine); plans are made on first use. Two threads making the same
    plan make equal ones, and a dict write is atomic under the GIL."""

    def __init__(self, knowledge: Knowledge) -> None:
        self.knowledge = knowledge
        self._plans: dict[tuple[str, str | None, str], TextPlan] = {}

    def plan(self, rule_id: str, variant: str | None, summary_key: str) -> TextPlan:
        key = (rule_id, variant, summary_key)
        found = self._plans.get(key)
        if found is None:
            found = self._plans[key] = self._make(rule_id, variant, summary_key)
        return found

    def _make(self, rule_id: str, variant: str | None, summary_key: str) -> TextPlan:
        spec = self.knowledge.rule(rule_id)
        chosen = spec.variants[variant] if variant else None
        texts = {**spec.text, **(chosen.text if chosen else {})}
        suffix = summary_key.removeprefix("summary")
        parts = {part: texts.get(f"{part}{suffix}") or texts[part] for part in ("found", "do", "why")}
        variant_sources = chosen.sources if chosen else ()
        return TextPlan(
            summary=texts[summary_key],
            found_lines=tuple(parts["found"].split("\n")),
            do=parts["do"],
            why=parts["why"],
            needed=(*placeholders(parts["found"]), *placeholders(parts["do"])),
            indicator=chosen.indicator if chosen else None,
            sources=tuple(dict.fromkeys((*spec.sources, *variant_sources))),
            variant_sources=variant_sources,
            suggestions=chosen.suggestions if chosen else spec.suggestions,
            said=(f"Said as: {chosen.when}",) if chosen else (),
            variant=chosen.name if chosen else None,
        )
