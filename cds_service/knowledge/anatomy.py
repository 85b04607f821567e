"""The card's anatomy, as the knowledge writes it: a summary, the facts found, one thing to do, and why.

Every template in `rules.yaml` is filled with fields of a known, bounded length (`FIELDS`); a value
longer than its bound is shortened with an ellipsis when it is filled. So the longest card a rule can
produce is known at load, and a rule whose longest rendering breaks the budget stops the start: a
clinician never meets a card that overflows its panel.
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Mapping
from functools import lru_cache

SUMMARY_LIMIT = 139  # CDS Hooks 2.0: summary "<140 characters"
DETAIL_LIMIT = 700
MAX_FACTS = 3
FACT_SEPARATOR = " · "  # between facts; a fact may itself use ';'
SHORTEST_NAME = 8  # a bracket is cut off a name only if this much name stays before it
NAME_FLOOR = 12  # a name in a summary is never shortened below this (fit_name in clinical/context.py)

# Names a summary may shorten to fit (never its verdict); the drug's own name always is one.
NAME_FIELDS = ("drug", "partner_name", "mg", "other", "condition", "wasting")

# Every field a template may name, with the most characters it can hold once filled.
FIELDS: Mapping[str, int] = {
    # names
    "drug": 48,
    "partner_name": 40,
    "mg": 40,
    "other": 40,
    "condition": 40,
    # facts, composed by clinical/facts.py or the rule family
    "renal": 120,
    "renal_missing": 120,
    "renal_note": 110,
    "change": 40,
    "rise": 110,
    "mg_latest": 90,
    "obstetric_level": 110,
    "treatment": 90,
    "wasting": 60,
    "risk": 50,
    "risks": 120,
    "last": 16,
    "dose": 120,
    "spacing": 90,
    "pair": 110,
    "reason": 110,
    "both": 120,
    # short values
    "value": 8,
    "unit": 16,
    "estimate": 24,
    "recheck": 12,
    "high": 6,
    "ul": 6,
    "age": 6,
    "daily": 8,
    "total": 50,
    "lookback": 5,
    "due_from": 12,
    "due_by": 12,
}

EVIDENCE_WORDS = {"high": "high", "moderate": "moderate", "low": "low", "expert-opinion": "low (expert opinion)"}


class TemplateError(ValueError):
    """A card template that names an unknown field or can exceed the card's budget."""


@lru_cache(maxsize=1024)
def placeholders(template: str) -> tuple[str, ...]:
    return tuple(name for _, name, _, _ in string.Formatter().parse(template) if name)


def clip(value: object, limit: int) -> str:
    """The value's text on one line, its whitespace runs made one space, cut to `limit` with an ellipsis."""
    text = value if type(value) is str else str(value)
    # Already one line, single-spaced and short (the common case): what the join below would give. Every
    # whitespace character that str.split() splits on but the space is not printable.
    if len(text) <= limit and text.isprintable() and "  " not in text and text[:1] != " " and text[-1:] != " ":
        return text
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def shorten(text: str, limit: int) -> str:
    """A name or label within `limit`, cut at a word near the end and never leaving a bracket open
    ("Aluminum Hydroxide (as…" reads as a typo); `clip` is for values, cut where the limit falls."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    for opener in "([":
        at = cut.rfind(opener)
        if at > cut.rfind(")]"[opener == "["]) and len(cut[:at].strip()) >= SHORTEST_NAME:
            cut = cut[:at]
    if " " in cut[limit // 2 :]:
        cut = cut[: cut.rfind(" ")]
    return cut.rstrip(" ,;:/-") + "…"


def fill(template: str, fields: Mapping[str, object]) -> str:
    """The template with every field clipped to its bound; '' when a field it needs is absent or empty
    (a fact line the rule has nothing for is left out, never shown half-filled)."""
    values = {}
    for name in placeholders(template):
        value = fields.get(name)
        if value is None or value == "":
            return ""
        values[name] = clip(value, FIELDS[name])
    return template.format(**values)


def evidence_words(grade: str, local_policy: bool) -> str:
    """The grade in words a clinician knows; the service's own expert choice is called local policy."""
    if grade == "expert-opinion" and local_policy:
        return "local policy"
    return EVIDENCE_WORDS.get(grade, grade)


def render_detail(facts: Iterable[str], do: str, why: str, evidence: str) -> str:
    """The one place the detail's layout is written: Found, Do, Why (with the evidence grade)."""
    found = FACT_SEPARATOR.join(f for f in facts if f)
    parts = [f"**Found:** {found}."] if found else []
    parts.append(f"**Do:** {do}")
    parts.append(f"**Why:** {why} *Evidence: {evidence}.*")
    return "\n\n".join(parts)


def check_texts(where: str, texts: Mapping[str, str]) -> None:
    """Every template names known fields and, filled with the longest values, fits the budget."""
    for key, template in texts.items():
        unknown = [p for p in placeholders(template) if p not in FIELDS]
        if unknown:
            raise TemplateError(f"{where}.{key}: unknown field '{{{unknown[0]}}}' (known: see knowledge/anatomy.py)")
    for key, template in texts.items():
        if key.startswith("summary"):
            longest = _longest(template, names_at=NAME_FLOOR)
            if len(longest) > SUMMARY_LIMIT:
                raise TemplateError(
                    f"{where}.{key}: can reach {len(longest)} characters with the longest values "
                    f"(limit {SUMMARY_LIMIT}, names shortened to {NAME_FLOOR})"
                )
    found_keys = [k for k in texts if k.startswith("found")] or [""]
    for key in found_keys:
        lines = texts.get(key, "").split("\n") if key else []
        if len(lines) > MAX_FACTS:
            raise TemplateError(f"{where}.{key}: at most {MAX_FACTS} facts")
        facts = [_longest(line) for line in lines if line]
        detail = render_detail(facts, _longest(texts["do"]), _longest(texts["why"]), "local policy")
        if len(detail) > DETAIL_LIMIT:
            raise TemplateError(
                f"{where}: the detail can reach {len(detail)} characters with the longest values "
                f"(limit {DETAIL_LIMIT}): shorten {key or 'do/why'}"
            )


def _longest(template: str, names_at: int | None = None) -> str:
    values = {
        name: "x" * (names_at if names_at is not None and name in NAME_FIELDS else FIELDS[name])
        for name in placeholders(template)
    }
    return template.format(**values)
