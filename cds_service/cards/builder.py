"""Findings -> CDS Hooks 2.0 cards: uuid, summary < 140 characters, Markdown detail, source with the
rule id as topic, suggestions with uuids and selectionBehavior, overrideReasons with display, links."""

from __future__ import annotations

import logging
import uuid
from dataclasses import replace
from typing import Any

from ..clinical.findings import Finding, SuggestedAction
from ..config import ClientProfile
from ..knowledge.model import Knowledge
from ..pages.links import rule_url
from ..record.model import PatientRecord
from .reasons import override_codings
from .resources import lab_service_request, valid_medication_request

log = logging.getLogger(__name__)

SUMMARY_LIMIT = 139


class CardBuilder:
    def __init__(
        self, knowledge: Knowledge, topic_system: str, source_label: str, source_url: str | None = None
    ) -> None:
        self.knowledge = knowledge
        self.topic_system = topic_system
        self.source_label = source_label
        self.source_url = source_url
        # Card parts fixed by a rule's sources, built on first use (dict writes are atomic under the GIL).
        self._cited_cache: dict[tuple[str, ...], str] = {}
        self._links_cache: dict[tuple[str, ...], tuple[dict[str, str], ...]] = {}

    def cards(
        self,
        findings: list[Finding],
        record: PatientRecord,
        client: ClientProfile | None = None,
        pages_base_url: str | None = None,
    ) -> list[dict[str, Any]]:
        """`pages_base_url`: where the service's rule pages are served; each card's source links to its rule's."""
        valid_orders: dict[str, bool] = {}  # each EHR order is checked once per request
        if client is not None and not client.update_suggestions:
            findings = [_advice_in_text(f) for f in findings]
        return [self.card(f, record, valid_orders, pages_base_url) for f in findings]

    def card(
        self, finding: Finding, record: PatientRecord, valid_orders: dict[str, bool], pages_base_url: str | None = None
    ) -> dict[str, Any]:
        spec = self.knowledge.rule(finding.rule_id)
        source: dict[str, Any] = {
            "label": self.source_label,
            "topic": {"system": self.topic_system, "code": finding.rule_id, "display": spec.title},
        }
        url = self.source_url or (rule_url(pages_base_url, finding.rule_id) if pages_base_url else None)
        if url:
            source["url"] = url
        card: dict[str, Any] = {
            "uuid": str(uuid.uuid4()),
            "summary": fit_summary(finding.summary),
            "indicator": finding.indicator,
            "detail": self.detail(finding),
            "source": source,
        }
        suggestions = [s for s in (self.suggestion(a, finding, record, valid_orders) for a in finding.suggestions) if s]
        dropped = [a for a in finding.suggestions if a.kind == "update-order" and a.order is not None]
        if any(not valid_orders.get(a.order.reference, True) for a in dropped):
            card["detail"] += (
                "\n\n**Note:** the advice could not be offered as a one-click update: the EHR's draft order is "
                "not valid FHIR R4 even after repair; apply it by hand."
            )
        if suggestions:
            card["suggestions"] = suggestions
            card["selectionBehavior"] = "at-most-one" if len(suggestions) == 1 else "any"
        if finding.override_reasons:
            card["overrideReasons"] = override_codings(self.knowledge, finding.override_reasons)
        links = self.links(finding)
        if links:
            card["links"] = links
        return card

    def detail(self, finding: Finding) -> str:
        found = "\n".join(f"- {line}" for line in finding.found)
        return (
            f"**What was found**\n{found}\n\n"
            f"**Why it matters**\n{finding.why}\n\n"
            f"**What to do**\n{finding.action}\n\n"
            f"**Evidence:** {finding.evidence} (rule `{finding.rule_id}`)\n" + self._cited(finding.sources)
        )

    def _cited(self, sources: tuple[str, ...]) -> str:
        """The numbered source list: the same for every card of a rule, so written once per process."""
        text = self._cited_cache.get(sources)
        if text is None:
            cited = [self.knowledge.sources[s] for s in sources]
            lines = (f"{i}. {src.citation} ({src.status})" for i, src in enumerate(cited, start=1))
            text = self._cited_cache[sources] = "\n".join(lines)
        return text

    def suggestion(
        self, action: SuggestedAction, finding: Finding, record: PatientRecord, valid_orders: dict[str, bool]
    ) -> dict[str, Any] | None:
        if action.order is not None and not action.order.has_id:
            return None  # an order without an id cannot be deleted or updated by reference; the card says why
        out: dict[str, Any] = {"label": action.label[:200], "uuid": str(uuid.uuid4())}
        if action.recommended:
            out["isRecommended"] = True
        if action.kind == "remove-order" and action.order is not None:
            out["actions"] = [
                {
                    "type": "delete",
                    "description": f"Remove {action.order.reference}",
                    "resourceId": action.order.reference,
                }
            ]
        elif action.kind == "order-lab" and action.lab and action.due:
            resource = lab_service_request(action.lab, action.due, record, f"{finding.rule_id}: {finding.summary}")
            out["actions"] = [{"type": "create", "description": action.label[:200], "resource": resource}]
        elif action.kind == "update-order" and action.resource is not None and action.order is not None:
            # The update adds only Dosage strings to the EHR's own order: the order's validity decides.
            order = action.order
            if order.reference not in valid_orders:
                valid_orders[order.reference] = valid_medication_request(dict(action.resource))
            if not valid_orders[order.reference]:
                log.info("update suggestion for rule %s dropped: the order is not valid R4", finding.rule_id)
                return None  # the card still states the advice; an EHR cannot apply an invalid update
            out["actions"] = [{"type": "update", "description": action.label[:200], "resource": action.resource}]
        return out

    def links(self, finding: Finding) -> list[dict[str, str]]:
        """One link per source URL, labelled by that source's own citation (built once per source list)."""
        links = self._links_cache.get(finding.sources)
        if links is None:
            found, seen = [], set()
            for sid in finding.sources:
                src = self.knowledge.sources[sid]
                if src.url and src.url not in seen:
                    seen.add(src.url)
                    found.append({"label": _short(src.citation), "url": src.url, "type": "absolute"})
            links = self._links_cache[finding.sources] = tuple(found)
        return [dict(link) for link in links]


def _advice_in_text(finding: Finding) -> Finding:
    """For a client that cannot apply an update: the advice moves into the card's text, the button goes."""
    updates = [s for s in finding.suggestions if s.kind == "update-order"]
    if not updates:
        return finding
    lines = tuple(f"To do by hand (this EHR cannot apply order updates): {s.label}" for s in updates)
    kept = tuple(s for s in finding.suggestions if s.kind != "update-order")
    return replace(finding, found=(*finding.found, *lines), suggestions=kept)


def fit_summary(text: str) -> str:
    """CDS Hooks asks for < 140 characters: shorten the longest part (the drug name) with an ellipsis."""
    text = " ".join(text.split())
    return text if len(text) <= SUMMARY_LIMIT else text[: SUMMARY_LIMIT - 1].rstrip() + "…"


def _short(citation: str) -> str:
    return citation if len(citation) <= 90 else citation[:89].rstrip() + "…"
