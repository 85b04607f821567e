"""Where the rule pages live, for the card layer (kept apart so cards need no Flask import)."""

from __future__ import annotations

PATH = "/rules"


def rule_url(base_url: str, rule_id: str) -> str:
    """Where a card's `source.url` points: this rule's page under the service's base URL."""
    return f"{base_url.rstrip('/')}{PATH}/{rule_id}"
