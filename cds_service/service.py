"""One hook call, shared by the HTTP view and `cds-service evaluate`: protocol -> data -> the pipeline
(record, rules, silent rules apart) -> cards -> card memory. The answer holds typed cards; JSON is
built at the edge (`Answer.response`)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine

from . import tracing
from .cards import CardBuilder
from .cards.model import Card, Held, HeldBack, IssuedCard
from .clinical.findings import Finding
from .config import Settings
from .fhir.client import FhirFetcher
from .fhir.gather import gather
from .immutable import immutable
from .memory import CardMemory, MemoryStore
from .memory.memory import EXTENSION as MEMORY_EXTENSION
from .pipeline import Pipeline
from .protocol.errors import ProtocolError
from .protocol.prefetch3 import for_cds_hooks_3
from .protocol.request import parse_request
from .protocol.schemas import validate
from .protocol.services import HOOKS, ServiceDescriptor, ServiceRegistry
from .record.model import DataGap
from .security import TrustedIssuer

log = logging.getLogger(__name__)
DATA_GAPS_EXTENSION = "mg-cds.data-gaps"


@immutable
class Answer:
    """What one call said: the cards returned (each with its finding), the service's own notes, the
    cards held back and the response's extensions."""

    issued: list[IssuedCard] = field(default_factory=list)
    notes: list[Card] = field(default_factory=list)  # card memory's info card
    held: list[Held] = field(default_factory=list)  # raised, kept from the EHR (silent, memory)
    extension: dict[str, Any] = field(default_factory=dict)

    @property
    def rules(self) -> list[str]:
        """The rule ids of the cards returned."""
        return [each.rule_id for each in self.issued]

    @property
    def response(self) -> dict[str, Any]:
        """The CDS Hooks response body: built here, once, at the edge."""
        out: dict[str, Any] = {"cards": [*(i.card.as_json() for i in self.issued), *(n.as_json() for n in self.notes)]}
        if self.extension:
            out["extension"] = self.extension
        return out


class CdsService:
    def __init__(
        self, settings: Settings, fetcher: FhirFetcher | None = None, store_engine: Engine | None = None
    ) -> None:
        """`store_engine`: the store's database, where card memory lives when the site turns it on."""
        self.settings = settings
        self.knowledge = settings.knowledge()
        self.pipeline = Pipeline(self.knowledge, settings.silent)
        self.engine = self.pipeline.engine
        self.cards = CardBuilder(
            self.knowledge, settings.cards.topic_system, settings.cards.source_label, settings.cards.source_url
        )
        # One service per hook (CDS Hooks 2.0: clients key services by id); the legacy id answers both
        # order hooks, unlisted, so a registration made against it keeps working.
        self.registry = ServiceRegistry(self.knowledge)
        self.discovery = self.registry.discovery()
        self.discovery_3 = for_cds_hooks_3(self.discovery, self.knowledge.lab_retention_days)
        self.service_ids = frozenset(self.registry.by_id)
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

    def service(self, service_id: str) -> ServiceDescriptor:
        found = self.registry.get(service_id)
        if found is None:
            raise ProtocolError(404, None, f"no CDS service with id '{service_id}'")
        return found

    def call(
        self, service_id: str, body: Any, issuer: TrustedIssuer | None = None, base_url: str | None = None
    ) -> Answer:
        """The cards returned and held back; ProtocolError for a client's mistake.
        `base_url` is where this service's rule pages are (cards link to them); public_base_url wins."""
        service = self.service(service_id)
        validate("request", body)
        request = parse_request(body, service_id, service.hooks)
        hook = request.spec
        if not self.pipeline.concerns(request, hook):
            return Answer()  # no prefetch resolved, no FHIR call, no 412, no record
        with tracing.span("cds.prefetch") as traced:
            data = gather(request, self.registry.prefetch, self.settings.fhir, self.fetcher, issuer)
            traced.set_attribute("cds.data_gaps", len(data.gaps))
        record = self.pipeline.record(request, data.resources, data.gaps, self.now())
        with tracing.span("cds.engine") as traced:
            findings = self.pipeline.findings(record)
            traced.set_attribute("cds.findings", len(findings))
        client = self.settings.client(issuer.iss if issuer else None)
        pages = self.settings.public_base_url or base_url
        issued, silent = self.pipeline.apart(self.cards.cards(findings, record, client, pages), _finding)
        held = [Held(each, HeldBack.SILENT) for each in silent]
        notes: list[Card] = []
        extension: dict[str, Any] = {}
        if self.memory is not None and issued:
            with tracing.span("cds.store", **{"cds.store.operation": "card-memory"}):
                remembered = self.memory.apply(record, hook, issued, self.now())
            issued, notes = remembered.shown, [remembered.info] if remembered.info else []
            held += remembered.held
            if remembered.counts is not None:
                extension[MEMORY_EXTENSION] = remembered.counts
        if data.gaps:
            extension[DATA_GAPS_EXTENSION] = _gaps(data.gaps)
        return Answer(issued, notes, held, extension)

    def listed_id(self, hook: str) -> str:
        """The discovery id that answers this hook."""
        return self.registry.for_hook(HOOKS[hook]).id

    def describe(self, issuer: str | None = None) -> Mapping[str, Any]:
        """Discovery as this client should see it: 3.0 prefetch templates where its profile asks."""
        if self.settings.client(issuer).prefetch == "3.0":
            return self.discovery_3
        return self.discovery


def _finding(issued: IssuedCard) -> Finding:
    return issued.finding


def _gaps(gaps: tuple[DataGap, ...]) -> list[dict[str, str]]:
    return [{"topic": g.topic, "reason": g.reason} for g in gaps]
