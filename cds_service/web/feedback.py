"""Feedback on cards (the EHR's JWT required): stored, counted, and a snooze for card memory."""

from __future__ import annotations

import logging

from flask import Blueprint, Response

from .. import metrics
from ..access import view
from ..feedback import FeedbackStore, StoreUnavailable
from ..instrumentation import annotate
from ..protocol.errors import operation_outcome
from ..protocol.schemas import validate
from ..service import CdsService
from .edge import json_body, json_response

log = logging.getLogger("cds_service")
RETRY_AFTER_SECONDS = "5"


def feedback(service: CdsService, store: FeedbackStore) -> Blueprint:
    blueprint = Blueprint("feedback", __name__)

    @blueprint.post("/cds-services/<service_id>/feedback")
    @view("feedback")
    def receive(service_id: str) -> Response:
        service.service(service_id)  # 404 for an unknown service
        body = json_body()
        validate("feedback", body)
        try:
            stored = store.add(service_id, body["feedback"])
        except StoreUnavailable as exc:
            log.warning("feedback not stored: store unavailable (%s)", exc)
            metrics.STORE_ERRORS.labels("feedback").inc()
            outcome = operation_outcome(503, "feedback store unavailable; nothing was stored, please retry")
            response = json_response(outcome, 503)
            response.headers["Retry-After"] = RETRY_AFTER_SECONDS
            return response
        for item in stored:
            rule = item.rule_id or metrics.UNKNOWN_RULE
            metrics.FEEDBACK.labels(service_id, rule, item.outcome, item.reason_code or "").inc()
            if item.first_for_card:
                metrics.FEEDBACK_CARDS.labels(service_id, rule, item.outcome, item.reason_code or "").inc()
        if service.memory is not None:
            snoozed = service.memory.snooze(body["feedback"], service.now())
            if snoozed:
                annotate(snoozed=snoozed)
        annotate(service=service_id, feedback=len(body["feedback"]), stored=len(stored))
        return json_response({"received": len(body["feedback"]), "stored": len(stored)})

    return blueprint
