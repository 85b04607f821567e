"""Words of a drug name, as every matcher reads them."""

from __future__ import annotations

import re
from functools import lru_cache

_NON_WORD = re.compile(r"[^a-z0-9\-]+")


def words_of(text: str) -> list[str]:
    """Lower-case words; a hyphenated word counts whole ("mag-ox") and by its parts ("magnesium-oxide")."""
    return list(_words(text))


@lru_cache(maxsize=8192)
def _words(text: str) -> tuple[str, ...]:
    """Drug names repeat across calls (the same formulary): each is split once per process."""
    out: list[str] = []
    for token in _NON_WORD.split(text.lower()):
        token = token.strip("-")
        if token:
            out.append(token)
            if "-" in token:
                out.extend(part for part in token.split("-") if part)
    return tuple(out)
