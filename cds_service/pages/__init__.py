"""Human-readable rule pages (`GET /rules`, `/rules/<id>`): what each rule checks, the numbers and
gating in force at this site, its sources, and its recent cards and feedback. Every card's
`source.url` points here. Server-rendered HTML with inline styles only: it opens on a phone in the
EHR's embedded browser with no asset to fetch."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from functools import cache

from flask import Blueprint, Response, render_template
from sqlalchemy.exc import SQLAlchemyError

from ..access import Access, view
from ..feedback import FeedbackStore, StoreUnavailable
from ..feedback.report import RuleNumbers, per_rule
from ..knowledge import load_knowledge
from ..knowledge.model import Knowledge
from .catalogue import STATUS_WORDS, cited_by, rule_page, site_parameters
from .links import PATH

log = logging.getLogger(__name__)
COUNT_DAYS = 30
# Rule pages hold no patient data; a clinician opens them from a card in a browser, with no EHR token.
PAGES_POLICY = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"


def rule_pages(knowledge: Knowledge, store: FeedbackStore, clock: datetime | None = None) -> Blueprint:
    """The blueprint, bound to the knowledge in force and the store the counts come from."""
    pages = Blueprint("rules", __name__, template_folder="templates")

    @pages.context_processor
    def constants() -> dict[str, object]:
        return {"count_days": COUNT_DAYS, "status_words": STATUS_WORDS}

    @pages.after_request
    def nothing_else_loads(response: Response) -> Response:
        response.headers["Content-Security-Policy"] = PAGES_POLICY  # nothing but the page itself loads
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    @pages.get(PATH)
    @view("rule-pages", Access.OPEN)
    def index() -> str:
        shipped = _shipped()
        rows = [rule_page(knowledge, shipped, rule_id) for rule_id in knowledge.rules]
        counts, since = _recent(store, clock)
        shared = site_parameters(knowledge, shipped)
        shared_sources = cited_by(shared)
        return render_template(
            "rules/index.html",
            rows=rows,
            shared=shared,
            shared_sources=shared_sources,
            shared_refs={s.id: i for i, s in enumerate(shared_sources, start=1)},
            renal_estimate=knowledge.renal_estimate,
            counts=counts,
            since=since,
        )

    @pages.get(f"{PATH}/<rule_id>")
    @view("rule-pages", Access.OPEN)
    def rule(rule_id: str) -> str | tuple[str, int]:
        if rule_id not in knowledge.rules:
            return render_template("rules/missing.html", rule_id=rule_id), 404
        counts, since = _recent(store, clock, rule_id)
        page = rule_page(knowledge, _shipped(), rule_id)
        numbers = counts.get(rule_id, RuleNumbers(rule_id)) if counts is not None else None
        return render_template("rules/rule.html", page=page, numbers=numbers, since=since)

    return pages


@cache
def _shipped() -> Knowledge:
    """The knowledge as released (no site overrides), loaded at the first page view, not at start."""
    return load_knowledge()


def _recent(
    store: FeedbackStore, clock: datetime | None, rule_id: str | None = None
) -> tuple[dict[str, RuleNumbers] | None, datetime]:
    """Cards and feedback of the last COUNT_DAYS days per rule; None when the store cannot say."""
    since = (clock or datetime.now(UTC)) - timedelta(days=COUNT_DAYS)
    try:
        return {row.rule_id: row for row in per_rule(store, since, rule_id)}, since
    except (StoreUnavailable, SQLAlchemyError) as exc:
        log.warning("rule pages: counts unavailable, store error %s", type(exc).__name__)
        return None, since
