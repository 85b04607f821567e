"""Findings -> CDS Hooks 2.0 cards (typed: cards/model.py).

A card reads in five seconds: the summary (< 140 characters) says the finding and the action, the
detail says what was found (values, units, dates), what to do and why, with the evidence grade in
words (knowledge/anatomy.py lays it out). Sources are links that open the document they name; the
service's own policy is a link to the rule's page. How the service read the orders and which record
entries it used go to the `mg-cds.explanation` extension, never into the text.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from ..clinical.findings import Finding, SuggestedAction
from ..config import ClientProfile
from ..knowledge.anatomy import SUMMARY_LIMIT, clip, evidence_words, render_detail, shorten
from ..knowledge.model import Knowledge
from ..memo import Memo
from ..pages.links import rule_url
from ..random_ids import new_uuid
from ..record.model import PatientRecord
from .explain import EXTENSION, explanation
from .model import Action, Card, Coding, Indicator, IssuedCard, Link, Source, Suggestion
from .reasons import override_codings
from .resources import lab_service_request, valid_medication_request

log = logging.getLogger(__name__)
LINK_LABEL_LIMIT = 140


class CardBuilder:
    def __init__(
        self, knowledge: Knowledge, topic_system: str, source_label: str, source_url: str | None = None
    ) -> None:
        self.knowledge = knowledge
        self.topic_system = topic_system
        self.source_label = source_label
        self.source_url = source_url
        # Card parts fixed by a rule and where its page is, built on first use. The page's base URL is the
        # caller's host, so these memories are bounded; override reasons come from the knowledge alone.
        self._links: Memo[tuple[tuple[str, ...], str | None], tuple[Link, ...]] = Memo(4096)
        self._source: Memo[tuple[str, str | None], tuple[str | None, Source]] = Memo(1024)
        self._reasons: dict[tuple[str, ...], tuple[Coding, ...]] = {}

    def cards(
        self,
        findings: list[Finding],
        record: PatientRecord,
        client: ClientProfile | None = None,
        pages_base_url: str | None = None,
    ) -> list[IssuedCard]:
        """Each finding with its card. `pages_base_url`: where the service's rule pages are served; each
        card's source links to its rule's."""
        valid_orders = ValidOrders()  # each EHR order, and each of its per-patient elements, checked once per request
        if client is not None:
            findings = [_applicable(f, client) for f in findings]
        return [IssuedCard(f, self.card(f, record, valid_orders, pages_base_url)) for f in findings]

    def card(
        self, finding: Finding, record: PatientRecord, valid_orders: ValidOrders, pages_base_url: str | None = None
    ) -> Card:
        page, source = self._source.get(
            (finding.rule_id, pages_base_url), lambda: self._source_of(finding, pages_base_url)
        )
        do = finding.do
        built = (self.suggestion(a, finding, record, valid_orders) for a in finding.suggestions)
        suggestions = tuple(s for s in built if s is not None)
        dropped = [a for a in finding.suggestions if a.kind == "update-order" and a.order is not None]
        if any(not valid_orders.orders.get(a.order.reference, True) for a in dropped if a.order is not None):
            do += " (Apply by hand: the EHR's draft order cannot take a one-click update.)"
        reasons = self._reasons.get(finding.override_reasons)
        if reasons is None:
            reasons = self._reasons[finding.override_reasons] = self._override_reasons(finding.override_reasons)
        return Card(
            uuid=new_uuid(),
            summary=fit_summary(finding.summary),
            indicator=Indicator(finding.indicator),
            detail=render_detail(finding.facts, do, finding.why, self.evidence(finding)),
            source=source,
            suggestions=suggestions,
            override_reasons=reasons,
            links=self.links(finding, page),
            extension={EXTENSION: explanation(finding, record)},
        )

    def _source_of(self, finding: Finding, pages_base_url: str | None) -> tuple[str | None, Source]:
        """The rule's page and the card's source: the same for every card of a rule at one base URL."""
        page = rule_url(pages_base_url, finding.rule_id) if pages_base_url else None
        topic = Coding(self.topic_system, finding.rule_id, self.knowledge.rule(finding.rule_id).title)
        return page, Source(self.source_label, topic, self.source_url or page)

    def _override_reasons(self, codes: tuple[str, ...]) -> tuple[Coding, ...]:
        reasons = override_codings(self.knowledge, codes) if codes else []
        return tuple(Coding(r["system"], r["code"], r["display"]) for r in reasons)

    def evidence(self, finding: Finding) -> str:
        """The grade in words; a rule resting on the service's own choice says 'local policy'."""
        local = any(self.knowledge.sources[s].local_policy for s in finding.sources)
        return evidence_words(finding.evidence, local)

    def suggestion(
        self, action: SuggestedAction, finding: Finding, record: PatientRecord, valid_orders: ValidOrders
    ) -> Suggestion | None:
        if action.order is not None and not action.order.has_id:
            return None  # an order without an id cannot be deleted or updated by reference
        label = clip(action.label, 200)
        actions: tuple[Action, ...] = ()
        if action.kind == "remove-order" and action.order is not None:
            # Epic shows an action's description as the suggestion's main text: clinician words only.
            actions = (Action("delete", label, resource_id=action.order.reference),)
        elif action.kind == "order-lab" and action.lab and action.due:
            resource = lab_service_request(action.lab, action.due, record, finding.summary)
            actions = (Action("create", label, resource=resource),)
        elif action.kind == "update-order" and action.resource is not None and action.order is not None:
            # The update adds only Dosage strings to the EHR's own order: the order's validity decides.
            order = action.order
            if order.reference not in valid_orders.orders:
                verdict = valid_medication_request(dict(action.resource), valid_orders.elements)
                valid_orders.orders[order.reference] = verdict
            if not valid_orders.orders[order.reference]:
                log.info("update suggestion for rule %s dropped: the order is not valid R4", finding.rule_id)
                return None  # the Do line still states the advice; an EHR cannot apply an invalid update
            actions = (Action("update", label, resource=action.resource),)
        return Suggestion(label, new_uuid(), action.recommended, actions)

    def links(self, finding: Finding, page: str | None) -> tuple[Link, ...]:
        """One link per published source, labelled by its citation; the service's own policy links to
        the rule's page, labelled 'Local policy: <what it says>' (built once per source list and page)."""
        return self._links.get((finding.sources, page), lambda: self._links_of(finding.sources, page))

    def _links_of(self, sources: tuple[str, ...], page: str | None) -> tuple[Link, ...]:
        found: list[Link] = []
        seen: set[str] = set()
        for sid in sources:
            src = self.knowledge.sources[sid]
            if src.local_policy:
                if page and page not in seen:
                    seen.add(page)
                    claim = src.claim or src.citation
                    found.append(Link(_short(f"Local policy: {claim}"), page))
            elif src.url and src.url not in seen:
                seen.add(src.url)
                found.append(Link(_short(src.citation), src.url))
        return tuple(found)


class ValidOrders:
    """What one request found about the R4 validity of the EHR's orders its suggestions update."""

    def __init__(self) -> None:
        self.orders: dict[str, bool] = {}  # by order reference
        self.elements: dict[tuple[str, bytes], bool] = {}  # per-patient elements (cards/resources.py)


def _applicable(finding: Finding, client: ClientProfile) -> Finding:
    """Buttons only for what this client can apply; the advice stays in the card's Do line."""
    kept = tuple(s for s in finding.suggestions if client.applies(s.kind))
    return finding if len(kept) == len(finding.suggestions) else replace(finding, suggestions=kept)


def fit_summary(text: str) -> str:
    """CDS Hooks asks for < 140 characters (the rule's templates are checked against it at load)."""
    return clip(text, SUMMARY_LIMIT)


def _short(citation: str) -> str:
    """A link label within its limit, cut at a word (never inside a number: '20-2…')."""
    return shorten(citation, LINK_LABEL_LIMIT)
