"""The pipeline behind one hook call, shared by the HTTP view and `cds-service evaluate`:
protocol -> data -> record -> rules -> cards."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, NamedTuple

from sqlalchemy import Engine

from . import tracing
from .cards import CardBuilder
from .clinical.engine import RuleEngine
from .clinical.findings import Finding
from .clinical.relevance import may_concern_a_rule
from .config import Settings
from .fhir.client import FhirFetcher
from .fhir.gather import gather
from .fhir.templates import templates_for
from .memory import CardMemory, Held, MemoryStore
from .memory.memory import EXTENSION as MEMORY_EXTENSION
from .protocol.errors import ProtocolError
from .protocol.prefetch3 import for_cds_hooks_3
from .protocol.request import ORDER_HOOKS, parse_request
from .protocol.schemas import discovery_document, validate
from .record import build_record
from .security import TrustedIssuer

log = logging.getLogger(__name__)
DATA_GAPS_EXTENSION = "mg-cds.data-gaps"
LEGACY_ID = "magnesium-order-check"
SILENT = "silent"


class Answer(NamedTuple):
    response: dict[str, Any]
    rules: list[str]  # the rule ids of the cards returned
    held: list[Held]  # cards the rules raised that card memory kept from the EHR


class CdsService:
    def __init__(
        self, settings: Settings, fetcher: FhirFetcher | None = None, store_engine: Engine | None = None
    ) -> None:
        """`store_engine`: the store's database, where card memory lives when the site turns it on."""
        self.settings = settings
        self.knowledge = settings.knowledge()
        self.engine = RuleEngine(self.knowledge)
        self.cards = CardBuilder(
            self.knowledge, settings.cards.topic_system, settings.cards.source_label, settings.cards.source_url
        )
        self.discovery = discovery_document()
        self.discovery_3 = for_cds_hooks_3(self.discovery, self.knowledge.lab_retention_days)
        # One service per hook (CDS Hooks 2.0: clients key services by id). The wave-1 id answers both
        # order hooks, unlisted, so a registration made against it keeps working.
        self.hooks: dict[str, tuple[str, ...]] = {s["id"]: (s["hook"],) for s in self.discovery["services"]}
        self.hooks[LEGACY_ID] = ORDER_HOOKS
        self.service_ids = set(self.hooks)
        self.fetcher = fetcher
        self.memory = (
            CardMemory(
                settings.memory, self.knowledge, MemoryStore(store_engine, self.now), settings.cards.source_label
            )
            if settings.memory.enabled and store_engine is not None
            else None
        )

    def now(self) -> datetime:
        return self.settings.now or datetime.now(UTC)

    def call(
        self, service_id: str, body: Any, issuer: TrustedIssuer | None = None, base_url: str | None = None
    ) -> Answer:
        """The response body, the rule ids of its cards and the cards memory held back; ProtocolError for
        a client's mistake.
        `base_url` is where this service's rule pages are (cards link to them); public_base_url wins."""
        if service_id not in self.service_ids:
            raise ProtocolError(404, None, f"no CDS service with id '{service_id}'")
        validate("request", body)
        request = parse_request(body, service_id, self.hooks[service_id])
        if request.hook in ORDER_HOOKS and not may_concern_a_rule(request, self.engine):
            return Answer({"cards": []}, [], [])  # no prefetch resolved, no FHIR call, no 412, no record
        templates = templates_for(self.discovery, self.listed_id(request.hook), request.hook)
        with tracing.span("cds.prefetch") as traced:
            data = gather(request, templates, self.settings.fhir, self.fetcher, issuer)
            traced.set_attribute("cds.data_gaps", len(data.gaps))
        record = build_record(request, data.resources, data.gaps, self.knowledge, self.now())
        with tracing.span("cds.engine") as traced:
            findings = self.engine.evaluate(record)
            traced.set_attribute("cds.findings", len(findings))
        client = self.settings.client(issuer.iss if issuer else None)
        pages = self.settings.public_base_url or base_url
        cards = self.cards.cards(findings, record, client, pages)
        findings, cards, held = self._without_silent(findings, cards)
        extension: dict[str, Any] = {}
        if self.memory is not None and cards:
            with tracing.span("cds.store", **{"cds.store.operation": "card-memory"}):
                cards, shown_before, counts = self.memory.apply(record, findings, cards, self.now())
            held += shown_before
            if counts is not None:
                extension[MEMORY_EXTENSION] = counts
        response: dict[str, Any] = {"cards": cards}
        if data.gaps:
            extension[DATA_GAPS_EXTENSION] = [{"topic": g.topic, "reason": g.reason} for g in data.gaps]
        if extension:
            response["extension"] = extension
        rules = [c["source"]["topic"]["code"] for c in cards if "topic" in c["source"]]
        return Answer(response, rules, held)

    def _without_silent(
        self, findings: list[Finding], cards: list[dict[str, Any]]
    ) -> tuple[list[Finding], list[dict[str, Any]], list[Held]]:
        """Silent rules (or a silent service) are evaluated and recorded, never returned: shadow mode."""
        quiet = [self.settings.silent or self.knowledge.rule(f.rule_id).mode == SILENT for f in findings]
        if not any(quiet):
            return findings, cards, []
        live = [(f, c) for f, c, q in zip(findings, cards, quiet, strict=True) if not q]
        silent = [Held(c, SILENT) for c, q in zip(cards, quiet, strict=True) if q]
        return [f for f, _ in live], [c for _, c in live], silent

    def listed_id(self, hook: str) -> str:
        """The discovery id that answers this hook (where the legacy id takes its prefetch from)."""
        return str(next(s["id"] for s in self.discovery["services"] if s["hook"] == hook))

    def describe(self, issuer: str | None = None) -> Mapping[str, Any]:
        """Discovery as this client should see it: 3.0 prefetch templates where its profile asks."""
        if self.settings.client(issuer).prefetch == "3.0":
            return self.discovery_3
        return self.discovery
