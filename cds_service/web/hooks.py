"""The CDS Hooks endpoints: discovery and the hook call (the EHR's JWT required)."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, Response, g

from .. import metrics
from ..access import view
from ..cards.explain import card_row
from ..feedback.recorder import CardRecorder
from ..instrumentation import annotate
from ..service import CdsService
from .edge import base_url, json_body, json_response


def hooks(service: CdsService, recorder: CardRecorder) -> Blueprint:
    blueprint = Blueprint("hooks", __name__)

    @blueprint.get("/cds-services")
    @view("discovery")
    def discovery() -> Response:
        return json_response(service.describe(g.issuer.iss if g.issuer else None))

    @blueprint.post("/cds-services/<service_id>")
    @view("service")
    def call_service(service_id: str) -> Response:
        body = json_body()
        answer = service.call(service_id, body, issuer=g.issuer, base_url=base_url(service.settings.public_base_url))
        hook, instance = body["hook"], str(body["hookInstance"])
        # Let the request's objects go before the response is built: alive, they are most of what the
        # collector would walk on the way (a collection per call where a third of one is left; bench/README).
        del body
        annotate(service=service_id, hook=hook, cards=len(answer.issued), rules=sorted(set(answer.rules)))
        for each in answer.issued:  # the indicator is a StrEnum: its label is its value, as str() gives it
            metrics.child(metrics.CARDS_ISSUED, service_id, each.finding.rule_id, each.card.indicator).inc()
        for item in answer.held:
            metrics.CARDS_HELD_BACK.labels(service_id, item.issued.rule_id, item.reason.value).inc()
        if answer.held:
            annotate(held_back=len(answer.held))
        now = datetime.now(UTC)
        rows = [card_row(each, service_id, hook, instance, now) for each in answer.issued]
        rows += [card_row(item.issued, service_id, hook, instance, now, item.reason.value) for item in answer.held]
        recorder.record(rows)  # built and written by the recorder's thread
        return json_response(answer.response)

    return blueprint
